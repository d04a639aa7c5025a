"""The Vendi score (Friedman and Dieng, "The Vendi Score: A Diversity Evaluation Metric for Machine
Learning", TMLR 2023): exp of the Shannon entropy of the eigenvalues of K / n, for n samples and a
similarity kernel K with K(x, x) = 1. It is the effective number of distinct samples: 1 when all are
alike, n when all are unrelated, m for m equally frequent, mutually dissimilar groups.

Images: the cosine kernel on the features the dataset's other metrics use (the fidelity metric's
extractor and layer: the project classifier's 1024-d features for the MNIST family, 3 x 1024 for
Stacked-MNIST, Inception-v3's 2048-d pool features otherwise). With X the n x d matrix of unit rows,
K / n = X X^T / n and X^T X / n have the same nonzero eigenvalues, so the d x d one is decomposed when
d < n. 2D mixtures: an RBF kernel on the coordinates, its bandwidth set by the mixture's geometry
(`rbf_bandwidth`); n x n. The score grows with n (it is at most n), so each uses a fixed count.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import Tensor

import gdpp_bench.metrics.torch_fidelity_api as tf

if TYPE_CHECKING:
    from gdpp_bench.metrics.fidelity import Extractor

IMAGE_SAMPLES = 10_000  # generated images (the fidelity metric's quick-protocol count: features shared)
POINT_SAMPLES = 1_000  # generated 2D points (an n x n eigendecomposition, at every evaluation)
BANDWIDTH_PER_SPACING = 1 / 3


def _check_samples(name: str, samples: Tensor) -> None:
    if not isinstance(samples, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(samples).__name__}")
    if samples.dim() != 2 or len(samples) == 0:
        raise ValueError(
            f"{name} must be 2-D [samples, dims] with at least one sample, got {tuple(samples.shape)}"
        )


def score_from_eigenvalues(eigenvalues: Tensor) -> float:
    """exp(-sum w log w) over the positive eigenvalues w of K / n, rescaled to sum to 1 (they do
    already when K(x, x) = 1 for every sample; rounding leaves tiny negative ones, which are dropped)."""
    w = eigenvalues.double().clamp(min=0)
    w = w[w > 0] / w.sum()
    return math.exp(-(w * w.log()).sum().item())


@torch.no_grad()
def vendi_cosine(features: Tensor) -> float:
    """Vendi score of the cosine-similarity kernel of `features` [n, d], in float64 on their device,
    through the d x d matrix X^T X / n when d < n (same nonzero eigenvalues as the n x n one).

    A sample whose features are all zero has no direction: its row stays zero (as sklearn's
    `normalize` leaves it, so the `vendi-score` package), and the rescaling in
    `score_from_eigenvalues` makes the score that of the other samples."""
    _check_samples("features", features)
    x = features.double()
    x = x / x.norm(dim=1, keepdim=True).clamp(min=torch.finfo(torch.float64).tiny)
    n, d = x.shape
    if x.device.type == "cpu":
        # numpy computes A.T @ A as one BLAS syrk: half the work of torch's general product
        rows = x.numpy()
        gram = torch.from_numpy(rows.T @ rows if d < n else rows @ rows.T)
    else:
        gram = x.T @ x if d < n else x @ x.T
    return score_from_eigenvalues(torch.linalg.eigvalsh(gram / n))


def rbf_bandwidth(centers: Tensor) -> float:
    """The RBF bandwidth for a mixture with these mode centres [K, 2]: a third of the distance
    between the two nearest centres."""
    # A linear kernel on 2D points scores between 1 and 2 whatever the modes; the RBF kernel must
    # see two modes as different and one mode's points as the same. At a third of the nearest
    # centres' distance, neighbouring modes have kernel e^-4.5 ~ 0.01, while a mode's own spread
    # (std 0.01 at spacing 0.77 on ring8, 0.05 at 2 on grid25) keeps its points' kernel near 1:
    # 1,000 points of ring8 score 8.15, of one of its modes 1.02 (grid25: 26.4 and 1.08).
    distances = torch.cdist(centers.double(), centers.double())
    distances.fill_diagonal_(math.inf)
    return float(distances.min()) * BANDWIDTH_PER_SPACING


@torch.no_grad()
def vendi_rbf(points: Tensor, bandwidth: float) -> float:
    """Vendi score of K(x, y) = exp(-|x - y|^2 / (2 bandwidth^2)) over `points` [n, dims], float64,
    n x n on their device; NaN if a point is not finite (a diverged generator)."""
    _check_samples("points", points)
    if not bandwidth > 0:
        raise ValueError(f"bandwidth must be positive, got {bandwidth!r}")
    x = points.double()
    if not torch.isfinite(x).all():
        return math.nan
    kernel = torch.exp(-torch.cdist(x, x).square() / (2 * bandwidth**2))
    return score_from_eigenvalues(torch.linalg.eigvalsh(kernel / len(x)))


def extract_features(images: Tensor, extractor: Extractor, device: torch.device, batch_size: int) -> Tensor:
    """The generated images' features [n, d] as the fidelity metric extracts them (same extractor,
    layer and batches; uint8 [n, C, H, W] in), for an evaluation whose fidelity metric did not."""
    from gdpp_bench.metrics.fidelity import UInt8Images

    kwargs = {
        "input1": UInt8Images(images),
        "cache": False,
        "cuda": device.type == "cuda",
        "batch_size": batch_size,
        "save_cpu_ram": True,
        "verbose": False,
        **extractor.kwargs(),
    }
    layer = feature_layer(extractor)
    model = tf.create_feature_extractor(extractor.name, [layer], **kwargs)
    return tf.extract_featuresdict_from_input_id_cached(1, model, **kwargs)[layer].to(device)


def feature_layer(extractor: Extractor) -> str:
    """The layer precision/recall read (the classifier's penultimate layer, Inception's pool)."""
    return tf.resolve_feature_layer_for_metric("prc", **extractor.kwargs())


__all__ = [
    "IMAGE_SAMPLES",
    "POINT_SAMPLES",
    "extract_features",
    "feature_layer",
    "rbf_bandwidth",
    "score_from_eigenvalues",
    "vendi_cosine",
    "vendi_rbf",
]
