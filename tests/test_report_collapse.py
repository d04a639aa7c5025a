"""An evaluation that measured nothing (no high-quality sample: the KL of an empty histogram is
NaN) counts as the metric's worst value, from its declared bounds (kl_uniform: log K on a dataset
of K modes), flagged in runs.csv and never dropped; a metric a run never measured stays missing."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pandas as pd
import pytest
from test_report_tuned import ring, spec, write_run

from gdpp_bench.report import build_report
from gdpp_bench.report.claims import decisions
from gdpp_bench.report.collapsed import worst_value
from gdpp_bench.report.figures import curves as curve_figures
from gdpp_bench.report.tables import collect_runs, metric_bounds, summarize
from gdpp_bench.rundir import RunDir

LOG8 = math.log(8)
NAN = math.nan
COLLAPSED = {"modes": 0.0, "hq_percent": 0.0, "kl_uniform": NAN}  # what modes2d gives then


def write_evals(
    run_dir: Path, rows: list[dict[str, float]], steps: tuple[int, ...] = (10, 20, 30, 40)
) -> None:
    """evals.csv as training writes it (csv of floats, NaN as 'nan')."""
    with RunDir(run_dir).evals.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["step", *rows[0]])
        for step, row in zip(steps, rows, strict=True):
            writer.writerow([step, *row.values()])


def evals_run(suite_dir: Path, variant: str, seed: int, rows: list[dict[str, float]], **kwargs) -> Path:
    """A finished run whose final values (metrics.json) are its last evaluation's."""
    final = {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in rows[-1].items()}
    run_dir = write_run(suite_dir, spec(variant, seed, **kwargs), final)
    write_evals(run_dir, rows)
    return run_dir


def test_the_worst_value_of_a_metric_comes_from_its_bounds_on_the_dataset():
    assert metric_bounds("kl_uniform", "ring8") == (0, pytest.approx(LOG8))
    assert metric_bounds("kl_uniform", "grid25") == (0, pytest.approx(math.log(25)))
    assert metric_bounds("kl_uniform", "stacked-mnist") == (0, pytest.approx(math.log(1000)))
    assert metric_bounds("class_kl_uniform", "mnist") == (0, pytest.approx(math.log(10)))
    assert metric_bounds("kl_uniform", "cifar10") == (0, None)  # no declared number of modes
    assert worst_value("kl_uniform", "ring8") == pytest.approx(LOG8)
    assert worst_value("modes", "ring8") == 0 and worst_value("hq_percent", "grid25") == 0
    assert worst_value("kl_uniform", "cifar10") is None and worst_value("fid", "cifar10") is None
    assert worst_value("is", "cifar10") == 1 and worst_value("recall", "cifar10") == 0


def test_a_collapsed_evaluation_counts_as_the_worst_kl_and_is_flagged(tmp_path):
    suite_dir = tmp_path / "tuned"
    evals_run(suite_dir, "bce", 0, [ring(0.5), COLLAPSED, ring(0.3, hq=20, modes=6), COLLAPSED])
    evals_run(suite_dir, "bce", 1, [ring(0.2)] * 4)
    runs = collect_runs(suite_dir).set_index("seed")
    assert runs.loc[0, "kl_uniform"] == pytest.approx((0.5 + 0.3 + 2 * LOG8) / 4)  # was 0.4
    assert runs.loc[0, "modes"] == pytest.approx((8 + 6) / 4) and runs.loc[0, "hq_percent"] == 17.5
    assert runs.loc[0, "final_kl_uniform"] == pytest.approx(LOG8)  # metrics.json's null
    assert runs.loc[0, "collapsed_evals"] == 2 and runs.loc[0, "collapsed_metrics"] == "kl_uniform"
    assert runs.loc[1, "kl_uniform"] == pytest.approx(0.2) and runs.loc[1, "collapsed_evals"] == 0
    assert runs.loc[1, "collapsed_metrics"] == ""
    assert runs.loc[0, "headline"] == "mean of the last 4 evaluations (steps 10-40)"


