"""The training engine: one object per run in training (`Run`) and one loop (`drive`) that owns
resume, logging, divergence, periodic evaluation, checkpoints and finishing for a group of runs,
calling a step function that trains them all one step: `SequentialSteps` (one run) or
`SeedParallelSteps` (seeds of one configuration batched with vmap)."""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from gdpp_bench.checkpoint import save_checkpoint
from gdpp_bench.config import RunSpec
from gdpp_bench.data import dataset_of, describe_data
from gdpp_bench.errors import UserError
from gdpp_bench.losses import TERM_DIAGNOSTICS
from gdpp_bench.progress import RunProgress, say
from gdpp_bench.rundir import RunDir, write_atomic
from gdpp_bench.samples import fixed_noise_samples, save_samples
from gdpp_bench.training.board import Board
from gdpp_bench.training.interrupts import HeldSignals, held_signals
from gdpp_bench.training.reconcile import reconcile
from gdpp_bench.training.resume import (
    LoopProgress,
    Selection,
    TrainSession,
    checkpoint_state,
    start_or_resume,
)
from gdpp_bench.training.sequential import SequentialSteps
from gdpp_bench.training.state import TrainStep, build_step

EvalHook = Callable[[nn.Module, int], dict[str, float]]
FIXED_NOISE_SEED = 2019
SCATTER_POINTS = 2_500


class Steps(Protocol):
    """A step function the engine drives: trains each run of its group one step."""

    execution: str  # how the steps run, for DONE (e.g. "cuda graph", "eager: ...")

    def __call__(self) -> Tensor:
        """One step of every run; the values to log, [runs, columns]."""
        ...

    def sync(self) -> None:
        """Make each run's TrainStep hold its latest weights and optimiser state."""
        ...

    def keep(self, indices: list[int]) -> Steps:
        """The step function of the runs at `indices` only (the others have ended)."""
        ...


def _append_csv(path: Path, columns: list[str], row: list[Any]) -> None:
    new = not path.exists()
    with path.open("a", newline="") as handle:
        writer = csv.writer(handle)
        if new:
            writer.writerow(columns)
        writer.writerow(row)


def _save_samples(spec: RunSpec, generator: nn.Module, device: torch.device, path: Path, step: int) -> None:
    dataset = dataset_of(spec)
    count = SCATTER_POINTS if len(dataset.shape) == 1 else spec.eval.grid_samples
    samples = fixed_noise_samples(generator, count, FIXED_NOISE_SEED, device)
    title = f"{spec.suite}: {spec.variant}, seed {spec.seed}, step {step}"
    save_samples(path, samples, dataset, title)


def periodic_evaluation(
    spec: RunSpec,
    run_dir: RunDir,
    step: TrainStep,
    number: int,
    eval_hook: EvalHook | None,
    selection: Selection,
    board: Board | None = None,
) -> bool:
    """Metrics to evals.csv, a sample picture, best.pt (and TensorBoard events); returns True
    when patience ran out."""
    values = eval_hook(step.generator, number) if eval_hook else {}
    _save_samples(spec, step.generator, step.rng.device, run_dir.sample_grid(number), number)
    if values:
        _append_csv(run_dir.evals, ["step", *values], [number, *values.values()])
    if board is not None:
        board.scalars("eval", values, number)
        board.picture("samples", run_dir.sample_grid(number), number)
    selected = spec.eval.select
    if not selected:
        return False
    value = values.get(selected)
    if value is None:
        raise UserError(
            f"eval.select = {selected!r} is not among the values of the suite's "
            f"metrics ({', '.join(values) or 'none'}); pick one of those"
        )
    if math.isfinite(value) and selection.update(value, spec.eval.select_mode):
        best = {"step": number, "generator": step.generator.state_dict(), selected: value}
        save_checkpoint(run_dir.best, best)
    elif not math.isfinite(value):
        selection.stale += 1
    return bool(spec.eval.patience) and selection.stale >= spec.eval.patience


def log_row(
    run_dir: RunDir,
    columns: list[str],
    number: int,
    means: list[float],
    rate: float,
    diagnostics: Sequence[float] = (),
) -> str | None:
    """Append one log.csv row; the reason the run diverged if a logged mean is not finite (the
    diagnostics after imgs_per_s may be NaN: they are observations, not losses)."""
    _append_csv(run_dir.log, columns, [number, *means, rate, *diagnostics])
    bad = [c for c, v in zip(columns[1:], means, strict=False) if not math.isfinite(v)]
    return f"diverged: non-finite {', '.join(bad)} by step {number}" if bad else None


