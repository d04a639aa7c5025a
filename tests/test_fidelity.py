"""The fidelity metric (FID/IS/KID/PR via torch-fidelity, density/coverage) end to end, offline."""

from __future__ import annotations

import math
import socket
import urllib.error

import pytest
import torch
from conftest import DATA_ROOT, replay_context

from gdpp_bench.data import load_split
from gdpp_bench.errors import UserError
from gdpp_bench.metrics import EvalOptions, fidelity_metric
from gdpp_bench.metrics import fidelity as measure

N = 1000


@pytest.fixture
def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)


def _fidelity(images, dataset="mnist", **fields):
    ctx = replay_context(
        images, dataset, fidelity_samples=len(images), real_samples=N, reference_split="test", **fields
    )
    return fidelity_metric(ctx), ctx.notes["fidelity"]


def test_real_digits_score_well_and_one_repeated_digit_badly(mnist_root, mnist_classifier, offline):
    _, info = mnist_classifier
    train, _ = load_split("mnist", DATA_ROOT, "train")
    real, protocol = _fidelity(train[:N])  # against a 1,000-image subset of the test split
    # one image repeated: its features are one point whatever the count (KID's subsets 100 wide)
    collapsed, _ = _fidelity(train[:1].repeat(100, 1, 1, 1))
    print({k: round(v, 4) for k, v in real.items()}, {k: round(v, 4) for k, v in collapsed.items()})
    assert set(real) == {
        "fid",
        "is",
        "is_std",
        "kid",
        "kid_std",
        "precision",
        "recall",
        "density",
        "coverage",
    }
    assert all(math.isfinite(v) for v in [*real.values(), *collapsed.values()])
    assert collapsed["fid"] > 20 * real["fid"] and collapsed["kid"] > 20 * real["kid"]
    assert real["is"] > 8.5 and collapsed["is"] == pytest.approx(1.0, abs=1e-3)
    assert real["precision"] > 0.6 and real["recall"] > 0.6 and real["coverage"] > 0.6
    assert real["density"] > 0.6
    assert collapsed["recall"] < 0.01 and collapsed["coverage"] < 0.01
    assert protocol["extractor"] == "gdpp-mnist-classifier"
    assert protocol["extractor_weights_sha256"] == info.weights_sha256
    assert (protocol["generated_samples"], protocol["real_samples"]) == (N, N)
    assert protocol["reference_split"] == "test" and protocol["torch_fidelity"] == "0.4.0"
    assert protocol["classifier"]["test_accuracy"] >= 0.99


def test_real_statistics_are_cached_and_generated_ones_are_not(
    mnist_root, mnist_classifier, offline, tmp_path, monkeypatch
):
    cache = tmp_path / "fidelity"
    monkeypatch.setattr(measure, "fidelity_cache_dir", lambda: cache)
    train, _ = load_split("mnist", DATA_ROOT, "train")
    first, _ = _fidelity(train[:200])
    files = sorted(p.name for p in cache.iterdir())
    assert files and all(name.startswith("mnist-test-28px-n1000-s0-") for name in files)
    again, _ = _fidelity(train[:200])
    assert again == first  # the cached reference gives the same numbers
    assert sorted(p.name for p in cache.iterdir()) == files


@pytest.mark.parametrize("batch", [10_000, 97])
def test_precision_recall_with_cached_radii_equal_torch_fidelity(monkeypatch, batch):
    from torch_fidelity.metric_prc import calculate_precision_recall_part

    monkeypatch.setattr(measure, "PRC_BATCH", batch)
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(600, 16, generator=generator)
    # a shifted, partly collapsed generated set: precision and recall both strictly inside (0, 1)
    fake = torch.cat([torch.randn(300, 16, generator=generator) + 0.7, real[:100] + 0.01])
    real_radii = measure.kth_neighbour_distances(real, measure.PRC_NEIGHBOURS)
    ours = measure.precision_recall(fake, real, real_radii)
    theirs = calculate_precision_recall_part(fake, real, measure.PRC_NEIGHBOURS, batch)
    assert ours == theirs and 0 < ours[0] < 1 and 0 < ours[1] < 1


def test_protocol_paper_asks_for_50000_samples():
    ctx = replay_context(
        torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "mnist", options=EvalOptions(protocol="paper")
    )
    assert ctx.fidelity_counts() == (50_000, 50_000)
    assert replay_context(
        torch.zeros(4, 1, 28, 28, dtype=torch.uint8), "mnist", fidelity_samples=7, real_samples=9
    ).fidelity_counts() == (7, 9)


