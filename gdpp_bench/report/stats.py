"""Statistics of the report: t confidence intervals, tests against a baseline, Holm correction.

Seeds are few (3 by default), so every interval uses the t distribution and every comparison is
reported two ways: Welch's t-test (unequal variances) and the Mann-Whitney U test (no normality),
each Holm-corrected over the metrics compared for one dataset and variant, with Hedges' g as the
effect size.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_ci(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """(mean, low, high) of the t interval; low = high = NaN with fewer than two finite values."""
    data = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(data) == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if len(data) < 2:
        return mean, math.nan, math.nan
    sem = float(stats.sem(data))
    if sem == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, len(data) - 1, loc=mean, scale=sem)
    return mean, float(low), float(high)


def hedges_g(a: Sequence[float], b: Sequence[float]) -> float:
    """Standardised mean difference (a - b) / pooled std, with the small-sample correction."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        return math.nan
    pooled = math.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    if pooled == 0.0:
        return math.nan if x.mean() == y.mean() else math.copysign(math.inf, x.mean() - y.mean())
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return float((x.mean() - y.mean()) / pooled * correction)


def compare(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Welch's t-test and Mann-Whitney U (two-sided) of a against b, and Hedges' g."""
    x = [v for v in a if math.isfinite(v)]
    y = [v for v in b if math.isfinite(v)]
    result = {"n": len(x), "n_baseline": len(y), "welch_p": math.nan, "mannwhitney_p": math.nan,
              "hedges_g": hedges_g(x, y)}
    if len(x) >= 2 and len(y) >= 2:
        if np.var(x) == 0 and np.var(y) == 0:  # t undefined; identical constants do not differ
            result["welch_p"] = 1.0 if np.mean(x) == np.mean(y) else 0.0
        else:
            with warnings.catch_warnings():
                # nearly constant seeds (e.g. recall 0 everywhere): scipy warns, the p-value stands
                warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
                result["welch_p"] = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
    if x and y:
        result["mannwhitney_p"] = float(stats.mannwhitneyu(x, y, alternative="two-sided").pvalue)
    return result


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaN stays NaN and is not counted)."""
    indexed = [(p, i) for i, p in enumerate(p_values) if p is not None and math.isfinite(p)]
    adjusted = [math.nan] * len(p_values)
    m, running = len(indexed), 0.0
    for rank, (p, index) in enumerate(sorted(indexed)):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[index] = running
    return adjusted


def stars(p: float) -> str:
    """'***' p < 0.001, '**' < 0.01, '*' < 0.05, '' otherwise or NaN."""
    if p is None or not math.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
