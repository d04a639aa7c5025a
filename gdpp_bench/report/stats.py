"""Statistics of the report: intervals, the decision rule's test and effect sizes, Holm correction.

The decision rule (claims.md) is fixed before any run: two-sided Mann-Whitney U per comparison
and metric (`mann_whitney`), Holm over all comparisons of a dataset, alpha 0.05, with the
difference in means and its percentile-bootstrap interval, Hedges' g and, for counts, Cliff's delta
beside it. Welch's t-test stays in significance.csv as a second view, beside the same Mann-Whitney
test (`compare` calls `mann_whitney`: the two files cannot disagree on it).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
ALPHA = 0.05  # the decision rule's level, after Holm
BOOTSTRAP_RESAMPLES = 10_000
BOOTSTRAP_SEED = 20190609  # fixed: the same runs always give the same interval


def _finite(values: Sequence[float]) -> np.ndarray:
    return np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)


def mean_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    bounds: tuple[float | None, float | None] = (None, None),
) -> tuple[float, float, float]:
    """(mean, low, high) of the t interval, cut to the metric's possible range `bounds` (a t
    interval of a bounded metric such as a percentage may otherwise leave it); low = high = NaN
    with fewer than two finite values."""
    data = _finite(values)
    if len(data) == 0:
        return math.nan, math.nan, math.nan
    mean = float(data.mean())
    if len(data) < 2:
        return mean, math.nan, math.nan
    sem = float(stats.sem(data))
    if sem == 0.0:
        return mean, mean, mean
    low, high = stats.t.interval(confidence, len(data) - 1, loc=mean, scale=sem)
    lower, upper = bounds
    low = max(float(low), lower) if lower is not None else float(low)
    high = min(float(high), upper) if upper is not None else float(high)
    return mean, low, high


def bootstrap_mean_difference(
    a: Sequence[float],
    b: Sequence[float],
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile bootstrap interval of mean(a) - mean(b): each group resampled with replacement
    (over seeds), `resamples` times, from a fixed seed. NaNs with an empty group."""
    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means_x = x[rng.integers(0, len(x), size=(resamples, len(x)))].mean(axis=1)
    means_y = y[rng.integers(0, len(y), size=(resamples, len(y)))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means_x - means_y, [tail, 100 - tail])
    return float(low), float(high)


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float:
    """Cliff's delta: P(a > b) - P(a < b) over all pairs, in [-1, 1]; NaN with an empty group."""
    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan
    signs = np.sign(x[:, None] - y[None, :])
    return float(signs.mean())


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> tuple[float, str]:
    """Two-sided Mann-Whitney U p-value and the method: scipy's exact distribution where the
    pooled values have no ties, else its normal approximation with the tie correction (and the
    continuity correction). (NaN, '') with an empty group."""
    x, y = _finite(a), _finite(b)
    if len(x) == 0 or len(y) == 0:
        return math.nan, ""
    pooled = np.concatenate([x, y])
    method = "exact" if len(np.unique(pooled)) == len(pooled) else "asymptotic"
    if method == "asymptotic" and np.all(pooled == pooled[0]):
        return 1.0, "asymptotic (all values tied)"
    p = stats.mannwhitneyu(x, y, alternative="two-sided", method=method).pvalue
    return float(p), method if method == "exact" else "asymptotic, tie-corrected"


def smallest_mann_whitney_p(n1: int, n2: int) -> float:
    """The smallest two-sided p the exact Mann-Whitney test can give at these group sizes (all of
    one group above all of the other): 2 / C(n1 + n2, n1), at most 1."""
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n1 + n2, n1))


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


def compare(a: Sequence[float], b: Sequence[float]) -> dict[str, float | str]:
    """Welch's t-test and the decision rule's Mann-Whitney U (`mann_whitney`, two-sided, with its
    method) of a against b, and Hedges' g."""
    x = [v for v in a if math.isfinite(v)]
    y = [v for v in b if math.isfinite(v)]
    p, method = mann_whitney(x, y)
    result: dict[str, float | str] = {
        "n": len(x),
        "n_baseline": len(y),
        "welch_p": math.nan,
        "mannwhitney_p": p,
        "mannwhitney_method": method,
        "hedges_g": hedges_g(x, y),
    }
    if len(x) >= 2 and len(y) >= 2:
        if np.var(x) == 0 and np.var(y) == 0:  # t undefined; identical constants do not differ
            result["welch_p"] = 1.0 if np.mean(x) == np.mean(y) else 0.0
        else:
            with warnings.catch_warnings():
                # nearly constant seeds (e.g. recall 0 everywhere): scipy warns, the p-value stands
                warnings.filterwarnings("ignore", "Precision loss occurred", RuntimeWarning)
                result["welch_p"] = float(stats.ttest_ind(x, y, equal_var=False).pvalue)
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


def constant_value(a: Sequence[float], b: Sequence[float]) -> float | None:
    """The one value every run of a comparison has (recall 0 in every run, say), else None: such a
    comparison carries no information, whatever a test would say of it."""
    pooled = {float(v) for v in (*a, *b)}
    return pooled.pop() if len(pooled) == 1 else None


def stars(p: float) -> str:
    """'***' p < 0.001, '**' < 0.01, '*' < 0.05, '' otherwise or NaN."""
    if p is None or not math.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""
