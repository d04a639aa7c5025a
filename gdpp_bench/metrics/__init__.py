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
from gdpp_bench.errors import UserError
from gdpp_bench.metrics.features import DEFAULT_FEATURES, FEATURES, is_default, value_key
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
    features: str | None = None  # the fidelity metric's extractor (None: each suite's eval.features)
    feature_weights: str | None = None  # local weights of that extractor (DINOv2, CLIP)


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
    features: str = DEFAULT_FEATURES  # the fidelity metric's extractor (eval.features)
    notes: dict[str, dict] = field(default_factory=dict)  # metric -> protocol details it adds
    _samples: dict[int, Tensor] = field(default_factory=dict, repr=False)
    # generated samples' features by (extractor, weights sha256, count): extracted once per evaluation
    _features: dict[tuple[str, str, int], Tensor] = field(default_factory=dict, repr=False)

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


@dataclass(frozen=True)
class MeasuredSet:
    """A sample set as the sample-based metrics read it, measured once: what the calibration ladder
    (gdpp_bench.calibration) builds as index subsets of once-measured real data, and gives to a
    metric's registered `from_set` instead of a generator's samples. Fields a dataset lacks are None."""

    dataset: Any
    points: Tensor | None = None  # 2D samples [N, 2]
    labels: Tensor | None = None  # the dataset classifier's class of each channel, int64 [N, C]
    features: Tensor | None = None  # the fidelity extractor's FID-layer features [N, D]
    logits: Tensor | None = None  # its IS-layer logits [N, L]
    real: Any = None  # feature_fidelity.RealFeatures of the reference split (fidelity only)
    grams: Any = None  # feature_fidelity.SetGrams of the features, when gathered from a pool

    def prefix(self, count: int) -> MeasuredSet:
        """The first `count` samples (a set is drawn i.i.d. or as a random permutation, so any prefix
        is a draw of that size)."""
        fields = ("points", "labels", "features", "logits")
        cut = {k: None if getattr(self, k) is None else getattr(self, k)[:count] for k in fields}
        grams = None if self.grams is None else self.grams.prefix(count)
        return MeasuredSet(self.dataset, real=self.real, grams=grams, **cut)


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


def _modes2d_of(sample: MeasuredSet) -> dict[str, float]:
    assert sample.points is not None
    centers = sample.dataset.centers_tensor(sample.points.device)
    return modes2d_values(sample.points, centers, sample.dataset.std)


# `from_set`: the metric's values from a MeasuredSet of `count` samples (an EvalConfig count field),
# for the calibration ladder; `sees`: value -> the defects the committed ladder found it sees
# (results/calibration/calibration.csv; "sees it" on every dataset calibrated with the metric)
@METRICS.register(
    "modes2d",
    values={"modes": MODES, "hq_percent": Value(True, (0, 100)), "kl_uniform": KL_UNIFORM},
    from_set=_modes2d_of,
    count="samples",
    sees={
        "modes": ("mode dropping",),
        "hq_percent": ("noise",),
        "kl_uniform": ("mode dropping", "mode imbalance"),
    },
)
def modes2d(ctx: EvalContext) -> dict[str, float]:
    """Modes hit, % high-quality (<= 3 std from nearest mode), KL of HQ histogram to uniform."""
    centers = ctx.dataset.centers_tensor(ctx.device)
    return modes2d_values(ctx.samples(), centers, ctx.dataset.std)


def sees_phrase(seen: tuple[str, ...] | list[str]) -> str:
    """What the calibration ladder found a metric value sees: 'sees only D1, D2' or 'sees none'."""
    return f"sees only {', '.join(seen)}" if seen else "sees none"


def entry_sees(entry: str) -> dict[str, tuple[str, ...]]:
    """value -> the defects the calibration ladder (gdpp-bench calibrate) found metric `entry`'s
    value sees; values it never ran are absent (an unknown or uncalibrated entry: {})."""
    if entry not in METRICS:
        return {}
    return {value: tuple(seen) for value, seen in METRICS.meta(entry).get("sees", {}).items()}


