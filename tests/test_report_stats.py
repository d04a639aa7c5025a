"""The report's statistics on known values, and its tables built from real tiny runs."""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest
from conftest import tiny_suite
from PIL import Image
from scipy import stats as scipy_stats

from gdpp_bench.metrics import METRIC_BOUNDS
from gdpp_bench.pipeline import run_specs
from gdpp_bench.report import build_overview, build_report
from gdpp_bench.report.numbers import round_sig
from gdpp_bench.report.stats import compare, hedges_g, holm, mean_ci, stars
from gdpp_bench.report.tables import summarize
from gdpp_bench.rundir import RunDir, write_json
from gdpp_bench.suites import expand


def test_mean_ci_is_scipys_t_interval():
    sample = [6.0, 8.0, 3.5, 7.25]
    mean, low, high = mean_ci(sample)
    expected = scipy_stats.t.interval(0.95, 3, loc=np.mean(sample), scale=scipy_stats.sem(sample))
    assert mean == pytest.approx(6.1875) and (low, high) == pytest.approx(expected)
    # by hand: mean +- t(0.975, 3) * s / sqrt(n)
    half = 3.182446305284263 * np.std(sample, ddof=1) / 2
    assert (low, high) == pytest.approx((6.1875 - half, 6.1875 + half))
    assert mean_ci([4.0])[0] == 4.0 and all(math.isnan(v) for v in mean_ci([4.0])[1:])
    assert mean_ci([2.0, 2.0, 2.0]) == (2.0, 2.0, 2.0)
    assert math.isnan(mean_ci([])[0])


def test_holm_on_known_values():
    # sorted p: 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    assert holm([0.5, 0.3]) == pytest.approx([0.6, 0.6])  # monotone: never below an earlier one
    adjusted = holm([0.01, math.nan, 0.9])
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])
    assert adjusted[2] == pytest.approx(0.9)


def test_compare_matches_scipy_and_hedges_g_by_hand():
    a, b = [5.1, 6.3, 5.8, 6.0], [4.2, 4.9, 4.4]
    result = compare(a, b)
    assert result["welch_p"] == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert result["mannwhitney_p"] == pytest.approx(
        scipy_stats.mannwhitneyu(a, b, alternative="two-sided").pvalue
    )
    pooled = math.sqrt((3 * np.var(a, ddof=1) + 2 * np.var(b, ddof=1)) / 5)
    assert result["hedges_g"] == pytest.approx((np.mean(a) - np.mean(b)) / pooled * (1 - 3 / (4 * 7 - 9)))
    assert math.isnan(hedges_g([1.0], [2.0, 3.0]))
    one_seed = compare([1.0], [2.0, 3.0])
    assert math.isnan(one_seed["welch_p"]) and one_seed["n"] == 1
    assert [stars(p) for p in (0.0005, 0.005, 0.03, 0.2, math.nan)] == ["***", "**", "*", "", ""]


@pytest.fixture(scope="module")
def tiny_results(tmp_path_factory):
    """Real runs: ring8, bce / bce+gdpp / hinge, 3 seeds, plus a diverged run of a fourth variant."""
    results = tmp_path_factory.mktemp("report") / "results"
    suite = tiny_suite(
        variants=("bce", "bce+gdpp@1", "hinge"),
        seeds=(0, 1, 2),
        train={"steps": 30, "log_every": 10, "checkpoint_every": 10},
    )
    run_specs(expand(suite), results, None, "cpu")
    (failed,) = expand(
        tiny_suite(
            variants=("hinge+gdpp@1",),
            seeds=(0,),
            train={"steps": 30, "log_every": 10, "checkpoint_every": 10},
        )
    )
    run_dir = RunDir(results / "tiny" / failed.key)
    write_json(run_dir.config, {"spec": failed.to_dict(), "environment": {}})
    run_dir.mark_done("failed", reason="diverged: non-finite g_loss by step 20", step=20)
    return results


@pytest.fixture(scope="module")
def tiny_report(tiny_results):
    """The tiny suite's report with its figures, built once for the tests that only read it."""
    return build_report(tiny_results / "tiny")


RING8_MODES = 8


def test_a_mode_counts_interval_stops_at_the_datasets_mode_count():
    seeds = {"ring8": [8, 8, 3], "grid25": [25, 25, 9], "stacked-mnist": [990, 999, 400], "nosuch": [8, 8, 3]}
    runs = pd.DataFrame(
        [
            {"dataset": dataset, "variant": "bce", "status": "done", "train_cpu_s": 1.0, "modes": value}
            for dataset, values in seeds.items()
            for value in values
        ]
    )
    summary = summarize(runs).set_index("dataset")
    for dataset, values in seeds.items():
        t_high = scipy_stats.t.interval(0.95, 2, loc=np.mean(values), scale=scipy_stats.sem(values))[1]
        top = {"ring8": 8, "grid25": 25, "stacked-mnist": 1000}.get(dataset, t_high)
        assert t_high > max(values) and summary.loc[dataset, "ci_high"] == pytest.approx(min(t_high, top))
        assert summary.loc[dataset, "ci_low"] >= 0


