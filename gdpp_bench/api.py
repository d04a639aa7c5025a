"""The Python API: what the command line does, from a script or a notebook.

    import gdpp_bench
    runs = gdpp_bench.run_suite("smoke", "results", datasets=["ring8"], steps=200)
    metrics = gdpp_bench.load_metrics("results/smoke")

Every function takes the same folders the command line writes and reads, so runs started from
Python resume from the command line and the other way round."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from gdpp_bench.config import RunSpec, Suite
from gdpp_bench.errors import UserError
from gdpp_bench.executors import Executor, make_executor
from gdpp_bench.metrics import EvalOptions
from gdpp_bench.metrics.features import check_features
from gdpp_bench.pipeline import Tally, evaluate_suite, run_specs
from gdpp_bench.power import check_design
from gdpp_bench.report.tables import DEFAULT_LAST_K, ID_COLUMNS, collect_runs, metric_columns
from gdpp_bench.rundir import find_run_dirs, suite_dirs
from gdpp_bench.suites import expand, load_suite
from gdpp_bench.user_paths import default_data_root

Outcome = dict[str, Any]  # how one run ended: key, status, skipped, reason, values (pipeline.run_one)


@dataclass(frozen=True)
class SlurmOptions:
    """--executor slurm: each run one task of a Slurm job array (None: SlurmExecutor's default)."""

    partition: str | None = None
    time_min: int | None = None
    gpus_per_run: int | None = None
    cpus_per_run: int | None = None
    mem_gb: float | None = None
    array_parallelism: int | None = None
    folder: Path | None = None  # submitit's job files and logs (None: RESULTS/.submitit/%j)


@dataclass(frozen=True)
class RunOptions:
    """Everything `gdpp-bench run` (and `tune`) takes besides the suite: the command line fills one,
    a script passes its fields to `run_suite` as keyword arguments. None keeps the suite's value."""

    results: Path = Path("results")
    data_root: str | None = None  # None: default_data_root()
    variants: tuple[str, ...] | None = None
    seeds: tuple[int, ...] | None = None
    datasets: tuple[str, ...] | None = None
    steps: int | None = None
    device: str = "auto"
    precision: str | None = None
    compile: bool | None = None
    cuda_graph: bool | None = None
    eval_samples: int | None = None
    tensorboard: bool | None = None
    executor: str = "local"
    workers: int = 1
    slurm: SlurmOptions = field(default_factory=SlurmOptions)
    seed_parallel: bool = False
    policy: str = "refuse"  # a folder trained with other settings: refuse, extend or force
    protocol: str = "quick"
    inception_weights: str | None = None
    batch_size: int = 256  # feature-extraction batch of the fidelity metrics
    feature_weights: str | None = None  # local weights of the suite's eval.features (DINOv2, CLIP)
    progress: str = "off"  # off, lines or bar
    allow_underpowered: bool = False  # run a design that cannot reach a verdict (the report says so)

    @classmethod
    def of(cls, results: str | Path = "results", **fields: Any) -> RunOptions:
        """From keyword arguments (lists accepted where tuples are kept); an unknown name is a
        UserError listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(fields) - known)
        if unknown:
            raise UserError(f"unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if isinstance(fields.get("slurm"), dict):
            fields["slurm"] = SlurmOptions(**fields["slurm"])
        for name in ("variants", "seeds", "datasets"):
            if fields.get(name) is not None:
                fields[name] = tuple(fields[name])
        return cls(results=Path(results), **fields)

    @property
    def root(self) -> str:
        return self.data_root or default_data_root()

    def eval_options(self) -> EvalOptions:
        return EvalOptions(
            self.protocol, self.inception_weights, self.batch_size, feature_weights=self.feature_weights
        )

    def make_executor(self, announce: Callable[[str], None] | None = None) -> Executor:
        slurm: dict[str, Any] = dataclasses.asdict(self.slurm)
        if self.executor == "slurm":
            slurm["folder"] = self.slurm.folder or self.results / ".submitit" / "%j"
            slurm["announce"] = announce
        return make_executor(self.executor, self.workers, device=self.device, **slurm)


class RunsNotDone(UserError):
    """Some runs asked for were refused, failed or stopped unfinished; `outcomes` says how every
    run ended, `runs` holds the rows of the runs asked for (as `load_runs`)."""

    def __init__(self, message: str, outcomes: list[Outcome], runs: pd.DataFrame) -> None:
        super().__init__(message)
        self.outcomes = outcomes
        self.runs = runs


def plan_runs(
    suite: str | Path | Suite, options: RunOptions, warn: Callable[[str], None] | None = None
) -> tuple[Suite, list[RunSpec]]:
    """The suite and its runs as `options` narrow them, after the power check: a design that cannot
    reach a verdict is refused (UserError), unless the suite is descriptive, `allow_underpowered`
    (recorded in the runs), or the command line asked for a subset (then `warn` hears one line)."""
    loaded = suite if isinstance(suite, Suite) else load_suite(str(suite))
    specs = expand(
        loaded,
        list(options.variants) if options.variants else None,
        list(options.seeds) if options.seeds is not None else None,
        options.steps,
        options.precision,
        options.compile,
        options.cuda_graph,
        options.eval_samples,
        datasets=list(options.datasets) if options.datasets else None,
        tensorboard=options.tensorboard,
        data_root=options.root,
    )
    specs, note = check_design(
        specs,
        subset=bool(options.variants) or options.seeds is not None,
        allow_underpowered=options.allow_underpowered,
    )
    if note and warn is not None:
        warn(note)
    return loaded, specs


def missing_for(specs: list[RunSpec], options: RunOptions, warn: Callable[[str], None] | None = None) -> str:
    """--dry-run's check of what `execute_runs` checks before any run trains: "" where the
    unfinished runs of `specs` have their data and instruments, else the error line naming what
    is missing and how to get it. Not for Slurm runs (their tasks read the data where they run)."""
    from gdpp_bench.preflight import check_runs, runs_word

    if options.executor == "slurm":
        return ""
    found, keys = check_runs(specs, options.results, options.root, options.eval_options())
    found.tell(warn)
    return f"{found.line()} ({runs_word(len(keys))} would not start)" if found.missing else ""


def execute_runs(
    specs: list[RunSpec],
    options: RunOptions,
    on_result: Callable[[Outcome], None] | None = None,
    announce: Callable[[str], None] | None = None,
    warn: Callable[[str], None] | None = None,
) -> tuple[list[Outcome], Tally]:
    """Train and evaluate `specs` as `options` say; every outcome, and their tally (exit code).
    `warn` hears of non-standard Inception weights (once, before any run starts)."""
    tally = Tally()

    def heard(outcome: Outcome) -> None:
        tally.add(outcome)
        if on_result is not None:
            on_result(outcome)

    outcomes = run_specs(
        specs,
        options.results,
        options.root,
        options.device,
        on_result=heard,
        options=options.eval_options(),
        executor=options.make_executor(announce),
        seed_parallel=options.seed_parallel,
        policy=options.policy,
        style=options.progress,
        warn=warn,
    )
    return outcomes, tally


def runs_of(results: Path, specs: Sequence[RunSpec], last_k: int = DEFAULT_LAST_K) -> pd.DataFrame:
    """`load_runs` rows of exactly the runs `specs` name (their suite folders, their keys)."""
    frames = []
    for suite in sorted({spec.suite for spec in specs}):
        keys = {spec.key for spec in specs if spec.suite == suite}
        table = collect_runs(Path(results) / suite, last_k)
        if "run" in table.columns:
            frames.append(table[table["run"].isin(keys)])
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=[*ID_COLUMNS, "status"])
    return pd.concat(frames, ignore_index=True)


def finish(outcomes: list[Outcome], tally: Tally, runs: pd.DataFrame, what: str) -> pd.DataFrame:
    """`runs`, or RunsNotDone when some run was refused, failed or is unfinished."""
    if tally.exit_code() == 0:
        return runs
    bad = [o for o in outcomes if not o.get("skipped") and o["status"] != "done"]
    first = bad[0] if bad else {"key": "?", "status": "?"}
    detail = first.get("reason") or first["status"]
    raise RunsNotDone(f"{what}: {tally.line()}; e.g. {first['key']}: {detail}", outcomes, runs)


def run_suite(
    suite: str | Path | Suite,
    results: str | Path = "results",
    *,
    on_result: Callable[[Outcome], None] | None = None,
    **options: Any,
) -> pd.DataFrame:
    """Train and evaluate every run of `suite` (a name, a TOML path or a loaded `Suite`), as
    `gdpp-bench run` does: finished runs are skipped, unfinished ones resumed.

    `options` are the fields of `RunOptions`, as `gdpp-bench run` names its flags: `variants`,
    `seeds`, `steps` and `datasets` replace the suite's; `device`, `workers`, `seed_parallel`,
    `precision`, `compile`, `executor` (with `slurm=SlurmOptions(...)`), `policy` ("refuse",
    "extend" or "force", as --extend/--force), `progress` ("off", "lines" or "bar"),
    `allow_underpowered`, ... `on_result` hears of each run as it ends.

    Returns `load_runs` rows of the runs asked for. Raises gdpp_bench.errors.UserError for a bad
    input (the message says what to change), and its subclass `RunsNotDone` (with `outcomes` and
    `runs`) when some run was refused, failed (diverged) or did not finish."""
    chosen = RunOptions.of(results, **options)
    _, specs = plan_runs(suite, chosen, warn=echo_warning)
    outcomes, tally = execute_runs(specs, chosen, on_result, warn=echo_warning)
    return finish(outcomes, tally, runs_of(chosen.results, specs), "run_suite")


def echo_warning(line: str) -> None:
    """One `warning:` line on stderr (the command line's and the API's warnings alike)."""
    import click

    click.echo(f"warning: {line}", err=True)


def evaluate(
    results: str | Path,
    *,
    device: str = "auto",
    data_root: str | None = None,
    force: bool = False,
    protocol: str = "quick",
    inception_weights: str | None = None,
    batch_size: int = 256,
    features: str | None = None,
    feature_weights: str | None = None,
) -> pd.DataFrame:
    """Write metrics.json for every finished run under `results` (a suite's folder, or a results
    folder holding several suites), as `gdpp-bench evaluate` does: only what a run lacks, unless
    `force`. Returns one row per run: key, status, reason (if any) and the measured values.
    `features` replaces the suites' eval.features (e.g. "dinov2-vit-l-14": values fd_dinov2,
    kid_dinov2, ...; gdpp_bench.metrics.features), `feature_weights` is its local weights file.
    Raises UserError, before measuring anything, where data or an instrument the metrics need is
    missing (the message says which and how to get it), or for an unknown `features`."""
    rows = []
    if features is not None:
        check_features(features, "features")
    options = EvalOptions(protocol, inception_weights, batch_size, features, feature_weights)
    for suite_dir in _suite_folders(Path(results)):
        for outcome in evaluate_suite(
            suite_dir, device, force, data_root or default_data_root(), options, warn=echo_warning
        ):
            values = outcome.get("values", {})
            rows.append(
                {
                    "suite": suite_dir.name,
                    "key": outcome["key"],
                    "status": outcome["status"],
                    "reason": outcome.get("reason", ""),
                    **values,
                }
            )
    return pd.DataFrame(rows, columns=None if rows else ["suite", "key", "status", "reason"])


def load_runs(results: str | Path, last_k: int = DEFAULT_LAST_K) -> pd.DataFrame:
    """One row per run folder under `results` (a suite's folder, or a results folder holding
    several suites), with the columns of the report's runs.csv: identity, settings, status, times
    and each metric's headline value (`last_k`: periodic evaluations averaged into it)."""
    frames = [collect_runs(suite_dir, last_k) for suite_dir in _suite_folders(Path(results))]
    frames = [frame for frame in frames if not frame.empty]
    if not frames:
        return pd.DataFrame(columns=[*ID_COLUMNS, "status"])
    return pd.concat(frames, ignore_index=True)


