"""The report of a tuned suite from fabricated run folders (nothing trains): runs.csv's recipe
columns, decision families per role, the pre-registered primary values and descriptive flag, the
trial table and selection `tune` confirms with, the expected best objective against the budget
(exact, with a bootstrap band), tuning.csv/tuning.md, the tuning figures and claims.md's sections."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from gdpp_bench.config import DecisionConfig, EvalConfig, Objective, RunSpec, TrainConfig
from gdpp_bench.registry import Registry
from gdpp_bench.report import build_report, figures
from gdpp_bench.report import html as report_html
from gdpp_bench.report.claims import decisions
from gdpp_bench.report.figures.base import plt, save_figure
from gdpp_bench.report.render import fmt
from gdpp_bench.report.tables import collect_runs, summarize
from gdpp_bench.report.tuning import (
    budget_curves,
    expected_best,
    expected_best_band,
    select_trials,
    trial_table,
)
from gdpp_bench.report.tuning_report import equal_cpu_table
from gdpp_bench.rundir import RunDir, write_json

SUITE = "tuned"
OBJECTIVE = Objective("kl_uniform", "mean", ("hq_percent >= 10",))
TRAIN = TrainConfig(steps=40, batch_size=64, log_every=10, checkpoint_every=10, update="simultaneous")
EVAL = EvalConfig(metrics=("modes2d",), samples=500)


def spec(
    variant: str,
    seed: int,
    role: str = "",
    trial: int = -1,
    label: str = "",
    dataset: str = "ring8",
    prefix: str = "",
    decision: DecisionConfig | None = None,
    trials: int = 5,
    **train: float,
) -> RunSpec:
    """A run's spec as `run` (role "") or `tune` (trial / confirm) makes it."""
    name = label or variant
    folder = {"": "", "trial": f"trial-{trial:03d}/", "confirm": "confirm/"}[role]
    return RunSpec(
        suite=SUITE,
        dataset=dataset,
        model="mlp2d",
        variant=variant,
        seed=seed,
        train=dataclasses.replace(TRAIN, **train),
        eval=EVAL,
        key=f"{prefix}{name}/{folder}seed-{seed}",
        label=label,
        role=role,
        trial=trial,
        objective=OBJECTIVE if role else None,
        trials=trials if role else 0,
        decision=decision or DecisionConfig(),
    )


def write_run(
    suite_dir: Path,
    run: RunSpec,
    values: dict[str, float] | None,
    cpu: float = 10.0,
    eval_s: float | None = None,
    old: bool = False,
) -> Path:
    """A finished run folder (config.json, metrics.json, DONE); `values` None: a diverged run;
    `old`: config.json as written before runs recorded label, role, trial, objective and decision."""
    run_dir = RunDir(suite_dir / run.key)
    data = run.to_dict()
    if old:
        for key in ("label", "role", "trial", "objective", "trials", "decision"):
            data.pop(key)
    write_json(run_dir.config, {"spec": data, "environment": {}})
    if values is None:
        run_dir.mark_done("failed", reason="diverged: non-finite g_loss by step 20", step=20, train_cpu_s=cpu)
        return run_dir.path
    protocol = {"modes2d": {"checkpoint": "final", "checkpoint_step": 40, "protocol": "quick"}}
    write_json(
        run_dir.metrics, {"values": values, "protocol": protocol, **({"wall_s": eval_s} if eval_s else {})}
    )
    run_dir.mark_done("done", step=40, train_cpu_s=cpu, train_wall_s=cpu)
    return run_dir.path


def read_table(path: Path) -> pd.DataFrame:
    """A report CSV with its `role` column as written ("" for ordinary runs)."""
    return pd.read_csv(path, dtype={"role": str}).fillna({"role": ""})


def ring(kl: float, hq: float = 50.0, modes: float = 8) -> dict[str, float]:
    return {"modes": modes, "hq_percent": hq, "kl_uniform": kl}


# --- a tuned suite: ordinary runs, 5 trials per variant at 2 tuning seeds, confirmation runs ------