def test_summary_numbers_are_pandas_and_scipy_on_runs_csv(tiny_report):
    written = tiny_report
    runs = pd.read_csv(written["runs.csv"])
    summary = pd.read_csv(written["summary.csv"])
    assert len(runs) == 10 and set(runs["status"]) == {"done", "failed: diverged"}
    done = runs[runs["status"] == "done"]
    for row in summary.itertuples():
        values = done[done["variant"] == row.variant][row.metric].dropna()
        assert row.mean == pytest.approx(values.mean())
        assert row.std == pytest.approx(values.std(ddof=1), nan_ok=True)
        low, high = scipy_stats.t.interval(
            0.95, len(values) - 1, loc=values.mean(), scale=scipy_stats.sem(values)
        )
        if values.std() > 0:  # the t interval, cut to the metric's range (HQ % in [0, 100] ...)
            lower, upper = METRIC_BOUNDS[row.metric]
            upper = {"modes": RING8_MODES, "kl_uniform": math.log(RING8_MODES)}.get(row.metric, upper)
            low = low if lower is None else max(low, lower)
            high = high if upper is None else min(high, upper)
            assert (row.ci_low, row.ci_high) == pytest.approx((low, high), nan_ok=True)
            assert lower is None or row.ci_low >= lower
        assert row.n == len(values) == 3  # a KL without HQ samples counts as log 8, never n/a
    for _, block in summary.groupby("metric"):
        printed = block["mean"].map(round_sig)  # compared as the tables print them
        best = printed.max() if block["higher_is_better"].iloc[0] else printed.min()
        winners = (printed == best).sum()  # a best mean shared by variants marks none
        assert set(printed[block["best"]]) == ({best} if winners == 1 else set())
    tests = pd.read_csv(written["significance.csv"])
    assert set(tests["variant"]) == {"bce+gdpp@1", "hinge"} and set(tests["baseline"]) == {"bce"}
    assert "train_cpu_s" in summary.columns and (summary["train_cpu_s"] > 0).all()
    for row in tests.itertuples():
        a = done[done["variant"] == row.variant][row.metric].dropna().tolist()
        b = done[done["variant"] == "bce"][row.metric].dropna().tolist()
        if np.var(a) or np.var(b):
            assert row.welch_p == pytest.approx(scipy_stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert (tests["welch_p_holm"].dropna() >= tests["welch_p"].dropna() - 1e-12).all()
    markdown = written["summary.md"].read_text()
    assert "hq_percent ↑" in markdown and "kl_uniform ↓" in markdown
    assert ("**" in markdown) == summary["best"].any()  # bold marks the unique best means
    assert markdown.index("| bce |") < markdown.index("| bce+gdpp@1 |")  # baseline first
    assert "Runs not in the summary" in markdown and "failed: diverged" in markdown
    latex = written["summary.tex"].read_text()
    assert r"\toprule" in latex and r"\bottomrule" in latex and r"$\pm$" in latex
    assert "hq\\_percent $\\uparrow$" in latex


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.links += [value for name, value in attrs if name in ("src", "href")]


def test_index_html_references_only_existing_files_and_lists_the_failed_run(tiny_report):
    written = tiny_report
    index = written["index.html"]
    text = index.read_text()
    parser = _Links()
    parser.feed(text)
    assert any(link.endswith(".png") for link in parser.links)
    for link in parser.links:
        assert not re.match(r"^[a-z]+://", link)  # self-contained: relative links only
        target = index.parent / link
        assert target.is_dir() if link.endswith("/") else target.is_file(), link  # run folders end in /
    assert "hinge+gdpp@1" in text and "diverged" in text
    for png in (p for p in written.values() if p.suffix == ".png"):
        with Image.open(png) as image:
            assert image.width > 300 and image.height > 200
            assert len(np.unique(np.asarray(image.convert("L")))) > 10


def test_one_seed_renders_with_ci_not_available(tmp_path):
    suite = tiny_suite(variants=("bce", "bce+gdpp@1"), seeds=(0,), train={"steps": 20, "log_every": 10})
    run_specs(expand(suite), tmp_path / "results", None, "cpu")
    written = build_report(tmp_path / "results" / "tiny")
    assert "[CI n/a]" in written["summary.md"].read_text()
    summary = pd.read_csv(written["summary.csv"])
    assert summary["ci_low"].isna().all() and (summary["n"] == 1).all()
    assert written["index.html"].is_file()


def test_overview_covers_every_suite(tiny_results, tmp_path):
    written = build_overview(tiny_results, with_figures=False)  # the suites' figures: tested above
    assert "tiny/index.html" in written and written["index.html"].parent == tiny_results / "report"
    text = written["index.html"].read_text()
    assert "tiny" in text
    combined = pd.read_csv(written["summary.csv"])
    assert set(combined["suite"]) == {"tiny"}
