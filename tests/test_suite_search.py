"""A suite's pre-registered study: [decision], [search] and [budget] parse into the run contract,
and every mistake in them is one line naming the file, the table and the field."""

from __future__ import annotations

import math

import pytest

from gdpp_bench.config import Budget, DecisionConfig, Distribution, Objective
from gdpp_bench.errors import UserError
from gdpp_bench.suites import (
    SEARCHABLE_FIELDS,
    constraint_holds,
    expand,
    load_suite,
    parse_constraint,
    parse_suite,
)

BASE = {
    "name": "s",
    "dataset": "ring8",
    "model": "mlp2d",
    "variants": ["bce", "bce+gdpp", "bce+pacgan2"],
    "seeds": [0, 1],
}
BUDGET = {
    "trials": 4,
    "tuning_seeds": [0, 1],
    "confirm_seeds": [10, 11, 12],
    "objective": {"metric": "hq_percent", "constraints": ["modes >= 6"]},
}
SEARCH = {"lr_g": {"log_uniform": [1e-4, 1e-2]}}


def study(**tables):
    return {**BASE, **tables}


def searched(search, **budget):
    return study(search=search, budget={**BUDGET, **budget})


def test_a_study_parses_into_the_run_contract(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'name = "study"\ndataset = "ring8"\nmodel = "mlp2d"\n'
        'variants = ["bce", "bce+gdpp", "bce+pacgan2"]\nseeds = [0, 1]\n'
        '[decision]\nprimary = ["modes", "hq_percent"]\n'
        "[search]\n"
        "lr_g = { log_uniform = [1e-4, 1e-2] }\n"
        "d_steps = { int_uniform = [1, 3] }\n"
        "weight = { choice = [0.1, 1, 10] }\n"
        '[search."bce+gdpp"]\n'
        "beta1 = { uniform = [0.0, 0.9] }\n"
        "[budget]\ntrials = 8\ntuning_seeds = [0, 1, 2]\nconfirm_seeds = [100, 101]\n"
        'objective = { metric = "hq_percent", aggregate = "median", constraints = ["modes >= 6"] }\n'
        'sampler = "tpe"\nsampler_seed = 7\n'
    )
    suite = load_suite(str(path))
    assert suite.decision == DecisionConfig(primary=("modes", "hq_percent"))
    assert suite.search == (
        ("lr_g", Distribution("log_uniform", (1e-4, 1e-2))),
        ("d_steps", Distribution("int_uniform", (1, 3))),
        ("weight", Distribution("choice", (0.1, 1.0, 10.0))),
    )
    # the sub-table's variant is canonicalised, as suite.variants are
    assert suite.search_per_variant == (("bce+gdpp@1", (("beta1", Distribution("uniform", (0.0, 0.9))),)),)
    assert suite.search_of("bce+gdpp@1")["beta1"] == Distribution("uniform", (0.0, 0.9))
    assert "beta1" not in suite.search_of("bce")
    assert suite.budget == Budget(
        trials=8,
        tuning_seeds=(0, 1, 2),
        confirm_seeds=(100, 101),
        objective=Objective("hq_percent", "median", ("modes >= 6",)),
        sampler="tpe",
        sampler_seed=7,
    )
    assert suite.seeds == (0, 1)  # kept for `run`; `tune` uses the budget's seeds


def test_defaults_and_the_types_of_bounds():
    suite = parse_suite(
        searched({"d_steps": {"choice": [1, 2]}, "eps": {"uniform": [1, 2]}}, objective={"metric": "modes"})
    )
    assert suite.budget is not None
    assert (suite.budget.sampler, suite.budget.sampler_seed) == ("random", 0)
    assert suite.budget.objective == Objective("modes", "mean", ())
    search = dict(suite.search)
    assert search["d_steps"].values == (1, 2) and all(type(v) is int for v in search["d_steps"].values)
    assert search["eps"].values == (1.0, 2.0) and all(type(v) is float for v in search["eps"].values)
    plain = parse_suite(BASE)
    assert (plain.decision, plain.search, plain.search_per_variant, plain.budget) == (
        DecisionConfig(),
        (),
        (),
        None,
    )


def test_every_run_records_the_suite_decision():
    suite = parse_suite(study(decision={"descriptive": True, "primary": ["modes"]}))
    specs = expand(suite)
    assert len(specs) == 6
    assert {spec.decision for spec in specs} == {DecisionConfig(descriptive=True, primary=("modes",))}


