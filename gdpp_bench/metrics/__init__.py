"""Metrics as registered functions whose names state the protocol; each returns dict[str, float]."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from gdpp_bench.metrics.modes import kl_to_uniform
from gdpp_bench.metrics.modes import modes2d as modes2d_values
from gdpp_bench.registry import Registry
from gdpp_bench.samples import fixed_noise_samples

SAMPLE_SEED_OFFSET = 1_000_003  # evaluation noise never shares a stream with training


@dataclass
class EvalContext:
    """What a metric may use: the generator, the dataset, and generated samples (made once)."""

    generator: nn.Module
    dataset: object
    device: torch.device
    n_samples: int
    seed: int
    data_root: str | None = None  # for instruments trained on the real data (MNIST classifiers)
    notes: dict[str, dict] = field(default_factory=dict)  # metric -> protocol details it adds
    _samples: Tensor | None = field(default=None, repr=False)

    def has_samples(self) -> bool:
        return self._samples is not None

    def samples(self) -> Tensor:
        if self._samples is None:
            self._samples = fixed_noise_samples(
                self.generator, self.n_samples, self.seed + SAMPLE_SEED_OFFSET, self.device
            ).float()
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


def _classified(ctx: EvalContext, dataset: str, metric: str) -> Tensor:
    """Each generated sample's channels classified by the project's classifier of `dataset`:
    int64 [N, C]. The classifier's identity goes into `metric`'s protocol."""
    from gdpp_bench.metrics.instruments import classify_channels, load_or_train_classifier

    model, info = load_or_train_classifier(dataset, ctx.data_root, device=ctx.device)
    images = ((ctx.samples().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    ctx.notes[metric] = {"classifier": info.protocol()}
    return classify_channels(model, images)


@METRICS.register("stacked_mnist_modes")
def stacked_mnist_modes(ctx: EvalContext) -> dict[str, float]:
    """Stacked-MNIST: each channel classified by the MNIST classifier; modes = distinct triples
    (of 1000) among the generated samples, and KL(triple histogram || uniform), natural log."""
    labels = _classified(ctx, "mnist", "stacked_mnist_modes")
    counts = torch.bincount(labels[:, 0] * 100 + labels[:, 1] * 10 + labels[:, 2], minlength=1000)
    return {"modes": float((counts > 0).sum().item()), "kl_uniform": kl_to_uniform(counts)}


def _class_coverage(ctx: EvalContext, dataset: str, metric: str) -> dict[str, float]:
    counts = torch.bincount(_classified(ctx, dataset, metric)[:, 0], minlength=10)
    return {"classes": float((counts > 0).sum().item()), "class_kl_uniform": kl_to_uniform(counts)}


@METRICS.register("mnist_classes")
def mnist_classes(ctx: EvalContext) -> dict[str, float]:
    """MNIST: generated samples classified by the MNIST classifier; classes covered (of 10) and
    KL(class histogram || uniform), natural log."""
    return _class_coverage(ctx, "mnist", "mnist_classes")


@METRICS.register("fashion_mnist_classes")
def fashion_mnist_classes(ctx: EvalContext) -> dict[str, float]:
    """Fashion-MNIST: as mnist_classes, with the Fashion-MNIST classifier."""
    return _class_coverage(ctx, "fashion-mnist", "fashion_mnist_classes")


__all__ = ["METRICS", "EvalContext", "Metric", "compute_metrics"]
