"""`gdpp-bench tune` across processes: a trial left running by a killed process is retried with
its values and its runs resume, also from the study's archive in a fresh results folder; two
processes on one storage share the budget without drawing a trial twice. These start real
processes: the processes are the point."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
from conftest import gdpp_bench
from test_tune import assert_budget_exactly_spent, storage_trials, tune_args, write_suite

from gdpp_bench.rundir import find_run_dirs
from gdpp_bench.tuning import BUDGET_INDEX, counted_trials


def tune_killed_at_trial_1_checkpoint(args: list[str], results: Path, seed: int = 100) -> None:
    """Run `gdpp-bench ARGS` and SIGKILL it once trial 1's run at tuning seed `seed` has its first
    checkpoint and is still training."""
    process = subprocess.Popen(
        [sys.executable, "-m", "gdpp_bench.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        checkpoint = results / "tiny-tune" / "bce" / "trial-001" / f"seed-{seed}" / "checkpoint.pt"
        while not checkpoint.exists():
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()


def test_sigkill_during_a_trial_then_the_same_command_completes_the_budget_exactly(tmp_path):
    # killed at trial 1's first checkpoint (step 25), 125 steps before the trial's end; evaluated
    # at the end only (an evaluation's sample plot costs as much as a hundred steps)
    suite, results = write_suite(tmp_path, steps=150, every=150), tmp_path / "results"
    args = tune_args(suite, results, "--heartbeat", "1", "--variants", "bce")
    tune_killed_at_trial_1_checkpoint(args, results)
    running = [
        t
        for trials in storage_trials(results).values()
        for t in trials
        if t.state == optuna.trial.TrialState.RUNNING
    ]
    assert [t.user_attrs[BUDGET_INDEX] for t in running] == [1]  # left running by the killed process
    again = gdpp_bench(*args)  # the same command: the stale trial is failed, enqueued again, resumed
    assert again.returncode == 0, again.stderr
    assert "bce/trial-001/seed-100: resuming at step" in again.stdout
    assert_budget_exactly_spent(results, ("bce",))


def test_two_processes_on_one_storage_draw_disjoint_trials_that_spend_the_budget(tmp_path):
    suite, results = write_suite(tmp_path), tmp_path / "results"
    command = [sys.executable, "-m", "gdpp_bench.cli", *tune_args(suite, results, "--heartbeat", "1")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stdout + stderr
    taken = [set(re.findall(r"tiny-tune ring8 (\S+): trial (\d+) \(", stdout)) for stdout, _ in outputs]
    assert taken[0] and taken[1] and not taken[0] & taken[1]  # both drew, never the same trial
    assert taken[0] | taken[1] == {(v, str(i)) for v in ("bce", "bce+gdpp") for i in range(3)}
    assert_budget_exactly_spent(results)


def test_a_killed_study_continues_from_its_archive_in_a_fresh_results_folder(tmp_path):
    # A study's run folders may be lost between working sessions; its archive (the small records
    # and the storage, committed with the repository) is where it continues from. Killed in trial 1's
    # second tuning seed: the trial is retried from the archive, its finished first seed (archived
    # without its checkpoint) is kept as recorded, the killed seed trains again from step 0.
    suite, results = write_suite(tmp_path, steps=150, every=150), tmp_path / "results"
    suite.write_text(suite.read_text().replace("tuning_seeds = [100]", "tuning_seeds = [100, 101]"))
    args = tune_args(suite, results, "--heartbeat", "1", "--variants", "bce")
    tune_killed_at_trial_1_checkpoint(args, results, seed=101)
    archived = gdpp_bench(
        "archive", "--suite", "tiny-tune", "--results", str(results), "--out", str(tmp_path / "repo")
    )
    assert archived.returncode == 0, archived.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    shutil.copytree(tmp_path / "repo" / "tiny-tune", fresh / "tiny-tune")
    recorded = (fresh / "tiny-tune" / "bce" / "trial-001" / "seed-100" / "metrics.json").read_text()
    again = gdpp_bench(*tune_args(suite, fresh, "--heartbeat", "1", "--variants", "bce"))
    assert again.returncode == 0, again.stdout + again.stderr
    trained = set(re.findall(r"(bce/\S+/seed-\d+): training of 150", again.stdout))
    assert trained == {"bce/trial-001/seed-101", "bce/trial-002/seed-100", "bce/trial-002/seed-101"} | {
        f"bce/confirm/seed-{seed}" for seed in (0, 1)
    }
    assert "resuming at step" not in again.stdout
    assert (fresh / "tiny-tune" / "bce" / "trial-001" / "seed-100" / "metrics.json").read_text() == recorded
    assert sorted(counted_trials(storage_trials(fresh)["tiny-tune/ring8/bce"])) == [0, 1, 2]
    runs = find_run_dirs(fresh / "tiny-tune")
    assert len(runs) == 3 * 2 + 2 and all(run.is_done() for run in runs)
