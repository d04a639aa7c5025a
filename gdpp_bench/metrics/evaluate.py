"""Evaluate a finished run directory into metrics.json (value + protocol for every number)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.data import DATASETS
from gdpp_bench.metrics import METRICS, SAMPLE_SEED_OFFSET, EvalContext, EvalOptions, compute_metrics
from gdpp_bench.models import build_models
from gdpp_bench.rundir import RunDir, read_json, write_atomic, write_json
from gdpp_bench.suites import RunSpec


def eval_context(generator: nn.Module, spec: RunSpec, device: torch.device, data_root: str | None,
                 options: EvalOptions) -> EvalContext:
    """The context the suite's metrics see for one generator of the run `spec`."""
    evaluation = spec.eval
    return EvalContext(
        generator, DATASETS.get(spec.dataset), device, evaluation.samples, spec.seed, data_root,
        evaluation.fidelity_samples, evaluation.real_samples, evaluation.reference_split,
        evaluation.ivom_images, options,
    )


def make_eval_hook(spec: RunSpec, device: torch.device, data_root: str | None = None,
                   options: EvalOptions | None = None):
    """The periodic-evaluation hook that training calls: metrics of the current generator."""
    options = options or EvalOptions()

    def hook(generator: nn.Module, step: int) -> dict[str, float]:
        return compute_metrics(spec.eval.metrics, eval_context(generator, spec, device, data_root, options))

    return hook


def _reusable(record: dict[str, Any] | None, metric: str, checkpoint: str, step: int,
              options: EvalOptions) -> bool:
    """Whether metrics.json already holds `metric` measured on this checkpoint under this protocol."""
    entry = (record or {}).get("protocol", {}).get(metric)
    return bool(entry) and (entry.get("checkpoint"), entry.get("checkpoint_step"), entry.get("protocol")) == (
        checkpoint, step, options.protocol)


def evaluate_run(run_dir: RunDir, device: torch.device, force: bool = False,
                 data_root: str | None = None, options: EvalOptions | None = None) -> dict[str, Any]:
    """Write metrics.json for a finished run (or its failure record).

    Metrics already in metrics.json for the same checkpoint and protocol are kept, not recomputed,
    unless `force`; metrics the suite lists but the file lacks are computed and added.
    """
    options = options or EvalOptions()
    status = run_dir.status()
    if status["status"] == "incomplete":
        return status
    if status["status"] == "failed":
        if not run_dir.metrics.exists() or force:
            write_json(run_dir.metrics, {**status, "values": {}})
        return read_json(run_dir.metrics)
    spec = RunSpec.from_dict(read_json(run_dir.config)["spec"])
    # best.pt exists only when the suite selects a checkpoint by a metric (eval.select)
    checkpoint = run_dir.best if run_dir.best.exists() else run_dir.checkpoint
    state = load_checkpoint(checkpoint, map_location=device)
    step = int(state["step"])
    record = None if force or not run_dir.metrics.exists() else read_json(run_dir.metrics)
    if record is not None and record.get("status") != "done":
        record = None
    wanted = list(spec.eval.metrics)
    missing = [m for m in wanted if not _reusable(record, m, checkpoint.name, step, options)]
    if record is not None and not missing and set(record.get("protocol", {})) == set(wanted):
        return record

    generator, _ = build_models(spec.model, DATASETS.get(spec.dataset).shape)
    generator.load_state_dict(state["generator"])
    generator.to(device)
    ctx = eval_context(generator, spec, device, data_root, options)
    computed = compute_metrics(missing, ctx)
    if ctx.has_samples() and ctx.samples().ndim == 2:  # 2D points, small: kept for the report
        points = ctx.samples().cpu()
        write_atomic(run_dir.eval_samples, lambda tmp: torch.save(points, tmp))

    kept = {m: record["protocol"][m] for m in wanted if m not in missing} if record else {}
    values = {k: v for m, entry in kept.items() for k, v in record["values"].items()
              if k in entry.get("values", ())}
    protocol = dict(kept)
    for name in missing:
        protocol[name] = {
            "description": (METRICS.get(name).__doc__ or "").strip(),
            "protocol": options.protocol,
            "generated_samples": spec.eval.samples,
            "noise_seed": spec.seed + SAMPLE_SEED_OFFSET,
            "checkpoint": checkpoint.name,
            "checkpoint_step": step,
            **ctx.notes[name],  # values, wall_s, and what the metric adds (its own sample counts)
        }
        values.update({k: computed[k] for k in ctx.notes[name]["values"]})
    record = {
        "status": "done",
        "values": values,
        "protocol": {m: protocol[m] for m in wanted},
        "wall_s": sum(entry.get("wall_s", 0.0) for entry in protocol.values()),
        "device": str(device),
    }
    write_json(run_dir.metrics, record)
    return record