def compute_metrics(names: tuple[str, ...] | list[str], ctx: EvalContext) -> dict[str, float]:
    """Every named metric's values; each metric's wall time and value names go into ctx.notes[name]."""
    values: dict[str, float] = {}
    for name in names:
        started = time.perf_counter()
        result = METRICS.get(name)(ctx)
        ctx.notes.setdefault(name, {}).update(wall_s=time.perf_counter() - started, values=list(result))
        values.update(result)
    return values


def _fidelity_of(sample: MeasuredSet) -> dict[str, float]:
    from gdpp_bench.metrics.feature_fidelity import fidelity_from_features

    assert sample.features is not None and sample.logits is not None
    return fidelity_from_features(sample.features, sample.logits, sample.real, sample.grams)


FIDELITY_VALUES = {
    "fid": Value(False, (0, None)),
    "is": Value(True, (1, None)),
    "kid": Value(False),
    "precision": Value(True, (0, 1)),
    "recall": Value(True, (0, 1)),
    "density": Value(True, (0, None)),
    "coverage": Value(True, (0, 1)),
}


@METRICS.register(
    "fidelity",
    reads_real="reference",  # the real images of the evaluation's reference split
    from_set=_fidelity_of,
    count="fidelity_samples",
    # the calibration ladder on MNIST, Fashion-MNIST and Stacked-MNIST (results/calibration/):
    # precision sees blur but not noise (mild noise raises it); IS is blind to within-mode collapse
    sees={
        "fid": ("mode dropping", "mode imbalance", "within-mode collapse", "noise", "blur"),
        "is": ("mode dropping", "mode imbalance", "noise", "blur"),
        "kid": ("mode dropping", "mode imbalance", "within-mode collapse", "noise", "blur"),
        "precision": ("blur",),
        "recall": ("mode dropping", "within-mode collapse", "noise", "blur"),
        "density": (),
        "coverage": ("mode dropping", "mode imbalance", "within-mode collapse", "blur"),
    },
    extractor=True,  # the dataset's feature extractor: its classifier, else Inception-v3's weights
    features=True,  # ... or the one eval.features names, whose values carry its name (fd_dinov2)
    values={
        value_key(key, features): value
        for features in FEATURES
        for key, value in FIDELITY_VALUES.items()
        if is_default(features) or key != "is"  # IS needs a classifier: DINOv2 and CLIP have none
    },
)
def fidelity_metric(ctx: EvalContext) -> dict[str, float]:
    """FID, IS, KID and precision/recall (k = 3) via torch-fidelity, and density/coverage (k = 5,
    Naeem et al. 2020) on the same features, generated samples against the real reference split;
    Inception-v3 features for colour data, the project classifier's for the MNIST family, or the
    extractor eval.features names (DINOv2, CLIP: keys fd_dinov2, kid_dinov2, ...; no IS)."""
    from gdpp_bench.metrics import fidelity as measure

    n_fake, n_real = ctx.fidelity_counts()
    extractor = measure.extractor_for(
        ctx.dataset.name,
        ctx.data_root,
        ctx.options.inception_weights,
        ctx.features,
        ctx.options.feature_weights,
    )
    real = measure.real_reference(ctx.dataset, ctx.data_root, ctx.reference_split, n_real)
    fake = to_uint8(ctx.samples(n_fake)).cpu()  # torch-fidelity batches from a CPU dataset
    name = measure.reference_name(ctx.dataset, ctx.data_root, ctx.reference_split, real, extractor)
    generated: dict[str, Tensor] = {}
    values = measure.fidelity_metrics(
        fake, real, name, extractor, ctx.device, ctx.options.batch_size, generated=generated
    )
    ctx._features[(extractor.name, extractor.weights_sha256, len(fake))] = generated["features"]
    ctx.notes["fidelity"] = measure.protocol(
        extractor, len(fake), len(real), ctx.reference_split, ctx.options.batch_size, name
    )
    return values


