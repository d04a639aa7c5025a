"""modes2d on samples whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch

from gdpp_bench.data import DATASETS
from gdpp_bench.metrics.modes import modes2d


@pytest.mark.parametrize("name,modes", [("ring8", 8), ("grid25", 25)])
def test_real_data_covers_every_mode_with_the_gaussian_hq_rate(name, modes):
    mixture = DATASETS.get(name)
    sampler = mixture.sampler(torch.device("cpu"))
    samples = sampler.sample(100_000, torch.Generator().manual_seed(0))
    values = modes2d(samples, mixture.centers_tensor(), mixture.std)
    assert values["modes"] == modes
    # P(|x - mu| <= 3 std) for a 2D isotropic Gaussian is 1 - exp(-4.5) = 98.89%
    assert values["hq_percent"] == pytest.approx(100 * (1 - math.exp(-4.5)), abs=0.15)
    assert values["kl_uniform"] == pytest.approx(0.0, abs=1e-3)


def test_collapsed_samples_hit_one_mode():
    mixture = DATASETS.get("ring8")
    centers = mixture.centers_tensor()
    samples = centers[2].repeat(2500, 1) + 0.001 * torch.randn(2500, 2)
    values = modes2d(samples, centers, mixture.std)
    assert values == {"modes": 1.0, "hq_percent": 100.0, "kl_uniform": pytest.approx(math.log(8))}


def test_far_samples_are_low_quality():
    mixture = DATASETS.get("ring8")
    centers = mixture.centers_tensor()
    samples = torch.zeros(100, 2)  # the ring's centre: 1.0 from every mode, far beyond 3 std
    half = torch.cat([samples, centers.repeat(13, 1)[:100]])
    values = modes2d(half, centers, mixture.std)
    assert values["hq_percent"] == 50.0 and values["modes"] == 8.0
    none = modes2d(samples, centers, mixture.std)
    assert none["modes"] == 0.0 and none["hq_percent"] == 0.0 and math.isnan(none["kl_uniform"])


def test_mixture_geometry():
    ring = DATASETS.get("ring8").centers_tensor()
    assert len(ring) == 8 and torch.allclose(ring.norm(dim=1), torch.ones(8))
    assert torch.cdist(ring, ring).add(torch.eye(8)).min() > 0.7  # 8 distinct means
    grid = DATASETS.get("grid25").centers_tensor()
    assert sorted(set(grid[:, 0].tolist())) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert DATASETS.get("grid25").std == 0.05 and DATASETS.get("ring8").std == 0.01
