"""Suite -> runs -> train + evaluate each through an executor; evaluation of whole suites."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from gdpp_bench.environment import resolve_device
from gdpp_bench.executors import Executor, SlurmExecutor, make_executor
from gdpp_bench.metrics import EvalOptions
from gdpp_bench.metrics.evaluate import evaluate_run, make_eval_hook
from gdpp_bench.rundir import RunDir, find_run_dirs
from gdpp_bench.seed_parallel import run_seed_group, seed_groups, supports_seed_parallel
from gdpp_bench.suites import RunSpec
from gdpp_bench.train import train


def run_one(spec: RunSpec, results: Path, data_root: str | None, device_name: str,
            options: EvalOptions | None = None) -> dict[str, Any]:
    """Train (or resume, or skip) one run and evaluate it. Safe to call again."""
    device = resolve_device(device_name)
    run_dir = RunDir(results / spec.suite / spec.key)
    already_done = run_dir.is_done()
    hook = make_eval_hook(spec, device, data_root, options)
    status = train(spec, run_dir, device, data_root, eval_hook=hook)
    record = evaluate_run(run_dir, device, data_root=data_root, options=options)
    return {"key": spec.key, "skipped": already_done, **status, "values": record.get("values", {})}


def run_specs(specs: list[RunSpec], results: Path, data_root: str | None, device_name: str,
              jobs: int = 1,
              on_result: Callable[[dict[str, Any]], None] | None = None,
              options: EvalOptions | None = None,
              executor: Executor | None = None,
              seed_parallel: bool = False) -> list[dict[str, Any]]:
    """Train and evaluate every spec; `on_result` hears of each run as soon as it ends.

    `seed_parallel`: the seeds of each variant that allows it (mlp2d) train as one batched model
    (one job per variant); the others run one job per run as usual.

    A run that raises (a corrupt checkpoint, say) does not stop the others; the first such error
    is raised once all runs have ended.
    """
    # a missing device is reported once, before any job starts; a Slurm task resolves it on its node
    device = None if isinstance(executor, SlurmExecutor) else resolve_device(device_name)
    executor = executor or make_executor("local", jobs, device=device_name)
    progress = tqdm(total=len(specs), desc="runs", unit="run", leave=False, disable=None)

    def finished(future: Future) -> None:
        outcomes = [] if future.exception() is not None else future.result()
        outcomes = outcomes if isinstance(outcomes, list) else [outcomes]
        progress.update(max(1, len(outcomes)))
        for outcome in outcomes if on_result else ():
            on_result(outcome)

    groups = seed_groups(specs) if seed_parallel else [[spec] for spec in specs]
    try:
        futures = []
        for group in groups:
            if len(group) > 1 and supports_seed_parallel(group[0], device or torch.device(
                    "cpu" if device_name == "cpu" else "cuda")):  # Slurm: the nodes' device, as named
                new = [executor.submit(run_seed_group, group, results, data_root, device_name, options)]
            else:
                new = [executor.submit(run_one, spec, results, data_root, device_name, options)
                       for spec in group]
            for future in new:
                future.add_done_callback(finished)  # at once for the inline executor
            futures += new
        outcomes = [future.result() for future in futures]
        return [o for outcome in outcomes for o in (outcome if isinstance(outcome, list) else [outcome])]
    finally:
        executor.shutdown()
        progress.close()


def evaluate_suite(suite_dir: Path, device_name: str, force: bool = False,
                   data_root: str | None = None, options: EvalOptions | None = None) -> list[dict[str, Any]]:
    device = resolve_device(device_name)
    outcomes = []
    for run_dir in find_run_dirs(suite_dir):
        record = evaluate_run(run_dir, device, force=force, data_root=data_root, options=options)
        key = str(run_dir.path.relative_to(suite_dir))
        outcomes.append({"key": key, **record})
    return outcomes
