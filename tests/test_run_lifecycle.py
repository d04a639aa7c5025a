"""A run folder over its life, as `gdpp-bench run` meets it: changed settings (refused, --extend,
--force), eval-only changes, corrupt files, resumption under other code, exit codes, names that
would become paths, and non-finite settings."""

from __future__ import annotations

import dataclasses
import json
import re
from importlib import metadata

import pytest
import torch
from conftest import gdpp_bench, tensors, tiny_suite

from gdpp_bench.errors import UserError
from gdpp_bench.losses import TERMS
from gdpp_bench.rundir import RunDir, check_plain_name, read_json
from gdpp_bench.suites import EvalConfig, expand
from gdpp_bench.training import reconcile, train

RING = ["--suite", "ring8", "--device", "cpu", "--variants", "bce", "--seeds", "0"]


def ring8(results, *extra: str):
    return gdpp_bench("run", *RING, "--results", str(results), *extra)


def run_dir(results, variant: str = "bce", seed: int = 0) -> RunDir:
    return RunDir(results / "ring8" / variant / f"seed-{seed}")


def one_error_line(done, exit_code: int = 2) -> str:
    assert done.returncode == exit_code, (done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# --- changed settings ----------------------------------------------------------------------------


def test_more_steps_on_a_finished_run_is_refused_naming_the_field(tmp_path):
    assert ring8(tmp_path, "--steps", "20").returncode == 0
    before = {p.name: p.stat().st_mtime_ns for p in run_dir(tmp_path).path.iterdir()}
    line = one_error_line(ring8(tmp_path, "--steps", "30"))
    assert "trained with other settings: train.steps (recorded 20, asked 30)" in line
    assert "--extend" in line and "--force" in line
    assert {p.name: p.stat().st_mtime_ns for p in run_dir(tmp_path).path.iterdir()} == before


def test_extend_continues_to_the_tensors_of_a_run_trained_in_one_go(tmp_path):
    short, straight = tmp_path / "short", tmp_path / "straight"
    assert ring8(short, "--steps", "20").returncode == 0
    extended = ring8(short, "--steps", "30", "--extend")
    assert extended.returncode == 0, extended.stderr
    assert "extending from 20 to 30 steps" in extended.stderr
    assert ring8(straight, "--steps", "30").returncode == 0
    a, b = tensors(run_dir(short).checkpoint), tensors(run_dir(straight).checkpoint)
    assert a.keys() == b.keys() and len(a) > 10
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]
    config = read_json(run_dir(short).config)
    assert config["spec"]["train"]["steps"] == 30
    (event,) = config["history"]
    assert (event["event"], event["from_steps"], event["to_steps"]) == ("extended", 20, 30)
    assert event["done"]["step"] == 20 and "modes" in event["metrics"]
    assert read_json(run_dir(short).done)["step"] == 30
    assert read_json(run_dir(short).metrics)["protocol"]["modes2d"]["checkpoint_step"] == 30


def test_a_failed_run_cannot_be_extended(tmp_path, monkeypatch):
    def poisoned(real, fake, generated):
        return fake.features.sum() * float("nan")

    monkeypatch.setitem(TERMS._entries, "gdpp", poisoned)
    args = ["--variants", "bce+gdpp", "--steps", "200"]
    assert ring8(tmp_path, *args).returncode == 1
    line = one_error_line(ring8(tmp_path, *args[:2], "--steps", "300", "--extend"))
    assert "cannot be extended: it failed at step 200" in line


def test_an_early_stopped_run_cannot_be_extended(tmp_path):
    suite = tiny_suite(
        variants=("bce",),
        train={"steps": 40},
        eval=EvalConfig(every=10, select="modes", patience=1, samples=100),
    )
    (spec,) = expand(suite)
    run = RunDir(tmp_path / "run")
    status = train(spec, run, torch.device("cpu"), eval_hook=lambda generator, step: {"modes": 1.0})
    assert status["stopped_early"] and status["step"] == 20
    longer = dataclasses.replace(spec, train=dataclasses.replace(spec.train, steps=80))
    with pytest.raises(UserError, match="cannot be extended: it stopped early"):
        reconcile(longer, run, "extend")
    assert run.is_done()