def load_metrics(results: str | Path, last_k: int = DEFAULT_LAST_K) -> pd.DataFrame:
    """`load_runs` in long form: one row per run and metric value (columns suite, dataset, variant,
    seed, role and trial (tuned suites), status, metric, value), the shape seaborn and pandas
    pivots take."""
    runs = load_runs(results, last_k)
    values = metric_columns(runs) if not runs.empty else []
    keys = [*ID_COLUMNS, *(c for c in ("role", "trial") if c in runs.columns), "status"]
    long = runs.melt(id_vars=keys, value_vars=values, var_name="metric", value_name="value")
    return long.dropna(subset=["value"]).reset_index(drop=True)


def _suite_folders(results: Path) -> list[Path]:
    """The suite folders at or under `results`: each run folder is SUITE_FOLDER / its key, as its
    config.json records (unreadable ones are left to `collect_runs`, which lists them)."""
    found = set()
    for run_dir in find_run_dirs(results) if results.is_dir() else []:
        try:
            spec = run_dir.read_config()["spec"]
            depth = len(Path(spec["key"]).parts)
        except (UserError, KeyError, TypeError):
            continue
        found.add(run_dir.path.parents[depth - 1])
    if results in found:
        return [results]
    return sorted(found) or (suite_dirs(results) if results.is_dir() else [])
