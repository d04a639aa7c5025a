"""The long per-run table (the report's source of truth) and its summaries."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from gdpp_bench.losses import parse_variant
from gdpp_bench.rundir import RunDir, find_run_dirs, read_json

ID_COLUMNS = ["suite", "dataset", "variant", "seed"]


def collect_runs(suite_dir: Path) -> pd.DataFrame:
    """One row per run directory under `suite_dir`: identity, config, status and every metric."""
    rows = [_run_row(run_dir) for run_dir in find_run_dirs(suite_dir)]
    if not rows:
        return pd.DataFrame(columns=[*ID_COLUMNS, "status"])
    return pd.DataFrame(rows).sort_values(ID_COLUMNS).reset_index(drop=True)


def _run_row(run_dir: RunDir) -> dict:
    config = read_json(run_dir.config)
    spec, environment = config["spec"], config.get("environment", {})
    variant = parse_variant(spec["variant"])
    status = run_dir.status()
    metrics = read_json(run_dir.metrics) if run_dir.metrics.exists() else {}
    row = {
        "suite": spec["suite"],
        "dataset": spec["dataset"],
        "variant": spec["variant"],
        "seed": spec["seed"],
        "adversarial": variant.adversarial,
        "terms": " ".join(f"{name}@{weight:g}" for name, weight in variant.terms),
        "model": spec["model"],
        "status": status["status"],
        "reason": status.get("reason", ""),
        "steps": spec["train"]["steps"],
        "update": spec["train"]["update"],
        "device": environment.get("device", ""),
        "torch": (environment.get("packages") or {}).get("torch", ""),
        "train_wall_s": status.get("train_wall_s"),
        "eval_wall_s": metrics.get("wall_s"),
        "run": spec["key"],
    }
    row.update(metrics.get("values", {}))
    return row


def metric_columns(runs: pd.DataFrame) -> list[str]:
    fixed = {"suite", "dataset", "variant", "seed", "adversarial", "terms", "model", "status",
             "reason", "steps", "update", "device", "torch", "train_wall_s", "eval_wall_s", "run"}
    return [c for c in runs.columns if c not in fixed]


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, variant and metric over finished seeds: mean, std (ddof 1), n."""
    done = runs[runs["status"] == "done"]
    metrics = metric_columns(runs)
    if done.empty or not metrics:
        return pd.DataFrame(columns=["dataset", "variant", "metric", "mean", "std", "n"])
    long = done.melt(id_vars=["dataset", "variant", "seed"], value_vars=metrics,
                     var_name="metric", value_name="value").dropna(subset=["value"])
    summary = (
        long.groupby(["dataset", "variant", "metric"], sort=True)["value"]
        .agg(mean="mean", std="std", n="count")
        .reset_index()
    )
    return summary


def summary_markdown(summary: pd.DataFrame, runs: pd.DataFrame) -> str:
    """One table per dataset: variants as rows, metrics as 'mean ± std (n)' columns."""
    parts = []
    for dataset, block in summary.groupby("dataset", sort=True):
        cells = block.assign(
            cell=[
                f"{m:.3g} ± {s:.2g} (n={n})" if pd.notna(s) else f"{m:.3g} (n={n})"
                for m, s, n in zip(block["mean"], block["std"], block["n"], strict=True)
            ]
        ).pivot(index="variant", columns="metric", values="cell")
        parts.append(f"### {dataset}\n\n{cells.to_markdown()}\n")
    not_done = runs[runs["status"] != "done"]
    if not not_done.empty:
        listed = not_done[["dataset", "variant", "seed", "status", "reason"]]
        parts.append(f"### Runs not in the summary\n\n{listed.to_markdown(index=False)}\n")
    return "\n".join(parts)