def _diagnostics(step: TrainStep, progress: LoopProgress, names: list[str]) -> list[float]:
    """Each diagnostic term's log value at this log step, against the previous log step's."""
    values = []
    for name in names:
        current = step.term_diagnostics.get(name)
        if current is None:
            values.append(math.nan)
            continue
        current = type(current)(*(t.detach().cpu().clone() for t in current))
        values.append(TERM_DIAGNOSTICS[name][1](current, progress.previous_diagnostics.get(name)))
        progress.previous_diagnostics[name] = current
    return values


def log_columns(step: TrainStep) -> list[str]:
    """log.csv's header: step, the logged values, imgs_per_s, then each term diagnostic."""
    diagnostics = [TERM_DIAGNOSTICS[name][0] for name in step.diagnostic_terms()]
    return ["step", *step.log_columns(), "imgs_per_s", *diagnostics]


@dataclass
class Run:
    """One run in training: its contract, folder, training state and loop bookkeeping."""

    spec: RunSpec
    run_dir: RunDir
    step: TrainStep
    progress: LoopProgress
    eval_hook: EvalHook | None
    start: int  # the step it resumed at (0: a fresh start)
    board: Board | None = None  # TensorBoard events (eval.tensorboard)
    pictured: int | None = None  # the step of the sample picture this session drew last

    @classmethod
    def open(
        cls,
        spec: RunSpec,
        run_dir: RunDir,
        step: TrainStep,
        device: torch.device,
        eval_hook: EvalHook | None,
        data: dict[str, Any] | None = None,
    ) -> Run:
        """The run with `step` fresh or resumed from the folder's checkpoint (the caller holds its
        lock and has reconciled it); `data` describes its data for config.json (`describe_data`)."""
        progress = LoopProgress(log_sum=torch.zeros(len(step.log_columns()), device=device))
        start = start_or_resume(spec, run_dir, step, device, progress, data)
        doing = f"resuming at step {start}" if start else "training"
        say(f"{doing} of {spec.train.steps} in {run_dir.path}")
        board = Board(run_dir, start) if spec.eval.tensorboard else None
        return cls(spec, run_dir, step, progress, eval_hook, start, board)

    def evaluate(self, number: int, session: TrainSession) -> bool:
        """The periodic evaluation at step `number`; True when patience ran out."""
        with session.evaluating():
            stop = periodic_evaluation(
                self.spec,
                self.run_dir,
                self.step,
                number,
                self.eval_hook,
                self.progress.selection,
                self.board,
            )
        self.pictured = number
        return stop

    def save(self, number: int, session: TrainSession) -> None:
        """The checkpoint at step `number` (the caller has put the loop's sums into progress)."""
        save_checkpoint(self.run_dir.checkpoint, checkpoint_state(self.step, number, self.progress, session))

    def finish(self, number: int, session: TrainSession, stopped_early: bool, execution: str) -> None:
        """The final sample picture and DONE of a run that trained to its end (or ran out of patience)."""
        times = session.times()
        if self.pictured == number:  # the final evaluation drew this picture: the same bytes
            drawn = self.run_dir.sample_grid(number).read_bytes()
            write_atomic(self.run_dir.samples_png, lambda tmp: tmp.write_bytes(drawn))
        else:
            generator, device = self.step.generator, self.step.rng.device
            _save_samples(self.spec, generator, device, self.run_dir.samples_png, number)
        details: dict[str, Any] = (
            {"stopped_early": True, "patience": self.spec.eval.patience} if stopped_early else {}
        )
        details["step_execution"] = execution
        self.run_dir.mark_done("done", step=number, **times, **details)


def drive(runs: list[Run], steps: Steps, style: str = "off") -> None:
    """Train `runs` (one configuration, all at the same step and log count) to their step count.

    At each log step every run gets its log.csv row (the only host sync), and a run whose logged
    means are not finite is marked failed and leaves the group; at evaluation steps each run is
    evaluated (best.pt, patience); at checkpoint steps, at the end and when patience runs out its
    checkpoint is written. `style` shows progress (gdpp_bench.progress) of a group of one run.

    Ctrl-C or SIGTERM during a step is held to the end of that step (evaluation included): every
    run then writes its checkpoint there and the signal takes effect (`interrupts`), usually as
    KeyboardInterrupt; the runs resume from that step."""
    with held_signals() as held:
        _drive(runs, steps, style, held)


