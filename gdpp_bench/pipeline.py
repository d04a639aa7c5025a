"""Suite -> runs -> train + evaluate each through an executor; evaluation of whole suites."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tqdm import tqdm

from gdpp_bench.environment import resolve_device
from gdpp_bench.executors import make_executor
from gdpp_bench.metrics.evaluate import evaluate_run, make_eval_hook
from gdpp_bench.rundir import RunDir, find_run_dirs
from gdpp_bench.suites import RunSpec
from gdpp_bench.train import train


def run_one(spec: RunSpec, results: Path, data_root: str | None, device_name: str) -> dict[str, Any]:
    """Train (or resume, or skip) one run and evaluate it. Safe to call again."""
    device = resolve_device(device_name)
    run_dir = RunDir(results / spec.suite / spec.key)
    already_done = run_dir.is_done()
    hook = make_eval_hook(spec.dataset, spec.eval, spec.seed, device)
    status = train(spec, run_dir, device, data_root, eval_hook=hook)
    record = evaluate_run(run_dir, device)
    return {"key": spec.key, "skipped": already_done, **status, "values": record.get("values", {})}


def run_specs(specs: list[RunSpec], results: Path, data_root: str | None, device_name: str,
              jobs: int = 1) -> list[dict[str, Any]]:
    resolve_device(device_name)  # a missing device is reported once, before any job starts
    executor = make_executor(jobs)
    try:
        futures = [executor.submit(run_one, s, results, data_root, device_name) for s in specs]
        return [f.result() for f in tqdm(futures, desc="runs", unit="run", leave=False, disable=None)]
    finally:
        executor.shutdown()


def evaluate_suite(suite_dir: Path, device_name: str, force: bool = False) -> list[dict[str, Any]]:
    device = resolve_device(device_name)
    outcomes = []
    for run_dir in find_run_dirs(suite_dir):
        record = evaluate_run(run_dir, device, force=force)
        key = str(run_dir.path.relative_to(suite_dir))
        outcomes.append({"key": key, **record})
    return outcomes
