"""What a user sees while a suite works: a line or a progress bar per run, and one-line notices.

On a terminal a run shows a tqdm bar (step / total, it/s, ETA, latest losses); where output goes to a
file (Slurm, nohup) or several runs share the output (--workers N), each log step prints one plain
line instead. Every line about a run starts with the run's name, so interleaved lines of parallel
workers stay readable. Nothing here syncs with the device: a run reports only at its log steps.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import click

STYLES = ("auto", "bar", "lines", "off")
_label: str | None = None  # the run this process is working on, for its lines and notices


def choose_style(style: str, workers: int) -> str:
    """'auto' -> a bar on a terminal with one worker, plain lines otherwise."""
    if style != "auto":
        return style
    return "bar" if workers == 1 and sys.stderr.isatty() else "lines"


@contextlib.contextmanager
def working_on(label: str) -> Iterator[None]:
    """Lines and notices inside the block start with `label` (a run's name)."""
    global _label
    before, _label = _label, label
    try:
        yield
    finally:
        _label = before


def say(text: str) -> None:
    """One line of output, prefixed with the current run's name."""
    click.echo(f"{_label}: {text}" if _label else text)


def notice(text: str) -> None:
    """One warning line on stderr (a file set aside, a changed revision...), with the run's name."""
    click.echo(f"warning: {_label}: {text}" if _label else f"warning: {text}", err=True)


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def _values(values: dict[str, float], limit: int = 4) -> str:
    return " ".join(f"{k}={v:.4g}" for k, v in list(values.items())[:limit])


@dataclass
class RunProgress:
    """Progress of one run: call `logged` at each log step and `close` at the end."""

    total: int
    start: int
    style: str = "lines"

    def __post_init__(self) -> None:
        self._bar = None
        self._since = time.perf_counter()
        self._since_step = self.start
        if self.style == "bar":
            from tqdm import tqdm

            # updated only at log steps, so every update is drawn (mininterval 0)
            self._bar = tqdm(
                total=self.total,
                initial=self.start,
                desc=_label or "run",
                unit="step",
                leave=False,
                dynamic_ncols=True,
                position=1,
                mininterval=0,
            )

    def logged(self, step: int, values: dict[str, float]) -> None:
        """The run reached `step`; `values` are its latest logged means (losses, terms)."""
        now = time.perf_counter()
        rate = (step - self._since_step) / max(now - self._since, 1e-9)
        if self._bar is not None:
            self._bar.set_postfix_str(_values(values), refresh=False)
            self._bar.update(step - self._bar.n)
        elif self.style == "lines":
            eta = _clock((self.total - step) / rate) if rate > 0 else "?"
            say(f"step {step}/{self.total}  {rate:.1f} it/s  ETA {eta}  {_values(values)}")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
