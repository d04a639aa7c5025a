"""Plug-ins: a user's file or installed module registers a term and a metric; `--plugin` and the
`gdpp_bench.plugins` entry points load it, worker processes load it too, and each run records it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from conftest import gdpp_bench_process

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


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_a_plugin_file_trains_in_worker_processes_and_is_recorded(tmp_path):
    plugin = tmp_path / "my_spread.py"
    plugin.write_text(PLUGIN)
    suite = tmp_path / "plugged.toml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    listing = gdpp_bench_process("--plugin", str(plugin), "list")
    assert listing.returncode == 0, listing.stderr
    assert "spread" in listing.stdout and "sample_spread" in listing.stdout
    refused = gdpp_bench_process("run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
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


def test_bad_plugins_are_one_line_naming_the_plugin(tmp_path):
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
        done = gdpp_bench_process("--plugin", reference, "list", cwd=Path(tmp_path))
        assert done.returncode == 2
        line = _one_error_line(done.stderr)
        assert message in line and Path(reference).stem in line, line
