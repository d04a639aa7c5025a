"""The run directory: the one place that knows the file names, and atomic writes."""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdpp_bench.errors import UserError


def write_atomic(path: Path, write: Callable[[Path], object]) -> None:
    """Write through `write(tmp_path)` into a temp file beside `path`, then rename over it.

    The temp file is created inside the `try`, by one call, so that an interruption at any point
    (Ctrl-C, or the SIGTERM that stops a pool worker, both raised between bytecodes) leaves either
    no temp file or one that the `except` removes.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        os.close(os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))  # the umask applies
        write(tmp)
        os.replace(tmp, path)
    except FileExistsError as exc:
        if str(exc.filename) != str(tmp):  # a name clash (2^-48) is another writer's file: not ours
            tmp.unlink(missing_ok=True)
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
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


class RunBusy(UserError):
    """The run folder is being trained by another process (its lock is held)."""


class UnreadableFile(UserError):
    """A file that exists but does not hold what it should (truncated JSON, say, as a full disk or a
    half-copied folder leaves it)."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path} is unreadable ({reason})")
        self.path = path


def read_json(path: Path) -> Any:
    """The JSON in `path`; a file that is not valid JSON raises UnreadableFile naming it."""
    try:
        return json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        raise UnreadableFile(path, f"not valid JSON: {reason}") from None


def read_json_object(path: Path, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """A JSON object with the `required` keys; anything else raises UnreadableFile."""
    data = read_json(path)
    if not isinstance(data, dict):
        raise UnreadableFile(path, f"expected a JSON object, got {type(data).__name__}")
    missing = [key for key in required if key not in data]
    if missing:
        raise UnreadableFile(path, f"no {', '.join(repr(k) for k in missing)} in it")
    return data


def set_aside(path: Path, suffix: str) -> Path:
    """Rename `path` to PATH.SUFFIX (PATH.SUFFIX-2, ... if taken): moved aside, never deleted."""
    target = path.with_name(f"{path.name}.{suffix}")
    number = 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}.{suffix}-{number}")
    os.rename(path, target)
    return target


# what a name must look like where it becomes a folder name (suite, dataset, variant)
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@+=-]*")


def check_plain_name(kind: str, name: str) -> str:
    """`name` if it can be a folder name inside the results folder; a UserError otherwise (path
    separators, '..', a leading dot or other characters would put runs elsewhere or hide them)."""
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or ".." in name:
        raise UserError(
            f"{kind} name {name!r} cannot be a folder name: use letters, digits and "
            "._@+=- only, starting with a letter or digit, without '..'"
        )
    return name


@dataclass(frozen=True)
class RunDir:
    """RESULTS/SUITE/[DATASET/]VARIANT/seed-K/ and the files in it."""

    path: Path

    @classmethod
    def for_spec(cls, results: Path, spec: Any) -> RunDir:
        """The folder of the run `spec` (a RunSpec: its suite and key) under `results`."""
        return cls(Path(results) / spec.suite / spec.key)

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
    def tensorboard(self) -> Path:
        """TensorBoard's event files of the run (eval.tensorboard)."""
        return self.path / "tensorboard"

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
        with (self.path / ".lock").open("a") as handle:  # "a": taking the lock changes no file
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RunBusy(
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
        """{'status': 'done' | 'failed' | 'incomplete', ...} as recorded in DONE; a DONE that
        cannot be read raises UnreadableFile."""
        if not self.is_done():
            return {"status": "incomplete"}
        return read_json_object(self.done, ("status",))

    def read_config(self) -> dict[str, Any]:
        """config.json ({'spec': ..., 'environment': ...}); UnreadableFile if it cannot be read."""
        return read_json_object(self.config, ("spec",))

    def set_aside(self) -> Path:
        """Move the whole run folder to NAME.replaced-TIMESTAMP beside it (nothing is deleted)."""
        return set_aside(self.path, "replaced-" + time.strftime("%Y%m%d-%H%M%S"))

    def mark_done(self, status: str, **details: Any) -> None:
        write_json(self.done, {"status": status, **details})


def find_run_dirs(root: Path) -> list[RunDir]:
    """Every run directory (one holding config.json) under `root`, sorted; folders set aside by
    --force (NAME.replaced-...) and report folders are not runs."""
    return [
        RunDir(p.parent)
        for p in sorted(root.glob("**/config.json"))
        if "report" not in p.parts and not any(".replaced-" in part for part in p.parts)
    ]


def suite_dirs(results: Path) -> list[Path]:
    """Folders directly under `results` that hold run directories."""
    return sorted(p for p in results.iterdir() if p.is_dir() and p.name != "report" and find_run_dirs(p))
