"""Refactoring guard: two tiny CPU runs (1 thread) must end with exactly the checkpoint tensors
and metric values recorded in tests/data/numbers_unchanged.json before a redesign. Wall times,
git hashes and img/s are not compared. After a deliberate change of the numbers, rewrite the
current machine's record with `GDPP_BENCH_RECORD_NUMBERS=1 python -m pytest
tests/test_numbers_unchanged.py` and say why in the commit. Recording writes the record, warns
which runs' numbers differ from the record it replaced, and then still compares against the file
as written, so a recording run cannot pass a mismatch silently.

Bit-exact float results hold on one machine kind only, and the instruction set alone does not
name it: an AMD EPYC with AVX-512 ended the 40-step runs with other bits than the AVX-512 CPU
that recorded them, and the GDPP run ends at 2 modes on two AMD EPYCs (AVX2, AVX-512) but at 1
on an Intel Xeon with AVX-512. So the file keeps one record per machine key (see `machine_key`): CPU vendor,
family, model and stepping, the instruction set torch dispatches to, the torch version, and the
MKL and oneDNN versions torch was built with. A machine whose key has no record skips the test,
printing its key, the recorded keys and the command that records it."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import re
import warnings
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
RECORD_COMMAND = "GDPP_BENCH_RECORD_NUMBERS=1 python -m pytest tests/test_numbers_unchanged.py"
CPU = torch.device("cpu")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo ({} where there is none, as off Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        name, sep, value = line.partition(":")
        if sep:
            fields.setdefault(name.strip(), value.strip())
    return fields


def _cpu_identity(info: dict[str, str]) -> str:
    """'vendor family F model M stepping S' on x86; the ARM part numbers elsewhere on Linux."""
    if "vendor_id" in info:
        parts = [info["vendor_id"]]
        parts += [
            f"{name} {info.get(field, '?')}"
            for name, field in (("family", "cpu family"), ("model", "model"), ("stepping", "stepping"))
        ]
        return " ".join(parts)
    arm = [
        (name, info[field])
        for name, field in (
            ("implementer", "CPU implementer"),
            ("variant", "CPU variant"),
            ("part", "CPU part"),
            ("revision", "CPU revision"),
        )
        if field in info
    ]
    if arm:
        return " ".join([platform.machine()] + [f"{name} {value}" for name, value in arm])
    return f"{platform.machine()} {platform.processor() or 'unknown CPU'}"


def _library_version(available: bool, pattern: str, config: str) -> str:
    """The version `pattern` finds in torch's build configuration; 'none' where torch lacks it."""
    if not available:
        return "none"
    found = re.search(pattern, config)
    return found.group(1) if found else "version unknown"


@functools.cache
def machine_key() -> str:
    """This machine's key in the record: every part is something that decides the bits.

    - CPU vendor, family, model and stepping (/proc/cpuinfo): the same instruction set computes
      other bits on another microarchitecture (MKL and oneDNN choose their code paths by CPU
      vendor and model, not only by instruction set; an AMD EPYC with AVX-512 ended the runs
      with other bits than the AVX-512 CPU that recorded them). "model name" is not used: a
      virtual machine may show only "AMD EPYC" there.
    - the instruction set torch dispatches its own kernels to
      (torch.backends.cpu.get_cpu_capability(), which ATEN_CPU_CAPABILITY can lower).
    - the torch version: its kernels and their summation orders change between releases.
    - the MKL and oneDNN versions torch was built with (from torch.__config__.show()): they
      compute the matrix products and convolutions, and their kernels change between versions.
    """
    config = torch.__config__.show()
    mkl = _library_version(
        torch.backends.mkl.is_available(), r"Math Kernel Library Version (\d[\d.]*)", config
    )
    build = re.search(r"Math Kernel Library Version \S+ Build (\d+)", config)
    if build and mkl[0].isdigit():
        mkl = f"{mkl} build {build.group(1)}"
    onednn = _library_version(
        torch.backends.mkldnn.is_available(), r"(?:oneDNN|MKL-DNN|DNNL)\s+(v?\d[\w.]*)", config
    )
    return " | ".join(
        (
            _cpu_identity(_cpuinfo()),
            torch.backends.cpu.get_cpu_capability(),
            f"torch {torch.__version__}",
            f"MKL {mkl}",
            f"oneDNN {onednn}",
        )
    )


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
    key = machine_key()
    measured = _measure(tmp_path)
    records = json.loads(RECORD.read_text())
    if os.environ.get("GDPP_BENCH_RECORD_NUMBERS") == "1":
        previous = records.get(key)
        records[key] = measured  # written, then compared below like any other record
        RECORD.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
        if previous is not None and previous != measured:
            names = previous.keys() | measured.keys()
            changed = sorted(n for n in names if previous.get(n) != measured.get(n))
            message = f"rewrote this machine's numbers; changed: {changed} (say why in the commit)"
            warnings.warn(message, stacklevel=1)
        records = json.loads(RECORD.read_text())
    if key not in records:
        recorded_keys = "".join(f"\n  {k}" for k in sorted(records)) or " none"
        pytest.skip(
            f"no recorded numbers for this machine; record them with `{RECORD_COMMAND}` "
            f"(and say why in the commit).\nThis machine's key:\n  {key}\n"
            f"Recorded keys:{recorded_keys}"
        )
    recorded = records[key]
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
