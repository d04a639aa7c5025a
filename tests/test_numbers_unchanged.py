"""Refactoring guard: two tiny CPU runs (1 thread) must end with exactly the checkpoint tensors
and metric values recorded in tests/data/numbers_unchanged.json before a redesign. Wall times,
git hashes and img/s are not compared. After a deliberate change of the numbers, rewrite the
current machine's record with `GDPP_BENCH_RECORD_NUMBERS=1 python -m pytest
tests/test_numbers_unchanged.py` and say why in the commit.

Bit-exact float results hold on one kind of CPU only: torch and MKL pick their kernels by the
instruction set (an AVX2 AMD EPYC ends the 40-step GDPP run at 2 modes where an AVX-512 machine
ends it at 1), so the file keeps one record per CPU capability, and a machine of a capability
without a record skips the test, saying how to record one."""

from __future__ import annotations

import hashlib
import json
import os
import platform
from pathlib import Path

import pytest
import torch
from conftest import tiny_suite, torch_threads

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.evaluation import evaluate_run
from gdpp_bench.pipeline import run_specs
from gdpp_bench.rundir import RunDir, read_json
from gdpp_bench.suites import expand

RECORD = Path(__file__).parent / "data" / "numbers_unchanged.json"
CPU = torch.device("cpu")
CPU_KIND = f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()}"


def _tensor_hashes(value, prefix: str = "") -> dict[str, str]:
    """sha256 of every tensor in a checkpoint's nested dicts and lists, keyed by its path."""
    if isinstance(value, torch.Tensor):
        return {prefix: hashlib.sha256(value.detach().contiguous().cpu().numpy().tobytes()).hexdigest()}
    items = (
        value.items()
        if isinstance(value, dict)
        else enumerate(value)
        if isinstance(value, list | tuple)
        else ()
    )
    hashes: dict[str, str] = {}
    for key, item in items:
        hashes.update(_tensor_hashes(item, f"{prefix}/{key}"))
    return hashes


def _fingerprint(run: RunDir) -> dict:
    return {
        "tensors": _tensor_hashes(load_checkpoint(run.checkpoint)),
        "metrics": read_json(run.metrics)["values"],
    }


def _measure(tmp_path: Path) -> dict:
    train = {"steps": 40, "log_every": 10, "checkpoint_every": 20}
    with torch_threads(1):
        (gdpp,) = expand(tiny_suite(variants=("bce+gdpp@1",), train=train))
        run_specs([gdpp], tmp_path / "sequential", None, "cpu")
        batched = expand(tiny_suite(variants=("bce",), seeds=(0, 1), train=train))
        run_specs(batched, tmp_path / "seed-parallel", None, "cpu", seed_parallel=True)
    runs = {"ring8 bce+gdpp@1": RunDir(tmp_path / "sequential" / "tiny" / gdpp.key)}
    for spec in batched:
        folder = tmp_path / "seed-parallel" / "tiny" / spec.key
        runs[f"seed-parallel ring8 bce seed {spec.seed}"] = RunDir(folder)
    for run in runs.values():
        evaluate_run(run, CPU)
    return {name: _fingerprint(run) for name, run in runs.items()}


def test_two_tiny_runs_end_with_the_recorded_numbers(tmp_path):
    measured = _measure(tmp_path)
    records = json.loads(RECORD.read_text())
    if os.environ.get("GDPP_BENCH_RECORD_NUMBERS") == "1":
        records[CPU_KIND] = measured
        RECORD.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    if CPU_KIND not in records:
        pytest.skip(f"no recorded numbers for CPU kind {CPU_KIND!r} (recorded: {sorted(records)})")
    recorded = records[CPU_KIND]
    assert measured.keys() == recorded.keys()
    for name in recorded:
        assert measured[name]["metrics"] == recorded[name]["metrics"], name
        differing = sorted(
            k
            for k in recorded[name]["tensors"]
            if measured[name]["tensors"].get(k) != recorded[name]["tensors"][k]
        )
        assert measured[name]["tensors"].keys() == recorded[name]["tensors"].keys(), name
        assert not differing, (name, differing[:5])
