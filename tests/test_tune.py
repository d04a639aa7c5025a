"""`gdpp-bench tune`: equal budgets drawn by Optuna, reproducible draws, a killed process's trial
retried, two processes sharing one storage, confirmation on fresh seeds, and the API."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import gdpp_bench

import gdpp_bench as api
from gdpp_bench.api import RunsNotDone
from gdpp_bench.config import Budget, Objective
from gdpp_bench.rundir import RunDir, find_run_dirs
from gdpp_bench.suites import load_suite
from gdpp_bench.tuning import STORAGE_FILE, counted_trials, draw_budget, search_space

# 2 variants x 3 trials x 1 tuning seed, then 2 confirmation seeds: a study in miniature (at a
# batch of 16, evaluated once in 50 steps: a run's cost is mostly its evaluations' sample plots)
SUITE = """name = "tiny-tune"
dataset = "ring8"
model = "mlp2d"
variants = ["bce", "bce+gdpp"]
seeds = [0]
[train]
steps = STEPS
batch_size = 16
update = "simultaneous"
log_every = 25
checkpoint_every = 25
[eval]
every = EVERY
metrics = ["modes2d"]
samples = 300
[search]
lr_g = { log_uniform = [1e-4, 3e-3] }
lr_d = { log_uniform = [1e-4, 3e-3] }
beta1 = { choice = [0.0, 0.5] }
weight = { log_uniform = [0.1, 10] }
[budget]
trials = 3
tuning_seeds = [100]
confirm_seeds = [0, 1]
objective = { metric = "kl_uniform", constraints = ["hq_percent >= 0"] }
[decision]
descriptive = true
"""


def write_suite(tmp_path: Path, steps: int = 50, every: int = 50) -> Path:
    path = tmp_path / "tiny-tune.toml"
    path.write_text(SUITE.replace("STEPS", str(steps)).replace("EVERY", str(every)))
    return path


def tune_args(suite: Path, results: Path, *extra: str) -> list[str]:
    return ["tune", "--suite", str(suite), "--results", str(results), "--device", "cpu", *extra]


def storage_trials(results: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """Study name -> its trials, read from the suite's default storage."""
    storage = f"sqlite:///{results / 'tiny-tune' / STORAGE_FILE}"
    return {
        summary.study_name: optuna.load_study(study_name=summary.study_name, storage=storage).trials
        for summary in optuna.get_all_study_summaries(storage)
    }


def assert_budget_exactly_spent(results: Path, variants: tuple[str, ...] = ("bce", "bce+gdpp")) -> None:
    """Every variant: 3 finished trials with budget indices 0-2, each once (a trial failed by the
    heartbeat or a Ctrl-C and enqueued again is not counted), their run folders done, and the
    confirmation runs of the selected trial at seeds 0 and 1."""
    by_study = {name: sorted(counted_trials(trials)) for name, trials in storage_trials(results).items()}
    assert by_study == {f"tiny-tune/ring8/{variant}": [0, 1, 2] for variant in variants}
    folders = sorted(run.path.relative_to(results / "tiny-tune").as_posix() for run in find_run_dirs(results))
    assert folders == sorted(
        [
            f"{variant}/{folder}/seed-{seed}"
            for variant in variants
            for folder, seeds in (
                ("confirm", (0, 1)),
                ("trial-000", (100,)),
                ("trial-001", (100,)),
                ("trial-002", (100,)),
            )
            for seed in seeds
        ]
    )
    assert all(RunDir(results / "tiny-tune" / f).is_done() for f in folders)


