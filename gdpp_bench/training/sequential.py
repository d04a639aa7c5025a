"""The sequential step function: one run's D and G updates, replayed from a CUDA graph where it can be."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gdpp_bench.cuda_graph import GraphedStep
from gdpp_bench.losses import Generated, gradient_penalty, split_term_output
from gdpp_bench.training.state import TrainStep, set_grads


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


def _logged(
    d_loss: Tensor, g_loss: Tensor, out_real: Any, out_fake: Any, penalty: Tensor, term_values: list[Tensor]
) -> Tensor:
    """The values log.csv gets of one step, in `TrainStep.log_columns` order."""
    logged = [d_loss, g_loss, out_real.logits.mean(), out_fake.logits.mean(), penalty, *term_values]
    return torch.stack([v.detach().float() for v in logged])


def g_first_step(step: TrainStep) -> Tensor:
    """The official CIFAR-10 script's order: a G step against the current D (real features from
    D's forward pass of this step's real batch), then the D step(s), the first on the same real
    batch, each with fresh fakes of the updated G. Returns the values to log."""
    g_params = list(step.generator.parameters())
    d_params = list(step.discriminator.parameters())
    real = step.sample_real(step.batch_size, step.rng)
    z = step.noise()
    fake = step.generator(z)
    out_real, out_fake = step.discriminator(real), step.discriminator(fake)
    g_loss, term_values = _g_loss(step, out_real, out_fake, Generated(z, fake))
    set_grads(g_params, g_loss)
    step.opt_g.step()
    for index in range(step.d_steps):
        if index:
            real = step.sample_real(step.batch_size, step.rng)
        fake = step.generator(step.noise()).detach()
        d_loss, out_real, out_fake, penalty = _d_loss(step, real, fake)
        set_grads(d_params, d_loss)
        step.opt_d.step()
    return _logged(d_loss, g_loss, out_real, out_fake, penalty, term_values)


def train_step(step: TrainStep) -> Tensor:
    """D step(s) then a G step (or one simultaneous update, or `g_first_step`); returns the values
    to log."""
    if step.update == "g-first":
        return g_first_step(step)
    g_params = list(step.generator.parameters())
    d_params = list(step.discriminator.parameters())
    simultaneous = step.update == "simultaneous"
    for _ in range(step.d_steps - 1 if simultaneous else step.d_steps):
        real = step.sample_real(step.batch_size, step.rng)
        z = step.noise()
        fake = step.generator(z)
        d_loss, out_real, out_fake, penalty = _d_loss(step, real, fake.detach())
        set_grads(d_params, d_loss)
        step.opt_d.step()
    if simultaneous:
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
    return _logged(d_loss, g_loss, out_real, out_fake, penalty, term_values)


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


class SequentialSteps:
    """The engine's step function for one run (see `engine.drive`)."""

    def __init__(self, step: TrainStep, precision: str) -> None:
        self._autocast = step_autocast(step, precision)
        self._step = make_stepper(step)
        self.execution = "cuda graph" if step.graph_blocker is None else f"eager: {step.graph_blocker}"

    def __call__(self) -> Tensor:
        with self._autocast:
            return self._step().unsqueeze(0)

    def sync(self) -> None:
        """The run's modules and optimisers are trained in place: nothing to copy."""

    def keep(self, indices: list[int]) -> SequentialSteps:
        if indices != [0]:
            raise ValueError(f"a sequential step trains one run; cannot keep runs {indices}")
        return self
