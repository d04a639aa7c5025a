"""The calibration ladder: facts about which metric sees which defect, on reduced ladders (1,000
samples, 500 on MNIST, three levels per defect, two draws), the fidelity values from features
against the evaluation path, and the registered `sees` entries against the committed table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import gdpp_bench

from gdpp_bench import calibration
from gdpp_bench.calibration import (
    DEFECTS,
    MixtureSource,
    Protocol,
    _values,
    calibrate,
    measure_images,
    sees_table,
    suite_protocol,
    verdict,
)
from gdpp_bench.data import DATASETS
from gdpp_bench.metrics import METRICS

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "calibration" / "calibration.csv"


def _verdicts(table: pd.DataFrame, dataset: str, defect: str) -> dict[str, str]:
    rows = table[(table["dataset"] == dataset) & (table["defect"] == defect)]
    return dict(zip(rows["metric"], rows["verdict"], strict=True))


def test_verdict_follows_the_declared_direction():
    assert verdict(-0.9, higher_is_better=True) == "sees it"
    assert verdict(0.9, higher_is_better=False) == "sees it"
    assert verdict(0.9, higher_is_better=True) == "moves the wrong way"
    assert verdict(-0.79, higher_is_better=True) == "blind"
    assert verdict(float("nan"), higher_is_better=True) == "blind"


@pytest.fixture(scope="module")
def ring8_ladder(tmp_path_factory) -> tuple[Path, pd.DataFrame]:
    """One reduced ring8 ladder (its folder and verdicts) for the tests that only read it."""
    out = tmp_path_factory.mktemp("ring8-ladder")
    return out, calibrate(["ring8"], out, draws=2, reduced=True)


def test_reduced_ladder_on_ring8(ring8_ladder):
    tmp_path, table = ring8_ladder
    collapse = _verdicts(table, "ring8", "within-mode collapse")
    assert collapse["modes"] == "blind" and collapse["kl_uniform"] == "blind"
    dropping = _verdicts(table, "ring8", "mode dropping")
    assert dropping["modes"] == "sees it" and dropping["kl_uniform"] == "sees it"
    assert _verdicts(table, "ring8", "noise")["hq_percent"] == "sees it"
    # Vendi (RBF at the mixture's scale) counts modes; noise spreads the points: more "diversity"
    assert dropping["vendi"] == "sees it"
    assert _verdicts(table, "ring8", "noise")["vendi"] == "moves the wrong way"
    assert set(table["defect"]) == set(DEFECTS) - {"blur"}  # no blur on points
    for name in ("calibration.csv", "levels.csv", "values.csv", "ring8.png", "protocol.md"):
        assert (tmp_path / name).is_file()
    assert list(pd.read_csv(tmp_path / "calibration.csv").columns[:5]) == [
        "dataset",
        "defect",
        "metric",
        "rho",
        "verdict",
    ]


@pytest.fixture
def no_figures(monkeypatch):
    """calibrate() without its PNG (one panel per metric and defect: 50 panels, ~10 CPU-s, for
    MNIST): test_reduced_ladder_on_ring8 draws and checks one; the tests that use this check
    values and verdicts only."""
    drawn = []
    monkeypatch.setattr(calibration, "figure", lambda summary, dataset, path: drawn.append(path))
    return drawn


def test_an_interrupted_ladder_resumes_to_the_values_of_an_uninterrupted_one(
    tmp_path, monkeypatch, no_figures, ring8_ladder
):
    whole_ladder, _ = ring8_ladder  # uninterrupted
    real_draw, calls = MixtureSource.draw, []

    def draw_then_stop(self, *args):
        calls.append(args)
        if len(calls) == 9:  # partway through the third defect's levels
            raise KeyboardInterrupt
        return real_draw(self, *args)

    monkeypatch.setattr(MixtureSource, "draw", draw_then_stop)
    with pytest.raises(KeyboardInterrupt):
        calibrate(["ring8"], tmp_path / "resumed", draws=2, reduced=True)
    assert (tmp_path / "resumed" / "partial" / "ring8.csv").is_file()
    interrupted = len(calls)
    calibrate(["ring8"], tmp_path / "resumed", draws=2, reduced=True)
    drawn_again = len(calls) - interrupted
    whole = pd.read_csv(whole_ladder / "values.csv")
    resumed = pd.read_csv(tmp_path / "resumed" / "values.csv")
    pd.testing.assert_frame_equal(resumed, whole)
    total = len(whole[["defect", "step", "draw"]].drop_duplicates()) - 2 * (whole["defect"].nunique() - 1)
    assert drawn_again < total  # the finished steps were not drawn again
    assert not list((tmp_path / "resumed" / "partial").iterdir())


def test_reduced_ladder_on_mnist(tmp_path, mnist_root, mnist_classifier, no_figures, monkeypatch):
    # half the reduced ladder's samples and 2,500 held-out images (250 per class) measured instead
    # of 6,000: 55 % of the CPU seconds, and no verdict nearer the 0.8 threshold than at 1,000
    # samples (mode dropping's classes rho -0.92, -0.80 at 1,000; collapse's class KL 0.12, -0.72)
    reduced_protocol = calibration.reduced_protocol
    monkeypatch.setattr(calibration, "reduced_protocol", lambda protocol: reduced_protocol(protocol, 500))
    monkeypatch.setattr(calibration, "REDUCED_HELD_OUT", 2_500)
    table = calibrate(["mnist"], tmp_path, str(mnist_root), draws=2, reduced=True)
    assert no_figures == [tmp_path / "mnist.png"]
    collapse = _verdicts(table, "mnist", "within-mode collapse")
    # class counts and KL see the histogram of classes only: r copies per class leave it uniform
    assert collapse["classes"] == "blind" and collapse["class_kl_uniform"] == "blind"
    assert collapse["recall"] == "sees it" and collapse["coverage"] == "sees it"
    assert collapse["vendi"] == "sees it"  # r distinct images per class: fewer distinct directions
    dropping = _verdicts(table, "mnist", "mode dropping")
    assert dropping["classes"] == "sees it" and dropping["recall"] == "sees it"
    for defect in ("noise", "blur"):
        assert _verdicts(table, "mnist", defect)["fid"] == "sees it"


def test_fidelity_from_features_equals_the_evaluation_path(mnist_root, mnist_classifier, tmp_path):
    from gdpp_bench.metrics import fidelity as measure
    from gdpp_bench.metrics.feature_fidelity import RealFeatures, fidelity_from_features

    model, _ = mnist_classifier
    dataset = DATASETS.get("mnist")
    extractor = measure.extractor_for("mnist", str(mnist_root), None)
    real = measure.real_reference(dataset, str(mnist_root), "train", 500)
    fake = dataset.load_split(str(mnist_root), "test")[0][:400].clone()
    noise = 40 * torch.randn(200, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    fake[:200] = (fake[:200].float() + noise).round().clamp(0, 255).to(torch.uint8)
    name = measure.reference_name(dataset, str(mnist_root), "train", real, extractor)
    expected = measure.fidelity_metrics(fake, real, name, extractor, torch.device("cpu"))
    measured = measure_images(model, fake)
    found = fidelity_from_features(
        measured.features, measured.logits, RealFeatures(measure_images(model, real).features)
    )
    assert found == pytest.approx(expected, rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("parts", [1, 3])
def test_gathered_gram_blocks_give_the_values_of_the_features(parts):
    # a set drawn from a pool (with repeats: within-mode collapse) or, with 3 parts, stacks of pool
    # members side by side (Stacked-MNIST): gathering the pool's blocks changes no value
    from gdpp_bench.metrics.feature_fidelity import PoolGrams, RealFeatures, fidelity_from_features

    draw = torch.Generator().manual_seed(3)
    pool = torch.randn(300, 16, generator=draw).relu()
    real = RealFeatures(torch.randn(250, 16 * parts, generator=draw).relu())
    index = torch.randint(120, (200, parts), generator=draw).squeeze(1)  # repeats: 200 of 120
    fake = pool[index].reshape(200, -1)
    logits = torch.randn(200, 10, generator=draw)
    grams = PoolGrams(pool, list(real.features.chunk(parts, dim=1))).grams(index)
    fake_fake, fake_real = grams.blocks()
    assert torch.allclose(fake_fake, fake @ fake.T, rtol=1e-5, atol=1e-4)
    assert torch.allclose(fake_real, fake @ real.features.T, rtol=1e-5, atol=1e-4)
    direct = fidelity_from_features(fake, logits, real)
    assert fidelity_from_features(fake, logits, real, grams) == pytest.approx(direct, rel=1e-5, abs=1e-8)
    cut = grams.prefix(150)
    assert fidelity_from_features(fake[:150], logits[:150], real, cut) == pytest.approx(
        fidelity_from_features(fake[:150], logits[:150], real), rel=1e-5, abs=1e-8
    )


def test_a_metric_without_from_set_is_computed_on_the_sets_samples():
    @METRICS.register("mean_radius", values={})
    def mean_radius(ctx):
        return {"mean_radius": ctx.samples().norm(dim=1).mean().item()}

    try:
        protocol = Protocol(("mean_radius",), 300, 300, 300, "train")
        source = MixtureSource(DATASETS.get("ring8"))
        found, raw = source.draw("none", 0.0, 300, torch.Generator().manual_seed(0))
        values = _values("mean_radius", found, raw, protocol, None)
        assert values["mean_radius"] == pytest.approx(found.points.norm(dim=1).mean().item())
    finally:
        METRICS.unregister("mean_radius")


def test_the_ladder_takes_every_sample_based_metric_of_a_datasets_suites():
    # vendi is listed by no suite: it is calibrated on every dataset (registered `any_dataset`)
    assert suite_protocol("stacked-mnist").metrics == ("stacked_mnist_modes", "fidelity", "vendi")
    protocol = suite_protocol("mnist")
    assert (protocol.samples, protocol.fidelity_samples, protocol.real_samples) == (10_000, 10_000, 10_000)
    assert suite_protocol("ring8").metrics == ("modes2d", "vendi")


def test_registered_sees_equal_the_committed_table():
    table = pd.read_csv(COMMITTED)
    for dataset, rows in table.groupby("dataset"):
        image = DATASETS.meta(dataset)["kind"] == "image"
        assert set(rows["defect"]) == set(DEFECTS) - (set() if image else {"blur"}), dataset
    found = sees_table(table)
    for entry, values in found.items():
        assert METRICS.meta(entry)["sees"] == values, entry


def test_the_committed_ladder_shows_what_each_metric_can_see():
    table = pd.read_csv(COMMITTED)
    for dataset in ("mnist", "fashion-mnist"):
        collapse = _verdicts(table, dataset, "within-mode collapse")
        assert collapse["classes"] == "blind" and collapse["class_kl_uniform"] == "blind", dataset
        for metric in ("recall", "coverage", "vendi", "fid"):
            assert collapse[metric] == "sees it", (dataset, metric)
        assert collapse["is"] == "blind", dataset  # IS rewards confident classes, not distinct images
        assert _verdicts(table, dataset, "blur")["precision"] == "sees it", dataset  # quality loss
        assert _verdicts(table, dataset, "mode dropping")["classes"] == "sees it", dataset
    for dataset in ("ring8", "grid25"):
        collapse = _verdicts(table, dataset, "within-mode collapse")
        assert collapse["modes"] == "blind" and collapse["kl_uniform"] == "blind", dataset


def test_cli_refuses_a_dataset_without_known_modes(tmp_path):
    result = gdpp_bench("calibrate", "--datasets", "cifar10", "--out", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: cannot calibrate cifar10; datasets with known modes: "
        "ring8, grid25, mnist, fashion-mnist, stacked-mnist"
    ]


def test_list_shows_what_each_metric_sees():
    shown = gdpp_bench("list").stdout
    for entry, values in sees_table(pd.read_csv(COMMITTED)).items():
        for value, seen in values.items():
            expected = f"sees only {', '.join(seen)}" if seen else "sees none"
            assert f"  {entry}.{value}: {expected}\n" in shown
