"""The training loop: one resumable, deterministic, device-aware function."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from gdpp_bench.checkpoint import load_checkpoint, restore_rng_state, rng_state, save_checkpoint
from gdpp_bench.config import RunSpec
from gdpp_bench.cuda_graph import GraphedStep, graph_blocker
from gdpp_bench.data import DATASETS
from gdpp_bench.environment import describe
from gdpp_bench.errors import UserError
from gdpp_bench.losses import (
    ADVERSARIAL,
    TERM_DIAGNOSTICS,
    TERMS,
    AdversarialLoss,
    Generated,
    gradient_penalty,
    split_term_output,
)
from gdpp_bench.models import MODELS
from gdpp_bench.models.modifiers import check_batch_size, discriminator_options
from gdpp_bench.progress import RunProgress, notice, say
from gdpp_bench.rundir import RunDir, UnreadableFile, read_json, set_aside, write_atomic, write_json
from gdpp_bench.samples import fixed_noise_samples, save_samples

EvalHook = Callable[[nn.Module, int], dict[str, float]]
FIXED_NOISE_SEED = 2019
SCATTER_POINTS = 2_500
MIXTURE_LATENT_STD = 0.2  # the official Stacked-MNIST script's zsig
MIXTURE_CENTRES_SEED_OFFSET = 7_919  # the centres' own stream, apart from training noise


@dataclass
class TrainStep:
    """What one training step needs; built once per run."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    adversarial: AdversarialLoss
    terms: list[tuple[str, Callable[..., Any], float]]
    sample_real: Callable[[int, torch.Generator], Tensor]
    rng: torch.Generator
    batch_size: int
    d_steps: int
    simultaneous: bool
    d_targets: tuple[float, float]  # D's labels for real and fake samples
    g_target: float  # the label G's loss gives its samples
    latent_centres: Tensor | None  # the "mixture" latent's fixed centre per batch position
    post_update_real: bool  # alternating: terms compare with the updated D's real features
    graph_blocker: str | None  # why the step runs eagerly; None = captured in a CUDA graph
    # the latest step's diagnostics of each term that has a log diagnostic (TERM_DIAGNOSTICS)
    term_diagnostics: dict[str, Any] = field(default_factory=dict)

    def noise(self) -> Tensor:
        z_dim = self.generator.z_dim
        z = torch.randn(self.batch_size, cast(int, z_dim), generator=self.rng, device=self.rng.device)
        if self.latent_centres is not None:
            return self.latent_centres + MIXTURE_LATENT_STD * z
        return z

    def log_columns(self) -> list[str]:
        return ["d_loss", "g_loss", "d_real", "d_fake", "gp"] + [name for name, _, _ in self.terms]

    def diagnostic_terms(self) -> list[str]:
        """Terms with a log diagnostic, whose columns follow imgs_per_s in log.csv."""
        return [name for name, _, _ in self.terms if name in TERM_DIAGNOSTICS]


