"""Suite -> runs -> train + evaluate each through an executor; evaluation of whole suites."""

from __future__ import annotations

import dataclasses
import functools
import signal
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import torch
from tqdm import tqdm

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.config import RunSpec
from gdpp_bench.data import dataset_of
from gdpp_bench.environment import device_type, resolve_device
from gdpp_bench.errors import Interrupted, UserError
from gdpp_bench.evaluation import check_data, evaluate_run, make_eval_hook, splits_needed
from gdpp_bench.executors import Executor, SlurmExecutor, make_executor
from gdpp_bench.metrics import EvalOptions
from gdpp_bench.plugins import load_plugins, load_recorded_plugins
from gdpp_bench.progress import say, working_on
from gdpp_bench.rundir import RunBusy, RunDir, UnreadableFile, find_run_dirs
from gdpp_bench.training import (
    refusal,
    seed_groups,
    supports_seed_parallel,
    train,
    train_seed_parallel,
    training_differences,
)

# what `gdpp-bench run` exits with (the README lists them)
EXIT_OK = 0  # every run done or skipped
EXIT_RUN_FAILED = 1  # some run failed (diverged) or ended with an unexpected error; the others ran
EXIT_BAD_INPUT = 2  # a bad input: the command itself, or some run's folder or settings (that run refused)
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT): the suite stopped, every run folder resumable


def run_one(
    spec: RunSpec,
    results: Path,
    data_root: str | None,
    options: EvalOptions | None = None,
    policy: str = "refuse",
    style: str = "off",
) -> dict[str, Any]:
    """Train (or resume, or skip) one run on `spec.device` and evaluate it. Safe to call again."""
    load_plugins()  # in a worker process or Slurm task: the plug-ins the suite's process loaded
    device = resolve_device(spec.device)  # already resolved: checks that it is there
    run_dir = RunDir.for_spec(results, spec)
    with working_on(spec.key):
        if not run_dir.is_done():  # a finished run is skipped without reading data
            check_data(dataset_of(spec), data_root, splits_needed(spec))
        hook = make_eval_hook(spec, device, data_root, options)
        status = train(spec, run_dir, device, data_root, eval_hook=hook, policy=policy, style=style)
        record = evaluate_run(run_dir, device, data_root=data_root, options=options, measured=hook.last)
    return {
        "key": spec.key,
        "skipped": bool(status.pop("skipped", False)),
        **status,
        "values": record.get("values", {}),
    }


