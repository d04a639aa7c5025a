"""Evaluate a finished run directory into metrics.json (value + protocol for every number)."""

from __future__ import annotations

import time
from typing import Any

import torch
from torch import nn

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.data import DATASETS
from gdpp_bench.metrics import METRICS, SAMPLE_SEED_OFFSET, EvalContext, compute_metrics
from gdpp_bench.models import MODELS
from gdpp_bench.rundir import RunDir, read_json, write_atomic, write_json
from gdpp_bench.suites import EvalConfig


def make_eval_hook(dataset: str, evaluation: EvalConfig, seed: int, device: torch.device,
                   data_root: str | None = None):
    """The periodic-evaluation hook that training calls: metrics of the current generator."""
    mixture = DATASETS.get(dataset)

    def hook(generator: nn.Module, step: int) -> dict[str, float]:
        ctx = EvalContext(generator, mixture, device, evaluation.samples, seed, data_root)
        return compute_metrics(evaluation.metrics, ctx)

    return hook


def evaluate_run(run_dir: RunDir, device: torch.device, force: bool = False,
                 data_root: str | None = None) -> dict[str, Any]:
    """Write metrics.json for a finished run (or its failure record); reuse it unless `force`."""
    if run_dir.metrics.exists() and not force:
        return read_json(run_dir.metrics)
    status = run_dir.status()
    if status["status"] == "incomplete":
        return status
    if status["status"] == "failed":
        write_json(run_dir.metrics, {**status, "values": {}})
        return read_json(run_dir.metrics)
    spec = read_json(run_dir.config)["spec"]
    generator, _ = MODELS.get(spec["model"])(DATASETS.get(spec["dataset"]).shape)
    # best.pt exists only when the suite selects a checkpoint by a metric (eval.select)
    checkpoint = run_dir.best if run_dir.best.exists() else run_dir.checkpoint
    state = load_checkpoint(checkpoint, map_location=device)
    generator.load_state_dict(state["generator"])
    generator.to(device)
    evaluation = spec["eval"]
    ctx = EvalContext(
        generator, DATASETS.get(spec["dataset"]), device, evaluation["samples"], spec["seed"],
        data_root,
    )
    started = time.perf_counter()
    values = compute_metrics(evaluation["metrics"], ctx)
    wall_s = time.perf_counter() - started
    if ctx.has_samples() and ctx.samples().ndim == 2:  # 2D points, small: kept for the report
        points = ctx.samples().cpu()
        write_atomic(run_dir.eval_samples, lambda tmp: torch.save(points, tmp))
    record = {
        "status": "done",
        "values": values,
        "protocol": {
            name: {
                "description": (METRICS.get(name).__doc__ or "").strip(),
                "generated_samples": evaluation["samples"],
                "noise_seed": spec["seed"] + SAMPLE_SEED_OFFSET,
                "checkpoint": checkpoint.name,
                "checkpoint_step": int(state["step"]),
                **ctx.notes.get(name, {}),
            }
            for name in evaluation["metrics"]
        },
        "wall_s": wall_s,
        "device": str(device),
    }
    write_json(run_dir.metrics, record)
    return record
