"""What a run carries across sessions: the loop's bookkeeping, its checkpoint state, and resuming
from it (weights, optimisers, RNG stream, log sums, best.pt selection, times, diagnostics)."""

from __future__ import annotations

import contextlib
import csv
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from gdpp_bench.checkpoint import load_checkpoint, restore_rng_state, rng_state
from gdpp_bench.config import RunSpec
from gdpp_bench.environment import describe
from gdpp_bench.progress import notice
from gdpp_bench.rundir import RunDir, write_atomic, write_json
from gdpp_bench.training.reconcile import record_history
from gdpp_bench.training.state import TrainStep


@dataclass
class Selection:
    """best.pt bookkeeping across periodic evaluations (saved in checkpoints for resume)."""

    best: float | None = None
    stale: int = 0

    def update(self, value: float, mode: str) -> bool:
        """Record `value`; True if it is the best so far."""
        better = self.best is None or (value > self.best if mode == "max" else value < self.best)
        if better:
            self.best, self.stale = value, 0
        else:
            self.stale += 1
        return better


@dataclass
class LoopProgress:
    """Loop bookkeeping that a resumed run restores from its checkpoint."""

    log_sum: Tensor  # sum of the logged values since the last log row
    log_count: int = 0  # steps in that sum
    selection: Selection = field(default_factory=Selection)
    wall_s: float = 0.0  # training wall time of this run's earlier sessions
    cpu_s: float = 0.0  # CPU time of its training steps in earlier sessions
    eval_cpu_s: float = 0.0  # CPU time of its periodic evaluations in earlier sessions
    # each diagnostic term's diagnostics at the previous log step (the diagnostic compares)
    previous_diagnostics: dict[str, Any] = field(default_factory=dict)


class TrainSession:
    """Wall and CPU time of a run across its sessions. CPU time is this process's (all its threads),
    which two runs sharing the cores do not inflate as they inflate wall time; the periodic
    evaluations' CPU time is kept apart so that `train_cpu_s` is the cost of training alone."""

    def __init__(self, progress: LoopProgress, share: int = 1) -> None:
        self.progress = progress
        self.share = share  # runs trained together in this process (seed-parallel): each gets 1/share
        self.wall_start = time.perf_counter()
        self.cpu_start = time.process_time()
        self.eval_cpu = 0.0

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        started = time.process_time()
        try:
            yield
        finally:
            self.eval_cpu += time.process_time() - started

    def times(self) -> dict[str, float]:
        """train_wall_s, train_cpu_s and eval_cpu_s (periodic evaluations) so far, all sessions."""
        cpu = time.process_time() - self.cpu_start
        return {
            "train_wall_s": self.progress.wall_s + time.perf_counter() - self.wall_start,
            "train_cpu_s": self.progress.cpu_s + (cpu - self.eval_cpu) / self.share,
            "eval_cpu_s": self.progress.eval_cpu_s + self.eval_cpu / self.share,
        }


def start_or_resume(
    spec: RunSpec,
    run_dir: RunDir,
    step: TrainStep,
    device: torch.device,
    progress: LoopProgress,
    data: dict[str, Any] | None = None,
) -> int:
    """Write config.json (first start) or note a change of code, torch or data (resume); load the
    checkpoint if any. Returns the step reached. `reconcile` has made config.json agree with spec.
    `data`: what describes the run's data beyond its name (a folder's identity), recorded."""
    environment = describe(device)
    if not run_dir.config.exists():
        write_json(
            run_dir.config,
            {"spec": spec.to_dict(), "environment": environment, **({"data": data} if data else {})},
        )
    if not run_dir.checkpoint.exists():
        for stale in (run_dir.log, run_dir.evals, run_dir.best):
            stale.unlink(missing_ok=True)
        return 0
    state = load_checkpoint(run_dir.checkpoint, map_location=device)
    config = run_dir.read_config()
    if data and config.get("data") != data:
        notice(
            f"resuming at step {state['step']} on data that changed since the run began "
            f"({spec.dataset} {spec.data_path}: other files, sizes or times); the new description is "
            "recorded in config.json"
        )
        record_history(config, "data changed", step=int(state["step"]), data=config.get("data"))
        config["data"] = data
        write_json(run_dir.config, config)
    recorded = config.get("environment", {})
    last = (config.get("history") or [recorded])[-1]
    now = {"git": environment["git"], "torch": environment["packages"]["torch"]}
    before = {"git": last.get("git"), "torch": last.get("torch") or (last.get("packages") or {}).get("torch")}
    if before != now:
        notice(
            f"resuming at step {state['step']} under git {now['git']} and torch {now['torch']}; "
            f"it ran under git {before['git']} and torch {before['torch']} before (both recorded in "
            "config.json)"
        )
        record_history(config, "resumed", step=int(state["step"]))
        write_json(run_dir.config, config)
    step.generator.load_state_dict(state["generator"])
    step.discriminator.load_state_dict(state["discriminator"])
    step.opt_g.load_state_dict(state["opt_g"])
    step.opt_d.load_state_dict(state["opt_d"])
    restore_rng_state(step.rng, state["rng"])
    progress.log_sum.copy_(state["log_sum"])
    progress.log_count = int(state["log_count"])
    # checkpoints written before these fields existed lack them
    recorded_selection = state.get("selection", {"best": None, "stale": 0})
    progress.selection = Selection(recorded_selection["best"], recorded_selection["stale"])
    progress.wall_s = float(state.get("wall_s", 0.0))
    progress.cpu_s = float(state.get("cpu_s", 0.0))
    progress.eval_cpu_s = float(state.get("eval_cpu_s", 0.0))
    recorded_diagnostics = state.get("diagnostics", {})
    progress.previous_diagnostics = {name: tuple(values) for name, values in recorded_diagnostics.items()}
    for path in (run_dir.log, run_dir.evals):
        truncate_csv(path, state["step"])
    return int(state["step"])


def checkpoint_state(
    step: TrainStep, number: int, progress: LoopProgress, session: TrainSession
) -> dict[str, Any]:
    times = session.times()
    return {
        "step": number,
        "selection": {"best": progress.selection.best, "stale": progress.selection.stale},
        "log_sum": progress.log_sum.clone(),
        "log_count": progress.log_count,
        "wall_s": times["train_wall_s"],
        "cpu_s": times["train_cpu_s"],
        "eval_cpu_s": times["eval_cpu_s"],
        "diagnostics": {name: list(values) for name, values in progress.previous_diagnostics.items()},
        "generator": step.generator.state_dict(),
        "discriminator": step.discriminator.state_dict(),
        "opt_g": step.opt_g.state_dict(),
        "opt_d": step.opt_d.state_dict(),
        "rng": rng_state(step.rng),
    }


def truncate_csv(path: Path, last_step: int) -> None:
    """Drop rows logged after the checkpoint we resume from, so they are not written twice."""
    if not path.exists():
        return
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    kept = rows[:1] + [r for r in rows[1:] if int(r[0]) <= last_step]

    def write(tmp: Path) -> None:
        with tmp.open("w", newline="") as handle:
            csv.writer(handle).writerows(kept)

    write_atomic(path, write)
