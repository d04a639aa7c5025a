"""The feature extractors the fidelity metrics may measure with (`eval.features`, `--features`), and
the value keys each gives. Light on purpose (no torch import): suites are checked with it.

`inception-v3-compat` (the default) means each dataset's standard extractor: torch-fidelity's
Inception-v3 for colour datasets and folders, the project classifier for the MNIST family; its
values keep their usual keys (`fid`, `is`, `kid`, `precision`, ...). Any other extractor measures
every image dataset, and every value it gives carries its short name: the Frechet distance is
`fd_<short>` (never `fid`), every other value `<value>_<short>` (`kid_dinov2`, `precision_dinov2`),
so that no table, figure or test puts values of two extractors in one column. DINOv2 and CLIP have
no classifier head, so no Inception Score is measured with them (the protocol says so).

Short names follow the literature where it names one model: `dinov2` is ViT-L/14 (Stein et al.
2023's FD_DINOv2), `clip` is ViT-B/32 (Kynkaanniemi et al. 2023's FID_CLIP); the other sizes add
theirs (`dinov2_s14`, `clip_vit_l_14`).
"""

from __future__ import annotations

from gdpp_bench.config import CLIP_FEATURES, DINOV2_FEATURES, FEATURE_EXTRACTORS
from gdpp_bench.errors import UserError
from gdpp_bench.metrics.inception_weights import INCEPTION

DEFAULT_FEATURES = INCEPTION
# torch-fidelity 0.4's DINOv2 names -> the official hub model (and weights file) names
DINOV2 = {name: "dinov2_vit" + name.split("-")[2] + "14" for name in DINOV2_FEATURES}
# torch-fidelity 0.4's CLIP names (its `feature_extractor_clip.MODEL_METADATA`; a test compares)
CLIP = CLIP_FEATURES
FEATURES = FEATURE_EXTRACTORS
_LITERATURE = {"dinov2-vit-l-14": "dinov2", "clip-vit-b-32": "clip"}
# what the fidelity metric returns with the default extractor (is_std and kid_std: spreads)
DEFAULT_VALUES = ("fid", "is", "is_std", "kid", "kid_std", "precision", "recall", "density", "coverage")
NO_CLASSIFIER_VALUES = ("is", "is_std")  # need a classifier's logits


def check_features(name: str, where: str = "features") -> None:
    """A UserError naming the choices where `name` is not one."""
    if name not in FEATURES:
        raise UserError(f"{where}: unknown feature extractor {name!r}; choose one of {', '.join(FEATURES)}")


def is_default(features: str) -> bool:
    return features == DEFAULT_FEATURES


def short_name(features: str) -> str:
    """The suffix of `features`' value keys: 'dinov2' (ViT-L/14), 'dinov2_s14', 'clip' (ViT-B/32),
    'clip_rn50', ... ('' for the default extractor, whose keys have none)."""
    check_features(features)
    if is_default(features):
        return ""
    if features in _LITERATURE:
        return _LITERATURE[features]
    if features in DINOV2:
        return "dinov2_" + DINOV2[features].removeprefix("dinov2_vit")
    return features.replace("-", "_")


def value_key(value: str, features: str) -> str:
    """The key of the fidelity value `value` (a DEFAULT_VALUES name) measured with `features`."""
    short = short_name(features)
    if not short:
        return value
    return f"fd_{short}" if value == "fid" else f"{value}_{short}"


def fidelity_keys(features: str) -> tuple[str, ...]:
    """The keys the fidelity metric returns with `features` (no IS without a classifier)."""
    if is_default(features):
        return DEFAULT_VALUES
    return tuple(value_key(v, features) for v in DEFAULT_VALUES if v not in NO_CLASSIFIER_VALUES)


# value key -> the extractor that measures it, for every key of a non-default extractor
_FEATURES_OF_KEY = {key: name for name in FEATURES[1:] for key in fidelity_keys(name)}


def features_of_key(key: str) -> str | None:
    """The non-default extractor whose fidelity value `key` is; None for any other key."""
    return _FEATURES_OF_KEY.get(key)


__all__ = [
    "CLIP",
    "DEFAULT_FEATURES",
    "DEFAULT_VALUES",
    "DINOV2",
    "FEATURES",
    "INCEPTION",
    "NO_CLASSIFIER_VALUES",
    "check_features",
    "features_of_key",
    "fidelity_keys",
    "is_default",
    "short_name",
    "value_key",
]
