"""Evaluations that measured nothing. A value is NaN when an evaluation ran and had nothing to
measure: a 2D generator with no high-quality sample has an empty mode histogram, whose KL to the
uniform one is undefined. Such a value counts as the worst value the metric can take on the
dataset (for the KL: log K, all mass on one of K modes), never as a gap a mean skips: averaging
only the evaluations that measured something credits a run for its complete collapses.

The worst value comes from the metric's declared bounds (`Value.bounds`; the lower one where
higher is better, else the upper one) with what the dataset adds (`metric_bounds`: a mode count's
top, a KL's log K). A NaN of a metric with no finite worst value on its side stays NaN, and the
headline it enters is NaN (n/a) rather than the mean of the others. Only NaNs of evaluations that
ran count: a metric a run never measured is missing, not collapsed."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from gdpp_bench.data import mode_count
from gdpp_bench.metrics import HIGHER_IS_BETTER, IS_COUNT, METRIC_BOUNDS
from gdpp_bench.report.recipes import TRIAL, roles

# A KL divergence to the uniform histogram over K bins lies in [0, log K] (log K: all mass in one
# bin). Its declared upper bound is open (K depends on the dataset); K is the top of the count
# measured beside it, over the same bins.
KL_BINS = {"kl_uniform": "modes", "class_kl_uniform": "classes"}
NO_WORST = "no finite worst value: n/a"  # runs.csv's collapsed_metrics: a NaN left as it is


def metric_bounds(metric: str, dataset: str) -> tuple[float | None, float | None]:
    """The range `metric` can take on `dataset`: as the metric declares it, a mode count's top
    being the dataset's number of modes and a KL to uniform's top log of its bins where known."""
    lower, upper = METRIC_BOUNDS.get(metric, (None, None))
    if upper is None and IS_COUNT.get(metric, False):
        upper = mode_count(dataset)
    if upper is None and metric in KL_BINS:
        bins = metric_bounds(KL_BINS[metric], dataset)[1]
        upper = math.log(bins) if bins else None
    return lower, upper


def worst_value(metric: str, dataset: str) -> float | None:
    """The worst value `metric` can take on `dataset` (its lower bound where higher is better, else
    its upper bound); None where the metric is not compared or unbounded on that side."""
    if metric not in HIGHER_IS_BETTER:
        return None
    lower, upper = metric_bounds(metric, dataset)
    worst = lower if HIGHER_IS_BETTER[metric] else upper
    return None if worst is None else float(worst)


def _missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def fill_values(values: Mapping[str, object], dataset: str) -> tuple[dict, set[str]]:
    """One evaluation's values (metrics.json) with each compared metric it recorded as null or NaN
    replaced by its worst value where finite; and the names of those metrics (kept NaN or not)."""
    filled, collapsed = dict(values), set()
    for metric, value in values.items():
        if metric in HIGHER_IS_BETTER and _missing(value):
            collapsed.add(metric)
            worst = worst_value(metric, dataset)
            filled[metric] = math.nan if worst is None else worst
    return filled, collapsed


def fill_frame(
    evals: pd.DataFrame, metrics: Iterable[str], dataset: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Evaluations (rows of evals.csv: each ran, so each NaN of a compared metric is a collapse)
    with those NaNs replaced by the worst values where finite; and the mask of the cells that
    collapsed (True whether replaced or left NaN)."""
    columns = [m for m in metrics if m in evals.columns]
    filled = evals.copy()
    collapsed = evals[columns].isna()
    for metric in columns:
        worst = worst_value(metric, dataset)
        if worst is not None:
            filled[metric] = filled[metric].fillna(worst)
    return filled, collapsed


def describe(metrics: Iterable[str], dataset: str) -> str:
    """runs.csv's collapsed_metrics: the collapsed metrics, each one left NaN saying so."""
    return " ".join(
        metric if worst_value(metric, dataset) is not None else f"{metric} ({NO_WORST})"
        for metric in [m for m in HIGHER_IS_BETTER if m in set(metrics)]
    )


def collapse_note(runs: pd.DataFrame) -> str:
    """One sentence for the report's texts where finished compared runs (not tuning trials: see
    tuning.md) had collapsed evaluations; "" where none had."""
    if "collapsed_evals" not in runs.columns or "status" not in runs.columns:
        return ""
    done = runs[(runs["status"] == "done") & (roles(runs) != TRIAL)]
    count = int((pd.to_numeric(done["collapsed_evals"], errors="coerce").fillna(0) > 0).sum())
    if not count:
        return ""
    listed = " ".join(str(text) for text in done.get("collapsed_metrics", pd.Series(dtype=str)).dropna())
    kept = sorted({name for name in HIGHER_IS_BETTER if f"{name} ({NO_WORST})" in listed})
    note = (
        f"{count} run{'s have' if count > 1 else ' has'} evaluations that measured nothing (e.g. no "
        "high-quality sample: the KL of an empty histogram); each such value counts as the metric's "
        "worst (kl_uniform: log K for K modes), never dropped (runs.csv: collapsed_evals, "
        "collapsed_metrics)."
    )
    if kept:
        note += f" No finite worst value for {', '.join(kept)}: such a headline is n/a."
    return note
