"""Metrics as registered functions whose names state the protocol; each returns dict[str, float]."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from gdpp_bench.config import PROTOCOLS
from gdpp_bench.data.images import Split
from gdpp_bench.data.mnist import STACKED_MODES, stacked_mode_labels
from gdpp_bench.metrics.modes import kl_to_uniform
from gdpp_bench.metrics.modes import modes2d as modes2d_values
from gdpp_bench.registry import DeclaredView, Registry
from gdpp_bench.samples import fixed_noise_samples, to_uint8

SAMPLE_SEED_OFFSET = 1_000_003  # evaluation noise never shares a stream with training


@dataclass(frozen=True)
class Value:
    """What a metric declares about one of the values it returns (`values=` at registration):
    the direction reports rank and test it by, the range its intervals are cut to (None: open on
    that side), and whether it is a count (Cliff's delta beside Hedges' g). Values a metric does
    not declare (a spread within one run, such as is_std) are recorded but not compared."""

    higher_is_better: bool
    bounds: tuple[float | None, float | None] = (None, None)
    count: bool = False


PAPER_FIDELITY_SAMPLES = 50_000  # generated and real samples for FID/IS/KID/PR under --protocol paper
PAPER_IVOM_IMAGES = 2_000  # IvOM's target test images in the GDPP paper (../shared/PROTOCOLS.md)
IVOM_SEARCH: dict[str, Any] = {
    "optimizer": "lbfgs",
    "steps": 25,
    "restarts": 3,
}  # the paper's search per image


@dataclass(frozen=True)
class EvalOptions:
    """How `evaluate` (and the evaluation at the end of `run`) measures; chosen on the command line.

    `protocol`: "quick" uses the suite's sample counts; "paper" uses 50,000 generated and 50,000 real
    samples (or the whole reference split if smaller) for the fidelity metrics.
    """

    protocol: str = "quick"
    inception_weights: str | None = None  # local Inception-v3 weights for FID/IS/KID on colour data
    batch_size: int = 256  # feature-extraction batch


@dataclass
class EvalContext:
    """What a metric may use: the generator, the dataset, its settings and generated samples (made
    once per count)."""

    generator: nn.Module
    dataset: Any  # a registered dataset (2D mixtures add centers_tensor and std)
    device: torch.device
    n_samples: int
    seed: int
    data_root: str | None = None  # for instruments trained on the real data (MNIST classifiers)
    fidelity_samples: int = 10_000  # generated samples for the fidelity metrics (quick protocol)
    real_samples: int = 10_000  # real reference samples for them (quick protocol)
    reference_split: Split = "train"
    ivom_images: int = 1_000  # real test images IvOM reconstructs (quick protocol)
    options: EvalOptions = field(default_factory=EvalOptions)
    bn_batch: int | None = None  # sample with BatchNorm batch statistics over chunks of this size
    notes: dict[str, dict] = field(default_factory=dict)  # metric -> protocol details it adds
    _samples: dict[int, Tensor] = field(default_factory=dict, repr=False)

    def has_samples(self) -> bool:
        return self.n_samples in self._samples

    def samples(self, count: int | None = None) -> Tensor:
        """`count` (default n_samples) generated samples from the evaluation noise seed."""
        count = self.n_samples if count is None else count
        if count not in self._samples:
            self._samples[count] = fixed_noise_samples(
                self.generator, count, self.seed + SAMPLE_SEED_OFFSET, self.device, self.bn_batch
            ).float()
        return self._samples[count]

    def fidelity_counts(self) -> tuple[int, int]:
        """(generated, real) sample counts of the fidelity metrics under the chosen protocol."""
        if self.options.protocol == "paper":
            return PAPER_FIDELITY_SAMPLES, PAPER_FIDELITY_SAMPLES
        return self.fidelity_samples, self.real_samples

    def ivom_count(self) -> int:
        return PAPER_IVOM_IMAGES if self.options.protocol == "paper" else self.ivom_images


Metric = Callable[[EvalContext], dict[str, float]]

METRICS: Registry[Metric] = Registry("metric")


def _declared_values(declared: list[tuple[str, dict[str, Any]]]) -> dict[str, Value]:
    """value name -> its `Value`, over every registered metric, the first declaration winning."""
    table: dict[str, Value] = {}
    for _, meta in declared:
        for key, value in meta.get("values", {}).items():
            table.setdefault(key, value)
    return table


def _value_field(field_name: str) -> DeclaredView[Any]:
    return DeclaredView(
        METRICS, lambda declared: {k: getattr(v, field_name) for k, v in _declared_values(declared).items()}
    )


HIGHER_IS_BETTER: Mapping[str, bool] = _value_field("higher_is_better")
METRIC_BOUNDS: Mapping[str, tuple[float | None, float | None]] = _value_field("bounds")
IS_COUNT: Mapping[str, bool] = _value_field("count")


MODES = Value(True, (0, None), count=True)
KL_UNIFORM = Value(False, (0, None))


@METRICS.register(
    "modes2d", values={"modes": MODES, "hq_percent": Value(True, (0, 100)), "kl_uniform": KL_UNIFORM}
)
def modes2d(ctx: EvalContext) -> dict[str, float]:
    """Modes hit, % high-quality (<= 3 std from nearest mode), KL of HQ histogram to uniform."""
    centers = ctx.dataset.centers_tensor(ctx.device)
    return modes2d_values(ctx.samples(), centers, ctx.dataset.std)


def compute_metrics(names: tuple[str, ...] | list[str], ctx: EvalContext) -> dict[str, float]:
    """Every named metric's values; each metric's wall time and value names go into ctx.notes[name]."""
    values: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        result = METRICS.get(name)(ctx)
        ctx.notes.setdefault(name, {}).update(wall_s=time.perf_counter() - started, values=list(result))
        values.update(result)
    return values


@METRICS.register(
    "fidelity",
    reads_real="reference",  # the real images of the evaluation's reference split
    extractor=True,  # the dataset's feature extractor: its classifier, else Inception-v3's weights
    values={
        "fid": Value(False, (0, None)),
        "is": Value(True, (1, None)),
        "kid": Value(False),
        "precision": Value(True, (0, 1)),
        "recall": Value(True, (0, 1)),
        "density": Value(True, (0, None)),
        "coverage": Value(True, (0, 1)),
    },
)
def fidelity_metric(ctx: EvalContext) -> dict[str, float]:
    """FID, IS, KID and precision/recall (k = 3) via torch-fidelity, and density/coverage (k = 5,
    Naeem et al. 2020) on the same features, generated samples against the real reference split;
    Inception-v3 features for colour data, the project classifier's for the MNIST family."""
    from gdpp_bench.metrics import fidelity as measure

    n_fake, n_real = ctx.fidelity_counts()
    extractor = measure.extractor_for(ctx.dataset.name, ctx.data_root, ctx.options.inception_weights)
    real = measure.real_reference(ctx.dataset, ctx.data_root, ctx.reference_split, n_real)
    fake = to_uint8(ctx.samples(n_fake)).cpu()  # torch-fidelity batches from a CPU dataset
    name = measure.reference_name(ctx.dataset, ctx.data_root, ctx.reference_split, real, extractor)
    values = measure.fidelity_metrics(fake, real, name, extractor, ctx.device, ctx.options.batch_size)
    ctx.notes["fidelity"] = measure.protocol(
        extractor, len(fake), len(real), ctx.reference_split, ctx.options.batch_size, name
    )
    return values


