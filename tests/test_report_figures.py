"""Every report figure drawn from real tiny runs: a ring8 suite (bce, hinge and GDPP weights, two
seeds) and a Stacked-MNIST suite of two steps, whose triple histograms come from a small MNIST
classifier trained into a temporary cache."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import DATA_ROOT, tiny_suite
from PIL import Image

from gdpp_bench.metrics import instruments
from gdpp_bench.pipeline import run_specs
from gdpp_bench.report import figures
from gdpp_bench.report.tables import collect_runs, summarize
from gdpp_bench.suites import EvalConfig, TrainConfig, expand

RING_VARIANTS = ["bce", "bce+gdpp@0.1", "bce+gdpp@1", "hinge"]


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """Tiny models train many times faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ring(tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """(runs, suite_dir) of 4 variants x 2 seeds on ring8, 40 steps each."""
    results = tmp_path_factory.mktemp("ring-results")
    with one_thread():
        run_specs(expand(tiny_suite(), variants=RING_VARIANTS, seeds=[0, 1]), results, None, "cpu")
    return collect_runs(results / "tiny"), results / "tiny"


@pytest.fixture(scope="module")
def stacked(mnist_root, tmp_path_factory) -> tuple[pd.DataFrame, Path]:
    """(runs, suite_dir) of bce and bce+gdpp@1 on Stacked-MNIST, one seed, two steps; the
    stacked_mnist_modes metric classifies with an MNIST classifier trained on 1,000 images."""
    results = tmp_path_factory.mktemp("stacked-results")
    suite = tiny_suite(
        name="tiny-stacked",
        datasets=("stacked-mnist",),
        model="dcgan28-gdpp",
        train=dataclasses.asdict(
            TrainConfig(steps=2, batch_size=8, log_every=1, checkpoint_every=2, update="alternating")
        ),
        eval=EvalConfig(metrics=("stacked_mnist_modes",), samples=200, grid_samples=16),
    )
    with pytest.MonkeyPatch.context() as patch, one_thread():
        patch.setenv("GDPP_BENCH_CACHE", str(tmp_path_factory.mktemp("cache")))
        patch.setitem(
            instruments.DEFAULT_CONFIGS, "mnist", instruments.ClassifierConfig(epochs=1, train_size=1_000)
        )
        with pytest.warns(UserWarning, match="below"):  # the small classifier's accuracy
            run_specs(
                expand(suite, variants=["bce", "bce+gdpp@1"], seeds=[0]), results, str(DATA_ROOT), "cpu"
            )
    return collect_runs(results / "tiny-stacked"), results / "tiny-stacked"


def assert_figure(paths: list[Path], pdf: bool = False) -> None:
    """A PNG (over 400 x 300, more than 10 grey levels), and a PDF of the same stem if `pdf`
    (`report --pdf`), nothing else."""
    assert [p.suffix for p in paths] == ([".png", ".pdf"] if pdf else [".png"])
    png = paths[0]
    with Image.open(png) as image:
        assert image.width > 400 and image.height > 300
        assert len(np.unique(np.asarray(image.convert("L")))) > 10
    if pdf:
        assert paths[1].stem == png.stem and paths[1].parent == png.parent
        assert paths[1].read_bytes().startswith(b"%PDF")
    assert not list(png.parent.glob(".*.tmp"))  # atomic writes leave no temp files
    assert sorted(p.name for p in png.parent.glob(f"{png.stem}.*")) == sorted(p.name for p in paths)


def test_pdf_copies_only_when_asked(tmp_path):
    from gdpp_bench.report.figures.base import figure_formats, plt, save_figure

    def drawn():
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.imshow(np.arange(400.0).reshape(20, 20))
        return fig

    assert_figure(save_figure(drawn(), tmp_path / "plain"))
    with figure_formats(pdf=True):
        assert_figure(save_figure(drawn(), tmp_path / "vector"), pdf=True)
    assert_figure(save_figure(drawn(), tmp_path / "after"))  # the setting ends with its block


def unfinished(runs: pd.DataFrame) -> pd.DataFrame:
    return runs.assign(status="failed: diverged")


def test_metric_points_and_weight_curves(ring, tmp_path):
    runs, _ = ring
    for metric in ("modes", "hq_percent", "kl_uniform"):
        assert_figure(figures.metric_points(runs, "ring8", metric, tmp_path / f"points_{metric}"))
        assert_figure(figures.metric_vs_weight(runs, "ring8", metric, tmp_path / f"weight_{metric}"))
    assert figures.metric_points(runs, "ring8", "fid", tmp_path / "none") == []
    assert figures.metric_points(unfinished(runs), "ring8", "modes", tmp_path / "none") == []
    one_weight = runs[runs["variant"] != "bce+gdpp@0.1"]  # bce+gdpp@1 only: no curve to draw
    assert figures.metric_vs_weight(one_weight, "ring8", "modes", tmp_path / "none") == []
    assert not list(tmp_path.glob("none*"))


def test_curves_samples_and_modes_of_a_2d_dataset(ring, tmp_path):
    runs, suite_dir = ring
    for name in ("training_curves", "evaluation_curves", "samples_over_modes", "mode_histograms"):
        draw = getattr(figures, name)
        assert_figure(draw(runs, suite_dir, "ring8", tmp_path / name))
        assert draw(unfinished(runs), suite_dir, "ring8", tmp_path / "none") == []
    assert figures.sample_grids(runs, suite_dir, "ring8", tmp_path / "none") == []  # not images


def test_multi_panel_figures_are_full_width_rows_and_mode_shares_start_at_zero(ring, tmp_path, monkeypatch):
    from gdpp_bench.report.figures import base, curves, modes

    runs, suite_dir = ring
    drawn = []
    for module in (curves, modes):
        original = module.save_figure
        monkeypatch.setattr(
            module,
            "save_figure",
            lambda fig, stem, original=original: drawn.append(fig) or original(fig, stem),
        )
    for name in ("training_curves", "evaluation_curves", "mode_histograms"):
        assert_figure(getattr(figures, name)(runs, suite_dir, "ring8", tmp_path / name))
    training, evals, shares = drawn
    for fig in drawn:
        assert fig.get_figwidth() == base.FULL_WIDTH
        tops = {round(ax.get_position().y1, 3) for ax in fig.axes}
        assert len(tops) == 1 and 1 < len(fig.axes) <= base.ROW_PANELS  # one row of panels
    assert [ax.get_title() for ax in evals.axes] == ["modes", "hq_percent", "kl_uniform"]
    # the paper's ring values as black lines inside each panel's range (none for KL), in the legend
    published = {
        ax.get_title(): sorted(line.get_ydata()[0] for line in ax.get_lines() if line.get_color() == "black")
        for ax in evals.axes
    }
    assert published == {"modes": [1, 8], "hq_percent": [71.7, 99.3], "kl_uniform": []}
    for ax in evals.axes[:2]:
        low, high = ax.get_ylim()
        assert low < min(published[ax.get_title()]) and max(published[ax.get_title()]) < high
    (legend,) = evals.legends
    labels = [text.get_text() for text in legend.get_texts()]
    assert labels[: len(RING_VARIANTS)] == RING_VARIANTS
    assert labels[len(RING_VARIANTS) :] == [
        "GAN (published): 1",
        "GDPP-GAN (published): 8",
        "GAN (published): 99.3",
        "GDPP-GAN (published): 71.7",
    ]
    assert "black lines: GDPP paper (Elfeki et al., ICML 2019), not our runs" in evals._suptitle.get_text()
    assert all(ax.get_ylim()[0] == 0 for ax in shares.axes)  # a share is never below 0 %
    assert [ax.get_title().split()[0] for ax in shares.axes] == RING_VARIANTS


def test_figures_of_an_image_dataset(stacked, tmp_path):
    runs, suite_dir = stacked
    assert (runs["status"] == "done").all()
    assert_figure(figures.sample_grids(runs, suite_dir, "stacked-mnist", tmp_path / "grids"))
    assert figures.sample_grids(runs, suite_dir, "stacked-mnist", tmp_path / "none", seed=5) == []
    assert_figure(figures.mode_histograms(runs, suite_dir, "stacked-mnist", tmp_path / "modes"))
    assert_figure(figures.training_curves(runs, suite_dir, "stacked-mnist", tmp_path / "training"))
    assert figures.samples_over_modes(runs, suite_dir, "stacked-mnist", tmp_path / "none") == []


def test_variant_order_puts_the_baseline_first_and_weights_in_numeric_order():
    variants = ["hinge", "bce+gdpp@10", "bce+gdpp@2", "bce", "bce+gdpp@0.5", "hinge+gdpp@1"]
    assert figures.variant_order(variants) == [
        "bce",
        "bce+gdpp@0.5",
        "bce+gdpp@2",
        "bce+gdpp@10",
        "hinge",
        "hinge+gdpp@1",
    ]
    assert figures.variant_order(variants, "hinge")[0] == "hinge"


def test_relative_change_is_positive_when_better():
    change = figures.relative_change(
        pd.Series([12.0, 8.0, 5.0, 0.0, 1.0]),
        pd.Series([10.0, 10.0, 5.0, 0.0, 0.0]),
        pd.Series(["modes", "fid", "is", "kid", "kid"]),
    )
    assert change.iloc[:4].tolist() == pytest.approx([0.2, 0.2, 0.0, 0.0])
    assert np.isnan(change.iloc[4])  # no relative change from a zero baseline


def test_gdpp_effect_heatmap(ring, tmp_path):
    runs, _ = ring
    summary = summarize(runs).assign(suite="tiny")
    base = summary[summary["variant"] == "bce"][["suite", "dataset", "metric", "mean"]]
    effect = summary[summary["variant"] != "bce"].merge(
        base.rename(columns={"mean": "baseline_mean"}), on=["suite", "dataset", "metric"]
    )
    assert_figure(figures.gdpp_effect_heatmap(effect, tmp_path / "effect"))
    assert figures.gdpp_effect_heatmap(effect.iloc[0:0], tmp_path / "none") == []
