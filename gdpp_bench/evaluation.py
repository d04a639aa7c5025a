"""The evaluation stage: a run folder's metrics.json (value + protocol for every number), and the
periodic-evaluation hook training calls. The metrics themselves live in `metrics/`."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor, nn

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.config import RunSpec
from gdpp_bench.data import Dataset, dataset_of
from gdpp_bench.data.images import Split
from gdpp_bench.errors import UserError
from gdpp_bench.metrics import METRICS, SAMPLE_SEED_OFFSET, EvalContext, EvalOptions, compute_metrics
from gdpp_bench.metrics.features import DEFAULT_FEATURES
from gdpp_bench.models import build_models
from gdpp_bench.progress import notice
from gdpp_bench.rundir import (
    RunDir,
    UnreadableFile,
    read_json_object,
    set_aside,
    write_atomic,
    write_json,
)


def reference_splits(spec: RunSpec) -> tuple[Split, Split]:
    """(periodic, final) real reference split. A suite that selects best.pt by a periodic metric
    (eval.select) selects against the training split and measures best.pt once against the test
    split, so that no reported number is read off the images that chose the checkpoint; other
    suites use eval.reference_split throughout."""
    if spec.eval.select:
        return "train", "test"
    split = cast(Split, spec.eval.reference_split)  # checked at suite load: train or test
    return split, split


def eval_context(
    generator: nn.Module,
    spec: RunSpec,
    device: torch.device,
    data_root: str | None,
    options: EvalOptions,
    split: Split | None = None,
) -> EvalContext:
    """The context the suite's metrics see for one generator of the run `spec`, comparing with the
    real `split` (default: the final evaluation's, `reference_splits`)."""
    evaluation = spec.eval
    return EvalContext(
        generator=generator,
        dataset=dataset_of(spec),
        device=device,
        n_samples=evaluation.samples,
        seed=spec.seed,
        data_root=data_root,
        fidelity_samples=evaluation.fidelity_samples,
        real_samples=evaluation.real_samples,
        reference_split=split or reference_splits(spec)[1],
        ivom_images=evaluation.ivom_images,
        options=options,
        bn_batch=spec.train.batch_size if evaluation.sample_bn == "batch" else None,
        features=features_of(spec, options),
    )


def features_of(spec: RunSpec, options: EvalOptions) -> str:
    """The fidelity metric's extractor: `evaluate --features`, else the suite's eval.features."""
    return options.features or spec.eval.features


@dataclass(frozen=True)
class Measured:
    """One evaluation of a generator: its step, values and each metric's protocol notes (and the
    2D points, which the report draws)."""

    step: int
    values: dict[str, float]
    notes: dict[str, dict]
    points: Tensor | None = None


class PeriodicEvaluation:
    """The hook training calls at each periodic evaluation: the suite's metrics of the current
    generator. It keeps its latest measurement, so that the evaluation of the final checkpoint,
    when the last periodic evaluation saw that very generator, takes its numbers instead of
    measuring the same samples again."""

    def __init__(
        self,
        spec: RunSpec,
        device: torch.device,
        data_root: str | None = None,
        options: EvalOptions | None = None,
    ) -> None:
        self.spec, self.device, self.data_root = spec, device, data_root
        self.options = options or EvalOptions()
        self.last: Measured | None = None

    def __call__(self, generator: nn.Module, step: int) -> dict[str, float]:
        ctx = eval_context(
            generator,
            self.spec,
            self.device,
            self.data_root,
            self.options,
            split=reference_splits(self.spec)[0],
        )
        values = compute_metrics(self.spec.eval.metrics, ctx)
        self.last = Measured(step, values, ctx.notes, _points(ctx))
        return values


def real_splits_read(spec: RunSpec, metrics: Iterable[str] | None = None) -> set[str]:
    """The real-data splits the run's evaluations (of `metrics`, default the suite's) read
    (metrics declare `reads_real`: the reference split, or a fixed one such as IvOM's test images)."""
    splits: set[str] = set()
    for metric in spec.eval.metrics if metrics is None else metrics:
        reads = METRICS.meta(metric).get("reads_real")
        if reads == "reference":
            splits.update(reference_splits(spec))
        elif reads:
            splits.add(reads)
    return splits


def splits_needed(spec: RunSpec) -> set[str]:
    """The real-data splits training the run and evaluating it read."""
    return {"train", *real_splits_read(spec)}


def check_data(dataset: Dataset, data_root: str | None, splits: set[str]) -> None:
    """A UserError now, before any training, where the data lack one of `splits` (files absent and
    not downloadable); nothing for datasets without files (2D mixtures)."""
    check_splits = getattr(dataset, "check_splits", None)  # image datasets have it
    if check_splits is not None:
        check_splits(data_root, splits)


def make_eval_hook(
    spec: RunSpec, device: torch.device, data_root: str | None = None, options: EvalOptions | None = None
) -> PeriodicEvaluation:
    """The periodic-evaluation hook that training calls: metrics of the current generator."""
    return PeriodicEvaluation(spec, device, data_root, options)


def _points(ctx: EvalContext) -> Tensor | None:
    """The generated 2D points the metrics saw (small, kept for the report); None for images."""
    return ctx.samples().cpu() if ctx.has_samples() and ctx.samples().ndim == 2 else None


def _reusable(
    record: dict[str, Any] | None,
    metric: str,
    checkpoint: str | None,
    step: int | None,
    options: EvalOptions,
    settings: dict[str, Any],
    features: str = DEFAULT_FEATURES,
) -> bool:
    """Whether metrics.json already holds `metric` measured on this checkpoint under this protocol
    and these evaluation settings (sample counts, reference split), and, for a metric measured with
    the chosen feature extractor (`features` in its registration), with that extractor.
    `checkpoint` and `step` None: the run keeps no checkpoint (an archive), so the recorded one is
    the only one there was."""
    entry = (record or {}).get("protocol", {}).get(metric)
    if not entry:
        return False
    if METRICS.meta(metric).get("features") and entry.get("features", DEFAULT_FEATURES) != features:
        return False
    if checkpoint is not None and (entry.get("checkpoint"), entry.get("checkpoint_step")) != (
        checkpoint,
        step,
    ):
        return False
    return (entry.get("protocol"), entry.get("settings")) == (options.protocol, settings)


def eval_settings(spec: RunSpec) -> dict[str, Any]:
    """The evaluation settings a metric's values depend on (a change of any re-evaluates)."""
    evaluation = spec.eval
    settings: dict[str, Any] = {
        "samples": evaluation.samples,
        "fidelity_samples": evaluation.fidelity_samples,
        "real_samples": evaluation.real_samples,
        "reference_split": reference_splits(spec)[1],
        "ivom_images": evaluation.ivom_images,
    }
    if evaluation.sample_bn != "running":  # the default is left out: older records stay reusable
        settings["sample_bn"] = evaluation.sample_bn
    return settings


def _read_record(run_dir: RunDir) -> dict[str, Any] | None:
    """metrics.json, or None when absent; an unreadable one is set aside (metrics.json.corrupt)."""
    if not run_dir.metrics.exists():
        return None
    try:
        return read_json_object(run_dir.metrics)
    except UnreadableFile as exc:
        moved = set_aside(run_dir.metrics, "corrupt")
        notice(f"{exc}; moved it to {moved.name} and measuring again")
        return None


@dataclass(frozen=True)
class Pending:
    """What `evaluate_run` finds in a finished run folder: its spec, the checkpoint it measures
    (and its step), metrics.json's record (None: none usable) and the metrics to compute."""

    spec: RunSpec
    checkpoint: Path
    step: int | None  # None: the run keeps no checkpoint (archived)
    record: dict[str, Any] | None
    missing: list[str]


def measured_checkpoint(run_dir: RunDir) -> Path:
    """The checkpoint a finished run's metrics measure: best.pt, which exists only when the suite
    selects a checkpoint by a metric (eval.select), else the last one."""
    return run_dir.best if run_dir.best.exists() else run_dir.checkpoint


def pending_metrics(
    run_dir: RunDir, options: EvalOptions, force: bool = False, state: dict[str, Any] | None = None
) -> Pending | None:
    """The metrics a finished run still lacks (all of them with `force`) for this protocol and
    these settings; None for a run that is not done. `state`: its checkpoint, if already loaded
    (otherwise only its step is read, from a memory map). A finished run without its checkpoint
    (archived: small records only) has the metrics it recorded and can measure no other
    (`Pending.step` None)."""
    if run_dir.status()["status"] != "done":
        return None
    record = _read_record(run_dir)
    spec = RunSpec.from_dict(run_dir.read_config()["spec"])
    checkpoint = measured_checkpoint(run_dir)
    if state is None and checkpoint.exists():
        state = load_checkpoint(checkpoint, mmap=True)
    step = int(state["step"]) if state is not None else None
    if force or (record is not None and record.get("status") != "done"):
        record = None
    settings = eval_settings(spec)
    features = features_of(spec, options)
    name = checkpoint.name if state is not None else None
    missing = [
        m for m in spec.eval.metrics if not _reusable(record, m, name, step, options, settings, features)
    ]
    return Pending(spec, checkpoint, step, record, missing)


def evaluate_run(
    run_dir: RunDir,
    device: torch.device,
    force: bool = False,
    data_root: str | None = None,
    options: EvalOptions | None = None,
    measured: Measured | None = None,
) -> dict[str, Any]:
    """Write metrics.json for a finished run (or its failure record).

    Metrics already in metrics.json for the same checkpoint, protocol and settings are kept, not
    recomputed, unless `force`; metrics the suite lists but the file lacks are computed and added.
    `measured`: the training's last periodic evaluation (same protocol and settings), used when it
    measured the very checkpoint being evaluated (checkpoint.pt at its step).
    """
    options = options or EvalOptions()
    status = run_dir.status()
    if status["status"] == "incomplete":
        return status
    if status["status"] == "failed":
        record = _read_record(run_dir)
        if record is None or force:
            record = {**status, "values": {}}
            write_json(run_dir.metrics, record)
        return record
    checkpoint = measured_checkpoint(run_dir)
    state = load_checkpoint(checkpoint, map_location=device) if checkpoint.exists() else None
    pending = pending_metrics(run_dir, options, force, state)
    assert pending is not None  # done: checked above
    spec, step, record, missing = pending.spec, pending.step, pending.record, pending.missing
    wanted = list(spec.eval.metrics)
    settings = eval_settings(spec)
    if record is not None and not missing and set(record.get("protocol", {})) == set(wanted):
        return record
    if missing and state is None:
        raise UserError(
            f"{run_dir.path} finished without keeping its checkpoint ({checkpoint.name}; an archive keeps "
            f"none), so {', '.join(missing)} cannot be measured here: evaluate it where "
            "its checkpoint is, or move the folder away to train the run again"
        )

    periodic_split, final_split = reference_splits(spec)
    if not missing:  # the record only lists metrics the suite no longer asks for
        computed, notes, points = {}, {}, None
    elif (
        measured is not None
        and measured.step == step
        and checkpoint == run_dir.checkpoint
        and periodic_split == final_split
    ):
        computed, notes, points = measured.values, measured.notes, measured.points
    else:
        assert state is not None  # metrics to measure without a checkpoint were refused above
        generator, _ = build_models(spec.model, dataset_of(spec).shape)
        generator.load_state_dict(state["generator"])
        generator.to(device)
        ctx = eval_context(generator, spec, device, data_root, options)
        computed = compute_metrics(missing, ctx)
        notes, points = ctx.notes, _points(ctx)
    if points is not None:
        write_atomic(run_dir.eval_samples, lambda tmp: torch.save(points, tmp))

    kept = {m: record["protocol"][m] for m in wanted if m not in missing} if record else {}
    recorded_values = record["values"] if record else {}
    values = {
        k: v for m, entry in kept.items() for k, v in recorded_values.items() if k in entry.get("values", ())
    }
    protocol = dict(kept)
    for name in missing:
        protocol[name] = {
            "description": (METRICS.get(name).__doc__ or "").strip(),
            "protocol": options.protocol,
            "generated_samples": spec.eval.samples,
            "noise_seed": spec.seed + SAMPLE_SEED_OFFSET,
            "checkpoint": checkpoint.name,
            "checkpoint_step": step,
            "settings": settings,
            "reference_split": None,  # null: the metric reads no real images
            "sample_bn": spec.eval.sample_bn,
            **notes[name],  # values, wall_s, what the metric adds (its sample counts, its split)
        }
        values.update({k: computed[k] for k in notes[name]["values"]})
    record = {
        "status": "done",
        "values": values,
        "protocol": {m: protocol[m] for m in wanted},
        "wall_s": sum(entry.get("wall_s", 0.0) for entry in protocol.values()),
        "device": str(device),
    }
    write_json(run_dir.metrics, record)
    return record
