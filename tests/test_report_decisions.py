"""The decision rule's statistics against independent references (hand-computed values and
brute-force implementations written here), and the rule applied to runs."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pandas as pd
import pytest

from gdpp_bench.report import tables
from gdpp_bench.report.claims import claims_markdown, decisions
from gdpp_bench.report.stats import (
    bootstrap_mean_difference,
    cliffs_delta,
    hedges_g,
    holm,
    mann_whitney,
    smallest_mann_whitney_p,
)
from gdpp_bench.report.tables import comparisons


def test_hedges_g_by_hand():
    # means 2 and 5, both sample variances 1 -> pooled sd 1; correction 1 - 3 / (4 * 6 - 9) = 0.8
    assert hedges_g([1, 2, 3], [4, 5, 6]) == pytest.approx(-3 * 0.8)
    # a = [2, 4, 6, 8]: var 20/3; b = [1, 3]: var 2; pooled = sqrt((3 * 20/3 + 1 * 2) / 4) = sqrt(5.5)
    assert hedges_g([2, 4, 6, 8], [1, 3]) == pytest.approx(3 / math.sqrt(5.5) * (1 - 3 / 15))


def _cliff_brute(a, b):
    greater = sum(1 for x in a for y in b if x > y)
    less = sum(1 for x in a for y in b if x < y)
    return (greater - less) / (len(a) * len(b))


def test_cliffs_delta_by_hand_and_brute_force():
    # pairs of [1, 2, 3] x [2, 2, 4]: 2 greater (3 > 2 twice), 5 less, 2 ties -> -3/9
    assert cliffs_delta([1, 2, 3], [2, 2, 4]) == pytest.approx(-1 / 3)
    assert cliffs_delta([5, 6], [1, 2, 3]) == 1.0 and cliffs_delta([1], [1]) == 0.0
    rng = random.Random(4)
    for _ in range(20):
        a = [rng.randint(0, 8) for _ in range(rng.randint(1, 9))]
        b = [rng.randint(0, 8) for _ in range(rng.randint(1, 9))]
        assert cliffs_delta(a, b) == pytest.approx(_cliff_brute(a, b))


def _holm_brute(p_values):
    """Holm's step-down procedure as its definition reads: the i-th smallest p times (m - i + 1),
    made monotone from the smallest up, capped at 1."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [0.0] * m
    for rank, index in enumerate(order):
        adjusted[index] = min(1.0, max((m - j) * p_values[order[j]] for j in range(rank + 1)))
    return adjusted


def test_holm_by_hand_and_brute_force():
    # sorted 0.01, 0.02, 0.04 with m = 3: 0.03, max(0.03, 0.04), max(0.04, 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    rng = random.Random(7)
    for _ in range(20):
        p = [rng.random() ** 3 for _ in range(rng.randint(1, 12))]
        assert holm(p) == pytest.approx(_holm_brute(p))


def _exact_mann_whitney_brute(a, b):
    """Two-sided exact p by enumerating every split of the pooled values (no ties)."""
    pooled = sorted(a + b)
    ranks = {v: r + 1 for r, v in enumerate(pooled)}
    n1, n2 = len(a), len(b)
    observed = sum(ranks[v] for v in a) - n1 * (n1 + 1) / 2
    mean = n1 * n2 / 2
    extreme = total = 0
    for chosen in itertools.combinations(range(1, n1 + n2 + 1), n1):
        u = sum(chosen) - n1 * (n1 + 1) / 2
        total += 1
        extreme += abs(u - mean) >= abs(observed - mean) - 1e-12
    return extreme / total


def test_mann_whitney_exact_without_ties_matches_enumeration():
    assert mann_whitney([1, 2, 3], [4, 5, 6]) == (pytest.approx(0.1), "exact")  # 2 of 20 splits
    rng = random.Random(11)
    for _ in range(10):
        values = rng.sample(range(100), rng.randint(4, 10))
        cut = rng.randint(1, len(values) - 1)
        p, method = mann_whitney(values[:cut], values[cut:])
        assert method == "exact"
        assert p == pytest.approx(_exact_mann_whitney_brute(values[:cut], values[cut:]))