def test_the_same_sampler_seed_draws_the_same_values_and_another_seed_others(tmp_path):
    suite = load_suite(str(write_suite(tmp_path)))
    space = search_space(suite, "bce+gdpp@1")
    assert sorted(space) == ["beta1", "lr_d", "lr_g", "weight"]
    assert sorted(search_space(suite, "bce")) == ["beta1", "lr_d", "lr_g"]  # no term: no weight
    budget = Budget(8, (100,), (0,), Objective("kl_uniform"), sampler_seed=0)
    first = draw_budget(budget, "ring8", "bce+gdpp@1", space)
    again = draw_budget(budget, "ring8", "bce+gdpp@1", space)
    other = draw_budget(
        Budget(8, (100,), (0,), Objective("kl_uniform"), sampler_seed=1), "ring8", "bce+gdpp@1", space
    )
    assert first == again and len(first) == 8
    assert first != other and all(a["lr_g"] != b["lr_g"] for a, b in zip(first, other, strict=True))
    assert all(
        1e-4 <= t["lr_g"] <= 3e-3 and 0.1 <= t["weight"] <= 10 and t["beta1"] in (0.0, 0.5) for t in first
    )
    # each trial's values depend on its number alone: a larger budget begins with the same trials
    longer = draw_budget(Budget(12, (100,), (0,), Objective("kl_uniform")), "ring8", "bce+gdpp@1", space)
    assert longer[:8] == first


def test_tune_end_to_end_equal_budget_then_confirmation(tmp_path):
    """A tiny ring8 tune (2 variants x 3 trials x 1 seed), the API's return, the report's rows."""
    suite, results = write_suite(tmp_path), tmp_path / "results"
    lines: list[str] = []
    runs = api.tune(str(suite), results, device="cpu", on_result=lambda o: lines.append(o["key"]))
    assert_budget_exactly_spent(results)
    confirm = runs[runs["role"] == "confirm"]
    assert sorted(confirm["variant"].unique()) == ["bce", "bce+gdpp"]  # the searched weight left out
    trials = runs[runs["role"] == "trial"]
    assert set(trials["seed"]) == {100} and set(confirm["seed"]) == {0, 1}
    # the confirmation runs trained the selected trial's values, which the trial's runs recorded
    for variant, block in confirm.groupby("variant"):
        (trial,) = set(block["trial"])
        chosen = trials[(trials["variant"] == variant) & (trials["trial"] == trial)].iloc[0]
        assert (block["lr_g"] == chosen["lr_g"]).all() and (
            block["term_weight"] == chosen["term_weight"]
        ).all()
    gdpp = trials[trials["variant"] == "bce+gdpp"]
    assert gdpp["term_weight"].nunique() == 3  # each trial its own drawn weight
    config = json.loads(
        (results / "tiny-tune" / "bce+gdpp" / "trial-000" / "seed-100" / "config.json").read_text()
    )
    assert config["spec"]["label"] == "bce+gdpp" and config["spec"]["role"] == "trial"
    assert config["spec"]["variant"].startswith("bce+gdpp@")
    # a second call trains nothing more: every run is skipped, the budget stays spent
    stamps = {run.path: run.done.stat().st_mtime_ns for run in find_run_dirs(results)}
    again = gdpp_bench(*tune_args(suite, results))
    assert again.returncode == 0, again.stderr
    assert {run.path: run.done.stat().st_mtime_ns for run in find_run_dirs(results)} == stamps
    assert_budget_exactly_spent(results)
    report = gdpp_bench("report", "--suite", "tiny-tune", "--results", str(results), "--no-figures")
    assert report.returncode == 0, report.stderr
    # the API raises what the command line refuses: other steps than the confirmation runs had
    with pytest.raises(RunsNotDone, match="train.steps") as raised:
        api.tune(str(suite), results, device="cpu", steps=60)
    assert {o["status"] for o in raised.value.outcomes} == {"incomplete"}


def test_tune_refuses_what_it_cannot_do(tmp_path):
    suite, results = write_suite(tmp_path), tmp_path / "results"
    plain = tmp_path / "plain.toml"
    head = SUITE.split("[search]")[0].replace("STEPS", "10").replace("EVERY", "10")
    plain.write_text(head + "[decision]\ndescriptive = true\n")
    for args, message in [
        (tune_args(plain, results), "has no [search] and [budget]"),
        (tune_args(suite, results, "--seeds", "1"), "No such option"),
    ]:
        result = gdpp_bench(*args)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not results.exists()


def test_dry_run_lists_every_trial_with_its_values_and_writes_nothing(tmp_path):
    suite, results = write_suite(tmp_path), tmp_path / "results"
    result = gdpp_bench(*tune_args(suite, results, "--dry-run"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("would train from step 0") == 6
    assert "then its best trial at seeds 0, 1" in result.stdout
    assert not results.exists()