def test_stacked_mnist_features_cover_all_three_channels(mnist_root, mnist_classifier, offline):
    images, _ = load_split("stacked-mnist", DATA_ROOT, "test", size=300)
    real, protocol = _fidelity(images, "stacked-mnist")
    # the same digit in every sample's first channel only: a per-channel extractor must notice
    shuffled = images.clone()
    shuffled[:, 0] = images[:1, 0]
    partly, _ = _fidelity(shuffled, "stacked-mnist")
    assert protocol["extractor"] == "gdpp-stacked-mnist-classifier"
    assert partly["fid"] > 3 * real["fid"] and partly["coverage"] < real["coverage"] / 2
    # IS is computed in 10 splits of 30 samples, so at most 30: distinct triples come near it, and
    # 100 possible triples (one channel fixed) repeat within a split
    assert real["is"] > 25 and partly["is"] < 0.9 * real["is"]


def test_inception_path_runs_with_a_local_weights_file(
    random_inception_weights, offline, tmp_path, monkeypatch
):
    weights = random_inception_weights
    # both sets extracted here (no real features left in a cache by an earlier session), as few as
    # the metrics take: IS's 10 splits need 10 generated images, density/coverage's k = 5 six real
    # ones; Inception resizes every image to 299 px, so each costs the same whatever its size
    monkeypatch.setattr(measure, "fidelity_cache_dir", lambda: tmp_path / "fidelity")
    generator = torch.Generator().manual_seed(0)
    fake = torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8, generator=generator)
    real = torch.randint(0, 256, (6, 3, 32, 32), dtype=torch.uint8, generator=generator)
    extractor = measure.extractor_for("cifar10", None, weights)
    assert extractor.name == "inception-v3-compat"
    assert extractor.weights_sha256 == measure.weights_sha256(weights)
    values = measure.fidelity_metrics(
        fake, real, "test-random-inception", extractor, torch.device("cpu"), batch_size=6
    )
    assert set(values) >= {"fid", "is", "kid", "precision", "recall", "density", "coverage"}
    assert math.isfinite(values["fid"]) and values["fid"] >= 0


def test_missing_inception_weights_name_the_file_and_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline_download(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline_download)
    with pytest.raises(UserError) as raised:
        measure.extractor_for("cifar10", None, None)
    message = str(raised.value)
    assert measure.INCEPTION_FILE in message and "--inception-weights" in message
    assert str(tmp_path / "torch-home") in message and "\n" not in message
    with pytest.raises(UserError, match="--inception-weights .*nope.pth not found"):
        measure.extractor_for("cifar10", None, tmp_path / "nope.pth")


def test_ivom_metric_reconstructs_real_test_images(mnist_root, offline):
    from gdpp_bench.metrics import METRICS, EvalContext
    from gdpp_bench.models import MODELS

    torch.manual_seed(0)
    generator, _ = MODELS.get("dcgan28")((1, 28, 28))
    ctx = EvalContext(
        generator,
        measure_dataset("mnist"),
        torch.device("cpu"),
        10,
        seed=3,
        data_root=str(DATA_ROOT),
        ivom_images=6,
    )
    values = METRICS.get("ivom")(ctx)
    assert set(values) == {"ivom_mse", "ivom_mse_std"}
    assert 0 < values["ivom_mse"] < 1 and math.isfinite(values["ivom_mse_std"])
    notes = ctx.notes["ivom"]
    assert (notes["real_samples"], notes["reference_split"], notes["optimizer"]) == (6, "test", "lbfgs")
    assert ctx.ivom_count() == 6
    assert replace_options(ctx, EvalOptions(protocol="paper")).ivom_count() == 2_000


def measure_dataset(name):
    from gdpp_bench.data import DATASETS

    return DATASETS.get(name)


def replace_options(ctx, options):
    import dataclasses

    return dataclasses.replace(ctx, options=options)


