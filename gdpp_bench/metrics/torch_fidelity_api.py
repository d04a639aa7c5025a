"""Every name taken from torch-fidelity, public or internal, in one place.

The project pins torch-fidelity to the tested minor release (0.4.x): the internals below (its
feature-dict cache, KID kernel, precision/recall distance helper and extractor registry) are not a
stable API, and a new release that moves them should break here, in one small module, not across
the metrics."""

from __future__ import annotations

from torch_fidelity import FeatureExtractorBase, calculate_metrics, register_feature_extractor
from torch_fidelity import __version__ as version
from torch_fidelity.defaults import DEFAULTS
from torch_fidelity.feature_extractor_clip import MODEL_METADATA as CLIP_METADATA
from torch_fidelity.feature_extractor_clip import MODEL_URLS as CLIP_URLS
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.helpers import vassert
from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_featuresdict_to_statistics_cached
from torch_fidelity.metric_isc import KEY_METRIC_ISC_MEAN, KEY_METRIC_ISC_STD, isc_features_to_metric
from torch_fidelity.metric_kid import (
    KEY_METRIC_KID_MEAN,
    KEY_METRIC_KID_STD,
    kernel_poly,
    kid_features_to_metric,
)
from torch_fidelity.metric_prc import calc_cdist_part
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import (
    create_feature_extractor,
    extract_featuresdict_from_input_id,
    extract_featuresdict_from_input_id_cached,
    resolve_feature_layer_for_metric,
)

__all__ = [
    "CLIP_METADATA",
    "CLIP_URLS",
    "DEFAULTS",
    "FEATURE_EXTRACTORS_REGISTRY",
    "KEY_METRIC_ISC_MEAN",
    "KEY_METRIC_ISC_STD",
    "KEY_METRIC_KID_MEAN",
    "KEY_METRIC_KID_STD",
    "URL_INCEPTION_V3",
    "FeatureExtractorBase",
    "calc_cdist_part",
    "calculate_metrics",
    "create_feature_extractor",
    "extract_featuresdict_from_input_id",
    "extract_featuresdict_from_input_id_cached",
    "fid_features_to_statistics",
    "fid_featuresdict_to_statistics_cached",
    "interpolate_bilinear_2d_like_tensorflow1x",
    "isc_features_to_metric",
    "kernel_poly",
    "kid_features_to_metric",
    "register_feature_extractor",
    "resolve_feature_layer_for_metric",
    "vassert",
    "version",
]
