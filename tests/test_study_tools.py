"""The pre-registered studies' provenance tools (benchmarks/studies): which revisions trained a
suite's runs and whether they descend from its registration commit; retraining recorded runs and
comparing them bit for bit."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from conftest import tiny_suite

from gdpp_bench.pipeline import run_specs
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import expand

STUDIES = Path(__file__).parents[1] / "benchmarks" / "studies"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, STUDIES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, text=True).stdout


def _commit(repo: Path, message: str) -> str:
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD").strip()


def _run(suite_dir: Path, key: str, git: str, *resumed: str) -> None:
    (suite_dir / key).mkdir(parents=True)
    config = {
        "environment": {"git": git},
        "spec": {},
        "history": [{"event": "resumed", "git": g} for g in resumed],
    }
    (suite_dir / key / "config.json").write_text(json.dumps(config))


def test_provenance_lists_each_revision_and_whether_it_descends_from_the_registration(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    before = _commit(repo, "before the suite file")
    registration = _commit(repo, "the suite file")
    after = _commit(repo, "study code")
    suite_dir = tmp_path / "study"
    _run(suite_dir, "bce/trial-000/seed-1", registration)
    _run(suite_dir, "bce/trial-000/seed-2", f"{registration}+dirty", after)  # resumed with clean code
    _run(suite_dir, "bce/trial-001/seed-1", after)
    (suite_dir / "report").mkdir()
    (suite_dir / "report" / "config.json").write_text("{}")  # not a run
    script = [sys.executable, str(STUDIES / "provenance.py"), str(suite_dir)]

    clean = subprocess.run([*script, registration, "--repo", str(repo)], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    rows = {
        line.split(" | ")[0].strip("| "): line for line in clean.stdout.splitlines() if line.startswith("| ")
    }
    assert clean.stdout.startswith(f"3 runs in {suite_dir}")
    assert rows[after] == f"| {after} | 2 | yes |"
    assert rows[registration] == f"| {registration} | 1 | yes |"
    assert rows[f"{registration}+dirty"] == (
        f"| {registration}+dirty | 1 | yes (with uncommitted changes: bce/trial-000/seed-2) |"
    )

    _run(suite_dir, "bce/trial-002/seed-1", before)  # trained before the study was registered
    _run(suite_dir, "bce/trial-002/seed-2", "0" * 40)  # a commit this repository does not have
    late = subprocess.run([*script, registration, "--repo", str(repo)], capture_output=True, text=True)
    assert late.returncode == 1
    assert f"| {before} | 1 | NO |" in late.stdout
    assert f"| {'0' * 40} | 1 | unknown to the repository |" in late.stdout


@pytest.fixture
def recorded(tmp_path) -> Path:
    """A suite folder of two tiny ring8 runs trained on one thread, as a study's are."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_specs(expand(tiny_suite(), variants=["bce", "bce+gdpp@1"]), tmp_path / "study", None, "cpu")
    finally:
        torch.set_num_threads(threads)
    return tmp_path / "study" / "tiny"


def test_retrained_runs_equal_their_records_and_a_changed_record_is_found(recorded, tmp_path, capsys):
    retrain = _script("retrain_and_compare")
    keys = ["bce/seed-0", "bce+gdpp@1/seed-0"]
    assert retrain.main(recorded, tmp_path / "again", keys) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "(recorded at" in line] == [
        f"{key} (recorded at {json.loads(RunDir(recorded / key).config.read_text())['environment']['git']}): "
        "metrics equal, evals equal, log equal, checkpoint equal"
        for key in keys
    ]

    record = RunDir(recorded / keys[1])
    metrics = json.loads(record.metrics.read_text())
    metrics["values"]["modes"] += 1
    record.metrics.write_text(json.dumps(metrics))
    assert retrain.main(recorded, tmp_path / "again", keys[1:]) == 1
    assert "metrics DIFFERENT, evals equal, log equal, checkpoint equal" in capsys.readouterr().out


def test_answer_cells_print_the_tuned_rows_words_from_decisions_csv(tmp_path, capsys, monkeypatch):
    answer_cells = _script("answer_cells")
    columns = "dataset,role,variant,reference,metric,n,n_reference,difference,difference_low,difference_high"
    columns += ",mannwhitney_p_holm,verdict\n"
    undecided = "no detectable difference at n = 10"
    rows = [
        "grid25,confirm,bce+gdpp,bce,modes,10,10,9.9,6.3,13.44,0.00312,better",
        "grid25,confirm,bce+gdpp,bce,kl_uniform,10,10,-0.824,-1.12,-0.53,0.0000652,better",
        "grid25,confirm,bce+gdpp,bce,hq_percent,10,10,5,1,9,,descriptive (not primary)",
        "grid25,confirm,bce+gdpp-si,bce,modes,10,10,-0.5,-1.15,0.125,1.0," + undecided,
        "grid25,confirm,bce+gdpp-si,bce,kl_uniform,10,10,0.051,-0.1,0.2,0.1234," + undecided,
        "grid25,confirm,bce+gdpp-si,bce+gdpp,modes,10,10,3,1,5,0.01,better",  # not against bce: left out
        "grid25,trial,bce+gdpp,bce,modes,2,2,1,0,2,1.0,no detectable difference",  # not a confirmation
    ]
    (tmp_path / "decisions.csv").write_text(columns + "\n".join(rows) + "\n")
    monkeypatch.setattr(sys, "argv", ["answer_cells.py", str(tmp_path)])
    answer_cells.main()
    assert capsys.readouterr().out.splitlines() == [
        "bce+gdpp: modes: **better**, Δ +9.90 [6.30, 13.44], p 0.0031; "
        "KL: **better**, Δ -0.82 [-1.12, -0.53], p 7e-5; n 10 vs 10",
        "bce+gdpp-si: modes: no detectable difference, Δ -0.50 [-1.15, 0.12], p 1; "
        "KL: no detectable difference, Δ +0.05 [-0.10, 0.20], p 0.12; n 10 vs 10",
    ]

    monkeypatch.setattr(sys, "argv", ["answer_cells.py", str(tmp_path / "missing")])
    with pytest.raises(SystemExit, match="no .*decisions.csv: run `gdpp-bench report"):
        answer_cells.main()
