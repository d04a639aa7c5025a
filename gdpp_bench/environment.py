"""Facts about where a run happened, recorded in config.json."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from gdpp_bench.plugins import loaded_plugins

PACKAGES = ("torch", "torchvision", "torch-fidelity", "numpy", "scipy", "pandas", "gdpp-bench")


def resolve_device(name: str) -> torch.device:
    """auto -> cuda, then mps, then cpu; an explicit device that is absent is an error."""
    from gdpp_bench.errors import UserError

    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but no CUDA GPU is visible; use --device cpu")
    if name == "mps" and not torch.backends.mps.is_available():
        raise UserError("--device mps asked for, but MPS is not available; use --device cpu")
    return torch.device(name)


def device_type(device: torch.device | str, on_cluster_node: bool = False) -> str:
    """The device type of runs asked for on `device` (a torch device or a --device name): "auto" is
    what `resolve_device` picks on this machine, or "cuda" for a cluster node, whose GPUs this
    machine cannot see."""
    if isinstance(device, torch.device):
        return device.type
    if device == "auto":
        return "cuda" if on_cluster_node else resolve_device("auto").type
    return torch.device(device).type


@functools.lru_cache(maxsize=1)
def git_hash() -> str:
    """The checkout's commit when this process first asked (the code it imported), '+dirty'
    when it had uncommitted changes; 'unknown' outside a git checkout."""
    try:

        def git(*args: str) -> str:
            return subprocess.run(
                ["git", *args],
                cwd=Path(__file__).parent,
                capture_output=True,
                text=True,
                timeout=5,
                check=True,
            ).stdout.strip()

        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".")
        return git("rev-parse", "HEAD") + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe(device: torch.device) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "device": str(device),
        "device_name": (
            torch.cuda.get_device_name(device)
            if device.type == "cuda"
            else platform.processor() or platform.machine()
        ),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": versions,
        "threads": torch.get_num_threads(),  # CPU results depend on it (float summation order)
        "git": git_hash(),
        "plugins": loaded_plugins(),  # module, file and sha256 of each plug-in this process loaded
    }
