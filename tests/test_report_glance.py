"""A report that reads at a glance: numbers of 3 significant digits, one line for a metric that
never varies, axes without float noise, titles and captions that fit their dataset, and the
published numbers beside ours (never in our statistics). Drawn on small made-up run tables; the
figures of real runs are in test_report_figures, the page in a browser in test_cli."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gdpp_bench.report import figures
from gdpp_bench.report.figures import base, curves, metrics, modes
from gdpp_bench.report.html import figure_caption, summary_table_html
from gdpp_bench.report.published import PUBLISHED, published
from gdpp_bench.report.render import cell_texts, fmt, summary_latex, summary_markdown
from gdpp_bench.report.tables import constant_metrics, headline_kinds, summarize

EMPTY_DECISIONS = pd.DataFrame(columns=["dataset", "role", "variant", "reference", "metric", "stars"])


def runs_of(
    values: dict[str, dict[str, list[float]]], dataset: str = "ring8", suite: str = "study"
) -> pd.DataFrame:
    """A runs.csv-like table: {variant: {metric: one value per seed}}, every run finished."""
    rows = []
    for variant, by_metric in values.items():
        seeds = len(next(iter(by_metric.values())))
        for seed in range(seeds):
            rows.append(
                {
                    "suite": suite,
                    "dataset": dataset,
                    "variant": variant,
                    "seed": seed,
                    "role": "",
                    "status": "done",
                    "steps": 100,
                    "train_cpu_s": 1.5 + 0.4 * seed + len(variant) / 10,
                    "term_weight": 0.0,
                    **{metric: column[seed] for metric, column in by_metric.items()},
                }
            )
    return pd.DataFrame(rows)


@pytest.fixture
def drawn(monkeypatch) -> list:
    """The matplotlib figures the figure functions save, in order (kept open for inspection)."""
    figs: list = []
    for module in (metrics, curves, modes):
        original = module.save_figure

        def keep(fig, stem, original=original):
            figs.append(fig)
            return original(fig, stem)

        monkeypatch.setattr(module, "save_figure", keep)
    return figs


# --- numbers --------------------------------------------------------------------------------------


def test_table_numbers_have_three_significant_digits():
    assert [fmt(v) for v in (1.0, 5.641e-07, 4.536, 0.0007876, 999.7, 427.3, 12345.6, 0.0, math.nan)] == [
        "1",
        "5.64e-7",
        "4.54",
        "0.000788",
        "1000",
        "427",
        "12300",
        "0",
        "n/a",
    ]
    summary = summarize(runs_of({"bce": {"is": [1.0, 1.0 + 1.1e-6]}, "bce+gdpp@1": {"is": [4.5361, 4.5369]}}))
    cells = cell_texts(summary, EMPTY_DECISIONS, "bce", ("", ""), "±", "{}")
    assert cells[("bce", "is")].startswith("1 ± 7.78e-7 [")
    assert cells[("bce+gdpp@1", "is")] == "4.54 ± 0.000566 [4.53, 4.54]"


def test_bold_marks_a_mean_that_is_best_as_printed():
    # 4.5361 and 4.5358 both read 4.54: neither is bold; 4.55 would be
    tied = summarize(runs_of({"bce": {"modes": [4.5361, 4.5361]}, "hinge": {"modes": [4.5358, 4.5358]}}))
    assert not tied["best"].any()
    apart = summarize(runs_of({"bce": {"modes": [4.5361, 4.5361]}, "hinge": {"modes": [4.55, 4.55]}}))
    assert apart.set_index("variant")["best"].to_dict() == {"bce": False, "hinge": True}


# --- a metric that never varies ---------------------------------------------------------------------


def constant_runs() -> pd.DataFrame:
    return runs_of(
        {
            "bce": {"fid": [310.0, 305.0], "precision": [0.0, 0.0], "recall": [0.0, 0.0]},
            "bce+gdpp@1": {"fid": [300.0, 290.0], "precision": [0.0, 0.0], "recall": [0.0, 0.0]},
        },
        dataset="mnist",
    )


def test_a_metric_constant_in_every_run_is_one_line_not_figures(tmp_path):
    runs = constant_runs()
    assert constant_metrics(runs) == {"precision": 0.0, "recall": 0.0}
    assert constant_metrics(runs.iloc[:1]) == {}  # one run: nothing to call constant
    changed = runs.assign(recall=[0.0, 0.0, 0.0, 0.1])
    assert constant_metrics(changed) == {"precision": 0.0}
    for draw in (figures.metric_points, figures.metric_vs_cpu):
        assert draw(runs, "mnist", "precision", tmp_path / "none") == []
        assert draw(runs, "mnist", "fid", tmp_path / f"{draw.__name__}_fid")
    assert not list(tmp_path.glob("none*"))
    summary = summarize(runs)
    page = summary_table_html(summary, EMPTY_DECISIONS, "bce", constant_metrics(runs))
    assert "<th>fid" in page and "<th>precision" not in page and "<th>recall" not in page
    assert "The same value in every run, so no column or figure: precision = 0, recall = 0." in page
    # summary.md and summary.tex drop the columns as the page does, and say why in one line
    markdown = summary_markdown(summary, EMPTY_DECISIONS, runs, "bce")
    header = next(line for line in markdown.splitlines() if line.startswith("| variant"))
    assert "fid" in header and "precision" not in header and "recall" not in header
    assert "The same value in every run, so no column or figure: precision = 0, recall = 0." in markdown
    latex = summary_latex(summary, EMPTY_DECISIONS, "bce", "study", runs=runs)
    header = next(line for line in latex.splitlines() if line.startswith("variant"))
    assert "fid" in header and "precision" not in header
    assert "The same value in every run, so no column or figure: precision = 0, recall = 0." in latex


def test_evaluation_curves_leave_out_metrics_that_never_vary(tmp_path, drawn):
    runs = constant_runs().assign(run=lambda r: r["variant"] + "/seed-" + r["seed"].astype(str))
    suite_dir = tmp_path / "suite"
    for record in runs.itertuples():
        folder = suite_dir / record.run
        folder.mkdir(parents=True)
        pd.DataFrame(
            {"step": [4, 8], "fid": [record.fid + 20, record.fid], "precision": [0.0, 0.0], "recall": [0, 0]}
        ).to_csv(folder / "evals.csv", index=False)
    paths = figures.evaluation_curves(runs, suite_dir, "mnist", tmp_path / "evals_mnist")
    assert [p.name for p in paths] == ["evals_mnist.png"]
    (fig,) = drawn
    assert [ax.get_title() for ax in fig.axes] == ["fid"]
    assert "the same in every evaluation: precision = 0, recall = 0" in fig._suptitle.get_text()


# --- headline ------------------------------------------------------------------------------------


def test_the_headline_says_why_its_window_is_shorter_than_last_k():
    short = headline_kinds(["mean of the last 2 evaluations (steps 100-200)"] * 3, 4)
    assert short == (
        "mean of the last 2 evaluations (--last-k 4; these runs have only 2 periodic evaluations, "
        "and a run with fewer than 4 averages all it has)"
    )
    full = headline_kinds(["mean of the last 4 evaluations (steps 1-4)"], 4)
    assert full == "mean of the last 4 evaluations (--last-k 4)"
    assert headline_kinds([], 4) == ""


# --- axes, titles, captions -------------------------------------------------------------------------


def test_a_nearly_constant_metric_has_no_offset_and_a_readable_span(tmp_path, drawn):
    runs = runs_of({"bce": {"is": [1.0, 1.0 + 5e-7, 1.0]}, "hinge": {"is": [1.0 + 1e-6, 1.0, 1.0 + 2e-7]}})
    assert figures.metric_points(runs, "ring8", "is", tmp_path / "points")
    (fig,) = drawn
    ax = fig.axes[0]
    assert ax.yaxis.get_offset_text().get_text() == ""  # not '1e-5+1'
    low, high = ax.get_ylim()
    assert 1.0 - 1e-4 <= low < 1.0 and high - low == pytest.approx(0.001, rel=0.01)  # IS >= 1
    labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
    assert len(set(labels)) == len(labels) >= 3


def test_cost_axis_reads_plain_seconds(tmp_path, drawn):
    runs = runs_of({"bce": {"modes": [3.0, 4.0]}, "bce+gdpp@1": {"modes": [5.0, 6.0]}})
    assert figures.metric_vs_cpu(runs, "ring8", "modes", tmp_path / "cost")
    (fig,) = drawn
    ax = fig.axes[0]
    shown = [t.get_text() for t in ax.get_xticklabels() + ax.get_xticklabels(minor=True) if t.get_text()]
    assert shown and all("times" not in text and "^" not in text for text in shown), shown
    assert {"2", "3"} <= set(shown)


def test_a_title_names_the_dataset_once(tmp_path, drawn):
    runs = runs_of({"bce": {"modes": [3.0, 4.0]}}, dataset="ring8", suite="ring8")
    figures.metric_points(runs, "ring8", "modes", tmp_path / "a")
    figures.metric_points(runs.assign(suite="synthetic"), "ring8", "modes", tmp_path / "b")
    titles = [fig._suptitle.get_text().splitlines()[0] for fig in drawn]
    assert titles == ["ring8: modes", "synthetic / ring8: modes"]


def test_mode_histogram_captions_fit_the_dataset():
    grid, stacked = figure_caption(Path("modes_grid25.png")), figure_caption(Path("modes_stacked-mnist.png"))
    assert "grid25" in grid and "triple" not in grid and "Stacked" not in grid
    assert "digit triple" in stacked and "2D" not in stacked
    assert figure_caption(Path("evals_mnist_2-of-3.png")).endswith("(part 2 of 3)")
    assert figure_caption(Path("points_mnist_fid.png")).startswith("fid on mnist")


# --- panels in one row -------------------------------------------------------------------------------


def test_panels_go_in_rows_of_at_most_four():
    assert [len(p) for p in base.panel_parts(list(range(9)))] == [3, 3, 3]
    assert [len(p) for p in base.panel_parts(list(range(7)))] == [4, 3]
    assert [len(p) for p in base.panel_parts(list(range(4)))] == [4]
    assert base.panel_parts([]) == []
    assert base.part_stem(Path("f/evals_mnist"), 1, 1) == Path("f/evals_mnist")
    assert base.part_stem(Path("f/evals_mnist"), 2, 3) == Path("f/evals_mnist_2-of-3")


# --- published numbers -------------------------------------------------------------------------------


def test_published_values_are_one_table_of_source_protocol_dataset_metric_value():
    by_key = {(p.dataset, p.metric, p.method): p.value for p in PUBLISHED}
    assert by_key[("ring8", "modes", "GDPP-GAN")] == 8 and by_key[("ring8", "hq_percent", "GDPP-GAN")] == 71.7
    assert by_key[("grid25", "modes", "GAN")] == 3.3 and by_key[("grid25", "hq_percent", "GDPP-GAN")] == 68.5
    assert by_key[("stacked-mnist", "kl_uniform", "DCGAN")] == 3.163
    assert by_key[("stacked-mnist", "modes", "WGAN-GP")] == 995
    assert all(p.source.startswith("GDPP paper") and "samples" in p.protocol for p in PUBLISHED)
    assert published("mnist") == []  # no comparable published number
    # only the official ring has 7 distinct means (angle 0 repeated); its grid has all 25
    assert all("its ring: 7 distinct means" in p.protocol for p in published("ring8"))
    assert not any("ring" in p.protocol for p in published("grid25"))


def test_published_values_are_rows_beside_ours_and_never_in_our_statistics(tmp_path):
    runs = runs_of(
        {
            "bce": {"modes": [2.0, 3.0], "hq_percent": [1.0, 2.0]},
            "hinge": {"modes": [4.0, 5.0], "hq_percent": [3.0, 9.0]},
        }
    )
    summary = summarize(runs)
    assert set(summary["variant"]) == {"bce", "hinge"}  # summary.csv: our runs only
    page = summary_table_html(summary, EMPTY_DECISIONS, "bce")
    source = "GDPP paper (Elfeki et al., ICML 2019)"
    assert f"<td>GDPP-GAN, {source}</td><td colspan='2'>published</td><td>8</td><td>71.7</td>" in page
    assert f"<td>GAN, {source}</td><td colspan='2'>published</td><td>1</td><td>99.3</td>" in page
    assert "2,500 samples" in page and "not our runs" in page
    assert page.count("<b>") == 2  # bold: hinge's modes and HQ %, not the published 8 and 99.3
    markdown = summary_markdown(summary, EMPTY_DECISIONS, runs, "bce")
    assert "| _GDPP-GAN, GDPP paper (Elfeki et al., ICML 2019)_ | published |  | 8 | 71.7 |" in markdown
    latex = summary_latex(summary, EMPTY_DECISIONS, "bce", "study")
    assert r"\textit{GDPP-GAN, GDPP paper (Elfeki et al., ICML 2019)} & -- & 8 & 71.7 \\" in latex
    mnist = summary_table_html(summarize(runs.assign(dataset="mnist")), EMPTY_DECISIONS, "bce")
    assert "published" not in mnist


def test_published_values_are_reference_lines_of_the_figures(tmp_path, drawn):
    runs = runs_of({"bce": {"modes": [2.0, 3.0]}, "hinge": {"modes": [4.0, 5.0]}})
    figures.metric_points(runs, "ring8", "modes", tmp_path / "points")
    figures.metric_vs_cpu(runs, "ring8", "modes", tmp_path / "cost")
    for fig in drawn:
        ax = fig.axes[0]
        flat = [line.get_ydata()[0] for line in ax.get_lines() if len(set(np.asarray(line.get_ydata()))) == 1]
        assert {1.0, 8.0} <= set(flat)
        labels = [text.get_text() for legend in fig.legends for text in legend.get_texts()]
        assert "GAN (published): 1" in labels and "GDPP-GAN (published): 8" in labels
        title = " ".join(fig._suptitle.get_text().split())
        assert "black lines: GDPP paper (Elfeki et al., ICML 2019), not our runs: 2,500 samples" in title