def test_force_sets_the_old_folder_aside_and_trains_afresh(tmp_path):
    assert ring8(tmp_path, "--steps", "20").returncode == 0
    old = tensors(run_dir(tmp_path).checkpoint)
    forced = ring8(tmp_path, "--steps", "30", "--force")
    assert forced.returncode == 0, forced.stderr
    (aside,) = (tmp_path / "ring8" / "bce").glob("seed-0.replaced-*")
    assert re.fullmatch(r"seed-0\.replaced-\d{8}-\d{6}", aside.name)
    assert all(torch.equal(old[k], v) for k, v in tensors(aside / "checkpoint.pt").items())
    assert read_json(run_dir(tmp_path).done)["step"] == 30
    assert "moved" in forced.stderr and "train.steps changed" in forced.stderr
    report = gdpp_bench("report", "--suite", "ring8", "--results", str(tmp_path), "--no-figures")
    assert report.returncode == 0, report.stderr  # the folder set aside is not a run of the report


def test_extend_and_force_exclude_each_other(tmp_path):
    line = one_error_line(ring8(tmp_path, "--extend", "--force"))
    assert "--extend and --force exclude each other" in line


def test_eval_only_changes_measure_again_without_retraining(tmp_path):
    assert ring8(tmp_path, "--steps", "20").returncode == 0
    checkpoint = run_dir(tmp_path).checkpoint.stat().st_mtime_ns
    again = ring8(tmp_path, "--steps", "20", "--eval-samples", "300")
    assert again.returncode == 0, again.stderr
    assert "skipped (done)" in again.stdout
    assert run_dir(tmp_path).checkpoint.stat().st_mtime_ns == checkpoint
    protocol = read_json(run_dir(tmp_path).metrics)["protocol"]["modes2d"]
    assert protocol["generated_samples"] == 300 and protocol["settings"]["samples"] == 300
    assert read_json(run_dir(tmp_path).config)["spec"]["eval"]["samples"] == 300


def test_resuming_under_another_revision_warns_and_records_it(tmp_path):
    assert ring8(tmp_path, "--steps", "20").returncode == 0
    run = run_dir(tmp_path)
    config = read_json(run.config)
    config["environment"]["git"] = "0123abc"
    config["environment"]["packages"]["torch"] = "2.11.0"
    run.config.write_text(json.dumps(config))
    run.done.unlink()
    resumed = ring8(tmp_path, "--steps", "20")
    assert resumed.returncode == 0, resumed.stderr
    (warning,) = [line for line in resumed.stderr.splitlines() if line.startswith("warning:")]
    assert "resuming at step 20" in warning and "git 0123abc and torch 2.11.0" in warning
    (event,) = read_json(run.config)["history"]
    assert event["event"] == "resumed" and event["step"] == 20
    assert event["torch"] == metadata.version("torch") and event["git"] != "0123abc"


# --- corrupt files -----------------------------------------------------------------------------