def test_mann_whitney_with_ties_is_the_tie_corrected_normal_approximation():
    a, b = [1, 1, 2, 3], [2, 3, 3, 4, 4]
    p, method = mann_whitney(a, b)
    assert method == "asymptotic, tie-corrected"
    # by hand: midranks of the pooled [1,1,2,2,3,3,3,4,4] are 1.5,1.5,3.5,3.5,6,6,6,8.5,8.5
    rank_sum = 1.5 + 1.5 + 3.5 + 6
    u = rank_sum - 4 * 5 / 2
    n = 9
    ties = sum(t**3 - t for t in (2, 2, 3, 2))
    sd = math.sqrt(4 * 5 / 12 * ((n + 1) - ties / (n * (n - 1))))
    z = (abs(u - 10) - 0.5) / sd  # continuity correction
    expected = math.erfc(z / math.sqrt(2))  # two-sided normal tail
    assert p == pytest.approx(expected)
    assert mann_whitney([2, 2], [2, 2, 2])[0] == 1.0


def test_smallest_exact_p_is_one_extreme_split():
    for n1, n2 in ((3, 3), (5, 10), (2, 4)):
        values = list(range(n1 + n2))
        assert smallest_mann_whitney_p(n1, n2) == pytest.approx(
            _exact_mann_whitney_brute(values[:n1], values[n1:])
        )
    assert smallest_mann_whitney_p(3, 3) == pytest.approx(0.1)  # n = 3 can never reach 0.05


def test_bootstrap_interval_matches_the_exact_resampling_distribution():
    # a = [0, 0, 0, 0, 1] resampled: mean = k/5 with k ~ Binomial(5, 0.2); b = [0] is constant.
    # P(k <= 0) = 0.328, P(k <= 2) = 0.942, P(k <= 3) = 0.993: the 2.5 % and 97.5 % points of the
    # resampled difference are 0 and 3/5
    assert bootstrap_mean_difference([0, 0, 0, 0, 1], [0]) == pytest.approx((0.0, 0.6))
    # constant groups: every resample gives the difference itself
    assert bootstrap_mean_difference([3, 3, 3], [1, 1]) == pytest.approx((2.0, 2.0))
    # a fixed seed: the same runs always give the same interval
    a, b = [5.1, 6.3, 5.8, 6.0, 7.1], [4.2, 4.9, 4.4, 5.5]
    first = bootstrap_mean_difference(a, b)
    assert bootstrap_mean_difference(a, b) == first
    assert first[0] < np.mean(a) - np.mean(b) < first[1]
    assert all(math.isnan(v) for v in bootstrap_mean_difference([], [1.0]))


