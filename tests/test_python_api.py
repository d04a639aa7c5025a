"""The README's "From Python" example, executed as a reader would paste it into a notebook, and
the API functions against what the command line writes."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

import gdpp_bench
from gdpp_bench.api import RunsNotDone
from gdpp_bench.errors import UserError

README = Path(__file__).resolve().parents[1] / "README.md"


def _readme_example() -> str:
    text = README.read_text()
    section = text[text.index("## From Python") :]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs_and_its_tables_agree(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(_readme_example(), "README.md (From Python)", "exec"), namespace)
    runs, metrics = namespace["runs"], namespace["metrics"]
    assert sorted(runs["variant"]) == ["bce", "bce+gdpp@1"] and set(runs["status"]) == {"done"}
    done = tmp_path / "results" / "smoke" / "ring8" / "bce" / "seed-0" / "DONE"
    stamp = done.stat().st_mtime_ns
    # long form: one row per run and metric, the same numbers as the wide table
    assert set(metrics["metric"]) >= {"modes", "hq_percent", "kl_uniform"}
    for _, row in runs.iterrows():
        for metric in ("modes", "hq_percent"):
            (value,) = metrics.query("variant == @row.variant and metric == @metric")["value"]
            assert value == row[metric]
    assert "hq_percent" in capsys.readouterr().out
    # a second call skips what is finished and returns the rows of the runs it was asked for
    again = gdpp_bench.run_suite(
        "smoke", "results", datasets=["ring8"], variants=["bce"], seeds=[0], steps=100
    )
    assert done.stat().st_mtime_ns == stamp
    pd.testing.assert_frame_equal(again, runs[runs["variant"] == "bce"].reset_index(drop=True))
    # what the command line refuses, the API raises: the runs' steps changed (nothing retrained)
    with pytest.raises(RunsNotDone, match=r"1 incomplete.*train\.steps") as refused:
        gdpp_bench.run_suite("smoke", "results", datasets=["ring8"], variants=["bce"], seeds=[0], steps=50)
    (outcome,) = refused.value.outcomes
    assert outcome["key"] == "ring8/bce/seed-0" and outcome["user_error"]
    assert list(refused.value.runs["run"]) == ["ring8/bce/seed-0"] and done.stat().st_mtime_ns == stamp


def test_bad_input_raises_the_user_error_and_empty_folders_give_empty_tables(tmp_path):
    with pytest.raises(UserError, match="unknown suite 'nope'"):
        gdpp_bench.run_suite("nope", tmp_path)
    assert gdpp_bench.load_runs(tmp_path / "missing").empty
    assert gdpp_bench.load_metrics(tmp_path).empty
    assert "run_suite" in dir(gdpp_bench) and gdpp_bench.run_suite.__doc__


def test_run_suite_takes_the_options_of_the_command_line(tmp_path):
    """One path: every option `gdpp-bench run` has reaches the runs from Python too (here the
    TensorBoard and precision options the API lacked); an unknown one is a UserError."""
    with pytest.raises(UserError, match="unknown option.*precisionn"):
        gdpp_bench.run_suite("smoke", tmp_path, precisionn="bf16")
    runs = gdpp_bench.run_suite(
        "smoke",
        tmp_path,
        datasets=["ring8"],
        variants=["bce"],
        seeds=[0],
        steps=20,
        tensorboard=True,
        precision="fp32",
        device="cpu",
    )
    assert list(runs["run"]) == ["ring8/bce/seed-0"] and list(runs["status"]) == ["done"]
    assert any((tmp_path / "smoke" / "ring8" / "bce" / "seed-0" / "tensorboard").iterdir())