def set_grads(params: Sequence[Tensor], loss: Tensor, retain_graph: bool = False) -> None:
    """params' .grad = d(loss)/d(params), computing no gradient for any other module."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph)
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad


def _d_loss(step: TrainStep, real: Tensor, fake: Tensor) -> tuple[Tensor, Any, Any, Tensor]:
    out_real, out_fake = step.discriminator(real), step.discriminator(fake)
    loss = step.adversarial.d_loss(out_real, out_fake, step.d_targets)
    penalty = torch.zeros((), device=real.device)
    if step.adversarial.gp_weight:
        penalty = gradient_penalty(step.discriminator, real, fake.detach(), step.rng)
        loss = loss + step.adversarial.gp_weight * penalty
    return loss, out_real, out_fake, penalty


def _g_loss(
    step: TrainStep, out_real: Any, out_fake: Any, generated: Generated
) -> tuple[Tensor, list[Tensor]]:
    term_values = []
    for name, term, _ in step.terms:
        value, diagnostics = split_term_output(term(out_real, out_fake, generated))
        term_values.append(value)
        if diagnostics is not None:
            step.term_diagnostics[name] = diagnostics
    loss = step.adversarial.g_loss(out_fake, step.g_target)
    for (_, _, weight), value in zip(step.terms, term_values, strict=True):
        loss = loss + weight * value
    return loss, term_values


def train_step(step: TrainStep) -> Tensor:
    """D step(s) then a G step (or one simultaneous update); returns the values to log."""
    g_params = list(step.generator.parameters())
    d_params = list(step.discriminator.parameters())
    for _ in range(step.d_steps - 1 if step.simultaneous else step.d_steps):
        real = step.sample_real(step.batch_size, step.rng)
        z = step.noise()
        fake = step.generator(z)
        d_loss, out_real, out_fake, penalty = _d_loss(step, real, fake.detach())
        set_grads(d_params, d_loss)
        step.opt_d.step()
    if step.simultaneous:
        # both gradients at the same parameters, from one forward pass (the official scripts)
        real = step.sample_real(step.batch_size, step.rng)
        z = step.noise()
        fake = step.generator(z)
        d_loss, out_real, out_fake, penalty = _d_loss(step, real, fake)
        g_loss, term_values = _g_loss(step, out_real, out_fake, Generated(z, fake))
        set_grads(d_params, d_loss, retain_graph=True)
        set_grads(g_params, g_loss)
        step.opt_d.step()
        step.opt_g.step()
    else:
        # by default diversity terms compare with the real features of the D step's forward pass
        # (one D update older) rather than paying a second D forward on the real batch
        if step.post_update_real and step.terms:
            out_real = step.discriminator(real)
        g_loss, term_values = _g_loss(step, out_real, step.discriminator(fake), Generated(z, fake))
        set_grads(g_params, g_loss)
        step.opt_g.step()
    logged = [d_loss, g_loss, out_real.logits.mean(), out_fake.logits.mean(), penalty, *term_values]
    return torch.stack([v.detach().float() for v in logged])


def build_step(
    spec: RunSpec, device: torch.device, sampler: Any, compile_mode: str | None = None
) -> TrainStep:
    """Models, optimisers and RNG of a fresh run, drawing real batches from `sampler`;
    `compile_mode` is torch.compile's mode where the run compiles (None: torch's default)."""
    variant = spec.variant
    torch.manual_seed(spec.seed)
    data_shape = DATASETS.get(spec.dataset).shape
    cfg = spec.train
    options = discriminator_options(variant.discriminator)
    check_batch_size(options, cfg.batch_size)
    generator, discriminator = MODELS.get(spec.model)(data_shape, options)
    fused = device.type == "cuda"
    term_names = [name for name, _ in variant.terms]
    blocker = graph_blocker(device, term_names, sampler) if cfg.cuda_graph else "cuda_graph = false"
    if cfg.compile:
        # D is called on real, detached-fake and fake (grad) inputs, and on interpolates for
        # WGAN-GP: each a guard variant; the default limit of 8 sent it back to eager mode
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for module in (generator, discriminator):
        module.to(device)
        if fused and len(data_shape) == 3:
            module.to(memory_format=torch.channels_last)
        if cfg.compile:
            module.compile(mode=compile_mode)
    if fused:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    def adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            module.parameters(),
            lr=lr,
            betas=(cfg.beta1, cfg.beta2),
            eps=cfg.eps,
            fused=fused,
            capturable=blocker is None,
        )

    return TrainStep(
        generator=generator,
        discriminator=discriminator,
        opt_g=adam(generator, cfg.lr_g),
        opt_d=adam(discriminator, cfg.lr_d),
        adversarial=ADVERSARIAL.get(variant.adversarial),
        terms=[(name, TERMS.get(name), weight) for name, weight in variant.terms],
        sample_real=sampler.sample,
        rng=torch.Generator(device).manual_seed(spec.seed),
        batch_size=cfg.batch_size,
        d_steps=cfg.resolved_d_steps(variant.adversarial),
        simultaneous=cfg.update == "simultaneous",
        d_targets=(cfg.d_real_target, cfg.d_fake_target),
        g_target=cfg.g_target,
        latent_centres=_latent_centres(cfg, spec.seed, cfg.batch_size, cast(int, generator.z_dim), device),
        post_update_real=cfg.term_real_features == "post-update",
        graph_blocker=blocker,
    )


def _latent_centres(cfg: Any, seed: int, batch_size: int, z_dim: int, device: torch.device) -> Tensor | None:
    """The "mixture" latent's centres: U(-1, 1) [batch, z_dim] from the run's seed, never trained."""
    if cfg.latent != "mixture":
        return None
    rng = torch.Generator(device).manual_seed(seed + MIXTURE_CENTRES_SEED_OFFSET)
    return torch.rand(batch_size, z_dim, generator=rng, device=device) * 2 - 1


def make_stepper(step: TrainStep) -> Callable[[], Tensor]:
    """What the loop calls once per step: train_step, replayed from a CUDA graph where it can be."""
    if step.graph_blocker is None:
        return GraphedStep(lambda: train_step(step), [step.rng])
    return lambda: train_step(step)


def step_autocast(step: TrainStep, precision: str) -> torch.autocast:
    """bf16 autocast of forward passes; its cast cache must be off in a captured step."""
    return torch.autocast(
        step.rng.device.type,
        dtype=torch.bfloat16,
        enabled=precision == "bf16",
        cache_enabled=step.graph_blocker is not None,
    )


def _append_csv(path: Path, columns: list[str], row: list[Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(columns)
        writer.writerow(row)


def _truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint we resume from, so they are not written twice."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [r for r in rows[1:] if int(r[0]) <= last_step]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            csv.writer(handle).writerows(kept)

    write_atomic(path, write)


# eval settings that decide what training itself produces (best.pt, when it stops); the others
# (metric list, sample counts) only change what is measured afterwards and never force a retrain
TRAINING_EVAL_FIELDS = ("every", "select", "select_mode", "patience")
POLICIES = ("refuse", "extend", "force")


def training_differences(recorded: RunSpec, requested: RunSpec) -> list[str]:
    """The fields that change the trained weights (dataset, model, variant, seed, every train
    setting, the eval settings that select and stop) where `recorded` and `requested` differ."""
    names = [
        (name, getattr(recorded, name), getattr(requested, name))
        for name in ("dataset", "model", "variant", "seed")
    ]
    names += [
        (f"train.{f.name}", getattr(recorded.train, f.name), getattr(requested.train, f.name))
        for f in dataclasses.fields(recorded.train)
    ]
    names += [
        (f"eval.{name}", getattr(recorded.eval, name), getattr(requested.eval, name))
        for name in TRAINING_EVAL_FIELDS
    ]
    return [name for name, old, new in names if old != new]


def _history(config: dict[str, Any], event: str, **details: Any) -> None:
    """Append what happened to the run folder (with the code and torch that did it) to config.json."""
    environment = describe(torch.device("cpu"))
    config.setdefault("history", []).append(
        {
            "event": event,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": environment["git"],
            "torch": environment["packages"]["torch"],
            **details,
        }
    )


def reconcile(spec: RunSpec, run_dir: RunDir, policy: str = "refuse") -> None:
    """Make the run folder agree with `spec` before it is trained, or refuse it with a UserError.

    - An unreadable config.json leaves the run's identity unknown: refused (policy force: the
      folder is set aside and the run starts afresh).
    - An unreadable DONE is set aside (DONE.corrupt); the run resumes from its checkpoint.
    - Training fields that differ from the recorded ones: refused with their names, unless policy
      `extend` (only train.steps grew, and the run did not fail or stop early: the run continues
      from its last checkpoint, recorded in config.json) or `force` (the folder is set aside as
      NAME.replaced-TIMESTAMP and the run starts afresh).
    - Evaluation-only fields that differ are taken over into config.json: the evaluation that
      follows measures with them (metrics.json's protocol says what it used).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not run_dir.config.exists():
        return
    try:
        config = run_dir.read_config()
        recorded = RunSpec.from_dict(config["spec"])
    except (UserError, KeyError, TypeError, ValueError) as exc:
        if policy == "force":
            notice(f"moved {run_dir.path} to {run_dir.set_aside().name} (--force)")
            return
        detail = exc if isinstance(exc, UserError) else f"{run_dir.config} does not describe a run"
        raise UserError(
            f"{detail}: the run's settings are unknown, so it is not touched; move that "
            "run folder away (or rerun with --force, which sets it aside)"
        ) from None
    try:
        status = run_dir.status()
    except UnreadableFile as exc:
        moved = set_aside(run_dir.done, "corrupt")
        notice(f"{exc}; moved it to {moved.name}, the run resumes from its checkpoint")
        status = {"status": "incomplete"}
    differences = training_differences(recorded, spec)
    if differences and policy == "force":
        notice(
            f"moved {run_dir.path} to {run_dir.set_aside().name} (--force: {', '.join(differences)} changed)"
        )
        return
    if differences:
        _extend_or_refuse(spec, recorded, run_dir, config, status, differences, policy)
    if spec.to_dict() != recorded.to_dict():  # evaluation settings, or the extended step count
        config["spec"] = spec.to_dict()
        write_json(run_dir.config, config)


def _extend_or_refuse(
    spec: RunSpec,
    recorded: RunSpec,
    run_dir: RunDir,
    config: dict[str, Any],
    status: dict[str, Any],
    differences: list[str],
    policy: str,
) -> None:
    """Continue a run to more steps (policy extend) or refuse it with the differing fields."""
    changed = ", ".join(
        f"{name} (recorded {_field(recorded, name)!r}, asked {_field(spec, name)!r})" for name in differences
    )
    if policy != "extend" or differences != ["train.steps"]:
        raise UserError(
            f"{run_dir.path} was trained with other settings: {changed}; "
            "rerun with --force to set that run aside and train afresh"
            + (", or --extend to continue it to more steps" if "train.steps" in differences else "")
            + " (or use another --results folder)"
        )
    if spec.train.steps < recorded.train.steps:
        raise UserError(
            f"--extend continues runs to more steps; {run_dir.path} has "
            f"{recorded.train.steps}, asked {spec.train.steps}"
        )
    if status["status"] == "failed" or status.get("stopped_early"):
        why = "it failed" if status["status"] == "failed" else "it stopped early (patience)"
        raise UserError(
            f"{run_dir.path} cannot be extended: {why} at step {status.get('step')}; "
            "rerun with --force to set it aside and train afresh"
        )
    details: dict[str, Any] = {"from_steps": recorded.train.steps, "to_steps": spec.train.steps}
    if status["status"] == "done":
        details["done"] = status
        if run_dir.metrics.exists():
            with contextlib.suppress(UserError):
                details["metrics"] = read_json(run_dir.metrics).get("values")
    _history(config, "extended", **details)
    write_json(run_dir.config, config)
    run_dir.done.unlink(missing_ok=True)
    notice(f"extending from {recorded.train.steps} to {spec.train.steps} steps")


def _field(spec: RunSpec, dotted: str) -> Any:
    value: Any = spec
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def start_or_resume(
    spec: RunSpec, run_dir: RunDir, step: TrainStep, device: torch.device, progress: LoopProgress
) -> int:
    """Write config.json (first start) or note a change of code or torch (resume); load the
    checkpoint if any. Returns the step reached. `reconcile` has made config.json agree with spec."""
    environment = describe(device)
    if not run_dir.config.exists():
        write_json(run_dir.config, {"spec": spec.to_dict(), "environment": environment})
    if not run_dir.checkpoint.exists():
        for stale in (run_dir.log, run_dir.evals, run_dir.best):
            stale.unlink(missing_ok=True)
        return 0
    state = load_checkpoint(run_dir.checkpoint, map_location=device)
    config = run_dir.read_config()
    recorded = config.get("environment", {})
    last = (config.get("history") or [recorded])[-1]
    now = {"git": environment["git"], "torch": environment["packages"]["torch"]}
    before = {"git": last.get("git"), "torch": last.get("torch") or (last.get("packages") or {}).get("torch")}
    if before != now:
        notice(
            f"resuming at step {state['step']} under git {now['git']} and torch {now['torch']}; "
            f"it ran under git {before['git']} and torch {before['torch']} before (both recorded in "
            "config.json)"
        )
        _history(config, "resumed", step=int(state["step"]))
        write_json(run_dir.config, config)
    step.generator.load_state_dict(state["generator"])
    step.discriminator.load_state_dict(state["discriminator"])
    step.opt_g.load_state_dict(state["opt_g"])
    step.opt_d.load_state_dict(state["opt_d"])
    restore_rng_state(step.rng, state["rng"])
    progress.log_sum.copy_(state["log_sum"])
    progress.log_count = int(state["log_count"])
    # checkpoints written before these fields existed lack them
    recorded_selection = state.get("selection", {"best": None, "stale": 0})
    progress.selection = _Selection(recorded_selection["best"], recorded_selection["stale"])
    progress.wall_s = float(state.get("wall_s", 0.0))
    progress.cpu_s = float(state.get("cpu_s", 0.0))
    progress.eval_cpu_s = float(state.get("eval_cpu_s", 0.0))
    recorded_diagnostics = state.get("diagnostics", {})
    progress.previous_diagnostics = {name: tuple(values) for name, values in recorded_diagnostics.items()}
    for path in (run_dir.log, run_dir.evals):
        _truncate_csv(path, state["step"])
    return int(state["step"])


def checkpoint_state(
    step: TrainStep, number: int, progress: LoopProgress, session: TrainSession
) -> dict[str, Any]:
    times = session.times()
    return {
        "step": number,
        "selection": {"best": progress.selection.best, "stale": progress.selection.stale},
        "log_sum": progress.log_sum.clone(),
        "log_count": progress.log_count,
        "wall_s": times["train_wall_s"],
        "cpu_s": times["train_cpu_s"],
        "eval_cpu_s": times["eval_cpu_s"],
        "diagnostics": {name: list(values) for name, values in progress.previous_diagnostics.items()},
        "generator": step.generator.state_dict(),
        "discriminator": step.discriminator.state_dict(),
        "opt_g": step.opt_g.state_dict(),
        "opt_d": step.opt_d.state_dict(),
        "rng": rng_state(step.rng),
    }


def _save_samples(spec: RunSpec, generator: nn.Module, device: torch.device, path: Path, step: int) -> None:
    dataset = DATASETS.get(spec.dataset)
    count = SCATTER_POINTS if len(dataset.shape) == 1 else spec.eval.grid_samples
    samples = fixed_noise_samples(generator, count, FIXED_NOISE_SEED, device)
    title = f"{spec.suite}: {spec.variant}, seed {spec.seed}, step {step}"
    save_samples(path, samples, dataset, title)


@dataclass
class _Selection:
    """best.pt bookkeeping across periodic evaluations (saved in checkpoints for resume)."""

    best: float | None = None
    stale: int = 0

    def update(self, value: float, mode: str) -> bool:
        """Record `value`; True if it is the best so far."""
        better = self.best is None or (value > self.best if mode == "max" else value < self.best)
        if better:
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return better


@dataclass
class LoopProgress:
    """Loop bookkeeping that a resumed run restores from its checkpoint."""

    log_sum: Tensor  # sum of the logged values since the last log row
    log_count: int = 0  # steps in that sum
    selection: _Selection = field(default_factory=_Selection)
    wall_s: float = 0.0  # training wall time of this run's earlier sessions
    cpu_s: float = 0.0  # CPU time of its training steps in earlier sessions
    eval_cpu_s: float = 0.0  # CPU time of its periodic evaluations in earlier sessions
    # each diagnostic term's diagnostics at the previous log step (the diagnostic compares)
    previous_diagnostics: dict[str, Any] = field(default_factory=dict)


class TrainSession:
    """Wall and CPU time of a run across its sessions. CPU time is this process's (all its threads),
    which two runs sharing the cores do not inflate as they inflate wall time; the periodic
    evaluations' CPU time is kept apart so that `train_cpu_s` is the cost of training alone."""

    def __init__(self, progress: LoopProgress, share: int = 1) -> None:
        self.progress = progress
        self.share = share  # runs trained together in this process (seed-parallel): each gets 1/share
        self.wall_start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.eval_cpu = 0.0

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.eval_cpu += time.process_time() - started

    def times(self) -> dict[str, float]:
        """train_wall_s, train_cpu_s and eval_cpu_s (periodic evaluations) so far, all sessions."""
        cpu = time.process_time() - self.cpu_start
        return {
            "train_wall_s": self.progress.wall_s + time.perf_counter() - self.wall_start,
            "train_cpu_s": self.progress.cpu_s + (cpu - self.eval_cpu) / self.share,
            "eval_cpu_s": self.progress.eval_cpu_s + self.eval_cpu / self.share,
        }


def periodic_evaluation(
    spec: RunSpec,
    run_dir: RunDir,
    step: TrainStep,
    number: int,
    eval_hook: EvalHook | None,
    selection: _Selection,
) -> bool:
    """Metrics to evals.csv, a sample picture, best.pt; returns True when patience ran out."""
    values = eval_hook(step.generator, number) if eval_hook else {}
    _save_samples(spec, step.generator, step.rng.device, run_dir.sample_grid(number), number)
    if values:
        _append_csv(run_dir.evals, ["step", *values], [number, *values.values()])
    selected = spec.eval.select
    if not selected:
        return False
    value = values.get(selected)
    if value is None:
        raise UserError(
            f"eval.select = {selected!r} is not among the values of the suite's "
            f"metrics ({', '.join(values) or 'none'}); pick one of those"
        )
    if math.isfinite(value) and selection.update(value, spec.eval.select_mode):
        best = {"step": number, "generator": step.generator.state_dict(), selected: value}
        save_checkpoint(run_dir.best, best)
    elif not math.isfinite(value):
        selection.stale += 1
    return bool(spec.eval.patience) and selection.stale >= spec.eval.patience


def log_row(
    run_dir: RunDir,
    columns: list[str],
    number: int,
    means: list[float],
    rate: float,
    diagnostics: Sequence[float] = (),
) -> str | None:
    """Append one log.csv row; the reason the run diverged if a logged mean is not finite (the
    diagnostics after imgs_per_s may be NaN: they are observations, not losses)."""
    _append_csv(run_dir.log, columns, [number, *means, rate, *diagnostics])
    bad = [c for c, v in zip(columns[1:], means, strict=False) if not math.isfinite(v)]
    return f"diverged: non-finite {', '.join(bad)} by step {number}" if bad else None


def _diagnostics(step: TrainStep, progress: LoopProgress, names: list[str]) -> list[float]:
    """Each diagnostic term's log value at this log step, against the previous log step's."""
    values = []
    for name in names:
        current = step.term_diagnostics.get(name)
        if current is None:
            values.append(math.nan)
            continue
        current = type(current)(*(t.detach().cpu().clone() for t in current))
        values.append(TERM_DIAGNOSTICS[name][1](current, progress.previous_diagnostics.get(name)))
        progress.previous_diagnostics[name] = current
    return values


def finish_run(
    spec: RunSpec,
    run_dir: RunDir,
    generator: nn.Module,
    device: torch.device,
    number: int,
    session: TrainSession,
    stopped_early: bool,
    execution: str,
) -> None:
    """The final sample picture and DONE of a run that trained to its end (or ran out of patience)."""
    times = session.times()
    _save_samples(spec, generator, device, run_dir.samples_png, number)
    details: dict[str, Any] = {"stopped_early": True, "patience": spec.eval.patience} if stopped_early else {}
    details["step_execution"] = execution
    run_dir.mark_done("done", step=number, **times, **details)


def train(
    spec: RunSpec,
    run_dir: RunDir,
    device: torch.device,
    data_root: str | None = None,
    eval_hook: EvalHook | None = None,
    policy: str = "refuse",
    style: str = "off",
) -> dict[str, Any]:
    """Train one run to `spec.train.steps`, resuming from `run_dir` if it holds a checkpoint.

    `policy` says what to do with a run folder trained with other settings (`reconcile`); `style`
    how progress is shown (see gdpp_bench.progress). Returns the recorded status: {'status':
    'done', ...} or {'status': 'failed', 'reason': ...}. A non-finite loss (checked at each log
    step) ends the run as failed.
    """
    with run_dir.lock():
        reconcile(spec, run_dir, policy)
        if run_dir.is_done():
            return {**run_dir.status(), "skipped": True}
    step = build_step(spec, device, DATASETS.get(spec.dataset).sampler(device, data_root))
    with run_dir.lock():
        if run_dir.is_done():  # finished by another process while we loaded the data
            return {**run_dir.status(), "skipped": True}
        return _train_loop(spec, run_dir, step, device, eval_hook, style)


def _train_loop(
    spec: RunSpec,
    run_dir: RunDir,
    step: TrainStep,
    device: torch.device,
    eval_hook: EvalHook | None,
    style: str = "off",
) -> dict[str, Any]:
    cfg = spec.train
    diagnostic_terms = step.diagnostic_terms()
    columns = [
        "step",
        *step.log_columns(),
        "imgs_per_s",
        *(TERM_DIAGNOSTICS[name][0] for name in diagnostic_terms),
    ]
    progress = LoopProgress(log_sum=torch.zeros(len(step.log_columns()), device=device))
    start = start_or_resume(spec, run_dir, step, device, progress)
    say(f"{'resuming at step ' + str(start) if start else 'training'} of {cfg.steps} in {run_dir.path}")
    shown = RunProgress(cfg.steps, start, style)
    autocast = step_autocast(step, cfg.precision)
    run_step = make_stepper(step)
    session = TrainSession(progress)
    tick = time.perf_counter()
    number, stop_early = start, False
    try:
        while number < cfg.steps and not stop_early:
            number += 1
            with autocast:
                progress.log_sum += run_step()
            progress.log_count += 1
            if number % cfg.log_every == 0 or number == cfg.steps:
                # the only host sync, once per log interval
                means = (progress.log_sum / progress.log_count).tolist()
                rate = progress.log_count * cfg.batch_size / (time.perf_counter() - tick)
                reason = log_row(
                    run_dir, columns, number, means, rate, _diagnostics(step, progress, diagnostic_terms)
                )
                if reason:
                    run_dir.mark_done("failed", reason=reason, step=number, **session.times())
                    return run_dir.status()
                shown.logged(number, dict(zip(columns[1:], means, strict=False)))
                progress.log_sum.zero_()
                progress.log_count, tick = 0, time.perf_counter()
            if spec.eval.every and number % spec.eval.every == 0:
                with session.evaluating():
                    stop_early = periodic_evaluation(
                        spec, run_dir, step, number, eval_hook, progress.selection
                    )
            if number % cfg.checkpoint_every == 0 or number == cfg.steps or stop_early:
                save_checkpoint(run_dir.checkpoint, checkpoint_state(step, number, progress, session))
    finally:
        shown.close()
    execution = "cuda graph" if step.graph_blocker is None else f"eager: {step.graph_blocker}"
    finish_run(spec, run_dir, step.generator, device, number, session, stop_early, execution)
    return run_dir.status()