def _classified(ctx: EvalContext, dataset: str, metric: str) -> Tensor:
    """Each generated sample's channels classified by the project's classifier of `dataset`:
    int64 [N, C]. The classifier's identity goes into `metric`'s protocol."""
    from gdpp_bench.metrics.instruments import classify_channels, load_or_train_classifier

    model, info = load_or_train_classifier(dataset, ctx.data_root, device=ctx.device)
    images = to_uint8(ctx.samples())
    ctx.notes[metric] = {"classifier": info.protocol()}
    return classify_channels(model, images)


@METRICS.register(
    "stacked_mnist_modes", classifier="mnist", values={"modes": MODES, "kl_uniform": KL_UNIFORM}
)
def stacked_mnist_modes(ctx: EvalContext) -> dict[str, float]:
    """Stacked-MNIST: each channel classified by the MNIST classifier; modes = distinct triples
    (of 1000) among the generated samples, and KL(triple histogram || uniform), natural log."""
    labels = _classified(ctx, "mnist", "stacked_mnist_modes")
    counts = torch.bincount(stacked_mode_labels(labels), minlength=STACKED_MODES)
    ctx.notes["stacked_mnist_modes"]["histogram"] = counts.tolist()  # samples per triple, for reports
    return {"modes": float((counts > 0).sum().item()), "kl_uniform": kl_to_uniform(counts)}