def _vendi_of(sample: MeasuredSet) -> dict[str, float]:
    from gdpp_bench.metrics import vendi

    if sample.points is not None:
        bandwidth = vendi.rbf_bandwidth(sample.dataset.centers_tensor(torch.device("cpu")))
        return {"vendi": vendi.vendi_rbf(sample.points[: vendi.POINT_SAMPLES], bandwidth)}
    assert sample.features is not None, "an image set is measured with its fidelity features"
    return {"vendi": vendi.vendi_cosine(sample.features[: vendi.IMAGE_SAMPLES])}


# `any_dataset`: the ladder calibrates it on every dataset, listed by a suite or not
@METRICS.register(
    "vendi",
    values={"vendi": Value(True, (1, None))},
    from_set=_vendi_of,
    count="fidelity_samples",
    any_dataset=True,
    extractor=True,  # images: the fidelity metric's extractor (classifier or Inception-v3 weights)
    sees={"vendi": ("mode dropping", "mode imbalance")},
)
def vendi_metric(ctx: EvalContext) -> dict[str, float]:
    """Vendi score (Friedman and Dieng 2023): exp of the Shannon entropy of the eigenvalues of K / n,
    the effective number of distinct samples (1 to n). Images: cosine kernel on the fidelity
    metric's features of 10,000 generated images; 2D mixtures: RBF kernel on 1,000 generated
    points, bandwidth a third of the distance between the nearest mode centres."""
    from gdpp_bench.metrics import vendi

    if len(ctx.dataset.shape) == 1:
        centers = getattr(ctx.dataset, "centers_tensor", None)
        if centers is None:
            raise UserError(
                f"metric vendi on 2D dataset {ctx.dataset.name!r} needs its mode centres (they set the "
                "RBF bandwidth); it has no centers_tensor"
            )
        bandwidth = vendi.rbf_bandwidth(centers(ctx.device))
        points = ctx.samples(vendi.POINT_SAMPLES)
        ctx.notes["vendi"] = {
            "generated_samples": len(points),
            "features": "coordinates",
            "kernel": "rbf",
            "bandwidth": bandwidth,
        }
        return {"vendi": vendi.vendi_rbf(points, bandwidth)}
    from gdpp_bench.metrics import fidelity as measure

    extractor = measure.extractor_for(ctx.dataset.name, ctx.data_root, ctx.options.inception_weights)
    key = (extractor.name, extractor.weights_sha256, vendi.IMAGE_SAMPLES)
    if key not in ctx._features:  # the fidelity metric of this evaluation did not extract them
        images = to_uint8(ctx.samples(vendi.IMAGE_SAMPLES)).cpu()
        ctx._features[key] = vendi.extract_features(images, extractor, ctx.device, ctx.options.batch_size)
    features = ctx._features[key]
    ctx.notes["vendi"] = {
        "generated_samples": len(features),
        "features": f"{extractor.name} {vendi.feature_layer(extractor)}",
        "extractor": extractor.name,
        "extractor_weights_sha256": extractor.weights_sha256,
        **extractor.details,
        "kernel": "cosine",
        "batch_size": ctx.options.batch_size,
    }
    return {"vendi": vendi.vendi_cosine(features)}


def _classified(ctx: EvalContext, dataset: str, metric: str) -> Tensor:
    """Each generated sample's channels classified by the project's classifier of `dataset`:
    int64 [N, C]. The classifier's identity goes into `metric`'s protocol."""
    from gdpp_bench.metrics.instruments import classify_channels, load_or_train_classifier

    model, info = load_or_train_classifier(dataset, ctx.data_root, device=ctx.device)
    images = to_uint8(ctx.samples())
    ctx.notes[metric] = {"classifier": info.protocol()}
    return classify_channels(model, images)


