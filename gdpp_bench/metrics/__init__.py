"""Metrics as registered functions whose names state the protocol; each returns dict[str, float]."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gdpp_bench.metrics.modes import modes2d as modes2d_values
from gdpp_bench.registry import Registry

SAMPLE_SEED_OFFSET = 1_000_003  # evaluation noise never shares a stream with training


@dataclass
class EvalContext:
    """What a metric may use: the generator, the dataset, and generated samples (made once)."""

    generator: nn.Module
    dataset: object
    device: torch.device
    n_samples: int
    seed: int
    _samples: Tensor | None = field(default=None, repr=False)

    def has_samples(self) -> bool:
        return self._samples is not None

    @torch.no_grad()
    def samples(self) -> Tensor:
        if self._samples is None:
            rng = torch.Generator(self.device).manual_seed(self.seed + SAMPLE_SEED_OFFSET)
            was_training = self.generator.training
            self.generator.eval()
            z = torch.randn(
                self.n_samples, self.generator.z_dim, generator=rng, device=self.device
            )
            self._samples = self.generator(z).float()
            self.generator.train(was_training)
        return self._samples


Metric = Callable[[EvalContext], dict[str, float]]

METRICS: Registry[Metric] = Registry("metric")


@METRICS.register("modes2d")
def modes2d(ctx: EvalContext) -> dict[str, float]:
    """Modes hit, % high-quality (<= 3 std from nearest mode), KL of HQ histogram to uniform."""
    centers = ctx.dataset.centers_tensor(ctx.device)
    return modes2d_values(ctx.samples(), centers, ctx.dataset.std)


def compute_metrics(names: tuple[str, ...] | list[str], ctx: EvalContext) -> dict[str, float]:
    values: dict[str, float] = {}
    for name in names:
        values.update(METRICS.get(name)(ctx))
    return values


__all__ = ["METRICS", "EvalContext", "Metric", "compute_metrics"]
