"""Atomic checkpoints with full resume state, loaded with weights_only=True."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from gdpp_bench.errors import UserError
from gdpp_bench.rundir import write_atomic


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    write_atomic(path, lambda tmp: torch.save(state, tmp))


def load_checkpoint(
    path: Path, map_location: torch.device | str = "cpu", mmap: bool = False
) -> dict[str, Any]:
    """Load a checkpoint; a corrupt or foreign file is a UserError naming it and the fix.

    `mmap`: map the tensors' storage instead of reading it (to look at the step only)."""
    try:
        state = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as exc:
        raise UserError(
            f"corrupt checkpoint {path} (unreadable as a torch checkpoint: {type(exc).__name__}); "
            "delete it to restart that run from scratch"
        ) from None
    if not isinstance(state, dict) or "step" not in state:
        raise UserError(
            f"corrupt checkpoint {path} (not a gdpp-bench checkpoint); "
            "delete it to restart that run from scratch"
        )
    return state


def flat_tensors(state: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint's state, flattened to '.key.sub.name' -> tensor (to compare
    two checkpoints bit for bit)."""
    if torch.is_tensor(state):
        return {prefix: state}
    items: Iterable[tuple[Any, Any]]
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, list | tuple):
        items = enumerate(state)
    else:
        return {}
    return {
        name: value for key, item in items for name, value in flat_tensors(item, f"{prefix}.{key}").items()
    }


def rng_state(generator: torch.Generator) -> dict[str, Any]:
    state: dict[str, Any] = {"generator": generator.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(generator: torch.Generator, state: dict[str, Any]) -> None:
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
