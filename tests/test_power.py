"""The power check: what the smallest Holm-corrected p of a design is, and what `run`/`tune` do
with a design that cannot reach alpha. The expected numbers are computed by hand here:
C(2n, n) = 6, 20, 70, 252, 924, 3432 for n = 2..7, and C(15, 5) = 3003."""

from __future__ import annotations

import dataclasses

import pytest
from scipy import stats

from gdpp_bench.errors import UserError
from gdpp_bench.power import (
    check_design,
    design_power,
    family_size,
    family_values,
    smallest_seeds_per_arm,
)
from gdpp_bench.report.stats import smallest_mann_whitney_p
from gdpp_bench.suites import expand, load_suite, parse_suite, suite_names

# nine weighted variants against bce on ring8 (modes2d: modes, hq_percent, kl_uniform): 9 x 3 = 27
WEIGHTS = ["0.1", "0.2", "0.5", "1", "2", "3", "5", "10", "20"]


def specs_of(variants, seeds, **more):
    table = {"name": "p", "dataset": "ring8", "model": "mlp2d", "variants": variants, "seeds": seeds}
    return expand(parse_suite({**table, **more}))


def family_of_27(**more):
    return specs_of(["bce", *(f"bce+gdpp@{w}" for w in WEIGHTS)], [0, 1, 2, 3, 4], **more)


def test_the_smallest_exact_p_at_5_vs_5_is_2_over_252():
    assert smallest_mann_whitney_p(5, 5) == pytest.approx(2 / 252)
    # the exact two-sided test on two fully separated groups of five gives that p
    exact = stats.mannwhitneyu([0, 1, 2, 3, 4], [5, 6, 7, 8, 9], alternative="two-sided", method="exact")
    assert exact.pvalue == pytest.approx(2 / 252)


def test_a_holm_family_of_27_at_5_vs_5_is_refused():
    specs = family_of_27()
    (power,) = design_power(specs)
    assert (power.dataset, power.family) == ("ring8", 27)
    assert {(pair.n, pair.n_reference) for pair in power.comparisons} == {(5, 5)}
    assert power.smallest_holm_p == pytest.approx(27 * 2 / 252)  # 0.214
    assert not power.reachable
    with pytest.raises(UserError) as info:
        check_design(specs, subset=False, allow_underpowered=False)
    line = str(info.value)
    assert "\n" not in line
    for part in [
        "dataset ring8",
        "5 seeds per arm",
        "Holm family of 27",
        "0.214",
        "7 seeds per arm is the fewest",
        "[decision] primary",
        "[decision] descriptive = true",
        "--allow-underpowered",
    ]:
        assert part in line


def test_7_vs_7_with_a_family_of_2_passes():
    specs = specs_of(["bce", "bce+gdpp"], list(range(7)), decision={"primary": ["modes", "hq_percent"]})
    (power,) = design_power(specs)
    assert power.family == 2 and power.values == ("modes", "hq_percent")
    assert power.smallest_holm_p == pytest.approx(2 * 2 / 3432)
    assert check_design(specs, subset=False, allow_underpowered=False) == (specs, None)


@pytest.mark.parametrize(
    "m,n",
    [
        (1, 4),  # n = 3: 2/20 = 0.1; n = 4: 2/70 = 0.029
        (3, 5),  # n = 4: 3 x 2/70 = 0.086; n = 5: 3 x 2/252 = 0.024
        (12, 6),  # n = 5: 12 x 2/252 = 0.095; n = 6: 12 x 2/924 = 0.026
        (27, 7),  # n = 6: 27 x 2/924 = 0.058; n = 7: 27 x 2/3432 = 0.016
    ],
)
def test_smallest_seeds_per_arm(m, n):
    assert smallest_seeds_per_arm(m) == n


def test_a_subset_gets_a_warning_not_a_refusal():
    specs = family_of_27()
    kept, warning = check_design(specs, subset=True, allow_underpowered=False)
    assert kept == specs
    assert warning is not None and "\n" not in warning
    assert "cannot reach a verdict" in warning and "Holm family of 27" in warning


def test_a_descriptive_suite_passes_without_the_flag():
    specs = family_of_27(decision={"descriptive": True})
    assert check_design(specs, subset=False, allow_underpowered=False) == (specs, None)


def test_allow_underpowered_marks_every_run():
    specs = family_of_27()
    marked, note = check_design(specs, subset=False, allow_underpowered=True)
    assert len(marked) == len(specs) == 50
    assert all(spec.decision.underpowered for spec in marked)
    assert not any(spec.decision.underpowered for spec in specs)  # frozen: the input is untouched
    assert note is not None and "\n" not in note and "allow-underpowered" in note


def test_unequal_arms_use_the_report_bound():
    # bce at 10 seeds, bce+gdpp at 5: 4 comparisons x 3 values = 12; the family's smallest raw p is
    # 2/C(20, 10) (bce+gdpp-si vs bce), but bce+gdpp vs bce cannot go below its own 2/C(15, 5)
    specs = specs_of(
        ["bce", "bce+gdpp", "bce+gdpp-si", "bce+gdpp-si@0.1", "bce+gdpp-si@10"],
        list(range(10)),
        variant_seeds={"bce+gdpp": [0, 1, 2, 3, 4]},
    )
    (power,) = design_power(specs)
    assert power.family == 12
    bounds = {pair.variant: (pair.n, pair.n_reference, pair.smallest_holm_p) for pair in power.comparisons}
    assert bounds["bce+gdpp@1"] == (5, 10, pytest.approx(2 / 3003))
    assert bounds["bce+gdpp-si@1"] == (10, 10, pytest.approx(12 * 2 / 184756))
    assert power.reachable
    assert check_design(specs, subset=False, allow_underpowered=False) == (specs, None)