@dataclass
class Tally:
    """How the runs of one call ended, for the closing line and the exit code."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("done", "skipped", "failed", "incomplete"), 0)
    )
    bad_input: bool = False

    def add(self, outcome: dict[str, Any]) -> None:
        if outcome.get("skipped"):
            self.counts["skipped"] += 1
        elif outcome["status"] in ("done", "failed"):
            self.counts[outcome["status"]] += 1
        else:
            self.counts["incomplete"] += 1
        self.bad_input |= bool(outcome.get("user_error"))

    def line(self) -> str:
        return ", ".join(f"{count} {name}" for name, count in self.counts.items())

    def exit_code(self) -> int:
        if self.bad_input:
            return EXIT_BAD_INPUT
        return EXIT_RUN_FAILED if self.counts["failed"] or self.counts["incomplete"] else EXIT_OK


def _error_outcomes(keys: list[str], exc: BaseException) -> list[dict[str, Any]]:
    """The outcomes of runs whose job raised `exc`: incomplete, with the reason."""
    user_error = isinstance(exc, UserError)
    message = str(exc) if user_error else f"{type(exc).__name__}: {exc}"
    return [
        {
            "key": key,
            "status": "incomplete",
            "skipped": False,
            "reason": message,
            "user_error": user_error,
            "busy": isinstance(exc, RunBusy),  # another process trains it (tune leaves it to that one)
            "values": {},
        }
        for key in keys
    ]


def _echo_error(keys: list[str], exc: BaseException) -> None:
    """A user error is its one line; a bug keeps its traceback (and then says which runs it hit)."""
    if isinstance(exc, UserError):
        click.echo(f"error: {exc}", err=True)
        return
    click.echo("".join(traceback.format_exception(exc)).rstrip(), err=True)
    click.echo(f"error: {', '.join(keys)}: {type(exc).__name__}: {exc}", err=True)


def _as_list(result: Any) -> list[dict[str, Any]]:
    return result if isinstance(result, list) else [result]


def run_seed_group(
    specs: Sequence[RunSpec],
    results: Path,
    data_root: str | None,
    options: Any = None,
    policy: str = "refuse",
    style: str = "off",
) -> list[dict[str, Any]]:
    """`run_one` for a group of seeds: train them batched, then evaluate each run."""
    load_plugins()
    device = resolve_device(specs[0].device)
    run_dirs = [RunDir.for_spec(results, spec) for spec in specs]
    with working_on(", ".join(spec.key for spec in specs)):
        say(f"training {len(specs)} seeds as one batched model")
        before = [run_dir.is_done() for run_dir in run_dirs]
        for spec, done in zip(specs, before, strict=True):
            if not done:  # a finished run is skipped without reading data
                check_data(dataset_of(spec), data_root, splits_needed(spec))
        hooks = [make_eval_hook(spec, device, data_root, options) for spec in specs]
        statuses = train_seed_parallel(specs, results, device, data_root, eval_hooks=hooks, policy=policy)
    outcomes = []
    for spec, run_dir, skipped, status, hook in zip(specs, run_dirs, before, statuses, hooks, strict=True):
        with working_on(spec.key):
            record = evaluate_run(run_dir, device, data_root=data_root, options=options, measured=hook.last)
        outcomes.append(
            {
                "key": spec.key,
                "skipped": skipped and status["status"] != "incomplete",
                **status,
                "values": record.get("values", {}),
            }
        )
    return outcomes


def run_specs(
    specs: list[RunSpec],
    results: Path,
    data_root: str | None,
    device_name: str,
    jobs: int = 1,
    on_result: Callable[[dict[str, Any]], None] | None = None,
    options: EvalOptions | None = None,
    executor: Executor | None = None,
    seed_parallel: bool = False,
    policy: str = "refuse",
    style: str = "off",
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Train and evaluate every spec; `on_result` hears of each run as soon as it ends; `warn` of
    non-standard Inception weights.

    `seed_parallel`: the seeds of each variant that allows it (mlp2d) train as one batched model
    (one job per variant); the others run one job per run as usual. `policy` (refuse, extend,
    force) is what to do with run folders trained with other settings; `style` how each run shows
    its progress.

    A run that raises (a corrupt checkpoint, say) does not stop the others: its outcome has status
    'incomplete' and the reason, and the error is printed as it happens. Ctrl-C (KeyboardInterrupt)
    stops the whole suite: nothing more is submitted, running and queued runs are stopped or
    cancelled (Slurm tasks through submitit), and KeyboardInterrupt is raised again.
    """
    # the device is resolved here, once, into every spec (a missing one is reported before any
    # job starts); for Slurm, "auto" means a GPU of the cluster's nodes, which this machine cannot see
    on_cluster = isinstance(executor, SlurmExecutor)
    kind = device_type(device_name, on_cluster_node=True) if on_cluster else resolve_device(device_name).type
    specs = [dataclasses.replace(spec, device=kind) for spec in specs]
    # a Slurm task reads the data where it runs, which need not be where this process runs
    specs, refused = (
        (specs, [])
        if on_cluster
        else refuse_runs_without_instruments(specs, results, data_root, options, warn)
    )
    executor = executor or make_executor("local", jobs, device=device_name)
    progress = tqdm(
        total=len(specs) + len(refused), desc="runs", unit="run", leave=False, disable=None, position=0
    )
    for outcome in refused:
        progress.update()
        if on_result is not None:
            on_result(outcome)
    groups = seed_groups(specs) if seed_parallel else [[spec] for spec in specs]

    def finished(future: Future, keys: list[str]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if isinstance(error, KeyboardInterrupt):  # a run the interruption stopped: said below
            return
        if error is not None:
            _echo_error(keys, error)
        outcomes = _error_outcomes(keys, error) if error is not None else _as_list(future.result())
        progress.update(len(outcomes))
        if on_result is not None:
            for outcome in outcomes:
                on_result(outcome)

    futures: list[tuple[Future, list[str]]] = []
    submitted = 0  # groups handed to the executor
    try:
        for group in groups:
            submitted += 1
            if len(group) > 1 and supports_seed_parallel(group[0], torch.device(group[0].device)):
                jobs_of_group = [
                    (
                        executor.submit(run_seed_group, group, results, data_root, options, policy, style),
                        [s.key for s in group],
                    )
                ]
            else:
                jobs_of_group = [
                    (
                        executor.submit(run_one, spec, results, data_root, options, policy, style),
                        [spec.key],
                    )
                    for spec in group
                ]
            for future, keys in jobs_of_group:
                # at once for the inline executor
                future.add_done_callback(functools.partial(_call_with_keys, finished, keys))
            futures += jobs_of_group
        outcomes = list(refused)
        for future, keys in futures:
            error = future.exception()
            outcomes += _error_outcomes(keys, error) if error is not None else _as_list(future.result())
        return outcomes
    except KeyboardInterrupt:
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut this short
        try:
            stopped = executor.abort()
        finally:
            signal.signal(signal.SIGINT, previous)
        unsent = sum(len(group) for group in groups[submitted:])
        click.echo(
            f"interrupted: {stopped}"
            + (f", {unsent} runs not started" if unsent else "")
            + "; every run folder resumes from its last checkpoint: rerun the same command",
            err=True,
        )
        raise Interrupted from None  # said: the command line adds nothing
    finally:
        executor.shutdown()
        progress.close()


def refuse_runs_without_instruments(
    specs: list[RunSpec],
    results: Path,
    data_root: str | None,
    options: EvalOptions | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[list[RunSpec], list[dict[str, Any]]]:
    """(the runs to start, the outcomes of those refused): everything the unfinished runs read is
    checked here once, before any of them trains: their data (downloaded where absent and
    possible) and their metrics' instruments (classifiers, Inception-v3 weights; see
    gdpp_bench.preflight). Anything missing is one error line for the suite, naming each missing
    thing and how to get it, and no unfinished run starts; `warn` hears of non-standard
    Inception weights."""
    from gdpp_bench.preflight import check_runs, runs_word

    found, keys = check_runs(specs, results, data_root, options)
    found.tell(warn)
    if not found.missing:
        return specs, []
    click.echo(f"error: {found.line()} ({runs_word(len(keys))} not started)", err=True)
    refused = _error_outcomes(keys, UserError("not started: data or instruments missing (error above)"))
    waiting = set(keys)
    return [spec for spec in specs if spec.key not in waiting], refused


def evaluate_suite(
    suite_dir: Path,
    device_name: str,
    force: bool = False,
    data_root: str | None = None,
    options: EvalOptions | None = None,
    warn: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Evaluate every run folder under `suite_dir`; a run whose folder cannot be read is one error
    line (status 'error') and the others go on. Before any is measured, what the metrics to
    measure read is checked (gdpp_bench.preflight): anything missing is one UserError naming it
    and how to get it, nothing evaluated; `warn` hears of non-standard Inception weights."""
    from gdpp_bench.preflight import check_evaluations, runs_word

    device = resolve_device(device_name)
    found, count = check_evaluations(suite_dir, data_root, options or EvalOptions(), force)
    found.tell(warn)
    if found.missing:
        raise UserError(f"{found.line()} ({runs_word(count)} to measure; nothing evaluated)")
    outcomes = []
    for run_dir in find_run_dirs(suite_dir):
        key = str(run_dir.path.relative_to(suite_dir))
        try:
            load_recorded_plugins(run_dir)
            with working_on(key):
                record = evaluate_run(run_dir, device, force=force, data_root=data_root, options=options)
        except UserError as exc:
            record = {"status": "error", "reason": str(exc), "user_error": True}
        outcomes.append({"key": key, **record})
    return outcomes


def _call_with_keys(finished: Callable[[Future, list[str]], None], keys: list[str], future: Future) -> None:
    finished(future, keys)


def plan_line(spec: RunSpec, results: Path, policy: str = "refuse") -> str:
    """What `run` would do with `spec`'s folder under `policy` (refuse, extend, force: as
    `reconcile` decides), in one line, without touching it (--dry-run)."""
    run_dir = RunDir.for_spec(results, spec)

    def would(what: str) -> str:
        return f"{spec.key}: would {what} in {run_dir.path}"

    if not run_dir.config.exists():
        return would("train from step 0")
    try:
        recorded = RunSpec.from_dict(run_dir.read_config()["spec"])
    except (UserError, KeyError, TypeError, ValueError) as exc:
        if policy == "force":
            return would(f"move its folder aside (--force: {exc}) and train from step 0")
        return would(f"refuse its folder ({exc})")
    doing = ""  # what happens before it trains
    try:
        state = run_dir.status()
    except UnreadableFile:
        state, doing = {"status": "incomplete"}, "move its unreadable DONE aside, "
    changed = training_differences(recorded, spec)
    if changed and policy == "force":
        return would(f"move its folder aside (--force: {', '.join(changed)} changed) and train from step 0")
    if changed and policy == "refuse":
        return would(f"refuse ({', '.join(changed)} changed; --extend or --force)")
    if changed:
        reason = refusal(spec, recorded, run_dir, state, changed, policy)
        if reason:
            return f"{spec.key}: would refuse ({reason})"
        doing += f"extend it from {recorded.train.steps} to {spec.train.steps} steps, "
    elif state["status"] == "done":
        return would("skip (done)")
    elif state["status"] == "failed":
        return would(f"skip (failed: {state.get('reason', '')})")
    try:
        step = load_checkpoint(run_dir.checkpoint, mmap=True)["step"] if run_dir.checkpoint.exists() else 0
    except UserError as exc:
        return would(f"stop at its checkpoint ({exc})")
    if not step:  # stopped before its first checkpoint
        return would(f"{doing}train from step 0")
    return would(f"{doing}resume at step {step} of {spec.train.steps}")
