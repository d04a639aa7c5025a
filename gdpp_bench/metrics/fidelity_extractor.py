"""The project's MNIST-family classifiers as torch-fidelity feature extractors.

Importing this module registers `gdpp-mnist-classifier`, `gdpp-fashion-mnist-classifier` and
`gdpp-stacked-mnist-classifier` (the MNIST classifier applied to each of the three channels) with
torch-fidelity. Use them as

    calculate_metrics(..., feature_extractor="gdpp-mnist-classifier",
                      feature_extractor_weights_path=str(info.path))

where `info` comes from `load_or_train_classifier` (or pass `**fidelity_kwargs(...)`). Features:
"1024" (the penultimate ReLU layer; default for FID, KID and precision/recall), "logits" (default for
IS) and "logits_unbiased" (logits without the output bias, as torch-fidelity's Inception provides).
The Stacked-MNIST extractor gives "3072" (the three channels' 1024-d features side by side) and
1000 "logits": log p(d1) + log p(d2) + log p(d3) for every digit triple, so IS is computed over the
1000 modes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gdpp_bench.metrics.instruments import (
    CLASSIFIER_DATASETS,
    ClassifierConfig,
    ClassifierInfo,
    classifier_dataset,
    load_classifier,
    load_or_train_classifier,
    prepare_images,
)
from gdpp_bench.metrics.torch_fidelity_api import (
    FEATURE_EXTRACTORS_REGISTRY,
    FeatureExtractorBase,
    register_feature_extractor,
    vassert,
)

FEATURES = ("1024", "logits_unbiased", "logits")
_DEFAULT_LAYER = {"isc": "logits", "fid": "1024", "kid": "1024", "prc": "1024"}


STACKED = "stacked-mnist"


def extractor_name(dataset: str) -> str:
    """torch-fidelity's name for the classifier extractor that measures `dataset`."""
    return f"gdpp-{STACKED if dataset == STACKED else classifier_dataset(dataset)}-classifier"


# extractor name -> the dataset whose classifier weights it loads
_DATASET_OF_NAME = {extractor_name(d): classifier_dataset(d) for d in (*CLASSIFIER_DATASETS, STACKED)}


class ClassifierFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over a cached project classifier (one class for every registered name).

    Input: uint8 [N, 3, H, W] as torch-fidelity passes it; grayscale images replicated to three channels
    are read from the first channel and resized to 28 x 28 when needed.
    """

    def __init__(
        self,
        name: str,
        features_list: list[str] | tuple[str, ...],
        feature_extractor_weights_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        vassert(
            name in _DATASET_OF_NAME,
            f"unknown project classifier {name!r}; known: {', '.join(sorted(_DATASET_OF_NAME))}",
        )
        vassert(
            feature_extractor_weights_path is not None,
            f"feature extractor {name!r} needs feature_extractor_weights_path: the cached classifier file "
            "(gdpp_bench.metrics.instruments.load_or_train_classifier gives its path)",
        )
        model, record = load_classifier(Path(str(feature_extractor_weights_path)))
        vassert(
            record["dataset"] == _DATASET_OF_NAME[name],
            f"{feature_extractor_weights_path} holds the {record['dataset']} classifier, "
            f"not the one {name!r} names",
        )
        self.model = model.requires_grad_(False)
        self.record = record

    def _check(self, x: Tensor) -> None:
        vassert(
            torch.is_tensor(x) and x.dtype == torch.uint8,
            "Expecting image as torch.Tensor with dtype=torch.uint8",
        )
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check(x)
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


class StackedClassifierFeatureExtractor(ClassifierFeatureExtractor):
    """The MNIST classifier on each channel of Stacked-MNIST images: 3 x 1024 features, 1000 logits."""

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        self._check(x)
        per_channel = [self.model.features(prepare_images(x[:, c : c + 1])) for c in range(3)]
        out = {"3072": torch.cat(per_channel, dim=1)}
        if "logits" in self.features_list or "logits_unbiased" in self.features_list:
            # log p(d1, d2, d3) of independent channels: the outer sum of per-channel log-probabilities
            first, second, third = (self.model.out(f).log_softmax(dim=1) for f in per_channel)
            joint = first[:, :, None, None] + second[:, None, :, None] + third[:, None, None, :]
            out["logits"] = out["logits_unbiased"] = joint.flatten(1)
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return STACKED_FEATURES

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return "logits" if metric == "isc" else "3072"


STACKED_FEATURES = ("3072", "logits_unbiased", "logits")


def register_extractors() -> None:
    """Register every project classifier with torch-fidelity (idempotent)."""
    for name in _DATASET_OF_NAME:
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            stacked = name == extractor_name(STACKED)
            register_feature_extractor(
                name, StackedClassifierFeatureExtractor if stacked else ClassifierFeatureExtractor
            )


def fidelity_kwargs(
    dataset: str,
    data_root: str | Path | None,
    cache_dir: str | Path | None = None,
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
    "FEATURES",
    "ClassifierFeatureExtractor",
    "StackedClassifierFeatureExtractor",
    "extractor_name",
    "fidelity_kwargs",
    "register_extractors",
]
