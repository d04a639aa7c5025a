"""The `fidelity` metric's values from features already extracted: what a calibration ladder needs,
whose sample sets are index subsets of features extracted once (gdpp_bench.calibration).

The same definitions as gdpp_bench.metrics.fidelity (torch-fidelity's FID, IS, KID, precision/recall
with k = 3; density/coverage with k = 5), computed from two matrix products per sample set (fake x
real and fake x fake, float32) instead of the six distance passes the evaluation path makes, and
with everything that depends on the real set alone (its radii, FID statistics and square root, its
KID sums) computed once. The values agree with `fidelity_metrics` to float32 rounding of the
distances (tests/test_calibration.py); a sample at exactly a ball's radius may fall the other side.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

import gdpp_bench.metrics.torch_fidelity_api as tf
from gdpp_bench.metrics.fidelity import (
    DC_NEIGHBOURS,
    IS_SPLITS,
    KID_SUBSET_SIZE,
    KID_SUBSETS,
    PRC_NEIGHBOURS,
    psd_sqrt,
)
from gdpp_bench.metrics.fidelity import (
    frechet_distance as evaluation_fid,
)


def _squared_norms(x: Tensor) -> Tensor:
    return x.double().pow(2).sum(dim=1).float()


def _distances(gram: Tensor, left: Tensor, right: Tensor) -> Tensor:
    """Euclidean distances from a Gram block and the rows' squared norms (in place on `gram`)."""
    return gram.mul_(-2).add_(left[:, None]).add_(right[None, :]).clamp_(min=0).sqrt_()