def test_a_run_collapsed_through_its_window_stays_in_the_comparison(tmp_path):
    suite_dir = tmp_path / "tuned"
    for seed in range(6):
        evals_run(suite_dir, "bce+gdpp@1", seed, [ring(0.01 + seed / 100)] * 4)
        bce = [COLLAPSED] * 4 if seed == 4 else [ring(0.5 + seed / 100, hq=10, modes=5)] * 4
        evals_run(suite_dir, "bce", seed, bce)
    runs = collect_runs(suite_dir)
    collapsed = runs.set_index(["variant", "seed"]).loc[("bce", 4)]
    assert collapsed["kl_uniform"] == pytest.approx(LOG8) and collapsed["collapsed_evals"] == 4
    kl = decisions(runs, "bce").set_index("metric").loc["kl_uniform"]
    assert (kl["n"], kl["n_reference"]) == (6, 6)  # was 6 vs 5: the collapsed run dropped
    assert kl["reference_mean"] == pytest.approx((sum(0.5 + s / 100 for s in range(6) if s != 4) + LOG8) / 6)
    summary = summarize(runs).set_index(["variant", "metric"])
    assert summary.loc[("bce", "kl_uniform"), "n"] == 6
    assert summary.loc[("bce", "kl_uniform"), "ci_high"] <= LOG8  # cut to [0, log 8]
    written = build_report(suite_dir, with_figures=False)
    assert pd.read_csv(written["runs.csv"])["collapsed_evals"].tolist().count(4) == 1
    note = "1 run has evaluations that measured nothing"
    assert note in written["summary.md"].read_text() and note in written["claims.md"].read_text()
    assert note in written["index.html"].read_text()


def test_the_final_checkpoints_collapsed_value_is_its_worst_too(tmp_path):
    """Without periodic evaluations the headline is metrics.json's value: a null there (the metric
    ran and measured nothing) is the worst value; a value it never recorded stays missing."""
    suite_dir = tmp_path / "tuned"
    write_run(suite_dir, spec("bce", 0), {"modes": 0.0, "hq_percent": 0.0, "kl_uniform": None})
    write_run(suite_dir, spec("bce", 1), {"modes": 3.0, "hq_percent": 5.0})
    runs = collect_runs(suite_dir).set_index("seed")
    assert runs.loc[0, "headline"] == "final checkpoint"
    assert runs.loc[0, "kl_uniform"] == pytest.approx(LOG8) and runs.loc[0, "collapsed_evals"] == 1
    assert math.isnan(runs.loc[1, "kl_uniform"]) and runs.loc[1, "collapsed_evals"] == 0


def test_a_metric_missing_from_a_run_stays_missing(tmp_path):
    """Only a NaN of an evaluation that ran counts: a final checkpoint measured after the last
    periodic evaluation without a metric does not make that metric collapse."""
    suite_dir = tmp_path / "tuned"
    run_dir = write_run(suite_dir, spec("bce", 0), {"modes": 8.0, "hq_percent": 50.0})
    write_evals(run_dir, [ring(0.4), ring(0.2)], steps=(10, 20))  # checkpoint_step 40: appended
    runs = collect_runs(suite_dir).set_index("seed")
    assert runs.loc[0, "kl_uniform"] == pytest.approx(0.3) and runs.loc[0, "collapsed_evals"] == 0
    assert runs.loc[0, "headline"] == "mean of the last 3 evaluations (steps 10-40)"


def test_a_nan_without_a_finite_worst_value_stays_nan_and_is_said(tmp_path):
    suite_dir = tmp_path / "tuned"
    rows = [{**ring(0.2), "fid": fid} for fid in (30.0, NAN, 10.0, 20.0)]
    evals_run(suite_dir, "bce", 0, rows)
    runs = collect_runs(suite_dir).set_index("seed")
    assert math.isnan(runs.loc[0, "fid"])  # not the mean of the three it measured
    assert runs.loc[0, "final_fid"] == 20.0 and runs.loc[0, "kl_uniform"] == pytest.approx(0.2)
    assert runs.loc[0, "collapsed_evals"] == 1
    assert runs.loc[0, "collapsed_metrics"] == "fid (no finite worst value: n/a)"


def test_the_evaluation_curves_draw_a_collapse_at_the_worst_value(tmp_path, monkeypatch):
    suite_dir = tmp_path / "tuned"
    evals_run(suite_dir, "bce", 0, [ring(0.5), COLLAPSED, ring(0.3), COLLAPSED])
    run_dir = write_run(suite_dir, spec("bce", 1), ring(0.2))
    write_evals(run_dir, [{"modes": 8.0, "hq_percent": 50.0}] * 4)  # never measured kl_uniform
    drawn = {}

    def capture(runs, curves, dataset, columns, *args, **kwargs):
        drawn["curves"], drawn["columns"] = curves, columns
        return []

    monkeypatch.setattr(curve_figures, "_curve_panels", capture)
    curve_figures.evaluation_curves(collect_runs(suite_dir), suite_dir, "ring8", tmp_path / "evals", "bce")
    kl = drawn["curves"].set_index(["seed", "step"])["kl_uniform"]
    assert kl.loc[0].tolist() == pytest.approx([0.5, LOG8, 0.3, LOG8])
    assert kl.loc[1].isna().all()  # missing, not collapsed