def test_nothing_to_decide_is_not_refused():
    one = specs_of(["bce"], [0])
    no_baseline = specs_of(["hinge", "hinge+gdpp"], [0])  # hinge+gdpp vs hinge needs bce present
    for specs in (one, no_baseline):
        assert design_power(specs)[0].family == 0
        assert check_design(specs, subset=False, allow_underpowered=False) == (specs, None)


def test_trial_runs_are_not_counted_and_confirmation_runs_are():
    specs = specs_of(["bce", "bce+gdpp"], list(range(7)))
    trials = [dataclasses.replace(spec, role="trial") for spec in specs]
    assert design_power(trials) == []
    assert check_design(trials, subset=False, allow_underpowered=False) == (trials, None)
    confirm = [dataclasses.replace(spec, role="confirm") for spec in specs]
    assert design_power(confirm) == design_power(specs)
    # a few confirmation seeds with many trial seeds: the trials do not make it powered
    few = [s for s in confirm if s.seed < 3] + [
        dataclasses.replace(s, seed=s.seed + 100, role="trial") for s in specs
    ]
    with pytest.raises(UserError, match="3 seeds per arm"):
        check_design(few, subset=False, allow_underpowered=False)


def test_arms_are_named_by_label():
    # tuned runs of one suite variant carry different drawn weights but one label
    specs = specs_of(["bce", "bce+gdpp"], list(range(5)))
    relabelled = [
        dataclasses.replace(spec, variant=f"bce+gdpp@{spec.seed + 1}", label="bce+gdpp")
        if spec.variant.terms
        else spec
        for spec in specs
    ]
    (power,) = design_power(relabelled)
    assert [(p.variant, p.reference, p.n, p.n_reference) for p in power.comparisons] == [
        ("bce+gdpp", "bce", 5, 5)
    ]


def test_family_size_counts_comparisons_times_values():
    # wgan-gp+gdpp is compared with bce and with wgan-gp: 3 comparisons
    assert family_size(["bce", "wgan-gp", "wgan-gp+gdpp@1"], ["modes2d"]) == 3 * 3
    assert family_size(["bce", "bce+gdpp@1"], ["modes2d", "fidelity"]) == 1 * (3 + 7)
    assert family_size(["bce", "bce+gdpp@1"], ["modes2d", "fidelity"], primary=["fid"]) == 1
    assert family_size(["hinge", "hinge+gdpp@1"], ["modes2d"]) == 0  # no baseline
    assert family_size(["hinge", "hinge+gdpp@1"], ["modes2d"], baseline="hinge") == 3
    # values a metric records but the report does not compare (is_std, kid_std) are not in it
    assert "is_std" not in family_values(["fidelity"])
    assert family_values(["modes2d", "stacked_mnist_modes"]) == ("modes", "hq_percent", "kl_uniform")


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_is_powered_or_says_it_is_descriptive(name):
    suite = load_suite(name)
    specs = expand(suite, steps=1)  # steps replace epochs: no training images needed
    assert check_design(specs, subset=False, allow_underpowered=False) == (specs, None)
    reachable = all(power.reachable for power in design_power(specs))
    # a descriptive mark on a powered study would hide verdicts it can give
    assert suite.decision.descriptive != reachable


def test_the_powered_studies_and_smoke():
    for name, family in (("ring8", 12), ("grid25", 6)):
        (power,) = design_power(expand(load_suite(name)))
        assert power.family == family and power.reachable
        # bce+gdpp at 5 seeds against bce at 10 is the weakest arm: 2 / C(15, 5)
        assert power.smallest_holm_p == pytest.approx(2 / 3003)
    assert load_suite("smoke").decision.descriptive


UNDERPOWERED = """name = "thin"
dataset = "ring8"
model = "mlp2d"
variants = ["bce", "bce+gdpp"]
seeds = [0, 1, 2]
[train]
steps = 20
batch_size = 64
[eval]
samples = 200
"""


def test_the_command_line_refuses_warns_or_records_as_the_design_allows(tmp_path):
    """run: an underpowered suite is one error line and nothing written; a --seeds subset of it is
    a warning; --allow-underpowered trains it and its report says so."""
    from conftest import gdpp_bench

    suite, results = tmp_path / "thin.toml", tmp_path / "results"
    suite.write_text(UNDERPOWERED)
    base = ("run", "--suite", str(suite), "--results", str(results), "--device", "cpu")
    refused = gdpp_bench(*base)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    (line,) = refused.stderr.splitlines()
    assert (
        line.startswith("error: suite thin, dataset ring8: 3 seeds per arm")
        and "--allow-underpowered" in line
    )
    assert "5 seeds per arm is the fewest" in line  # m = 1 x 3: 3 x 2/252 < 0.05, 3 x 2/70 is not
    assert not results.exists()
    subset = gdpp_bench(*base, "--seeds", "0,1", "--dry-run")
    assert subset.returncode == 0 and subset.stderr.startswith("warning: this subset cannot reach a verdict")
    allowed = gdpp_bench(*base, "--allow-underpowered")
    assert allowed.returncode == 0, allowed.stderr
    report = gdpp_bench("report", "--suite", "thin", "--results", str(results), "--no-figures")
    assert report.returncode == 0, report.stderr
    claims = (results / "thin" / "report" / "claims.md").read_text()
    assert "--allow-underpowered" in claims
