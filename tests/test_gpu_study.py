"""benchmarks/perf/gpu_study.sh dry-run on the CPU: what it carries to a bare GPU machine (MNIST
gzipped, the CPU-trained classifier) suffices to train, measure with the same instrument, report and
pack the result, with tiny steps and one run instead of the study's nine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

from conftest import DATA_ROOT

SCRIPT = Path(__file__).parents[1] / "benchmarks" / "perf" / "gpu_study.sh"


def test_gpu_study_script_dry_runs_on_the_cpu(tmp_path, mnist_classifier):
    _, classifier = mnist_classifier
    env = {
        **os.environ,
        "PYTHON": sys.executable,
        "GDPP_STUDY_CARRY": str(tmp_path / "carry"),
        "GDPP_BENCH_DATA": str(DATA_ROOT),
        "GDPP_STUDY_WHEELS": "0",
    }
    prepared = subprocess.run(["bash", str(SCRIPT), "prepare"], env=env, capture_output=True, text=True)
    assert prepared.returncode == 0, prepared.stderr
    carry = tmp_path / "carry"
    carried = sorted(path.relative_to(carry).as_posix() for path in carry.rglob("*") if path.is_file())
    idx = (
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
    )
    assert carried == [
        *(f"datasets/MNIST/raw/{name}.gz" for name in idx),
        f"instruments/{classifier.path.name}",
    ]

    # the run side sees no cache of this machine: only what was carried
    dry = {**env, "GDPP_BENCH_CACHE": str(tmp_path / "elsewhere"), "DEVICE": "cpu", "STEPS": "4"}
    dry.update(EVAL_SAMPLES="64", VARIANTS="bce+gdpp", SEEDS="0", WORKERS="1", REPORT_FIGURES="0")
    done = subprocess.run(
        ["bash", str(SCRIPT), "run", str(tmp_path / "out")], env=dry, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "study: exit 0 after" in done.stdout
    with tarfile.open(tmp_path / "out" / "stacked-mnist-gpu-report.tar.gz") as packed:
        names = packed.getnames()
        assert "stacked-mnist-gpu/report/claims.md" in names
        assert not any(name.endswith((".pt", ".pdf")) for name in names)
        for variant in ("bce+gdpp@1",):
            run = f"stacked-mnist-gpu/{variant}/seed-0"
            assert json.load(packed.extractfile(f"{run}/DONE"))["step"] == 4
            record = json.load(packed.extractfile(f"{run}/metrics.json"))
            used = record["protocol"]["stacked_mnist_modes"]["classifier"]["weights_sha256"]
            assert used == classifier.weights_sha256  # the CPU-trained instrument, carried
