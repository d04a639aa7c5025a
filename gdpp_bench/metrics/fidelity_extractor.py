"""The project's MNIST-family classifiers as torch-fidelity feature extractors.

Importing this module registers `gdpp-mnist-classifier` and `gdpp-fashion-mnist-classifier` with
torch-fidelity. Use them as

    calculate_metrics(..., feature_extractor="gdpp-mnist-classifier",
                      feature_extractor_weights_path=str(info.path))

where `info` comes from `load_or_train_classifier` (or pass `**fidelity_kwargs(...)`). Features:
"1024" (the penultimate ReLU layer; default for FID, KID and precision/recall), "logits" (default for
IS) and "logits_unbiased" (logits without the output bias, as torch-fidelity's Inception provides).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch_fidelity import FeatureExtractorBase, register_feature_extractor
from torch_fidelity.helpers import vassert
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from gdpp_bench.metrics.instruments import (
    CLASSIFIER_DATASETS,
    ClassifierConfig,
    ClassifierInfo,
    classifier_dataset,
    load_classifier,
    load_or_train_classifier,
    prepare_images,
)

FEATURES = ("1024", "logits_unbiased", "logits")
_DEFAULT_LAYER = {"isc": "logits", "fid": "1024", "kid": "1024", "prc": "1024"}


def extractor_name(dataset: str) -> str:
    """torch-fidelity's name for the classifier that measures `dataset` (stacked-mnist -> the MNIST one)."""
    return f"gdpp-{classifier_dataset(dataset)}-classifier"


_DATASET_OF_NAME = {extractor_name(d): d for d in CLASSIFIER_DATASETS}


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over a cached project classifier (one class for every registered name).

    Input: uint8 [N, 3, H, W] as torch-fidelity passes it; grayscale images replicated to three channels
    are read from the first channel and resized to 28 x 28 when needed.
    """

    def __init__(
        self, name: str, features_list: list[str] | tuple[str, ...],
        feature_extractor_weights_path: str | None = None, **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        vassert(name in _DATASET_OF_NAME,
                f"unknown project classifier {name!r}; known: {', '.join(sorted(_DATASET_OF_NAME))}")
        vassert(
            feature_extractor_weights_path is not None,
            f"feature extractor {name!r} needs feature_extractor_weights_path: the cached classifier file "
            "(gdpp_bench.metrics.instruments.load_or_train_classifier gives its path)",
        )
        model, record = load_classifier(Path(feature_extractor_weights_path))
        vassert(
            record["dataset"] == _DATASET_OF_NAME[name],
            f"{feature_extractor_weights_path} holds the {record['dataset']} classifier, "
            f"not the one {name!r} names",
        )
        self.model = model.requires_grad_(False)
        self.record = record

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        vassert(torch.is_tensor(x) and x.dtype == torch.uint8,
                "Expecting image as torch.Tensor with dtype=torch.uint8")
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
        features = self.model.features(prepare_images(x[:, :1]))
        out = {"1024": features}
        if "logits_unbiased" in self.features_list:
            out["logits_unbiased"] = features @ self.model.out.weight.T
        if "logits" in self.features_list:
            out["logits"] = self.model.out(features)
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return _DEFAULT_LAYER[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 3, 28, 28, dtype=torch.uint8)


def register_extractors() -> None:
    """Register every project classifier with torch-fidelity (idempotent)."""
    for name in _DATASET_OF_NAME:
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(name, ClassifierFeatureExtractor)


def fidelity_kwargs(
    dataset: str, data_root: str | Path | None, cache_dir: str | Path | None = None,
    config: ClassifierConfig | None = None,
) -> tuple[dict[str, Any], ClassifierInfo]:
    """torch-fidelity keyword arguments selecting the classifier of `dataset` (trained if not cached).

    Returns ({"feature_extractor": ..., "feature_extractor_weights_path": ...}, the classifier's info).
    """
    _, info = load_or_train_classifier(dataset, data_root, cache_dir, config)
    kwargs = {"feature_extractor": extractor_name(dataset), "feature_extractor_weights_path": str(info.path)}
    return kwargs, info


register_extractors()

__all__ = [
    "FEATURES", "ClassifierFeatureExtractor", "extractor_name", "fidelity_kwargs", "register_extractors",
]