def _class_coverage(ctx: EvalContext, dataset: str, metric: str) -> dict[str, float]:
    counts = torch.bincount(_classified(ctx, dataset, metric)[:, 0], minlength=10)
    return {"classes": float((counts > 0).sum().item()), "class_kl_uniform": kl_to_uniform(counts)}


CLASS_VALUES = {"classes": Value(True, (0, 10), count=True), "class_kl_uniform": KL_UNIFORM}


@METRICS.register("mnist_classes", classifier="mnist", values=CLASS_VALUES)
def mnist_classes(ctx: EvalContext) -> dict[str, float]:
    """MNIST: generated samples classified by the MNIST classifier; classes covered (of 10) and
    KL(class histogram || uniform), natural log."""
    return _class_coverage(ctx, "mnist", "mnist_classes")


@METRICS.register("fashion_mnist_classes", classifier="fashion-mnist", values=CLASS_VALUES)
def fashion_mnist_classes(ctx: EvalContext) -> dict[str, float]:
    """Fashion-MNIST: as mnist_classes, with the Fashion-MNIST classifier."""
    return _class_coverage(ctx, "fashion-mnist", "fashion_mnist_classes")


@METRICS.register("ivom", reads_real="test", values={"ivom_mse": Value(False, (0, None))})
def ivom_metric(ctx: EvalContext) -> dict[str, float]:
    """Inference via optimization (GDPP paper, CIFAR-10; from VEEGAN): for real test images, the
    smallest MSE (images on the [0, 1] scale) between G(z) and the image that L-BFGS on z finds in
    25 iterations from each of 3 random starts; the mean over images (lower = more modes reached)."""
    from gdpp_bench.metrics.fidelity import SUBSET_SEED, real_reference
    from gdpp_bench.metrics.ivom import ivom

    count = ctx.ivom_count()
    images = real_reference(ctx.dataset, ctx.data_root, "test", count)
    targets = images.to(ctx.device).float().div(127.5).sub(1)
    per_image = ivom(ctx.generator, targets, seed=ctx.seed + SAMPLE_SEED_OFFSET, **IVOM_SEARCH)
    ctx.notes["ivom"] = {
        "real_samples": len(images),
        "reference_split": "test",
        "real_subset_seed": SUBSET_SEED,
        **IVOM_SEARCH,
        "mse_scale": "[0, 1]",
        "noise_seed": ctx.seed + SAMPLE_SEED_OFFSET,
        "generated_samples": 0,
    }
    return {"ivom_mse": per_image.mean().item(), "ivom_mse_std": per_image.std().item()}


__all__ = [
    "IS_COUNT",
    "HIGHER_IS_BETTER",
    "METRICS",
    "METRIC_BOUNDS",
    "PROTOCOLS",
    "Value",
    "EvalContext",
    "EvalOptions",
    "Metric",
    "compute_metrics",
]