def _histogram_values(counts: Tensor, modes: str, kl: str) -> dict[str, float]:
    return {modes: float((counts > 0).sum().item()), kl: kl_to_uniform(counts)}


def _stacked_modes_of(sample: MeasuredSet) -> dict[str, float]:
    assert sample.labels is not None
    counts = torch.bincount(stacked_mode_labels(sample.labels), minlength=STACKED_MODES)
    return _histogram_values(counts, "modes", "kl_uniform")


def _classes_of(sample: MeasuredSet) -> dict[str, float]:
    assert sample.labels is not None
    return _histogram_values(torch.bincount(sample.labels[:, 0], minlength=10), "classes", "class_kl_uniform")


@METRICS.register(
    "stacked_mnist_modes",
    classifier="mnist",
    values={"modes": MODES, "kl_uniform": KL_UNIFORM},
    from_set=_stacked_modes_of,
    count="samples",
    # a classifier's errors repeated over a mode's few distinct stacks move samples to other modes:
    # KL sees within-mode collapse, the count hardly (1,000 until one stack per mode: 981)
    sees={
        "modes": ("mode dropping", "mode imbalance"),
        "kl_uniform": ("mode dropping", "mode imbalance", "within-mode collapse"),
    },
)
def stacked_mnist_modes(ctx: EvalContext) -> dict[str, float]:
    """Stacked-MNIST: each channel classified by the MNIST classifier; modes = distinct triples
    (of 1000) among the generated samples, and KL(triple histogram || uniform), natural log."""
    labels = _classified(ctx, "mnist", "stacked_mnist_modes")
    counts = torch.bincount(stacked_mode_labels(labels), minlength=STACKED_MODES)
    ctx.notes["stacked_mnist_modes"]["histogram"] = counts.tolist()  # samples per triple, for reports
    return _histogram_values(counts, "modes", "kl_uniform")


def _class_coverage(ctx: EvalContext, dataset: str, metric: str) -> dict[str, float]:
    counts = torch.bincount(_classified(ctx, dataset, metric)[:, 0], minlength=10)
    return _histogram_values(counts, "classes", "class_kl_uniform")


CLASS_VALUES = {"classes": Value(True, (0, 10), count=True), "class_kl_uniform": KL_UNIFORM}


@METRICS.register(
    "mnist_classes",
    classifier="mnist",
    values=CLASS_VALUES,
    from_set=_classes_of,
    count="samples",
    # the calibration ladder (results/calibration/): a class count sees only classes missing; neither
    # sees a class drawn from a few images
    sees={"classes": ("mode dropping",), "class_kl_uniform": ("mode dropping", "mode imbalance")},
)
def mnist_classes(ctx: EvalContext) -> dict[str, float]:
    """MNIST: generated samples classified by the MNIST classifier; classes covered (of 10) and
    KL(class histogram || uniform), natural log."""
    return _class_coverage(ctx, "mnist", "mnist_classes")


@METRICS.register(
    "fashion_mnist_classes",
    classifier="fashion-mnist",
    values=CLASS_VALUES,
    from_set=_classes_of,
    count="samples",
    # noisy or blurred garments are misread as some classes more than others, so KL sees them too
    sees={
        "classes": ("mode dropping",),
        "class_kl_uniform": ("mode dropping", "mode imbalance", "noise", "blur"),
    },
)
def fashion_mnist_classes(ctx: EvalContext) -> dict[str, float]:
    """Fashion-MNIST: as mnist_classes, with the Fashion-MNIST classifier."""
    return _class_coverage(ctx, "fashion-mnist", "fashion_mnist_classes")


@METRICS.register(
    "ivom", reads_real="test", needs_generator=True, values={"ivom_mse": Value(False, (0, None))}
)
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
    "MeasuredSet",
    "Metric",
    "compute_metrics",
]
