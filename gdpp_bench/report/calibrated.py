"""What the calibration ladder (`gdpp-bench calibrate`, results/calibration/) found each reported
metric value sees, for the report's summary and protocol text: a reader should know, beside the
numbers, that a class count cannot see a generator that draws every class from a few images."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import pandas as pd

from gdpp_bench.metrics import entry_sees, sees_phrase
from gdpp_bench.rundir import RunDir, read_json

CALIBRATION_SOURCE = "calibration ladder, `gdpp-bench calibrate`, results/calibration/"


def dataset_sees(runs: pd.DataFrame, suite_dir: Path) -> dict[str, dict[str, tuple[str, ...]]]:
    """dataset -> value -> the defects it sees, for the metrics that a finished run of the dataset
    evaluated (its metrics.json protocol names them: `modes` of modes2d is not Stacked-MNIST's)."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    done = runs[runs["status"] == "done"]
    for dataset, block in done.groupby("dataset", sort=True):
        for run in block["run"]:
            path = RunDir(suite_dir / str(run)).metrics
            if path.is_file():
                entries = read_json(path).get("protocol", {})
                found[str(dataset)] = {v: seen for e in entries for v, seen in entry_sees(e).items()}
                break
    return found


def sees_note(seen_by_value: Mapping[str, tuple[str, ...]], shown: Iterable[str]) -> str:
    """One sentence: what each shown value sees ('' when none of them was calibrated)."""
    parts = [f"`{value}` {sees_phrase(seen_by_value[value])}" for value in shown if value in seen_by_value]
    if not parts:
        return ""
    return f"What each value can show ({CALIBRATION_SOURCE}): " + "; ".join(parts) + "."


__all__ = ["dataset_sees", "sees_note"]
