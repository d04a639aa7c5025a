"""Plug-ins: a user's file or installed module registers a term and a metric; `--plugin` and the
`gdpp_bench.plugins` entry points load it, worker processes load it too, and each run records it."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import gdpp_bench, gdpp_bench_process

from gdpp_bench import plugins

PLUGIN = '''
from gdpp_bench.losses import TERMS
from gdpp_bench.metrics import METRICS, Value


@TERMS.register("spread")
def spread(real, fake, generated):
    """Minus the batch's spread."""
    return -generated.samples.float().std()


@METRICS.register("sample_spread", values={"point_spread": Value(True, (0, None))})
def sample_spread(ctx):
    return {"point_spread": ctx.samples().std().item()}
'''

SUITE = """name = "plugged"
dataset = "ring8"
model = "mlp2d"
variants = ["bce+spread"]
seeds = [0, 1]
[train]
steps = 20
batch_size = 64
log_every = 10
checkpoint_every = 10
update = "simultaneous"
[eval]
metrics = ["modes2d", "sample_spread"]
samples = 300
"""


@pytest.fixture
def new_process():
    """`gdpp-bench ARGS` in this process as a new process would run it: before each call no plug-in
    is loaded, the registries hold the package's entries only, and no plug-in module is imported
    (a process costs seconds of imports; the worker test and the API call start real ones)."""
    registries = plugins._registries()
    entries = {kind: (dict(r._entries), dict(r._meta)) for kind, r in registries.items()}
    path = list(sys.path)

    def forget() -> None:
        for kind, registry in registries.items():
            registry._entries, registry._meta = dict(entries[kind][0]), dict(entries[kind][1])
        plugins._loaded.clear()
        plugins._unavailable.clear()
        plugins._entry_points_loaded = False
        os.environ.pop(plugins.ENVIRONMENT, None)  # set by load_plugin for worker processes
        sys.path[:] = path  # a module plug-in's lookup adds the working folder
        for name in [name for name in sys.modules if name.startswith(plugins._FILE_MODULE)]:
            del sys.modules[name]

    def run(*args: str, cwd: Path | None = None):
        forget()
        return gdpp_bench(*args, cwd=cwd)

    yield run
    forget()


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_plugin_file_trains_in_worker_processes_and_is_recorded(tmp_path, new_process):
    plugin = tmp_path / "my_spread.py"
    plugin.write_text(PLUGIN)
    suite = tmp_path / "plugged.toml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    listing = new_process("--plugin", str(plugin), "list")
    assert listing.returncode == 0, listing.stderr
    assert "spread" in listing.stdout and "sample_spread" in listing.stdout
    refused = new_process("run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
    assert refused.returncode == 2 and "spread" in _one_error_line(refused.stderr)
    run = gdpp_bench_process(
        *("--plugin", str(plugin), "run", "--suite", str(suite), "--device", "cpu"),
        *("--results", str(results), "--workers", "2"),
    )
    assert run.returncode == 0, run.stderr
    digest = hashlib.sha256(plugin.read_bytes()).hexdigest()
    for seed in (0, 1):
        folder = results / "plugged" / "bce+spread@1" / f"seed-{seed}"
        (recorded,) = json.loads((folder / "config.json").read_text())["environment"]["plugins"]
        assert recorded["file"] == str(plugin) and recorded["sha256"] == digest
        assert recorded["registered"] == {"term": ["spread"], "metric": ["sample_spread"]}
        assert json.loads((folder / "metrics.json").read_text())["values"]["point_spread"] > 0


def test_report_evaluate_sample_and_the_api_load_the_plugins_a_run_recorded(tmp_path, new_process):
    """Nothing more to pass for a plug-in run: the file config.json records is loaded (one line);
    once it changed or is gone, one warning line names it and the run is unreadable for that
    reason, said in the report's closing line; a copy with the recorded content reads it again."""
    plugin = tmp_path / "my_spread.py"
    plugin.write_text(PLUGIN)
    suite = tmp_path / "plugged.toml"
    suite.write_text(SUITE.replace("seeds = [0, 1]", "seeds = [0]"))
    results = tmp_path / "results"
    folder = results / "plugged" / "bce+spread@1" / "seed-0"
    trained = new_process(
        *("--plugin", str(plugin), "run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
    )
    assert trained.returncode == 0, trained.stderr
    report = ("report", "--suite", "plugged", "--results", str(results), "--no-figures")
    evaluate = ("evaluate", "--suite", "plugged", "--results", str(results), "--device", "cpu", "--force")
    loaded = f"loaded plug-in {plugin}, as the runs' config.json records it"

    reported = new_process(*report)
    assert reported.returncode == 0, reported.stderr
    assert reported.stdout.splitlines().count(loaded) == 1 and not reported.stderr
    assert (
        reported.stdout.splitlines()[-1]
        == "report plugged: 1 runs, 1 done, 0 failed, 0 incomplete, 0 unreadable"
    )
    runs = pd.read_csv(results / "plugged" / "report" / "runs.csv")
    assert runs["status"].tolist() == ["done"] and runs["point_spread"].iloc[0] > 0
    evaluated = new_process(*evaluate)
    assert evaluated.returncode == 0, evaluated.stderr
    assert loaded in evaluated.stdout and "point_spread=" in evaluated.stdout
    sampled = new_process("sample", str(folder), "--out", str(tmp_path / "points.csv"), "--count", "5")
    assert sampled.returncode == 0 and loaded in sampled.stdout, sampled.stderr
    api = subprocess.run(
        [sys.executable, "-c", f"import gdpp_bench; print(gdpp_bench.load_runs({str(results)!r}).to_json())"],
        capture_output=True,
        text=True,
        env=os.environ,
    )
    assert api.returncode == 0, api.stderr
    assert loaded in api.stdout and json.loads(api.stdout.splitlines()[-1])["status"] == {"0": "done"}

    plugin.write_text(PLUGIN + "# edited\n")
    reported = new_process(*report)
    assert reported.returncode == 1, reported.stderr  # written, but a run is left out
    (warning,) = reported.stderr.splitlines()
    assert warning.startswith(f"warning: plug-in {plugin} changed since the run recorded it (sha256 ")
    assert reported.stdout.splitlines()[-1] == (
        "report plugged: 1 runs, 0 done, 0 failed, 0 incomplete, 1 unreadable "
        "(runs.csv and index.html give each unreadable run's reason)"
    )
    (row,) = pd.read_csv(results / "plugged" / "report" / "runs.csv").itertuples()
    assert row.status == "unreadable: config.json" and f"plug-in {plugin} changed since" in row.reason
    plugin.unlink()
    evaluated = new_process(*evaluate)
    assert evaluated.returncode == 2
    warning, error = evaluated.stderr.splitlines()
    assert warning.startswith(f"warning: plug-in {plugin} is gone: the runs that use it are unreadable")
    assert error == f"error: {folder / 'config.json'} is unreadable (plug-in {plugin} is gone)"
    copy = tmp_path / "elsewhere" / "spread_copy.py"
    copy.parent.mkdir()
    copy.write_text(PLUGIN)
    reported = new_process("--plugin", str(copy), *report)
    assert reported.returncode == 0 and not reported.stderr, reported.stderr
    assert reported.stdout.splitlines()[-1].startswith("report plugged: 1 runs, 1 done")


def test_an_installed_entry_point_is_loaded_without_a_flag(tmp_path):
    site = tmp_path / "site"
    (site / "spread_plugin-1.0.dist-info").mkdir(parents=True)
    (site / "spread_plugin-1.0.dist-info" / "METADATA").write_text("Name: spread-plugin\nVersion: 1.0\n")
    (site / "spread_plugin-1.0.dist-info" / "entry_points.txt").write_text(
        "[gdpp_bench.plugins]\nspread = spread_plugin\n"
    )
    (site / "spread_plugin.py").write_text(PLUGIN)
    listing = gdpp_bench_process("list", env={"PYTHONPATH": str(site)})
    assert listing.returncode == 0, listing.stderr
    assert "sample_spread" in listing.stdout


def test_bad_plugins_are_one_line_naming_the_plugin(tmp_path, new_process):
    bad_name = tmp_path / "bad_name.py"
    bad_name.write_text('from gdpp_bench.losses import TERMS\nTERMS.register("my+term")(lambda r, f, g: 0)\n')
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('not ready')\n")
    for reference, message in [
        (str(bad_name), "registers the term 'my+term'"),
        (str(broken), "failed to import: RuntimeError: not ready"),
        ("no_such_plugin_module", "cannot be imported"),
        (str(tmp_path / "missing.py"), "does not exist"),
    ]:
        done = new_process("--plugin", reference, "list", cwd=Path(tmp_path))
        assert done.returncode == 2
        line = _one_error_line(done.stderr)
        assert message in line and Path(reference).stem in line, line
