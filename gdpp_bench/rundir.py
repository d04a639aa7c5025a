"""The run directory: the one place that knows the file names, and atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdpp_bench.errors import UserError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_atomic(path: Path, write: Callable[[Path], None]) -> None:
    """Write through `write(tmp_path)` into a temp file beside `path`, then rename over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json(path: Path, data: Any) -> None:
    """Atomic JSON with NaN/inf written as null (strict JSON)."""
    text = json.dumps(_json_safe(data), indent=2, sort_keys=True) + "\n"
    write_atomic(path, lambda tmp: tmp.write_text(text))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass(frozen=True)
class RunDir:
    """RESULTS/SUITE/[DATASET/]VARIANT/seed-K/ and the files in it."""

    path: Path

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def log(self) -> Path:
        return self.path / "log.csv"

    @property
    def evals(self) -> Path:
        return self.path / "evals.csv"

    @property
    def checkpoint(self) -> Path:
        return self.path / "checkpoint.pt"

    @property
    def best(self) -> Path:
        return self.path / "best.pt"

    @property
    def samples_png(self) -> Path:
        return self.path / "samples.png"

    def sample_grid(self, step: int) -> Path:
        """The fixed-noise sample picture of the periodic evaluation at `step`."""
        return self.path / "samples" / f"step-{step:07d}.png"

    @property
    def eval_samples(self) -> Path:
        return self.path / "eval_samples.pt"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.json"

    @property
    def done(self) -> Path:
        return self.path / "DONE"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive use of this run directory; a second process gets a UserError, not a race."""
        self.path.mkdir(parents=True, exist_ok=True)
        with (self.path / ".lock").open("w") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UserError(
                    f"{self.path} is being trained by another process; "
                    "wait for it to finish (a later run resumes or skips it)"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def is_done(self) -> bool:
        return self.done.is_file()

    def status(self) -> dict[str, Any]:
        """{'status': 'done' | 'failed' | 'incomplete', ...} as recorded in DONE."""
        if not self.is_done():
            return {"status": "incomplete"}
        return read_json(self.done)

    def mark_done(self, status: str, **details: Any) -> None:
        write_json(self.done, {"status": status, **details})


def find_run_dirs(root: Path) -> list[RunDir]:
    """Every run directory (one holding config.json) under `root`, sorted."""
    return [RunDir(p.parent) for p in sorted(root.glob("**/config.json")) if "report" not in p.parts]