def _kid_picks(n_fake: int, n_real: int, subsets: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """torch-fidelity's KID subsets as indicator matrices, drawn by its seeded RandomState in its order."""
    draw = np.random.RandomState(tf.DEFAULTS["rng_seed"])
    pick_x, pick_y = np.zeros((n_fake, subsets)), np.zeros((n_real, subsets))
    for index in range(subsets):
        pick_x[draw.choice(n_fake, size, replace=False), index] = 1.0
        pick_y[draw.choice(n_real, size, replace=False), index] = 1.0
    return pick_x, pick_y


def _pair_sums(kernel: Tensor, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    product = kernel.double() @ torch.from_numpy(right)
    return (torch.from_numpy(left) * product).sum(dim=0).numpy()


def _poly_kernel(gram: Tensor, dim: int) -> Tensor:
    """torch-fidelity's KID kernel (x.y / d + 1)^3 from a Gram block (in place)."""
    return gram.div_(dim).add_(1).pow_(3)


class RealFeatures:
    """A real reference set's features and everything the fidelity values need of it alone."""

    def __init__(self, features: Tensor) -> None:
        self.features = features.float().contiguous()
        self.norms = _squared_norms(self.features)
        self.dim = self.features.shape[1]
        distances = _distances(self.features @ self.features.T, self.norms, self.norms)
        distances.fill_diagonal_(0)
        ordered = distances.topk(DC_NEIGHBOURS + 1, dim=1, largest=False).values
        self.prc_radii = ordered[:, PRC_NEIGHBOURS]  # self-distance first, as torch-fidelity
        self.dc_radii = ordered[:, DC_NEIGHBOURS]
        del distances, ordered
        stats = tf.fid_features_to_statistics(self.features)
        self.mu, self.sigma = stats["mu"], stats["sigma"]

    @functools.cached_property
    def sigma_root(self) -> np.ndarray:
        """sqrt(sigma), which FID needs only for a set larger than the features' width."""
        return psd_sqrt(self.sigma)

    @functools.lru_cache(maxsize=4)  # noqa: B019 (one reference per dataset, kept for the ladder)
    def kid_within(self, n_fake: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(fake picks, real picks, the real subsets' kernel sums over distinct pairs) for n_fake."""
        size = min(KID_SUBSET_SIZE, n_fake, len(self.features))
        pick_x, pick_y = _kid_picks(n_fake, len(self.features), KID_SUBSETS, size)
        kernel = _poly_kernel(self.features @ self.features.T, self.dim)
        within = _pair_sums(kernel, pick_y, pick_y) - pick_y.T @ kernel.diagonal().double().numpy()
        return pick_x, pick_y, within


class PoolGrams:
    """Gram blocks of a pool of measured samples, computed once, for sets that are index subsets of
    the pool: a set's blocks are then gathered, not multiplied (at 10,000 samples and 1,024
    dimensions a product costs ~6 CPU-s, a gather ~0.3 s).

    A set's feature vector may be `parts` pool vectors side by side (Stacked-MNIST: one digit per
    channel); `real_parts` are the reference features cut the same way, so each block is the sum
    of the parts' blocks. With one part the pool x pool block is not kept (50,000 MNIST images:
    10 GB); the set's block is then computed on its distinct members."""

    def __init__(self, pool: Tensor, real_parts: Sequence[Tensor]) -> None:
        self.pool = pool.float().contiguous()
        self.pool_real = [self.pool @ part.float().T for part in real_parts]
        self.pool_pool = self.pool @ self.pool.T if len(real_parts) > 1 else None

    def grams(self, index: Tensor) -> SetGrams:
        """The set whose samples are the pool members `index` [n] (one part) or [n, parts]."""
        return SetGrams(self, index)

    def blocks(self, index: Tensor) -> tuple[Tensor, Tensor]:
        """(generated x generated [n, n], generated x reference [n, R]) of the set `index`."""
        if self.pool_pool is None:
            distinct, inverse = index.unique(return_inverse=True)
            if len(distinct) == len(index):
                members = self.pool[index]
                fake_fake = members @ members.T
            else:
                members = self.pool[distinct]
                fake_fake = (members @ members.T)[inverse][:, inverse]
            return fake_fake, self.pool_real[0][index]
        index = index.reshape(len(index), -1)
        fake_fake = torch.zeros(len(index), len(index))
        fake_real = torch.zeros(len(index), self.pool_real[0].shape[1])
        for part, block in enumerate(self.pool_real):
            chosen = index[:, part]
            fake_real += block[chosen]
            fake_fake += self.pool_pool[chosen][:, chosen]
        return fake_fake, fake_real


@dataclass(frozen=True)
class SetGrams:
    """A generated set drawn from a PoolGrams's pool (`index`): its Gram blocks are gathered when
    asked for, so a prefix (the fidelity count of a larger set) gathers only its own."""

    pool: PoolGrams
    index: Tensor

    def prefix(self, count: int) -> SetGrams:
        return SetGrams(self.pool, self.index[:count])

    def blocks(self) -> tuple[Tensor, Tensor]:
        """(generated x generated [n, n], generated x reference [n, R]), new tensors."""
        return self.pool.blocks(self.index)


def frechet_distance(features: Tensor, real: RealFeatures) -> float:
    """FID as the evaluation path computes it (gdpp_bench.metrics.fidelity.frechet_distance)."""
    return evaluation_fid(
        features.double().numpy(), {"mu": real.mu, "sigma": real.sigma}, lambda: real.sigma_root
    )


@torch.no_grad()
def fidelity_from_features(
    fake: Tensor, fake_logits: Tensor, real: RealFeatures, grams: SetGrams | None = None
) -> dict[str, float]:
    """The values of the `fidelity` metric for generated features `fake` [N, D] (the extractor's
    FID layer) and logits `fake_logits` [N, L] (its IS layer), against `real`; `grams`: the set's
    Gram blocks when known (else computed from `fake`)."""
    fake = fake.float().contiguous()
    n = len(fake)
    fake_norms = _squared_norms(fake)
    inception = tf.isc_features_to_metric(
        fake_logits, IS_SPLITS, tf.DEFAULTS["samples_shuffle"], tf.DEFAULTS["rng_seed"]
    )
    pick_x, pick_y, within_y = real.kid_within(n)
    size = int(pick_x[:, 0].sum())
    gram_xx, gram_xy = (fake @ fake.T, fake @ real.features.T) if grams is None else grams.blocks()
    kernel_xx = _poly_kernel(gram_xx.clone(), real.dim)
    within_x = _pair_sums(kernel_xx, pick_x, pick_x) - pick_x.T @ kernel_xx.diagonal().double().numpy()
    del kernel_xx
    fake_distances = _distances(gram_xx, fake_norms, fake_norms)
    fake_distances.fill_diagonal_(0)
    # the (k+1)-th smallest, self included: topk is ~8x faster than kthvalue on CPU
    fake_radii = fake_distances.topk(PRC_NEIGHBOURS + 1, dim=1, largest=False).values[:, -1]
    del fake_distances, gram_xx
    across = _pair_sums(_poly_kernel(gram_xy.clone(), real.dim), pick_x, pick_y)
    mmds = (within_x + within_y) / (size * (size - 1)) - 2 * across / (size * size)
    distances = _distances(gram_xy, fake_norms, real.norms)  # [fake, real]
    precision = (distances <= real.prc_radii[None, :]).any(dim=1).double().mean().item()
    recall = (distances <= fake_radii[:, None]).any(dim=0).double().mean().item()
    inside = distances < real.dc_radii[None, :]
    density = inside.sum().item() / (DC_NEIGHBOURS * n)
    coverage = inside.any(dim=0).double().mean().item()
    return {
        "fid": frechet_distance(fake, real),
        "is": float(inception[tf.KEY_METRIC_ISC_MEAN]),
        "is_std": float(inception[tf.KEY_METRIC_ISC_STD]),
        "kid": float(mmds.mean()),
        "kid_std": float(mmds.std()),
        "precision": precision,
        "recall": recall,
        "density": density,
        "coverage": coverage,
    }


__all__ = ["PoolGrams", "RealFeatures", "SetGrams", "fidelity_from_features", "frechet_distance"]