def test_the_searchable_fields_are_optimisation_fields():
    assert set(SEARCHABLE_FIELDS) == {
        "lr_g",
        "lr_d",
        "beta1",
        "beta2",
        "eps",
        "d_steps",
        "d_real_target",
        "d_fake_target",
        "g_target",
    }


def test_weight_applies_to_variants_with_a_term_only():
    suite = parse_suite(searched({"weight": {"log_uniform": [0.1, 10]}}))
    assert "weight" in suite.search_of("bce+gdpp@1")  # the tuner skips it where there is no term
    with pytest.raises(
        UserError, match=r'\[search."bce\+pacgan2"\] weight: bce\+pacgan2 has no diversity term'
    ):
        parse_suite(searched({"bce+pacgan2": {"weight": {"choice": [1, 2]}}}))


PRIMARY_SMOKE = {
    "name": "two",
    "datasets": ["ring8", "mnist"],
    "variants": ["bce", "bce+gdpp"],
    "eval": {"metrics": ["modes2d"]},
    "per_dataset": {"mnist": {"model": "dcgan28", "eval": {"metrics": ["mnist_classes"]}}},
}


def test_primary_values_of_several_datasets_come_from_each_dataset_metrics():
    suite = parse_suite({**PRIMARY_SMOKE, "decision": {"primary": ["modes", "classes"]}})
    assert suite.decision.primary == ("modes", "classes")
    with pytest.raises(UserError, match=r"\[decision\]: primary names no value of dataset 'mnist'"):
        parse_suite({**PRIMARY_SMOKE, "decision": {"primary": ["modes"]}})
    # the objective must be measurable on every dataset
    with pytest.raises(UserError, match=r"objective: metric: 'modes' is not a compared value of mnist"):
        parse_suite(
            {**PRIMARY_SMOKE, "search": SEARCH, "budget": {**BUDGET, "objective": {"metric": "modes"}}}
        )


