"""The summary tables' stars are the decision rule's: decisions.csv's Holm-corrected p (the exact
Mann-Whitney test without ties), per recipe, none for a value that is not primary or a descriptive
suite; significance.csv's Mann-Whitney columns are the same test and cannot disagree with it."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd
import pytest
from scipy import stats as scipy_stats
from test_report_tuned import ring, spec, trial_spec, write_run

from gdpp_bench.config import DecisionConfig
from gdpp_bench.report import build_report

SEEDS = 10
# 10 vs 10, every value of a variant above (or below) every value of bce, no ties: the exact p is
# 2 / C(20, 10) = 1.1e-5; scipy's default at this size (the normal approximation) says 1.8e-4.
# Holm over 2 comparisons x 3 values = 6: the rule's 6.5e-5 ('***'), the approximation's 1.1e-3 ('**')
EXACT_P = 2 / math.comb(2 * SEEDS, SEEDS)


def _values(variant: str, seed: int) -> dict[str, float]:
    """bce below both other variants on modes and HQ %, above them on KL (worse everywhere)."""
    shift = {"bce": 0.0, "bce+gdpp@1": 1.0, "hinge": 2.0}[variant]
    step = seed / 100 + shift / 1000  # no two runs share a value
    if variant == "bce":
        return ring(kl=1.0 + step, hq=10 + step, modes=3 + step)
    return ring(kl=0.1 + step, hq=60 + step, modes=6 + step)


def _write_suite(suite_dir: Path, decision: DecisionConfig, confirm: bool = False) -> None:
    for variant in ("bce", "bce+gdpp@1", "hinge"):
        for seed in range(SEEDS):
            write_run(suite_dir, spec(variant, seed, decision=decision), _values(variant, seed))
    if confirm:  # confirmation runs of bce and bce+gdpp: interleaved, no difference at all
        for seed in range(6):
            for label, offset in (("bce", 0.0), ("bce+gdpp", 0.05)):
                kl = 0.5 + seed / 10 + offset
                run = trial_spec(label, 0, seed, "confirm")
                write_run(suite_dir, run, ring(kl, hq=50 + seed + offset, modes=7 + seed / 10 + offset))


def _cells(markdown: str, heading: str, variant: str) -> list[str]:
    """The cells of `variant`'s row in the table under `heading` of summary.md."""
    section = markdown[markdown.index(f"### {heading}") :]
    row = next(line for line in section.splitlines() if line.startswith(f"| {variant} |"))
    return [cell.strip() for cell in row.strip("|").split("|")]


def _stars(cell: str) -> str:
    """The significance stars after a cell's interval (bold's ** is before it)."""
    return cell.rsplit("]", 1)[1].strip()


def test_summary_stars_come_from_the_decision_rules_holm_p(tmp_path):
    suite_dir = tmp_path / "tuned"
    _write_suite(suite_dir, DecisionConfig(), confirm=True)
    written = build_report(suite_dir, with_figures=False)
    decided = pd.read_csv(written["decisions.csv"], dtype={"role": str}).fillna({"role": ""})
    ordinary = decided[decided["role"] == ""]
    assert (ordinary["mannwhitney_method"] == "exact").all() and (ordinary["comparisons"] == 6).all()
    assert ordinary["mannwhitney_p"].tolist() == pytest.approx([EXACT_P] * 6)
    assert ordinary["mannwhitney_p_holm"].tolist() == pytest.approx([6 * EXACT_P] * 6)
    approximate = scipy_stats.mannwhitneyu(range(10), range(10, 20), alternative="two-sided").pvalue
    assert 0.001 < 6 * approximate < 0.01  # what the stars said before: '**'
    markdown = written["summary.md"].read_text()
    for variant in ("bce+gdpp@1", "hinge"):
        cells = _cells(markdown, "ring8", variant)
        assert [_stars(cell) for cell in cells[3:]] == ["***"] * 3, cells
    assert [_stars(cell) for cell in _cells(markdown, "ring8", "bce")[3:]] == [""] * 3
    # the confirmation runs' table: their own family, where nothing differs
    tuned = "ring8: tuned, equal budget of 5 trials per variant"
    assert [_stars(cell) for cell in _cells(markdown, tuned, "bce+gdpp")[3:]] == [""] * 3
    assert "the decision rule's Holm-corrected p" in markdown
    bodies = "".join(
        table.split(r"\end{tabular}")[0]
        for table in written["summary.tex"].read_text().split(r"\begin{tabular}")[1:]
    )  # the tables without their captions (which give the stars' legend)
    assert bodies.count("$^{***}$") == 6 and "$^{**}$" not in bodies
    page = written["index.html"].read_text()
    assert page.count("<sup>***</sup>") == 6 and "<sup>**</sup>" not in page


def test_significance_csv_mann_whitney_is_the_decision_rules_test(tmp_path):
    suite_dir = tmp_path / "tuned"
    _write_suite(suite_dir, DecisionConfig(), confirm=True)
    written = build_report(suite_dir, with_figures=False)
    keys = ["dataset", "role", "variant", "reference", "metric"]
    tests = pd.read_csv(written["significance.csv"], dtype={"role": str}).fillna({"role": ""})
    decided = pd.read_csv(written["decisions.csv"], dtype={"role": str}).fillna({"role": ""})
    merged = tests.rename(columns={"baseline": "reference"}).merge(decided, on=keys, suffixes=("", "_rule"))
    assert len(merged) == len(tests) == len(decided) == 6 + 3
    for column in ("mannwhitney_p", "mannwhitney_p_holm", "mannwhitney_method"):
        assert merged[column].tolist() == merged[f"{column}_rule"].tolist(), column
    assert (merged["stars"].fillna("") == merged["stars_rule"].fillna("")).all()
    ordinary = merged[merged["role"] == ""]
    assert ordinary["mannwhitney_p"].tolist() == pytest.approx([EXACT_P] * 6)


def _all_stars(markdown: str) -> list[str]:
    return re.findall(r"\] (\*+)", markdown)


def test_no_stars_where_a_value_is_not_primary_or_the_suite_descriptive(tmp_path):
    primary = tmp_path / "primary" / "tuned"
    _write_suite(primary, DecisionConfig(primary=("hq_percent",)))
    markdown = build_report(primary, with_figures=False)["summary.md"].read_text()
    for variant in ("bce+gdpp@1", "hinge"):  # Holm over 2 comparisons of hq_percent only
        assert [_stars(cell) for cell in _cells(markdown, "ring8", variant)[3:]] == ["", "***", ""]
    decided = pd.read_csv(primary / "report" / "decisions.csv").set_index(["variant", "metric"])
    assert decided.loc[("hinge", "hq_percent"), "stars"] == "***"
    assert pd.isna(decided.loc[("hinge", "kl_uniform"), "stars"])
    descriptive = tmp_path / "descriptive" / "tuned"
    _write_suite(descriptive, DecisionConfig(descriptive=True, underpowered=True))
    written = build_report(descriptive, with_figures=False)
    assert _all_stars(written["summary.md"].read_text()) == []
    assert "<sup>" not in written["index.html"].read_text()
    assert "^{*" not in written["summary.tex"].read_text().split(r"\begin{tabular}")[1]
