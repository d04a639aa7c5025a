"""The Python API: what the command line does, from a script or a notebook.

    import gdpp_bench
    runs = gdpp_bench.run_suite("smoke", "results", datasets=["ring8"], steps=200)
    metrics = gdpp_bench.load_metrics("results/smoke")

Every function takes the same folders the command line writes and reads, so runs started from
Python resume from the command line and the other way round."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from gdpp_bench.config import Suite
from gdpp_bench.environment import default_data_root
from gdpp_bench.errors import UserError
from gdpp_bench.executors import make_executor
from gdpp_bench.metrics import EvalOptions
from gdpp_bench.pipeline import evaluate_suite, run_specs
from gdpp_bench.report import suite_dirs
from gdpp_bench.report.tables import DEFAULT_LAST_K, ID_COLUMNS, collect_runs, metric_columns
from gdpp_bench.rundir import find_run_dirs
from gdpp_bench.suites import expand, load_suite


def run_suite(
    suite: str | Path | Suite,
    results: str | Path = "results",
    *,
    variants: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    steps: int | None = None,
    datasets: Sequence[str] | None = None,
    device: str = "auto",
    data_root: str | None = None,
    workers: int = 1,
    seed_parallel: bool = False,
    policy: str = "refuse",
    protocol: str = "quick",
    progress: str = "off",
) -> pd.DataFrame:
    """Train and evaluate every run of `suite` (a name, a TOML path or a loaded `Suite`), as
    `gdpp-bench run` does: finished runs are skipped, unfinished ones resumed.

    `variants`, `seeds`, `steps` and `datasets` replace the suite's; `policy` is what to do with a
    run folder trained with other settings ("refuse", "extend" or "force", as --extend/--force);
    `progress` is "off", "lines" or "bar". Returns `load_runs` of the suite's folder: one row per
    run with its status and headline metric values. Raises gdpp_bench.errors.UserError for a bad
    input (the message says what to change)."""
    loaded = suite if isinstance(suite, Suite) else load_suite(str(suite))
    data_root = data_root or default_data_root()
    specs = expand(
        loaded,
        list(variants) if variants else None,
        list(seeds) if seeds is not None else None,
        steps,
        datasets=list(datasets) if datasets else None,
        data_root=data_root,
    )
    results = Path(results)
    run_specs(
        specs,
        results,
        data_root,
        device,
        options=EvalOptions(protocol),
        executor=make_executor("local", workers, device=device),
        seed_parallel=seed_parallel,
        policy=policy,
        style=progress,
    )
    return load_runs(results / loaded.name)


def evaluate(
    results: str | Path,
    *,
    device: str = "auto",
    data_root: str | None = None,
    force: bool = False,
    protocol: str = "quick",
) -> pd.DataFrame:
    """Write metrics.json for every finished run under `results` (a suite's folder, or a results
    folder holding several suites), as `gdpp-bench evaluate` does: only what a run lacks, unless
    `force`. Returns one row per run: key, status, reason (if any) and the measured values."""
    rows = []
    for suite_dir in _suite_folders(Path(results)):
        for outcome in evaluate_suite(
            suite_dir, device, force, data_root or default_data_root(), EvalOptions(protocol)
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
    seed, status, metric, value), the shape seaborn and pandas pivots take."""
    runs = load_runs(results, last_k)
    values = metric_columns(runs) if not runs.empty else []
    long = runs.melt(
        id_vars=[*ID_COLUMNS, "status"], value_vars=values, var_name="metric", value_name="value"
    )
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
