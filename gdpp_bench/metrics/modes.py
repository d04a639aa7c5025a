"""Mode coverage on 2D mixtures (the GDPP paper's synthetic protocol)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

HQ_STDS = 3.0


def mode_assignment(samples: Tensor, centers: Tensor, std: float) -> tuple[Tensor, Tensor]:
    """Nearest centre of each sample, and whether it lies within 3 std of it (high quality)."""
    distances = torch.cdist(samples.float(), centers.float())
    nearest_distance, nearest = distances.min(dim=1)
    return nearest, nearest_distance <= HQ_STDS * std


def modes2d(samples: Tensor, centers: Tensor, std: float) -> dict[str, float]:
    """modes (with >= 1 high-quality sample), hq_percent, and KL(HQ mode histogram || uniform)."""
    nearest, high_quality = mode_assignment(samples, centers, std)
    counts = torch.bincount(nearest[high_quality], minlength=len(centers))
    return {
        "modes": float((counts > 0).sum().item()),
        "hq_percent": 100.0 * counts.sum().item() / len(samples),
        "kl_uniform": kl_to_uniform(counts),
    }


def kl_to_uniform(counts: Tensor) -> float:
    """KL(histogram || uniform over its bins), natural log; NaN for an empty histogram."""
    total = counts.sum().item()
    if total == 0:
        return math.nan
    p = counts.double() / total
    p = p[p > 0]
    return float((p * (p * len(counts)).log()).sum().item())
