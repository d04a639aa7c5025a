"""Train K seeds of one variant in one process as one batched model (BatchNorm-free models only).

Each seed's models, optimisers and RNG come from `build_step`, exactly as its sequential run builds
them; the K parameter sets are stacked (`torch.func.stack_module_state`) and the forward passes run
once for all seeds through `vmap(functional_call)`. Every seed draws its real batches, noise and
gradient-penalty interpolation weights from its own generator in `train_step`'s order, and one Adam
per network over the stacked parameters equals K separate Adams (Adam is element-wise). The seeds
are independent, so the gradient of the summed per-seed losses with respect to the stacked
parameters is, slice by slice, each seed's own gradient. Diversity terms (GDPP: data-dependent
checks, a custom autograd Function, eigh) run per seed in a Python loop over the K slices.

Each seed writes a normal run directory: config.json, log.csv (same columns and rows), checkpoints
in the engine's format (a sequential `train()` resumes them), samples.png, DONE. A seed whose logged
means turn non-finite is marked failed and leaves the batch; the others go on.

Differences from K sequential runs: results agree to float rounding only (batched matmuls sum in
another order than the per-seed ones; GAN training then amplifies the differences over many
steps), `train_wall_s` of each seed is the wall time of the shared batched session and `train_cpu_s` its
CPU time divided among the seeds.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, stack_module_state, vmap

from gdpp_bench.config import RunSpec
from gdpp_bench.data import dataset_of, describe_data
from gdpp_bench.losses import Generated, split_term_output
from gdpp_bench.losses.adversarial import interpolation_penalty
from gdpp_bench.models.base import DOut
from gdpp_bench.rundir import RunDir
from gdpp_bench.training.engine import EvalHook, Run, drive
from gdpp_bench.training.reconcile import reconcile
from gdpp_bench.training.state import TrainStep, build_step, set_grads

SUPPORTED_MODELS = ("mlp2d",)
STEP_EXECUTION = "seed-parallel (eager, {k} seeds batched with vmap)"


def check_seed_parallel(specs: Sequence[RunSpec]) -> None:
    """Raise ValueError naming the reason when `specs` cannot be trained as one batched model."""
    if not specs:
        raise ValueError("seed-parallel training needs at least one run")
    first = specs[0]
    if first.model not in SUPPORTED_MODELS:
        raise ValueError(
            f"seed-parallel training supports only BatchNorm-free models ({', '.join(SUPPORTED_MODELS)}); "
            f"model {first.model!r} is not supported (batch statistics would need per-seed buffers "
            "under vmap); train these runs sequentially"
        )
    modifiers = first.variant.discriminator
    if modifiers:
        raise ValueError(
            f"seed-parallel training does not support discriminator modifiers ({', '.join(modifiers)}: "
            "packing changes the gradient penalty's unit); train these runs sequentially"
        )
    common = _without_seed(first)
    for spec in specs[1:]:
        if _without_seed(spec) != common:
            raise ValueError(
                "seed-parallel training batches seeds of one run configuration; "
                f"{spec.key!r} differs from {first.key!r} in more than the seed"
            )
    seeds = [spec.seed for spec in specs]
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seed-parallel training got a seed twice: {seeds}")
    cfg = first.train
    if cfg.precision != "fp32":
        raise ValueError(f"seed-parallel training runs in fp32 only, not precision {cfg.precision!r}")
    if cfg.compile:
        raise ValueError("seed-parallel training does not support compile = true")
    if cfg.update == "g-first":
        raise ValueError(
            'seed-parallel training does not support update = "g-first"; train these runs sequentially'
        )
    if cfg.latent != "normal" or cfg.term_real_features != "pre-update":
        raise ValueError(
            'seed-parallel training supports only latent = "normal" and '
            'term_real_features = "pre-update"; train these runs sequentially'
        )


def _without_seed(spec: RunSpec) -> dict[str, Any]:
    data = spec.to_dict()
    data.pop("seed")
    data.pop("key")
    return data


def _check_module(module: nn.Module, what: str) -> None:
    batch_norms = [
        name for name, m in module.named_modules() if isinstance(m, nn.modules.batchnorm._NormBase)
    ]
    buffers = [name for name, _ in module.named_buffers()]
    if batch_norms or buffers:
        raise ValueError(
            f"seed-parallel training needs models without BatchNorm or buffers; the {what} has "
            f"{', '.join(batch_norms or buffers)}"
        )


def _stacked_forward(module: nn.Module, names: list[str]) -> Callable[[list[Tensor], Tensor], Any]:
    """f(stacked params [K, ...] in `names` order, x [K, B, ...]) -> the K modules' outputs."""
    base = copy.deepcopy(module).to("meta")

    def call(params: tuple[Tensor, ...], x: Tensor) -> Any:
        out = functional_call(base, dict(zip(names, params, strict=True)), (x,))
        return tuple(out) if isinstance(out, DOut) else out

    batched = vmap(call)

    def forward(params: list[Tensor], x: Tensor) -> Any:
        out = batched(tuple(params), x)
        return DOut(*out) if isinstance(out, tuple) else out

    return forward


