"""Where the user's files are by default: the caches and the image datasets. Imports nothing of
the project, so that data, metrics and the CLI read these without an import cycle."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """Where the user's caches live (instruments, real-set statistics, decoded images, weight
    hashes): $GDPP_BENCH_CACHE, default ~/.cache/gdpp-bench."""
    return Path(os.environ.get("GDPP_BENCH_CACHE") or "~/.cache/gdpp-bench").expanduser()


def default_data_root() -> str:
    """$GDPP_BENCH_DATA, else the team's shared copy ../shared/datasets when it exists, else the
    user cache (where torchvision downloads what is missing, on machines with internet)."""
    if os.environ.get("GDPP_BENCH_DATA"):
        return os.environ["GDPP_BENCH_DATA"]
    shared = Path("..") / "shared" / "datasets"
    return str(shared) if shared.is_dir() else str(Path("~/.cache/gdpp-bench/data").expanduser())
