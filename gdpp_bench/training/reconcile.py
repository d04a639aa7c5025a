"""A run folder against the requested run: refuse, extend or set aside (--extend, --force)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import torch

from gdpp_bench.config import RunSpec
from gdpp_bench.environment import describe
from gdpp_bench.errors import UserError
from gdpp_bench.progress import notice
from gdpp_bench.rundir import RunDir, UnreadableFile, read_json, set_aside, write_json

# eval settings that decide what training itself produces (best.pt, when it stops); the others
# (metric list, sample counts) only change what is measured afterwards and never force a retrain
TRAINING_EVAL_FIELDS = ("every", "select", "select_mode", "patience")
POLICIES = ("refuse", "extend", "force")


def training_differences(recorded: RunSpec, requested: RunSpec) -> list[str]:
    """The fields that change the trained weights (dataset, model, variant, seed, every train
    setting, the eval settings that select and stop) where `recorded` and `requested` differ."""
    names = [
        (name, getattr(recorded, name), getattr(requested, name))
        for name in ("dataset", "data_path", "image_size", "model", "variant", "seed")
    ]
    names += [
        (f"train.{f.name}", getattr(recorded.train, f.name), getattr(requested.train, f.name))
        for f in dataclasses.fields(recorded.train)
    ]
    names += [
        (f"eval.{name}", getattr(recorded.eval, name), getattr(requested.eval, name))
        for name in TRAINING_EVAL_FIELDS
    ]
    return [name for name, old, new in names if old != new]


def record_history(config: dict[str, Any], event: str, **details: Any) -> None:
    """Append what happened to the run folder (with the code and torch that did it) to config.json."""
    environment = describe(torch.device("cpu"))
    config.setdefault("history", []).append(
        {
            "event": event,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "git": environment["git"],
            "torch": environment["packages"]["torch"],
            **details,
        }
    )


def reconcile(spec: RunSpec, run_dir: RunDir, policy: str = "refuse") -> None:
    """Make the run folder agree with `spec` before it is trained, or refuse it with a UserError.

    - An unreadable config.json leaves the run's identity unknown: refused (policy force: the
      folder is set aside and the run starts afresh).
    - An unreadable DONE is set aside (DONE.corrupt); the run resumes from its checkpoint.
    - Training fields that differ from the recorded ones: refused with their names, unless policy
      `extend` (only train.steps grew, and the run did not fail or stop early: the run continues
      from its last checkpoint, recorded in config.json) or `force` (the folder is set aside as
      NAME.replaced-TIMESTAMP and the run starts afresh).
    - Evaluation-only fields that differ are taken over into config.json: the evaluation that
      follows measures with them (metrics.json's protocol says what it used).
    """
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, got {policy!r}")
    if not run_dir.config.exists():
        return
    try:
        config = run_dir.read_config()
        recorded = RunSpec.from_dict(config["spec"])
    except (UserError, KeyError, TypeError, ValueError) as exc:
        if policy == "force":
            notice(f"moved {run_dir.path} to {run_dir.set_aside().name} (--force)")
            return
        detail = exc if isinstance(exc, UserError) else f"{run_dir.config} does not describe a run"
        raise UserError(
            f"{detail}: the run's settings are unknown, so it is not touched; move that "
            "run folder away (or rerun with --force, which sets it aside)"
        ) from None
    try:
        status = run_dir.status()
    except UnreadableFile as exc:
        moved = set_aside(run_dir.done, "corrupt")
        notice(f"{exc}; moved it to {moved.name}, the run resumes from its checkpoint")
        status = {"status": "incomplete"}
    differences = training_differences(recorded, spec)
    if differences and policy == "force":
        notice(
            f"moved {run_dir.path} to {run_dir.set_aside().name} (--force: {', '.join(differences)} changed)"
        )
        return
    if differences:
        _extend_or_refuse(spec, recorded, run_dir, config, status, differences, policy)
    if spec.to_dict() != recorded.to_dict():  # evaluation settings, or the extended step count
        config["spec"] = spec.to_dict()
        write_json(run_dir.config, config)


def refusal(
    spec: RunSpec,
    recorded: RunSpec,
    run_dir: RunDir,
    status: dict[str, Any],
    differences: list[str],
    policy: str,
) -> str | None:
    """Why a run folder trained with other settings (`differences`) is refused under `policy`
    (refuse or extend); None when --extend continues it (only train.steps grew, and the run
    neither failed nor stopped early)."""
    changed = ", ".join(
        f"{name} (recorded {_field(recorded, name)!r}, asked {_field(spec, name)!r})" for name in differences
    )
    if policy != "extend" or differences != ["train.steps"]:
        return (
            f"{run_dir.path} was trained with other settings: {changed}; "
            "rerun with --force to set that run aside and train afresh"
            + (", or --extend to continue it to more steps" if "train.steps" in differences else "")
            + " (or use another --results folder)"
        )
    if spec.train.steps < recorded.train.steps:
        return (
            f"--extend continues runs to more steps; {run_dir.path} has "
            f"{recorded.train.steps}, asked {spec.train.steps}"
        )
    if status["status"] == "failed" or status.get("stopped_early"):
        why = "it failed" if status["status"] == "failed" else "it stopped early (patience)"
        return (
            f"{run_dir.path} cannot be extended: {why} at step {status.get('step')}; "
            "rerun with --force to set it aside and train afresh"
        )
    return None


def _extend_or_refuse(
    spec: RunSpec,
    recorded: RunSpec,
    run_dir: RunDir,
    config: dict[str, Any],
    status: dict[str, Any],
    differences: list[str],
    policy: str,
) -> None:
    """Continue a run to more steps (policy extend) or refuse it with the differing fields."""
    reason = refusal(spec, recorded, run_dir, status, differences, policy)
    if reason:
        raise UserError(reason)
    details: dict[str, Any] = {"from_steps": recorded.train.steps, "to_steps": spec.train.steps}
    if status["status"] == "done":
        details["done"] = status
        if run_dir.metrics.exists():
            with contextlib.suppress(UserError):
                details["metrics"] = read_json(run_dir.metrics).get("values")
    record_history(config, "extended", **details)
    write_json(run_dir.config, config)
    run_dir.done.unlink(missing_ok=True)
    notice(f"extending from {recorded.train.steps} to {spec.train.steps} steps")


def _field(spec: RunSpec, dotted: str) -> Any:
    value: Any = spec
    for part in dotted.split("."):
        value = getattr(value, part)
    return value