def _runs(groups: dict[str, list[float]], metric: str = "modes", dataset: str = "ring8") -> pd.DataFrame:
    rows = [
        {
            "dataset": dataset,
            "variant": variant,
            "seed": seed,
            "status": "done",
            metric: value,
            "headline": "mean of the last 4 evaluations (steps 1-4)",
        }
        for variant, values in groups.items()
        for seed, value in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_comparisons_pair_each_variant_with_the_baseline_and_its_term_free_twin():
    pairs = comparisons(["bce", "bce+gdpp@1", "wgan-gp", "wgan-gp+gdpp@1", "bce+pacgan2"], "bce")
    assert ("wgan-gp+gdpp@1", "bce") in pairs and ("wgan-gp+gdpp@1", "wgan-gp") in pairs
    assert ("bce+gdpp@1", "bce") in pairs and len(pairs) == 5
    assert comparisons(["hinge", "hinge+gdpp@1"], "bce") == []  # no baseline, nothing decided


def test_verdicts_follow_direction_holm_and_sample_size():
    runs = _runs(
        {
            "bce": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
            "bce+gdpp-si@1": [11, 12, 13, 14, 15, 16, 17, 18, 19, 20],
            "bce+gdpp-si@10": [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5],
            "bce+gdpp@1": [0.1, 0.2],
        }
    )
    table = decisions(runs, "bce").set_index("variant")
    assert table.loc["bce+gdpp-si@1", "verdict"] == "better"
    assert table.loc["bce+gdpp-si@1", "mannwhitney_method"] == "exact"
    assert table.loc["bce+gdpp-si@10", "verdict"] == "no detectable difference at n = 10"
    # 2 vs 10, all below: raw p 2 / C(12, 2) = 0.030, second smallest of 3, so Holm gives 0.061
    assert table.loc["bce+gdpp@1", "mannwhitney_p"] == pytest.approx(2 / 66)
    assert table.loc["bce+gdpp@1", "mannwhitney_p_holm"] == pytest.approx(4 / 66)
    assert table.loc["bce+gdpp@1", "verdict"] == "no detectable difference at n = 2 vs 10"
    # 3 vs 3: no outcome gives p below 2 / C(6, 3) = 0.1, and the line says so
    small = decisions(_runs({"bce": [1, 2, 3], "hinge": [4, 5, 6]}), "bce")
    assert small["verdict"].tolist() == [
        "n too small to decide: at n = 3, Holm over 1 comparisons, the smallest possible p is 0.1"
    ]
    assert (table["comparisons"] == 3).all()
    # Holm: the raw p of the clear difference times 3 comparisons (it is the smallest)
    assert table.loc["bce+gdpp-si@1", "mannwhitney_p_holm"] == pytest.approx(
        3 * table.loc["bce+gdpp-si@1", "mannwhitney_p"]
    )
    assert table.loc["bce+gdpp-si@1", "difference"] == pytest.approx(10.0)
    assert table.loc["bce+gdpp-si@1", "cliffs_delta"] == 1.0  # modes is a count
    # lower-is-better: higher values are worse
    worse = decisions(_runs({"bce": list(range(10)), "hinge": list(range(20, 30))}, "kl_uniform"), "bce")
    assert worse["verdict"].tolist() == ["worse"] and math.isnan(worse["cliffs_delta"].iloc[0])
    text = claims_markdown(table.reset_index(), runs, "ring8", "bce", 4)
    assert "| bce+gdpp-si@1 vs bce | modes ↑ | better |" in text
    assert "mean of the last 4 evaluations" in text and "Holm" in text


def _two_metrics(recall: dict[str, list[float]]) -> pd.DataFrame:
    """modes clearly better for gdpp (10 vs 10), and the given recall values."""
    modes = _runs({"bce": list(range(10)), "bce+gdpp@1": list(range(20, 30))})
    modes["recall"] = [v for values in recall.values() for v in values]
    return modes


def test_a_value_constant_in_every_run_is_uninformative_and_left_out_of_holm():
    runs = _two_metrics({"bce": [0.0] * 10, "bce+gdpp@1": [0.0] * 10})
    table = decisions(runs, "bce").set_index("metric")
    assert table.loc["recall", "verdict"] == "uninformative here: 0 in every run, left out of the Holm family"
    assert not table.loc["recall", "primary"] and math.isnan(table.loc["recall", "mannwhitney_p_holm"])
    # the family is modes alone: Holm over 1 comparison, the raw p unchanged
    assert table.loc["modes", "comparisons"] == 1
    assert table.loc["modes", "mannwhitney_p_holm"] == pytest.approx(table.loc["modes", "mannwhitney_p"])
    text = claims_markdown(table.reset_index(), runs, "s", "bce", 4)
    assert "| recall ↑ | uninformative here: 0 in every run" in text
    # significance.csv holds the same family
    significance = tables.significance(runs, "bce").set_index("metric")
    assert math.isnan(significance.loc["recall", "mannwhitney_p_holm"])
    assert significance.loc["modes", "mannwhitney_p_holm"] == pytest.approx(
        table.loc["modes", "mannwhitney_p"]
    )
    # a value that varies in one run is informative: it stays in the family
    varied = decisions(_two_metrics({"bce": [0.0] * 10, "bce+gdpp@1": [0.0] * 9 + [0.1]}), "bce")
    assert (varied["comparisons"] == 2).all() and not varied["verdict"].str.contains("uninformative").any()


def test_a_pre_registered_primary_value_stays_in_the_family_marked():
    runs = _two_metrics({"bce": [0.0] * 10, "bce+gdpp@1": [0.0] * 10})
    runs["decision_primary"] = "modes recall"
    table = decisions(runs, "bce").set_index("metric")
    assert table.loc["recall", "primary"] and table.loc["recall", "comparisons"] == 2
    assert (
        table.loc["recall", "verdict"]
        == "no detectable difference at n = 10 (uninformative here: 0 in every run)"
    )