@pytest.mark.parametrize(
    "table,message",
    [
        # [decision]
        (
            study(decision={"underpowered": True}),
            r"\[decision\]: unknown key\(s\) underpowered.*allow-underpowered",
        ),
        (study(decision={"descriptive": "yes"}), r"\[decision\]: descriptive must be of type bool"),
        (study(decision={"primary": ["fid"]}), r"\[decision\]: primary value 'fid' is not a compared value"),
        (
            study(decision={"primary": ["modes", "modes"]}),
            r"\[decision\]: primary: 'modes' listed more than once",
        ),
        (study(decision={"primary": ["is_std"]}), "primary value 'is_std'"),
        # [search] fields
        (searched({"steps": {"int_uniform": [1, 2]}}), r"\[search\] steps: train.steps is not searchable"),
        (searched({"batch_size": {"choice": [64]}}), r"\[search\] batch_size: .*equal for every variant"),
        (
            searched({"precision": {"choice": [1]}}),
            r"\[search\] precision: train.precision is not searchable",
        ),
        (searched({"update": {"choice": [1]}}), "train.update is not searchable"),
        (searched({"lr": {"uniform": [0.1, 1]}}), r"\[search\]: unknown field 'lr'; searchable: lr_g"),
        (searched({"hinge": SEARCH}), r'\[search."hinge"\]: \'hinge\' is not one of the suite\'s variants'),
        (searched({"bce": {"lr": {"choice": [1]}}}), r'\[search."bce"\]: unknown field \'lr\''),
        (
            searched({"bce": {"steps": {"choice": [1]}}}),
            r'\[search."bce"\] steps: train.steps is not searchable',
        ),
        (searched({"bce+gdpp": SEARCH, "bce+gdpp@1": SEARCH}), r"second table for variant bce\+gdpp@1"),
        (searched({}), r"\[search\]: nothing is searched"),
        # distributions
        (searched({"lr_g": 0.1}), r"\[search\] lr_g: expected an inline table with exactly one of"),
        (searched({"lr_g": {"normal": [0, 1]}}), r"lr_g: unknown distribution kind\(s\) normal"),
        (searched({"lr_g": {}}), "lr_g: give exactly one of"),
        (searched({"lr_g": {"uniform": [0.1, 1], "choice": [1]}}), "lr_g: give exactly one of"),
        (searched({"lr_g": {"uniform": [0.1]}}), r"lr_g: uniform needs two bounds \[low, high\]"),
        (searched({"lr_g": {"uniform": [0.1, 0.2, 0.3]}}), "needs two bounds"),
        (
            searched({"lr_g": {"uniform": [0.2, 0.1]}}),
            r"lr_g: uniform range \[0.2, 0.1\] is empty or reversed",
        ),
        (searched({"lr_g": {"log_uniform": [0.1, 0.1]}}), "empty or reversed"),
        (searched({"beta1": {"log_uniform": [0, 0.5]}}), "beta1: log_uniform needs positive bounds"),
        (searched({"lr_g": {"uniform": [-1, 1]}}), r"lr_g: -1.0 is outside .*lr_g must be > 0"),
        (searched({"beta1": {"uniform": [0.5, 1.0]}}), r"beta1: 1.0 is outside .*must be in \[0, 1\)"),
        (searched({"beta2": {"choice": [0.9, 1.5]}}), r"beta2: 1.5 is outside"),
        (searched({"d_steps": {"int_uniform": [-1, 2]}}), r"d_steps: -1 is outside .*>= 0"),
        (searched({"g_target": {"uniform": [0.5, 1.5]}}), r"g_target: 1.5 is outside"),
        (searched({"d_steps": {"int_uniform": [1, 2.5]}}), "d_steps: int_uniform bounds must be integers"),
        (searched({"d_steps": {"uniform": [1, 3]}}), "d_steps takes integers; use int_uniform or choice"),
        (searched({"d_steps": {"choice": [1, 2.5]}}), "d_steps takes integers"),
        (searched({"lr_g": {"int_uniform": [1, 3]}}), "lr_g is a real number; use uniform or log_uniform"),
        (searched({"lr_g": {"choice": []}}), "lr_g: choice is empty"),
        (searched({"lr_g": {"choice": [1e-3, 0.001]}}), "lr_g: choice: 0.001 listed more than once"),
        (searched({"lr_g": {"choice": ["fast"]}}), "lr_g: choice must be a list of finite numbers"),
        (searched({"lr_g": {"choice": [math.inf]}}), "finite numbers"),
        (searched({"lr_g": {"uniform": [True, 2]}}), "finite numbers"),
        (searched({"weight": {"uniform": [0, 1]}}), r"weight: 0.0 is outside weight's allowed values.*> 0"),
        (
            searched({"d_fake_target": {"uniform": [0.0, 0.6]}, "d_real_target": {"uniform": [0.5, 1.0]}}),
            "keep every d_fake_target below every d_real_target",
        ),
        (searched({"d_fake_target": {"uniform": [0.5, 1.0]}}), "d_fake_target must be below"),
        # a searched weight on a variant that fixes it
        (
            {**searched({"weight": {"choice": [1, 2]}}), "variants": ["bce", "bce+gdpp@3"]},
            r"weight: variant 'bce\+gdpp@3' fixes the weight that is searched; list it as 'bce\+gdpp'",
        ),
        (
            {**searched({"bce+gdpp@1": {"weight": {"choice": [1, 2]}}}), "variants": ["bce", "bce+gdpp@1"]},
            r'\[search."bce\+gdpp@1"\] weight: variant \'bce\+gdpp@1\' fixes',
        ),
        (
            {**searched({"weight": {"choice": [1, 2]}}), "variants": ["bce", "bce+gdpp+ms"]},
            "has 2 diversity terms and weight weighs one",
        ),
        # [budget] and [search] together
        (study(search=SEARCH), r"\[search\] needs a \[budget\] table"),
        (study(budget=BUDGET), r"\[budget\] needs a \[search\] table"),
        # [budget]
        (searched(SEARCH, trials=0), r"\[budget\]: trials \(per variant\) must be >= 1"),
        (searched(SEARCH, trials=2.5), r"\[budget\]: trials must be of type int"),
        (searched(SEARCH, tuning_seeds=[]), r"\[budget\]: tuning_seeds must not be empty"),
        (searched(SEARCH, confirm_seeds=[]), "confirm_seeds must not be empty"),
        (searched(SEARCH, tuning_seeds=[0, 0]), r"tuning_seeds: 0 listed more than once"),
        (searched(SEARCH, confirm_seeds=[0, 5, 1]), r"confirm_seeds share seed\(s\) 0, 1 with tuning_seeds"),
        (searched(SEARCH, sampler="grid"), "sampler must be one of random, tpe"),
        (
            searched(SEARCH, sampler_seed=-1),
            r"sampler_seed: a seed must be an integer in \[0, 2\*\*32\); got -1",
        ),
        (searched(SEARCH, sampler_seed=2**32), r"sampler_seed: a seed must be .*; got 4294967296"),
        (searched(SEARCH, tuning_seeds=[0, -1]), r"\[budget\]: tuning_seeds: a seed must be .*; got -1"),
        (
            searched(SEARCH, confirm_seeds=[2**63]),
            r"confirm_seeds: a seed must be .*; got 9223372036854775808",
        ),
        # seeds: integers in [0, 2**32) (a negative one made a folder seed--1, 2**63 a raw ValueError)
        (study(seeds=[0, -1]), r"study.toml: seeds: a seed must be an integer in \[0, 2\*\*32\); got -1"),
        (study(seeds=[2**63, 2**32]), "seeds: a seed must be .*; got 9223372036854775808, 4294967296"),
        (study(variant_seeds={"bce": [-2]}), r"\[variant_seeds\]: bce: a seed must be .*; got -2"),
        (searched(SEARCH, seeds=[1]), r"\[budget\]: unknown key\(s\) seeds"),
        ({**study(search=SEARCH), "budget": {"trials": 3}}, r"missing required key\(s\) tuning_seeds"),
        (searched(SEARCH, objective="modes"), r"\[budget\] objective: expected an inline table"),
        (searched(SEARCH, objective={"aggregate": "mean"}), "objective: missing required key metric"),
        (
            searched(SEARCH, objective={"metric": "fid"}),
            r"objective: metric: 'fid' is not a compared value of ring8",
        ),
        (
            searched(SEARCH, objective={"metric": "modes", "aggregate": "max"}),
            "aggregate must be one of mean, median",
        ),
        (searched(SEARCH, objective={"metric": "modes", "weight": 1}), r"objective: unknown key\(s\) weight"),
        (
            searched(SEARCH, objective={"metric": "modes", "constraints": ["modes => 6"]}),
            "objective: constraints: malformed constraint 'modes => 6'",
        ),
        (
            searched(SEARCH, objective={"metric": "modes", "constraints": ["fid <= 6"]}),
            r"constraint 'fid <= 6': 'fid' is not a compared value",
        ),
        # the Suite field is not a file key
        (study(search_per_variant={}), "unknown key search_per_variant"),
    ],
)
def test_mistakes_are_one_line_naming_file_table_and_field(table, message):
    with pytest.raises(UserError, match=message) as info:
        parse_suite(table, where="study.toml")
    text = str(info.value)
    assert text.startswith("study.toml") and "\n" not in text