def _drive(runs: list[Run], steps: Steps, style: str, held: HeldSignals) -> None:
    first = runs[0]
    cfg, every = first.spec.train, first.spec.eval.every
    columns = log_columns(first.step)
    diagnostic_terms = first.step.diagnostic_terms()
    execution = steps.execution
    sessions = {id(run): TrainSession(run.progress, share=len(runs)) for run in runs}
    log_sum = torch.stack([run.progress.log_sum for run in runs])
    log_count = first.progress.log_count
    number = first.start
    shown = RunProgress(cfg.steps, number, style if len(runs) == 1 else "off")
    everyone = list(runs)
    tick = time.perf_counter()
    try:
        while number < cfg.steps and runs:
            number += 1
            log_sum += steps()
            log_count += 1
            leaving: set[int] = set()  # indices of runs that end at this step
            stopped: set[int] = set()  # ... of which those whose patience ran out
            if number % cfg.log_every == 0 or number == cfg.steps:
                all_means = (log_sum / log_count).tolist()
                rate = log_count * cfg.batch_size / (time.perf_counter() - tick)
                for k, (run, means) in enumerate(zip(runs, all_means, strict=True)):
                    diagnostics = _diagnostics(run.step, run.progress, diagnostic_terms)
                    reason = log_row(run.run_dir, columns, number, means, rate, diagnostics)
                    if run.board is not None:
                        logged = dict(zip(columns[1:], [*means, rate, *diagnostics], strict=True))
                        run.board.scalars("train", logged, number)
                    if reason:
                        run.run_dir.mark_done(
                            "failed", reason=reason, step=number, **sessions[id(run)].times()
                        )
                        leaving.add(k)
                if not leaving:
                    shown.logged(number, dict(zip(columns[1:], all_means[0], strict=False)))
                log_sum.zero_()
                log_count, tick = 0, time.perf_counter()
            evaluate = bool(every) and number % every == 0
            stopping = held.pending is not None and number < cfg.steps  # (the last step finishes)
            save = number % cfg.checkpoint_every == 0 or number == cfg.steps or stopping
            if evaluate or save or leaving:
                steps.sync()
            for k, run in enumerate(runs):
                if k in leaving:
                    continue
                session = sessions[id(run)]
                if evaluate and run.evaluate(number, session):
                    stopped.add(k)
                if save or k in stopped:
                    run.progress.log_sum, run.progress.log_count = log_sum[k].clone(), log_count
                    run.save(number, session)
                if k in stopped:
                    run.finish(number, session, stopped_early=True, execution=execution)
            leaving |= stopped
            if leaving:
                keep = [k for k in range(len(runs)) if k not in leaving]
                runs = [runs[k] for k in keep]
                if runs:
                    log_sum = log_sum[keep].clone()
                    steps = steps.keep(keep)
            if stopping:
                held.act()  # every run has its checkpoint at this step
    finally:
        shown.close()
        for run in everyone:
            if run.board is not None:
                run.board.close()
    if runs:
        steps.sync()
    for run in runs:
        run.finish(number, sessions[id(run)], stopped_early=False, execution=execution)


def train(
    spec: RunSpec,
    run_dir: RunDir,
    device: torch.device,
    data_root: str | None = None,
    eval_hook: EvalHook | None = None,
    policy: str = "refuse",
    style: str = "off",
) -> dict[str, Any]:
    """Train one run to `spec.train.steps`, resuming from `run_dir` if it holds a checkpoint.

    `policy` says what to do with a run folder trained with other settings (`reconcile`); `style`
    how progress is shown (see gdpp_bench.progress). Returns the recorded status: {'status':
    'done', ...} or {'status': 'failed', 'reason': ...}. A non-finite loss (checked at each log
    step) ends the run as failed.
    """
    with run_dir.lock():
        reconcile(spec, run_dir, policy)
        if run_dir.is_done():
            return {**run_dir.status(), "skipped": True}
    dataset = dataset_of(spec)
    step = build_step(spec, device, dataset.sampler(device, data_root))
    with run_dir.lock():
        if run_dir.is_done():  # finished by another process while we loaded the data
            return {**run_dir.status(), "skipped": True}
        run = Run.open(spec, run_dir, step, device, eval_hook, describe_data(dataset, data_root))
        drive([run], SequentialSteps(step, spec.train.precision), style)
        return run_dir.status()
