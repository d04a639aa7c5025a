"""A suite's results as the small records a repository can hold: each run's configuration, metric
values, status, training log and periodic evaluations, and the suite's tuning storage, so that
`gdpp-bench report` regenerates the tables and verdicts from them (no checkpoint, sample tensor
or picture is copied; figures drawn from those are left out of a report made from an archive)."""

from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from gdpp_bench.errors import UserError
from gdpp_bench.rundir import RunDir, find_run_dirs, write_atomic

STORAGE_FILES = ("tuning.db",)


def record_files(run_dir: RunDir) -> tuple[Path, ...]:
    """The files of a run that an archive keeps: what the report and an audit of it read. A run
    that has finished training but not yet written its metrics (an archive taken while a study
    runs) is kept without its DONE: its checkpoint is not archived, so a study continued from the
    archive trains it again rather than find a finished run it can never measure."""
    if run_dir.done.exists() and not run_dir.metrics.exists():
        return (run_dir.config, run_dir.log, run_dir.evals)
    return (run_dir.config, run_dir.metrics, run_dir.done, run_dir.log, run_dir.evals)


@dataclass(frozen=True)
class Archived:
    """What `archive_suite` wrote: the run folders, the files and the storage copies."""

    runs: int
    files: int
    storages: tuple[Path, ...]
    out: Path


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of a SQLite database that other processes may be writing (the backup API
    copies a snapshot; a plain file copy could catch a half-written page)."""

    def write(tmp: Path) -> None:
        with sqlite3.connect(f"file:{source}?mode=ro", uri=True) as reading, sqlite3.connect(tmp) as writing:
            reading.backup(writing)

    write_atomic(target, write)


def archive_suite(results: Path, suite: str, out: Path) -> Archived:
    """Copy the small records of every run of `suite` under `results`, and its tuning storage, to
    OUT/SUITE/ with the same relative paths (so `gdpp-bench report --suite SUITE --results OUT`
    reads them as it reads the original). Files already in OUT are replaced by the current ones;
    nothing in `results` is changed."""
    source = (Path(results) / suite).resolve()
    if not source.is_dir():
        raise UserError(
            f"no results for suite {suite!r} in {source}; pass the --results folder that holds its runs"
        )
    target = (Path(out) / suite).resolve()
    if target == source or source in target.parents or target in source.parents:
        raise UserError(
            f"--out {out} overlaps the results being archived ({source}); choose a folder outside it"
        )
    run_dirs = find_run_dirs(source)
    if not run_dirs:
        raise UserError(f"{source} holds no run folder (no config.json under it): nothing to archive")
    files = 0
    for run_dir in run_dirs:
        for path in record_files(run_dir):
            if path.is_file():
                copy = target / path.relative_to(source)
                write_atomic(copy, partial(shutil.copyfile, path))
                files += 1
    storages = []
    for name in STORAGE_FILES:
        if (source / name).is_file():
            _copy_sqlite(source / name, target / name)
            storages.append(target / name)
    return Archived(len(run_dirs), files, tuple(storages), target)