class SeedParallelSteps:
    """The engine's step function for the seeds of one configuration (see `engine.drive`): their
    stacked parameters and Adam states, and their batched training step."""

    def __init__(self, steps: list[TrainStep], device: torch.device, execution: str | None = None) -> None:
        self.steps = steps
        first = steps[0]
        self.device = device
        self.execution = execution or STEP_EXECUTION.format(k=len(steps))
        g_params, _ = stack_module_state([s.generator for s in steps])
        d_params, _ = stack_module_state([s.discriminator for s in steps])
        self.g_params = list(g_params.values())
        self.d_params = list(d_params.values())
        self.g_forward = _stacked_forward(first.generator, list(g_params))
        self.d_forward = _stacked_forward(first.discriminator, list(d_params))
        self.opt_g = self._stacked_adam(
            self.g_params, [s.opt_g for s in steps], [list(s.generator.parameters()) for s in steps]
        )
        self.opt_d = self._stacked_adam(
            self.d_params, [s.opt_d for s in steps], [list(s.discriminator.parameters()) for s in steps]
        )
        adversarial, targets = first.adversarial, first.d_targets
        self.adv_d = vmap(lambda rl, rf, fl, ff: adversarial.d_loss(DOut(rl, rf), DOut(fl, ff), targets))
        g_target = first.g_target
        self.adv_g = vmap(lambda fl, ff: adversarial.g_loss(DOut(fl, ff), g_target))

    def _stacked_adam(
        self, stacked: list[Tensor], opts: list[torch.optim.Optimizer], params: list[list[Tensor]]
    ) -> torch.optim.Optimizer:
        group = opts[0].param_groups[0]
        adam = torch.optim.Adam(
            stacked, lr=group["lr"], betas=group["betas"], eps=group["eps"], fused=self.device.type == "cuda"
        )
        for i, param in enumerate(stacked):
            states: list[Any] = [
                opt.state.get(seed_params[i]) for opt, seed_params in zip(opts, params, strict=True)
            ]
            if not any(states):
                continue
            if not all(states):
                raise ValueError("seed-parallel training: some seeds have optimiser state, others not")
            adam.state[param] = {
                "step": states[0]["step"].clone().to(param.device if adam.defaults["fused"] else "cpu"),
                "exp_avg": torch.stack([s["exp_avg"] for s in states]).to(param.device),
                "exp_avg_sq": torch.stack([s["exp_avg_sq"] for s in states]).to(param.device),
            }
        return adam

    def sync(self) -> None:
        """Copy each seed's slice of the parameters and Adam state into its own modules/optimisers."""
        for k, step in enumerate(self.steps):
            for module, opt, stacked, adam in (
                (step.generator, step.opt_g, self.g_params, self.opt_g),
                (step.discriminator, step.opt_d, self.d_params, self.opt_d),
            ):
                for param, big in zip(module.parameters(), stacked, strict=True):
                    with torch.no_grad():
                        param.copy_(big[k])
                    state = adam.state.get(big)
                    if state:
                        own = opt.state.get(param)
                        step_t = state["step"].detach().clone()
                        if own is not None and "step" in own:
                            step_t = step_t.to(own["step"].device)
                        opt.state[param] = {
                            "step": step_t,
                            "exp_avg": state["exp_avg"][k].detach().clone(),
                            "exp_avg_sq": state["exp_avg_sq"][k].detach().clone(),
                        }

    # --- the batched train_step -------------------------------------------------------------

    def _draw(self) -> tuple[Tensor, Tensor]:
        """Each seed's real batch then noise, from its own generator, in train_step's order."""
        real = torch.stack([s.sample_real(s.batch_size, s.rng) for s in self.steps])
        noise = torch.stack([s.noise() for s in self.steps])
        return real, noise

    def _d_loss(self, real: Tensor, fake: Tensor) -> tuple[Tensor, DOut, DOut, Tensor]:
        out_real, out_fake = self.d_forward(self.d_params, real), self.d_forward(self.d_params, fake)
        loss = self.adv_d(out_real.logits, out_real.features, out_fake.logits, out_fake.features)
        penalty = torch.zeros(len(self.steps), device=real.device)
        gp_weight = self.steps[0].adversarial.gp_weight
        if gp_weight:
            fake = fake.detach()
            shape = (real.shape[1],) + (1,) * (real.ndim - 2)
            alpha = torch.stack(
                [torch.rand(shape, generator=s.rng, device=real.device, dtype=real.dtype) for s in self.steps]
            )
            penalty = interpolation_penalty(
                lambda mixed: self.d_forward(self.d_params, mixed).logits, real, fake, alpha, leading=1
            )
            loss = loss + gp_weight * penalty
        return loss, out_real, out_fake, penalty

    def _g_loss(
        self, out_real: DOut, out_fake: DOut, noise: Tensor, fake: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        loss = self.adv_g(out_fake.logits, out_fake.features)
        term_values = []
        for name, term, weight in self.steps[0].terms:
            seed_values = []
            for k, step in enumerate(self.steps):
                value, diagnostics = split_term_output(
                    term(
                        DOut(out_real.logits[k], out_real.features[k]),
                        DOut(out_fake.logits[k], out_fake.features[k]),
                        Generated(noise[k], fake[k]),
                    )
                )
                seed_values.append(value)
                if diagnostics is not None:
                    step.term_diagnostics[name] = diagnostics
            value = torch.stack(seed_values)
            term_values.append(value)
            loss = loss + weight * value
        return loss, term_values

    def __call__(self) -> Tensor:
        """One train_step for every seed; returns the logged values, [K, columns]."""
        first = self.steps[0]
        for _ in range(first.d_steps - 1 if first.update == "simultaneous" else first.d_steps):
            real, noise = self._draw()
            fake = self.g_forward(self.g_params, noise)
            d_loss, out_real, out_fake, penalty = self._d_loss(real, fake.detach())
            set_grads(self.d_params, d_loss.sum())  # seeds are independent: per-seed gradients
            self.opt_d.step()
        if first.update == "simultaneous":
            real, noise = self._draw()
            fake = self.g_forward(self.g_params, noise)
            d_loss, out_real, out_fake, penalty = self._d_loss(real, fake)
            g_loss, term_values = self._g_loss(out_real, out_fake, noise, fake)
            set_grads(self.d_params, d_loss.sum(), retain_graph=True)
            set_grads(self.g_params, g_loss.sum())
            self.opt_d.step()
            self.opt_g.step()
        else:
            g_loss, term_values = self._g_loss(out_real, self.d_forward(self.d_params, fake), noise, fake)
            set_grads(self.g_params, g_loss.sum())
            self.opt_g.step()
        logged = [
            d_loss,
            g_loss,
            out_real.logits.mean(dim=1),
            out_fake.logits.mean(dim=1),
            penalty,
            *term_values,
        ]
        return torch.stack([v.detach().float() for v in logged], dim=1)

    def keep(self, indices: list[int]) -> SeedParallelSteps:
        """Restacked from the seeds' own modules and optimisers, which `sync` has brought up to date."""
        return SeedParallelSteps([self.steps[k] for k in indices], self.device, self.execution)


def train_seed_parallel(
    specs: Sequence[RunSpec],
    results: Path,
    device: torch.device,
    data_root: str | None = None,
    eval_hooks: Sequence[EvalHook | None] | None = None,
    policy: str = "refuse",
) -> list[dict[str, Any]]:
    """Train the runs `specs` (one configuration, several seeds) as one batched model.

    Run folders are RESULTS/SUITE/KEY as for `train`. Runs already done are skipped; runs with a
    checkpoint resume (runs at the same step are batched together). `eval_hooks[i]` is the
    periodic-evaluation hook of `specs[i]` (used when eval.every > 0, as `train` uses its hook).
    Returns each run's recorded status, in the order of `specs`, as `train` does.
    Raises ValueError for what cannot be batched (see `check_seed_parallel`).
    """
    specs = list(specs)
    check_seed_parallel(specs)
    if device.type != "cpu":
        # fused Adam on CUDA rejects the stacked parameters ("params, grads, exp_avgs, and
        # exp_avg_sqs must have same dtype, device, and layout"); there the sequential steps replay
        # CUDA graphs instead
        raise ValueError(f"seed-parallel training runs on the CPU only, not {device.type}")
    hooks = list(eval_hooks) if eval_hooks is not None else [None] * len(specs)
    if len(hooks) != len(specs):
        raise ValueError("eval_hooks must have one entry per spec")
    run_dirs = [RunDir.for_spec(results, spec) for spec in specs]
    for spec, run_dir in zip(specs, run_dirs, strict=True):
        with run_dir.lock():
            reconcile(spec, run_dir, policy)
    pending = [i for i, run_dir in enumerate(run_dirs) if not run_dir.is_done()]
    if pending:
        dataset = dataset_of(specs[0])
        sampler = dataset.sampler(device, data_root)
        data = describe_data(dataset, data_root)
        with contextlib.ExitStack() as stack:
            runs = []
            for i in pending:
                step = build_step(specs[i], device, sampler)
                _check_module(step.generator, "generator")
                _check_module(step.discriminator, "discriminator")
                stack.enter_context(run_dirs[i].lock())
                if run_dirs[i].is_done():  # finished by another process meanwhile
                    continue
                runs.append(Run.open(specs[i], run_dirs[i], step, device, hooks[i], data))
            groups: dict[tuple[int, int], list[Run]] = {}
            for run in runs:  # runs at the same step and log count train together
                groups.setdefault((run.start, run.progress.log_count), []).append(run)
            for _, group in sorted(groups.items(), key=lambda item: item[0]):
                drive(group, SeedParallelSteps([run.step for run in group], device))
    return [run_dir.status() for run_dir in run_dirs]


# --- grouping and the pipeline's entry point --------------------------------------------------


def seed_groups(specs: Sequence[RunSpec]) -> list[list[RunSpec]]:
    """Specs that differ only in the seed, grouped in first-seen order."""
    groups: dict[str, list[RunSpec]] = {}
    for spec in specs:
        key = repr(sorted(_without_seed(spec).items(), key=lambda item: item[0]))
        groups.setdefault(key, []).append(spec)
    return list(groups.values())


def supports_seed_parallel(spec: RunSpec, device: torch.device | None = None) -> bool:
    """Whether `spec`'s seeds can train batched on `device` (None: the CPU)."""
    if device is not None and device.type != "cpu":
        return False
    try:
        check_seed_parallel([spec])
    except ValueError:
        return False
    return True