def test_evaluate_adds_missing_metrics_and_reuses_the_others(tmp_path, monkeypatch):
    import dataclasses

    from conftest import tiny_suite

    from gdpp_bench.evaluation import evaluate_run
    from gdpp_bench.metrics import METRICS
    from gdpp_bench.rundir import RunDir, read_json, write_json
    from gdpp_bench.suites import expand
    from gdpp_bench.training import train

    (spec,) = expand(tiny_suite(variants=("bce",), train={"steps": 10}))
    spec = dataclasses.replace(spec, eval=dataclasses.replace(spec.eval, every=0))
    run_dir = RunDir(tmp_path / "run")
    cpu = torch.device("cpu")
    train(spec, run_dir, cpu)
    calls = []
    modes2d = METRICS.get("modes2d")
    monkeypatch.setitem(METRICS._entries, "modes2d", lambda ctx: calls.append(1) or modes2d(ctx))
    first = evaluate_run(run_dir, cpu)
    assert first["protocol"]["modes2d"]["protocol"] == "quick" and len(calls) == 1
    assert evaluate_run(run_dir, cpu) == first and len(calls) == 1  # reused
    # a suite that later lists one more metric: only that one is computed, the rest kept
    config = read_json(run_dir.config)
    config["spec"]["eval"]["metrics"] = ["modes2d", "kl_twin"]
    write_json(run_dir.config, config)
    monkeypatch.setitem(METRICS._entries, "kl_twin", lambda ctx: {"twin": 1.0})
    grown = evaluate_run(run_dir, cpu)
    assert len(calls) == 1 and grown["values"] == {**first["values"], "twin": 1.0}
    assert grown["protocol"]["modes2d"] == first["protocol"]["modes2d"]
    # another protocol, or --force, measures again
    evaluate_run(run_dir, cpu, options=EvalOptions(protocol="paper"))
    assert len(calls) == 2
    evaluate_run(run_dir, cpu, options=EvalOptions(protocol="paper"), force=True)
    assert len(calls) == 3


@pytest.mark.parametrize(("n_fake", "n_real", "size"), [(300, 900, 300), (400, 400, 400), (1200, 700, 200)])
def test_kid_agrees_with_torch_fidelity(n_fake, n_real, size):
    """Whole kernel matrices cut into subsets (the first two) or torch-fidelity's own loop (the
    third, where per-subset matrices cost less): the numbers of torch-fidelity's KID."""
    from torch_fidelity.metric_kid import kid_features_to_metric

    draw = torch.Generator().manual_seed(0)
    fake = torch.rand(n_fake, 64, generator=draw)
    real = torch.rand(n_real, 64, generator=draw) * 1.1
    reference = kid_features_to_metric(fake, real, kid_subsets=20, kid_subset_size=size, verbose=False)
    mean, std = measure.kernel_inception_distance(fake, real, 20, size)
    assert mean == pytest.approx(reference["kernel_inception_distance_mean"], rel=1e-4)
    assert std == pytest.approx(reference["kernel_inception_distance_std"], rel=1e-3, abs=1e-6)
    assert mean > 1e-3  # the two sets differ: a value well above float32 noise


@pytest.mark.parametrize(
    "dim,n_fake,n_real",
    [(64, 500, 800), (256, 40, 900), (512, 10, 12)],  # full rank; fewer samples than dimensions
)
def test_fid_from_the_symmetric_eigenproblem_equals_torch_fidelitys(dim, n_fake, n_real):
    """The evaluation path's FID (tr sqrt(S1 S2) from X S2 X^T or R S1 R, R = sqrt(S2)) against
    torch-fidelity's own formula (the general eigenvalues of S1 S2) on the same statistics, including
    the rank-deficient covariances of small sample sets."""
    import numpy as np
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    generator = torch.Generator().manual_seed(dim)
    mixing = torch.randn(dim, dim, generator=generator) / dim**0.5
    fake = torch.randn(n_fake, dim, generator=generator) @ mixing + 0.3
    real = torch.randn(n_real, dim, generator=generator) @ mixing.T
    fake_stats, real_stats = fid_features_to_statistics(fake), fid_features_to_statistics(real)
    expected = fid_statistics_to_metric(fake_stats, real_stats, verbose=False)["frechet_inception_distance"]
    roots = []

    def root():
        roots.append(measure.psd_sqrt(real_stats["sigma"]))
        return roots[-1]

    ours = measure.frechet_distance(fake.numpy(), real_stats, root)
    assert ours == pytest.approx(expected, rel=1e-6)
    assert len(roots) == (n_fake > dim)  # the real root only where the set has more samples than dimensions
    itself = measure.frechet_distance(real.numpy(), real_stats, root)
    assert itself == pytest.approx(0, abs=1e-6 * np.trace(real_stats["sigma"]))