@pytest.mark.parametrize(
    "text,parsed",
    [
        ("hq_percent >= 10", ("hq_percent", ">=", 10.0)),
        ("modes>6", ("modes", ">", 6.0)),
        ("  kl_uniform <= 0.5 ", ("kl_uniform", "<=", 0.5)),
        ("fid < 1e3", ("fid", "<", 1000.0)),
        ("kid >= -0.25", ("kid", ">=", -0.25)),
    ],
)
def test_constraints_parse(text, parsed):
    assert parse_constraint(text) == parsed


@pytest.mark.parametrize(
    "text",
    ["modes", "modes = 3", "modes => 3", ">= 3", "modes >= x", "modes >= nan", "modes >= inf", "1 >= 2"],
)
def test_malformed_constraints_are_user_errors(text):
    with pytest.raises(UserError, match="malformed constraint"):
        parse_constraint(text)


@pytest.mark.parametrize(
    "text,value,holds",
    [
        ("modes >= 6", 6.0, True),
        ("modes >= 6", 5.9, False),
        ("modes > 6", 6.0, False),
        ("modes > 6", 6.5, True),
        ("fid <= 30", 30.0, True),
        ("fid <= 30", 30.1, False),
        ("fid < 30", 30.0, False),
        ("fid < 30", 29.0, True),
        ("modes >= 6", math.nan, False),
        ("fid <= 30", math.nan, False),
        ("modes > -1", math.nan, False),
    ],
)
def test_constraint_holds(text, value, holds):
    assert constraint_holds(text, value) is holds