TUNING_SEEDS = (100, 101)
CONFIRM_SEEDS = tuple(range(6))
WEIGHTS = (0.5, 1.0, 2.0, 4.0, 8.0)  # bce+gdpp's drawn weight per trial
# per variant and trial: kl_uniform at each tuning seed (None: that seed's run diverged), hq_percent
TRIALS = {
    "bce": [
        ((0.9, 1.1), 50),  # 1.0
        ((0.4, 0.6), 50),  # 0.5: the best feasible (ties with trial 3, the lower number wins)
        ((0.1, 0.1), 5),  # 0.1, but hq_percent 5 < 10: infeasible
        ((0.5, 0.5), 50),  # 0.5
        ((2.0, 2.2), 50),  # 2.1
    ],
    "bce+gdpp": [
        ((0.3, 0.5), 50),  # 0.4
        ((0.01, None), 50),  # failed: seed 101 diverged (its seed 100 would be the best)
        ((0.2, 0.2), 50),  # 0.2: the best feasible
        ((0.05, 0.05), 9.5),  # infeasible
        ((1.0, 1.0), 50),
    ],
}
SELECTED = {"bce": 1, "bce+gdpp": 2}


def trial_spec(label: str, trial: int, seed: int, role: str = "trial") -> RunSpec:
    variant = f"bce+gdpp@{WEIGHTS[trial]:g}" if label == "bce+gdpp" else "bce"
    return spec(variant, seed, role, trial, label if label != variant else "", lr_g=1e-3 * (trial + 1))


def write_trials(suite_dir: Path) -> None:
    for label, trials in TRIALS.items():
        for trial, (kls, hq) in enumerate(trials):
            for seed, kl in zip(TUNING_SEEDS, kls, strict=True):
                run = trial_spec(label, trial, seed)
                if kl is None:
                    write_run(suite_dir, run, None, cpu=3.0)
                else:  # bce's runs record 2 s of evaluation each, bce+gdpp's none
                    write_run(suite_dir, run, ring(kl, hq), cpu=10.0, eval_s=2.0 if label == "bce" else None)


def write_confirmations(
    suite_dir: Path, values: dict[str, list[float]], trials: dict[str, int] = SELECTED
) -> None:
    for label, kls in values.items():
        for seed, kl in zip(CONFIRM_SEEDS, kls, strict=True):
            write_run(suite_dir, trial_spec(label, trials[label], seed, "confirm"), ring(kl))