def test_truncated_metrics_json_is_set_aside_and_measured_again(tmp_path):
    args = ["--seeds", "0,1", "--steps", "20"]
    assert ring8(tmp_path, *args).returncode == 0
    run = run_dir(tmp_path)
    good = read_json(run.metrics)
    run.metrics.write_text(run.metrics.read_text()[:40])
    report = gdpp_bench("report", "--suite", "ring8", "--results", str(tmp_path), "--no-figures")
    assert report.returncode == 1 and "Traceback" not in report.stderr  # written, a run left out
    assert report.stdout.splitlines()[-1].startswith(
        "report ring8: 2 runs, 1 done, 0 failed, 0 incomplete, 1 unreadable"
    )
    runs = (tmp_path / "ring8" / "report" / "runs.csv").read_text()
    assert "unreadable: metrics.json" in runs
    again = ring8(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert f"{run.metrics} is unreadable" in again.stderr and "metrics.json.corrupt" in again.stderr
    assert (run.path / "metrics.json.corrupt").read_text() == json.dumps(good, indent=2, sort_keys=True)[:40]
    assert read_json(run.metrics)["values"] == good["values"]


def test_truncated_done_is_set_aside_and_the_run_resumes(tmp_path):
    args = ["--seeds", "0,1", "--steps", "20"]
    assert ring8(tmp_path, *args).returncode == 0
    run = run_dir(tmp_path, seed=1)
    weights = tensors(run.checkpoint)
    run.done.write_text('{"status": "do')
    report = gdpp_bench("report", "--suite", "ring8", "--results", str(tmp_path), "--no-figures")
    assert (
        report.returncode == 1
        and "unreadable: DONE" in (tmp_path / "ring8" / "report" / "runs.csv").read_text()
    )
    again = ring8(tmp_path, *args)
    assert again.returncode == 0, again.stderr
    assert "DONE is unreadable" in again.stderr and (run.path / "DONE.corrupt").is_file()
    assert read_json(run.done)["status"] == "done"
    assert all(torch.equal(weights[k], v) for k, v in tensors(run.checkpoint).items())


def test_corrupt_config_refuses_that_run_and_the_others_go_on(tmp_path):
    args = ["--seeds", "0,1", "--steps", "20"]
    assert ring8(tmp_path, *args).returncode == 0
    broken = run_dir(tmp_path, seed=0)
    broken.config.write_text("{")
    run_dir(tmp_path, seed=1).done.unlink()
    again = ring8(tmp_path, *args)
    line = one_error_line(again)
    assert str(broken.config) in line and "settings are unknown" in line
    assert "bce/seed-1: done" in again.stdout
    assert again.stdout.splitlines()[-1] == "suite ring8: 1 done, 0 skipped, 0 failed, 1 incomplete"
    assert broken.config.read_text() == "{"


@pytest.mark.parametrize("name", ["log.csv", "evals.csv"])
def test_report_lists_a_run_with_an_unreadable_log(tmp_path, name):
    assert ring8(tmp_path, "--seeds", "0,1", "--steps", "20").returncode == 0
    path = run_dir(tmp_path).path / name
    header = path.read_text() if path.exists() else "step,modes\n10,3\n"  # 20 steps: no evaluation yet
    path.write_text(header + "12,abc\n")
    # with figures: they read the logs too
    report = gdpp_bench("report", "--suite", "ring8", "--results", str(tmp_path))
    assert report.returncode == 1 and "Traceback" not in report.stderr
    runs = (tmp_path / "ring8" / "report" / "runs.csv").read_text()
    assert f"unreadable: {name}" in runs
    assert f"unreadable: {name}" in (tmp_path / "ring8" / "report" / "index.html").read_text()


# --- exit codes -------------------------------------------------------------------------------------


def test_failed_runs_exit_1_after_the_others_with_a_closing_line(tmp_path, monkeypatch):
    def poisoned(real, fake, generated):
        return fake.features.sum() * float("nan")

    monkeypatch.setitem(TERMS._entries, "gdpp", poisoned)
    done = gdpp_bench(
        "run",
        *RING[:4],
        "--variants",
        "bce+gdpp,bce",
        "--seeds",
        "0",
        "--steps",
        "200",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 1
    assert "bce+gdpp@1/seed-0: failed  diverged: non-finite" in done.stdout
    assert "bce/seed-0: done" in done.stdout
    assert done.stdout.splitlines()[-1] == "suite ring8: 1 done, 0 skipped, 1 failed, 0 incomplete"


# --- settings and names ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["inf", "-inf", "nan"])
def test_non_finite_settings_are_refused_at_load(tmp_path, value):
    suite = tmp_path / "bad.toml"
    suite.write_text(f'name = "bad"\ndataset = "ring8"\nvariants = ["bce"]\n[train]\nlr_g = {value}\n')
    line = one_error_line(gdpp_bench("run", "--suite", str(suite), "--results", str(tmp_path / "r")))
    assert "[train]: lr_g must be a finite number" in line
    assert not (tmp_path / "r").exists()


def test_report_lists_a_run_whose_config_holds_a_null_setting(tmp_path):
    assert ring8(tmp_path, "--seeds", "0,1", "--steps", "20").returncode == 0
    run = run_dir(tmp_path)
    config = read_json(run.config)
    config["spec"]["train"]["lr_g"] = None  # what an older version wrote for lr = inf
    run.config.write_text(json.dumps(config))
    report = gdpp_bench("report", "--suite", "ring8", "--results", str(tmp_path), "--no-figures")
    assert report.returncode == 1 and "Traceback" not in report.stderr
    assert "train.lr_g must be a finite number" in (tmp_path / "ring8" / "report" / "runs.csv").read_text()


def test_a_suite_name_that_is_a_path_is_refused(tmp_path):
    suite = tmp_path / "escape.toml"
    suite.write_text('name = "../../escaped"\ndataset = "ring8"\nvariants = ["bce"]\n')
    results = tmp_path / "a" / "b" / "results"
    line = one_error_line(gdpp_bench("run", "--suite", str(suite), "--results", str(results)))
    assert "suite name '../../escaped' cannot be a folder name" in line
    assert not (tmp_path / "escaped").exists() and not results.exists()


@pytest.mark.parametrize("name", ["../x", "a/b", ".hidden", "..", "a\\b", "", "x..y"])
def test_plain_names_only(name):
    with pytest.raises(UserError, match="cannot be a folder name"):
        check_plain_name("variant", name)


@pytest.mark.parametrize(
    "name", ["bce+gdpp@0.1", "wgan-gp+pacgan2+gdpp@1", "ring8", "stacked-mnist", "bce+gdpp@1e-05"]
)
def test_variant_and_dataset_names_pass(name):
    assert check_plain_name("variant", name) == name


def test_dry_run_says_what_run_would_do_and_writes_nothing(tmp_path):
    plan = gdpp_bench(
        "run",
        "--suite",
        "ring8",
        "--device",
        "cpu",
        "--seeds",
        "0,1",
        "--variants",
        "bce",
        "--steps",
        "20",
        "--results",
        str(tmp_path),
        "--dry-run",
    )
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        f"suite ring8: 2 runs -> {tmp_path / 'ring8'}",
        f"bce/seed-0: would train from step 0 in {tmp_path / 'ring8' / 'bce' / 'seed-0'}",
        f"bce/seed-1: would train from step 0 in {tmp_path / 'ring8' / 'bce' / 'seed-1'}",
    ]
    assert not tmp_path.joinpath("ring8").exists()
    assert ring8(tmp_path, "--steps", "20").returncode == 0
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    again = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "30")
    assert "bce/seed-0: would refuse (train.steps changed; --extend or --force)" in again.stdout
    # --extend and --force: what they would do, not the refusal they lift
    folder = tmp_path / "ring8" / "bce" / "seed-0"
    extend = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "30", "--extend")
    assert (
        f"bce/seed-0: would extend it from 20 to 30 steps, resume at step 20 of 30 in {folder}"
        in extend.stdout
    )
    force = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "30", "--force")
    aside = "would move its folder aside (--force: train.steps changed) and train from step 0"
    assert f"bce/seed-0: {aside} in {folder}" in force.stdout
    fewer = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "10", "--extend")
    assert "bce/seed-0: would refuse (--extend continues runs to more steps;" in fewer.stdout
    done = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "20")
    assert "bce/seed-0: would skip (done)" in done.stdout
    assert before == {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    run = RunDir(tmp_path / "ring8" / "bce" / "seed-0")
    run.path.joinpath("DONE").unlink()  # as if stopped after its last checkpoint
    unfinished = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "20")
    assert "bce/seed-0: would resume at step 20 of 20" in unfinished.stdout
    run.checkpoint.write_bytes(b"not a checkpoint")
    corrupt = gdpp_bench("run", *RING, "--results", str(tmp_path), "--dry-run", "--steps", "20")
    assert "bce/seed-0: would stop at its checkpoint (corrupt checkpoint" in corrupt.stdout
