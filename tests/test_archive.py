"""`gdpp-bench archive`: a tuned suite's small records and storage, from which the report is
regenerated with the same tables and verdicts as from the run folders themselves."""

from __future__ import annotations

import shutil
from pathlib import Path

import optuna
import pandas as pd
import pytest
from conftest import gdpp_bench
from test_tune import storage_trials, write_suite

import gdpp_bench as api
from gdpp_bench.rundir import find_run_dirs

REPORT_FILES = ("claims.md", "decisions.csv", "summary.csv", "tuning.csv", "budget.csv")


@pytest.fixture(scope="module")
def tuned(tmp_path_factory) -> Path:
    tmp_path = tmp_path_factory.mktemp("archive")
    results = tmp_path / "results"
    api.tune(str(write_suite(tmp_path, steps=60)), results, device="cpu")
    return results


def report_of(results: Path, out: Path) -> Path:
    done = gdpp_bench(
        "report", "--suite", "tiny-tune", "--results", str(results), "--out", str(out), "--no-figures"
    )
    assert done.returncode == 0, done.stderr
    return out


def test_the_report_from_the_archive_equals_the_report_from_the_runs(tuned, tmp_path):
    archive = tmp_path / "archive"
    done = gdpp_bench("archive", "--suite", "tiny-tune", "--results", str(tuned), "--out", str(archive))
    assert done.returncode == 0, done.stderr
    runs = find_run_dirs(tuned / "tiny-tune")
    assert f"archived {len(runs)} runs ({5 * len(runs)} files)" in done.stdout and "tuning.db" in done.stdout
    kept = {p.name for p in (archive / "tiny-tune").rglob("*") if p.is_file()}
    assert kept == {"config.json", "metrics.json", "DONE", "log.csv", "evals.csv", "tuning.db"}
    assert len(find_run_dirs(archive / "tiny-tune")) == len(runs)

    original = report_of(tuned, tmp_path / "from-runs")
    regenerated = report_of(archive, tmp_path / "from-archive")
    for name in REPORT_FILES:
        assert (regenerated / name).read_text() == (original / name).read_text(), name
    ours, theirs = (pd.read_csv(d / "runs.csv").drop(columns="run") for d in (regenerated, original))
    pd.testing.assert_frame_equal(ours, theirs)

    # the storage copy holds the same trials, readable by Optuna
    copied = {
        s.study_name: optuna.load_study(
            study_name=s.study_name, storage=f"sqlite:///{archive / 'tiny-tune' / 'tuning.db'}"
        ).trials
        for s in optuna.get_all_study_summaries(f"sqlite:///{archive / 'tiny-tune' / 'tuning.db'}")
    }
    assert {k: [t.params for t in v] for k, v in copied.items()} == {
        k: [t.params for t in v] for k, v in storage_trials(tuned).items()
    }


def test_archive_refuses_a_missing_suite_and_an_out_inside_the_results(tuned, tmp_path):
    missing = gdpp_bench("archive", "--suite", "nope", "--results", str(tuned), "--out", str(tmp_path / "a"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: no results for suite 'nope'")
    assert len(missing.stderr.splitlines()) == 1 and not (tmp_path / "a").exists()
    inside = gdpp_bench(
        "archive", "--suite", "tiny-tune", "--results", str(tuned), "--out", str(tuned / "tiny-tune" / "copy")
    )
    assert inside.returncode == 2 and "overlaps the results being archived" in inside.stderr
    assert not (tuned / "tiny-tune" / "copy").exists()


def test_an_archived_run_keeps_its_recorded_metrics_and_refuses_to_be_measured_again(tuned, tmp_path):
    archive = tmp_path / "archive"
    assert (
        gdpp_bench(
            "archive", "--suite", "tiny-tune", "--results", str(tuned), "--out", str(archive)
        ).returncode
        == 0
    )
    before = {run.path: run.metrics.read_text() for run in find_run_dirs(archive / "tiny-tune")}
    kept = gdpp_bench("evaluate", "--suite", "tiny-tune", "--results", str(archive), "--device", "cpu")
    assert kept.returncode == 0, kept.stderr
    forced = gdpp_bench(
        "evaluate", "--suite", "tiny-tune", "--results", str(archive), "--device", "cpu", "--force"
    )
    assert forced.returncode == 2 and "Traceback" not in forced.stderr
    assert "finished without keeping its checkpoint (checkpoint.pt; an archive keeps none)" in forced.stderr
    assert {run.path: run.metrics.read_text() for run in find_run_dirs(archive / "tiny-tune")} == before


def test_a_run_archived_between_training_and_evaluation_is_kept_unfinished(tuned, tmp_path):
    # a study archived while it runs can catch a run whose DONE is written and metrics.json not yet:
    # without its checkpoint such a run could never be measured, so it is archived to train again
    results = tmp_path / "results"
    shutil.copytree(tuned, results)
    caught = find_run_dirs(results / "tiny-tune")[0]
    caught.metrics.unlink()
    done = gdpp_bench(
        "archive", "--suite", "tiny-tune", "--results", str(results), "--out", str(tmp_path / "a")
    )
    assert done.returncode == 0, done.stderr
    archived = tmp_path / "a" / "tiny-tune" / caught.path.relative_to(results / "tiny-tune")
    assert sorted(p.name for p in archived.iterdir()) == ["config.json", "evals.csv", "log.csv"]
    others = [run for run in find_run_dirs(tmp_path / "a" / "tiny-tune") if run.path != archived]
    assert others and all(run.is_done() and run.metrics.exists() for run in others)