# ordinary runs: no difference (interleaved); confirmation runs: bce+gdpp's kl_uniform all lower
ORDINARY_KL = {"bce": [0.1, 0.3, 0.5, 0.7, 0.9, 1.1], "bce+gdpp@1": [0.2, 0.4, 0.6, 0.8, 1.0, 1.2]}
CONFIRM_KL = {"bce": [1.0, 1.1, 1.2, 1.3, 1.4, 1.5], "bce+gdpp": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """(suite folder, report files) of the tuned suite, its report built once (no figures); bce's
    ordinary runs are written as before runs recorded their role (no such fields in config.json)."""
    suite_dir = tmp_path_factory.mktemp("results") / SUITE
    for variant, kls in ORDINARY_KL.items():
        for seed, kl in enumerate(kls):
            write_run(suite_dir, spec(variant, seed), ring(kl), old=variant == "bce")
    write_trials(suite_dir)
    write_confirmations(suite_dir, CONFIRM_KL)
    return suite_dir, build_report(suite_dir, with_figures=False)


def test_runs_csv_names_each_runs_recipe_trial_and_drawn_values(tuned):
    suite_dir, written = tuned
    runs = read_table(written["runs.csv"])
    assert len(runs) == 12 + 20 + 12
    ordinary = runs[runs["role"] == ""]
    assert sorted(ordinary["variant"].unique()) == ["bce", "bce+gdpp@1"] and (ordinary["trial"] == -1).all()
    trials = runs[runs["role"] == "trial"]
    # the suite's variant name, its drawn weight in term_weight and the drawn settings beside it
    gdpp = trials[trials["variant"] == "bce+gdpp"].sort_values(["trial", "seed"])
    assert gdpp["term_weight"].tolist() == [w for w in WEIGHTS for _ in TUNING_SEEDS]
    assert gdpp["lr_g"].tolist() == pytest.approx([1e-3 * (t + 1) for t in range(5) for _ in TUNING_SEEDS])
    assert set(gdpp["run"]) == {f"bce+gdpp/trial-{t:03d}/seed-{s}" for t in range(5) for s in TUNING_SEEDS}
    assert {"lr_d", "beta1", "beta2", "d_steps"} <= set(runs.columns) and (runs["d_steps"] == 1).all()
    confirm = runs[runs["role"] == "confirm"]
    assert confirm.groupby("variant")["trial"].unique().map(list).to_dict() == {"bce": [1], "bce+gdpp": [2]}
    assert (confirm.loc[confirm["variant"] == "bce+gdpp", "term_weight"] == 2.0).all()
    assert (confirm["trials"] == 5).all() and (confirm["objective_metric"] == "kl_uniform").all()
    assert (confirm["objective_constraints"] == "hq_percent >= 10").all()
    # runs.csv's order: per variant its ordinary runs, its confirmation runs, then its trials
    bce = runs[runs["variant"] == "bce"]
    assert bce["role"].tolist() == [""] * 6 + ["confirm"] * 6 + ["trial"] * 10


@pytest.mark.parametrize("prefix", ["", "ring8/"])
def test_an_unreadable_run_keeps_the_recipe_its_folder_names(tmp_path, prefix):
    suite_dir = tmp_path / SUITE
    other = "cifar10/" if prefix else ""  # a multi-dataset suite's folders name the dataset
    write_run(suite_dir, spec("bce", 0, prefix=other, dataset="cifar10" if prefix else "ring8"), ring(1.0))
    for key in (f"{prefix}bce+gdpp/trial-007/seed-101", f"{prefix}bce/confirm/seed-3", f"{prefix}bce/seed-2"):
        (suite_dir / key).mkdir(parents=True)
        (suite_dir / key / "config.json").write_text('{"spec": ')  # truncated
    runs = collect_runs(suite_dir).set_index("run")
    assert runs.loc[
        f"{prefix}bce+gdpp/trial-007/seed-101", ["dataset", "variant", "role", "trial", "seed"]
    ].tolist() == [
        "ring8",
        "bce+gdpp",
        "trial",
        7,
        101,
    ]
    assert runs.loc[
        f"{prefix}bce/confirm/seed-3", ["dataset", "variant", "role", "trial", "seed"]
    ].tolist() == [
        "ring8",
        "bce",
        "confirm",
        -1,
        3,
    ]
    assert runs.loc[f"{prefix}bce/seed-2", ["dataset", "variant", "role", "trial", "seed"]].tolist() == [
        "ring8",
        "bce",
        "",
        -1,
        2,
    ]
    assert runs["status"].str.startswith("unreadable").sum() == 3


def test_verdicts_compare_runs_of_one_recipe_in_separate_holm_families(tuned):
    suite_dir, written = tuned
    decided = read_table(written["decisions.csv"])
    assert set(decided["role"]) == {"", "confirm"}  # trial runs are never tested
    # per family: one comparison x kl_uniform; modes (8) and HQ % (50), one value in every run
    # of these fabricated runs, are uninformative and left out of Holm
    assert (decided["comparisons"] == 1).all()
    constant = decided[decided["metric"] != "kl_uniform"]
    assert constant["verdict"].str.match(r"uninformative here: (8|50) in every run").all()
    kl = decided[decided["metric"] == "kl_uniform"].set_index("role")
    assert kl.loc["", ["variant", "reference", "n", "n_reference"]].tolist() == ["bce+gdpp@1", "bce", 6, 6]
    assert kl.loc["", "verdict"] == "no detectable difference at n = 6"
    assert kl.loc["confirm", ["variant", "reference"]].tolist() == ["bce+gdpp", "bce"]
    assert kl.loc["confirm", "verdict"] == "better"
    assert kl.loc["confirm", "mean"] == pytest.approx(np.mean(CONFIRM_KL["bce+gdpp"]))
    assert kl.loc["confirm", "reference_mean"] == pytest.approx(np.mean(CONFIRM_KL["bce"]))
    # all of one above the other at 6 vs 6: raw p = 2 / C(12, 6)
    assert kl.loc["confirm", "mannwhitney_p"] == pytest.approx(2 / math.comb(12, 6))
    claims = written["claims.md"].read_text()
    untuned = claims.index("## Suite recipe (untuned)")
    tuned_at = claims.index(
        "## Tuned, equal budget of 5 trials per variant (selection on tuning seeds only; verdicts on "
        "confirmation seeds)"
    )
    assert untuned < tuned_at
    assert "| bce+gdpp vs bce | kl_uniform ↓ | better |" in claims[tuned_at:]
    assert "| bce+gdpp@1 vs bce | kl_uniform ↓ | no detectable difference at n = 6 |" in claims[:tuned_at]
    assert "by the mean kl_uniform (lower is better) subject to hq_percent >= 10" in claims
    significance = read_table(written["significance.csv"])
    assert sorted(significance["role"].unique()) == ["", "confirm"] and len(significance) == 6


def test_summaries_keep_ordinary_and_confirmation_runs_apart(tuned):
    suite_dir, written = tuned
    summary = read_table(written["summary.csv"])
    kl = summary[summary["metric"] == "kl_uniform"].set_index(["role", "variant"])["mean"]
    assert kl.to_dict() == pytest.approx(
        {
            ("", "bce"): np.mean(ORDINARY_KL["bce"]),
            ("", "bce+gdpp@1"): np.mean(ORDINARY_KL["bce+gdpp@1"]),
            ("confirm", "bce"): np.mean(CONFIRM_KL["bce"]),
            ("confirm", "bce+gdpp"): np.mean(CONFIRM_KL["bce+gdpp"]),
        }
    )
    assert (summary["n"] == 6).all()
    # each recipe has its own best: bce+gdpp@1 is not the ordinary best of kl_uniform, bce+gdpp the tuned
    best = summary[(summary["metric"] == "kl_uniform") & summary["best"]]
    assert sorted(zip(best["role"], best["variant"], strict=True)) == [("", "bce"), ("confirm", "bce+gdpp")]
    markdown = written["summary.md"].read_text()
    assert "### ring8\n" in markdown
    assert "### ring8: tuned, equal budget of 5 trials per variant" in markdown
    assert "20 trial runs (1 failed or unfinished)" in markdown
    assert (
        "Runs not in the summary" not in markdown
    )  # the failed trial run is the search's, listed in tuning.md
    latex = written["summary.tex"].read_text()
    assert latex.count(r"\begin{table}") == 2 and "tuned, equal budget of 5 trials" in latex


# --- the pre-registered decision: primary values, descriptive, underpowered ---------------------------


def write_ordinary(suite_dir: Path, decision: DecisionConfig) -> None:
    """bce against bce+gdpp@1 at 6 seeds each: bce+gdpp@1 better on kl_uniform and hq_percent, the
    same modes (7 or 8: informative, not one value everywhere)."""
    for seed in range(6):
        write_run(
            suite_dir,
            spec("bce", seed, decision=decision),
            ring(1.0 + seed / 10, hq=40 + seed, modes=7 + seed % 2),
        )
        write_run(
            suite_dir,
            spec("bce+gdpp@1", seed, decision=decision),
            ring(0.1 + seed / 10, hq=60 + seed, modes=8 - seed % 2),
        )


def test_only_primary_values_enter_holm_and_the_others_are_descriptive(tmp_path):
    suite_dir = tmp_path / SUITE
    write_ordinary(suite_dir, DecisionConfig(primary=("kl_uniform",)))
    runs = collect_runs(suite_dir)
    table = decisions(runs, "bce").set_index("metric")
    raw = 2 / math.comb(12, 6)
    # a family of one: the Holm p is the raw p (over 3 values it would be 3 times it)
    assert table.loc["kl_uniform", ["comparisons", "primary", "verdict"]].tolist() == [1, True, "better"]
    assert table.loc["kl_uniform", "mannwhitney_p_holm"] == pytest.approx(raw)
    for metric in ("hq_percent", "modes"):
        assert (
            table.loc[metric, "verdict"] == "descriptive (not primary)" and not table.loc[metric, "primary"]
        )
        assert math.isnan(table.loc[metric, "mannwhitney_p_holm"])
    assert table.loc["hq_percent", "mannwhitney_p"] == pytest.approx(raw)  # the raw p and interval stay
    assert table.loc["hq_percent", "difference"] == pytest.approx(20.0)
    assert (
        15
        <= table.loc["hq_percent", "difference_low"]
        < 20
        < table.loc["hq_percent", "difference_high"]
        <= 25
    )
    claims = build_report(suite_dir, with_figures=False)["claims.md"].read_text()
    assert "Primary values: `kl_uniform`; only they enter Holm" in claims
    assert "| bce+gdpp@1 vs bce | hq_percent ↑ | descriptive (not primary) |" in claims
    significance = pd.read_csv(tmp_path / SUITE / "report" / "significance.csv")
    assert significance.set_index("metric")["mannwhitney_p_holm"].isna().to_dict() == {
        "modes": True,
        "hq_percent": True,
        "kl_uniform": False,
    }


def test_a_descriptive_suite_claims_no_better_or_worse(tmp_path):
    suite_dir = tmp_path / SUITE
    write_ordinary(suite_dir, DecisionConfig(descriptive=True, underpowered=True))
    table = decisions(collect_runs(suite_dir), "bce").set_index("metric")
    assert table.loc["kl_uniform", "verdict"] == "descriptive"  # Holm p < alpha: better, were it powered
    assert table.loc["kl_uniform", "mannwhitney_p_holm"] == pytest.approx(3 * 2 / math.comb(12, 6))
    assert table.loc["kl_uniform", "difference"] == pytest.approx(-0.9)
    assert table.loc["modes", "verdict"] == "no detectable difference at n = 6"
    claims = build_report(suite_dir, with_figures=False)["claims.md"].read_text()
    top = claims[: claims.index("## ")]
    assert "**Descriptive, not powered for a verdict**" in top
    assert "**Run with --allow-underpowered: the design could not reach alpha**" in top
    assert "| better |" not in claims and "| worse |" not in claims
    summary = (suite_dir / "report" / "summary.md").read_text()
    assert "*" not in summary.replace("**", "")  # no significance stars in a descriptive suite
    assert (
        "<b>Descriptive, not powered for a verdict</b>" in (suite_dir / "report" / "index.html").read_text()
    )


def test_runs_without_the_decision_fields_decide_as_before(tmp_path):
    suite_dir = tmp_path / SUITE
    write_ordinary(suite_dir, DecisionConfig())
    runs = collect_runs(suite_dir)
    old = runs.drop(columns=[c for c in runs.columns if c.startswith("decision_") or c in ("role", "trial")])
    assert decisions(runs, "bce").equals(decisions(old, "bce"))
    verdicts = decisions(old, "bce").set_index("metric")["verdict"].to_dict()
    assert verdicts == {
        "modes": "no detectable difference at n = 6",
        "hq_percent": "better",
        "kl_uniform": "better",
    }
    claims = build_report(suite_dir, with_figures=False)["claims.md"].read_text()
    assert "Primary values" not in claims and "Descriptive" not in claims and "recipe" not in claims
    assert "\n## ring8\n" in claims  # an untuned suite's claims keep their layout


# --- the trial table and the selection `tune` confirms with ---------------------------------------


def test_trial_table_aggregates_each_trial_over_its_tuning_seeds(tuned):
    suite_dir, _ = tuned
    table = trial_table(collect_runs(suite_dir)).set_index(["variant", "trial"])
    assert len(table) == 10 and not table["selected"].any()
    assert table.loc[("bce", 0), "objective"] == pytest.approx(1.0)
    assert table.loc[("bce", 2), ["objective", "hq_percent", "feasible", "failed"]].tolist() == [
        pytest.approx(0.1),
        5,
        False,
        False,
    ]
    assert table.loc[("bce+gdpp", 1), ["status", "failed", "feasible"]].tolist() == ["failed", True, False]
    assert math.isnan(table.loc[("bce+gdpp", 1), "objective"])
    assert table.loc[("bce+gdpp", 3), "feasible"] == False  # noqa: E712 (hq_percent 9.5 < 10)
    assert table.loc[("bce+gdpp", 2), ["term_weight", "lr_g", "seeds"]].tolist() == [
        2.0,
        pytest.approx(3e-3),
        2,
    ]
    # CPU: training seconds of its runs plus their evaluation seconds
    assert table.loc[("bce", 0), "cpu_s"] == pytest.approx(2 * (10 + 2))
    assert table.loc[("bce+gdpp", 1), "cpu_s"] == pytest.approx(10 + 3)
    assert (table["higher_is_better"] == False).all()  # noqa: E712 (kl_uniform: lower is better)


def _hand_trials(rows: list[tuple], metric: str = "kl_uniform", aggregate: str = "mean") -> pd.DataFrame:
    """Trial runs as runs.csv rows: (variant, trial, seed, status, metric value, hq_percent)."""
    return pd.DataFrame(
        [
            {
                "suite": SUITE,
                "dataset": "ring8",
                "variant": variant,
                "seed": seed,
                "role": "trial",
                "trial": trial,
                "status": status,
                metric: value,
                "hq_percent": hq,
                "train_cpu_s": 1.0,
                "objective_metric": metric,
                "objective_aggregate": aggregate,
                "objective_constraints": "hq_percent >= 10",
            }
            for variant, trial, seed, status, value, hq in rows
        ]
    )


def test_trial_table_takes_the_recorded_aggregate_and_marks_unfinished_trials():
    runs = _hand_trials(
        [("bce", 0, s, "done", v, 50) for s, v in ((0, 1.0), (1, 2.0), (2, 10.0))]
        + [("bce", 1, s, "done", 0.5, 50) for s in (0, 1)]  # seed 2 not yet started
        + [
            ("bce", 2, 0, "done", 0.5, 50),
            ("bce", 2, 1, "incomplete", None, None),
            ("bce", 2, 2, "done", 1, 50),
        ],
        aggregate="median",
    )
    table = trial_table(runs).set_index("trial")
    assert table.loc[0, ["objective", "status", "feasible"]].tolist() == [
        2.0,
        "done",
        True,
    ]  # median, not 4.33
    assert table.loc[1, "status"] == "incomplete" and table.loc[2, "status"] == "incomplete"
    assert table.loc[[1, 2], "objective"].isna().all() and not table.loc[[1, 2], "feasible"].any()
    assert select_trials(table.reset_index())["trial"].tolist() == [0]


def test_select_trials_feasible_first_in_the_metrics_direction_ties_to_the_lowest_trial(tuned):
    suite_dir, _ = tuned
    chosen = select_trials(trial_table(collect_runs(suite_dir))).set_index("variant")
    assert chosen["trial"].to_dict() == SELECTED and chosen["selected"].all() and chosen["feasible"].all()
    # higher is better: hq_percent as the objective picks the highest
    runs = _hand_trials(
        [("bce", t, 0, "done", v, v) for t, v in enumerate((40.0, 70.0, 70.0, 20.0))], "hq_percent"
    )
    assert select_trials(trial_table(runs))["trial"].tolist() == [1]
    # no feasible trial: the best of the others, flagged; a variant whose trials all failed: no row
    runs = _hand_trials(
        [("bce", t, 0, "done", v, 5) for t, v in enumerate((0.3, 0.2, 0.4))]
        + [("bce", 3, 0, "failed: diverged", None, None)]
        + [("hinge", 0, 0, "failed: diverged", None, None)]
    )
    chosen = select_trials(trial_table(runs))
    assert chosen[["variant", "trial", "feasible"]].values.tolist() == [["bce", 1, False]]


def test_selection_reads_no_confirmation_run(tmp_path):
    suite_dir = tmp_path / SUITE
    write_trials(suite_dir)
    before = select_trials(trial_table(collect_runs(suite_dir)))
    # confirmation runs claiming the infeasible trials, with values that would make them the best
    extreme = {"bce": [0.0] * 6, "bce+gdpp": [0.0] * 6}
    write_confirmations(suite_dir, extreme, {"bce": 2, "bce+gdpp": 3})
    for run in suite_dir.glob("*/confirm/seed-*/metrics.json"):
        data = json.loads(run.read_text())
        data["values"]["hq_percent"] = 100.0
        run.write_text(json.dumps(data))
    runs = collect_runs(suite_dir)
    assert (runs["role"] == "confirm").sum() == 12
    after = select_trials(trial_table(runs))
    pd.testing.assert_frame_equal(before, after)
    assert after.set_index("variant")["trial"].to_dict() == SELECTED


# --- the expected best objective against the budget -------------------------------------------------


def test_expected_best_of_k_trials_by_hand():
    expected, p_none = expected_best([1, 2, 3], higher_is_better=False)
    assert expected == pytest.approx([2, 4 / 3, 1]) and p_none == pytest.approx([0, 0, 0])
    assert expected_best([3, 1, 2], higher_is_better=True)[0] == pytest.approx([2, 8 / 3, 3])
    # 4 trials, 2 usable (3 and 2): k = 2 draws both unusable with chance 1/6, the best is 2 in 3 of
    # the 6 pairs, 3 in 2 of them: (3 * 2 + 2 * 3) / 6 / (5 / 6) = 2.4
    expected, p_none = expected_best([3, math.nan, 1, 2], False, usable=[True, True, False, True])
    assert expected == pytest.approx([2.5, 2.4, 2.25, 2]) and p_none == pytest.approx([0.5, 1 / 6, 0, 0])
    expected, p_none = expected_best([1.0, 2.0], False, usable=[False, False])
    assert np.isnan(expected).all() and p_none == pytest.approx([1, 1])


def test_expected_best_matches_enumerating_every_draw():
    rng = random.Random(3)
    for _ in range(25):
        n = rng.randint(1, 7)
        values = [rng.choice([rng.uniform(0, 5), float(rng.randint(0, 3))]) for _ in range(n)]
        usable = [rng.random() < 0.7 for _ in range(n)]
        higher = rng.random() < 0.5
        expected, p_none = expected_best(values, higher, usable)
        for k in range(1, n + 1):
            bests = []
            for draw in itertools.combinations(range(n), k):
                ok = [values[i] for i in draw if usable[i]]
                bests.append((max if higher else min)(ok) if ok else None)
            found = [b for b in bests if b is not None]
            assert p_none[k - 1] == pytest.approx(1 - len(found) / len(bests))
            if found:
                assert expected[k - 1] == pytest.approx(sum(found) / len(found))
            else:
                assert math.isnan(expected[k - 1])


def test_the_band_is_a_fixed_seed_bootstrap_over_trials():
    # k = N: the best of a resample of 1..5 is 1 with chance 1 - 0.8^5 = 0.67 and above 3 with
    # chance (2/5)^5 = 0.01, below 2.5 %: the 95 % band is [1, 3]
    low, high = expected_best_band([1, 2, 3, 4, 5], higher_is_better=False)
    assert (low[-1], high[-1]) == (1.0, 3.0)
    again = expected_best_band([1, 2, 3, 4, 5], higher_is_better=False)
    assert np.array_equal(low, again[0]) and np.array_equal(high, again[1])
    assert expected_best_band([2.0] * 4, False) == (pytest.approx([2.0] * 4), pytest.approx([2.0] * 4))
    # maximising mirrors minimising the negated values
    low_max, high_max = expected_best_band([-1, -2, -3, -4, -5], higher_is_better=True)
    assert low_max == pytest.approx(-high) and high_max == pytest.approx(-low)


def test_budget_curves_per_variant_in_trials_and_cpu_seconds(tuned):
    suite_dir, written = tuned
    curves = budget_curves(trial_table(collect_runs(suite_dir)), resamples=500).set_index(["variant", "k"])
    # bce: feasible objectives 1.0, 0.5, 0.5, 2.1 of 5 trials; k = 5 holds them all
    assert curves.loc[("bce", 5), "expected_best"] == pytest.approx(0.5)
    assert curves.loc[("bce", 1), "expected_best"] == pytest.approx((1.0 + 0.5 + 0.5 + 2.1) / 4)
    assert curves.loc[("bce", 1), "p_none"] == pytest.approx(1 / 5)
    # CPU: k times the mean trial's (bce 24 s; bce+gdpp 20, 13, 20, 20, 20)
    assert curves.loc[("bce", 3), "cpu_s"] == pytest.approx(3 * 24)
    assert curves.loc[("bce+gdpp", 2), "cpu_s"] == pytest.approx(2 * 93 / 5)
    written_curves = pd.read_csv(written["budget.csv"])
    assert len(written_curves) == 10 and set(written_curves["variant"]) == {"bce", "bce+gdpp"}


def test_at_equal_cpu_each_variant_draws_the_trials_the_cheapest_budget_buys(tuned):
    suite_dir, written = tuned
    curves = budget_curves(trial_table(collect_runs(suite_dir)), resamples=500)
    table = equal_cpu_table(curves, "ring8", "bce").set_index("variant")
    # bce+gdpp's 5 trials cost 93 s, the cheaper whole budget; bce's trials cost 24 s: 3 fit in 93 s
    assert table.loc["bce+gdpp", "trials drawn"] == 5
    assert table.loc["bce", "trials drawn"] == 3 and table.loc["bce", "CPU s"] == pytest.approx(72)
    assert table.loc["bce+gdpp", "cost / bce"] == pytest.approx(93 / 5 / 24)
    by_k = curves.set_index(["variant", "k"])
    assert table.loc["bce", "expected best [95% band]"].startswith(fmt(by_k.loc[("bce", 3), "expected_best"]))
    assert "At equal CPU time (reported, not tested)" in Path(written["tuning.md"]).read_text()


def test_tuning_md_states_the_cpu_time_the_study_took(tuned):
    suite_dir, written = tuned
    runs = collect_runs(suite_dir)
    study = runs[runs["role"].isin(["trial", "confirm"])]
    assert len(study) < len(runs)  # the ordinary runs beside the study are not its cost
    total = sum(
        pd.to_numeric(study[c], errors="coerce").fillna(0).sum() for c in ("train_cpu_s", "eval_wall_s")
    )
    text = Path(written["tuning.md"]).read_text()
    assert f"{total / 3600:.2f} CPU-hours" in text and "tuning trials" in text


# --- tuning.csv, tuning.md, figures and index.html -------------------------------------------------


def test_tuning_files_list_every_trial_and_the_confirmed_configuration(tuned):
    suite_dir, written = tuned
    trials = pd.read_csv(written["tuning.csv"])
    assert len(trials) == 10
    for column in ("dataset", "variant", "trial", "lr_g", "term_weight", "objective", "hq_percent", "cpu_s"):
        assert column in trials.columns
    assert trials.loc[trials["selected"], ["variant", "trial"]].values.tolist() == [
        ["bce", 1],
        ["bce+gdpp", 2],
    ]
    assert trials.groupby("variant")["failed"].sum().to_dict() == {"bce": 0, "bce+gdpp": 1}
    text = written["tuning.md"].read_text()
    lines = text.splitlines()
    (gdpp,) = [line for line in lines if line.startswith("| bce+gdpp ") and "confirmed" in line]
    assert "| 2 |" in gdpp.replace("  ", " ").replace("  ", " ") or " 2 " in gdpp
    assert "0, 1, 2, 3, 4, 5" in gdpp and "0.003" in gdpp
    (counts,) = [
        line
        for line in lines
        if line.startswith("| bce+gdpp ") and "confirmed" not in line and "[" not in line
    ]
    cells = [cell.strip() for cell in counts.strip("|").split("|")]
    # variant, trials, unfinished, failed, divergence rate, met the constraints, best objective, CPU s
    assert cells[:7] == ["bce+gdpp", "5", "0", "1", "0.2", "3", "0.2"]
    assert "every variant 5 trials" in text and "subject to hq_percent >= 10" in text
    assert "Expected best objective against the budget" in text


def test_tuning_figures_are_drawn_and_linked_from_index_html(tuned, tmp_path, monkeypatch):
    """The report's registered figures: the two tuning figures as registered, and in place of the
    others (drawn and tested in test_report_figures) one that records the runs it is given."""
    suite_dir, _ = tuned
    given: list[set[str]] = []

    def recorder(runs, dataset, metric, stem, baseline):
        given.append(set(runs["role"]))
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.plot(np.arange(50.0) ** 0.5)
        return save_figure(fig, stem)

    registry = Registry("figure")
    registry.register("points", per="metric", caption="{metric} on {dataset}")(recorder)
    for name in ("tuning", "budget"):
        registry.register(name, **figures.FIGURES.meta(name))(figures.FIGURES.get(name))
    monkeypatch.setattr(figures, "FIGURES", registry)
    monkeypatch.setattr(report_html, "FIGURES", registry)
    written = build_report(suite_dir, tmp_path / "report")
    # each compared recipe's figures drawn from its own runs, trial runs never among them
    assert sorted(map(sorted, given)) == [[""]] * 3 + [["confirm"]] * 3
    assert "figures/points_ring8_kl_uniform.png" in written
    for name in ("figures/tuning_ring8.png", "figures/budget_ring8.png"):
        with Image.open(written[name]) as image:
            assert image.width > 400 and image.height > 300
            assert len(np.unique(np.asarray(image.convert("L")))) > 10
    index = written["index.html"].read_text()
    links = ("figures/tuning_ring8.png", "figures/budget_ring8.png", "tuning.md", "tuning.csv", "budget.csv")
    for link in links:
        assert f'href="{link}"' in index or f"href='{link}'" in index
        assert (written["index.html"].parent / link).is_file()
    assert "Tuned (confirmation seeds): kl_uniform on ring8" in index and "Selected configurations" in index
    tuned_at = index.index("ring8: tuned, equal budget of 5 trials")
    assert index.index("figures/points_ring8_kl_uniform.png") < tuned_at
    assert index.index("figures/tuned/points_ring8_kl_uniform.png") > tuned_at
    assert "1 of 20 tuning trial runs failed" in index


def test_an_untuned_suite_has_no_tuning_files_or_figures(tmp_path):
    suite_dir = tmp_path / SUITE
    write_ordinary(suite_dir, DecisionConfig())
    runs = collect_runs(suite_dir)
    assert trial_table(runs).empty and budget_curves(trial_table(runs)).empty
    assert figures.objective_by_trial(runs, suite_dir, "ring8", tmp_path / "t") == []
    assert figures.best_against_budget(runs, suite_dir, "ring8", tmp_path / "b") == []
    written = build_report(suite_dir, with_figures=False)
    assert not {"tuning.csv", "tuning.md", "budget.csv"} & set(written)
    assert set(summarize(runs)["role"]) == {""}
