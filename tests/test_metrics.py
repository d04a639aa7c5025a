"""modes2d on samples whose answer is known."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import replay_context

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


def _context(images_uint8, dataset):
    return replay_context(images_uint8, dataset)


def test_stacked_mnist_modes_of_real_and_collapsed_samples(mnist_classifier):
    from conftest import DATA_ROOT

    from gdpp_bench.data import load_split
    from gdpp_bench.metrics import stacked_mnist_modes

    images, labels = load_split("stacked-mnist", DATA_ROOT, "test")  # 26,000, uniform digits
    assert len(images) == 26_000 and len(torch.unique(labels)) == 1000
    # 4,000 of them (the test's CPU seconds): each triple ~4 times, so about 1000 exp(-4) = 18
    # triples (sd ~4) are absent by chance, and the histogram's KL to uniform is about
    # 999 / (2 x 4,000) = 0.125 from sampling alone; misreads only move counts
    real = _context(images[:4_000], "stacked-mnist")
    values = stacked_mnist_modes(real)
    assert values["modes"] >= 960
    assert values["kl_uniform"] < 0.2
    protocol = real.notes["stacked_mnist_modes"]["classifier"]
    assert protocol["test_accuracy"] >= 0.99 and len(protocol["weights_sha256"]) == 64
    # one image repeated: each count is 0 or all of them, whatever their number (100: 0.4 % of the
    # real set's CPU seconds, and ten times the 10 modes the assertion allows)
    one_triple = images[:1].repeat(100, 1, 1, 1)
    collapsed = stacked_mnist_modes(_context(one_triple, "stacked-mnist"))
    assert collapsed["modes"] <= 10
    assert collapsed["kl_uniform"] > math.log(1000) - 1


def test_mnist_classes_of_real_and_collapsed_samples(mnist_classifier):
    from conftest import DATA_ROOT

    from gdpp_bench.data import load_split
    from gdpp_bench.metrics import mnist_classes

    images, labels = load_split("mnist", DATA_ROOT, "test")
    images, labels = images[:5_000], labels[:5_000]  # half the split: ~50 misread, as many as 1 %
    values = mnist_classes(_context(images, "mnist"))
    true_p = torch.bincount(labels, minlength=10).double() / len(labels)
    true_kl = float((true_p * (true_p * 10).log()).sum())
    assert values["classes"] == 10
    assert values["class_kl_uniform"] == pytest.approx(true_kl, abs=2e-3)  # 99 % right labels
    one_digit = images[:1].repeat(100, 1, 1, 1)  # one image: one class, whatever the count
    assert mnist_classes(_context(one_digit, "mnist")) == {
        "classes": 1.0,
        "class_kl_uniform": pytest.approx(math.log(10)),
    }


def test_sampling_with_batch_statistics_leaves_the_generator_untouched():
    """eval.sample_bn = "batch": BatchNorm normalises each chunk of train.batch_size samples by its
    own statistics (the official code), on a copy: G's running statistics and mode stay as they were."""
    from gdpp_bench.models import build_models
    from gdpp_bench.samples import fixed_noise_samples

    torch.manual_seed(0)
    generator, _ = build_models("dcgan28", (1, 28, 28))
    generator.train()
    with torch.no_grad():  # running statistics that differ from any batch's
        generator(torch.randn(64, generator.z_dim) * 3)
    before = {k: v.clone() for k, v in generator.state_dict().items()}
    running = fixed_noise_samples(generator, 96, 5, torch.device("cpu"))
    batch = fixed_noise_samples(generator, 96, 5, torch.device("cpu"), batch_stats_chunk=32)
    assert all(torch.equal(before[k], v) for k, v in generator.state_dict().items())
    assert generator.training and not torch.allclose(running, batch)
    z = torch.randn(96, generator.z_dim, generator=torch.Generator().manual_seed(5))
    copy = build_models("dcgan28", (1, 28, 28))[0]
    copy.load_state_dict(before)
    copy.train()
    with torch.no_grad():
        by_hand = torch.cat([copy(part) for part in z.split(32)])
    assert torch.allclose(batch, by_hand, atol=1e-6)
