"""Ctrl-C (SIGINT) and SIGTERM while runs train: held until the step in progress ends, so that the
engine writes a checkpoint at that step boundary before the signal takes effect.

A signal that came mid-step would otherwise stop the process inside an optimiser update (the
weights, optimiser state and RNG stream out of step with each other) or lose every step since the
last scheduled checkpoint. Held, it is acted on as the handler before ours would have acted, once
the checkpoint is written: Python's Ctrl-C handler and a pool worker's SIGTERM handler raise
KeyboardInterrupt (the suite stops, exit code 130); a handler that returns (submitit's, which only
logs SIGTERM in a Slurm task) lets training go on; the default action of SIGTERM, which would kill
the process, becomes KeyboardInterrupt too. A second Ctrl-C while one is held acts at once."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

HELD = (signal.SIGINT, signal.SIGTERM)


class HeldSignals:
    """The signal that came while the engine trains (`pending`), and how to act on it later."""

    def __init__(self) -> None:
        self.pending: int | None = None
        self.previous: dict[int, Any] = {}  # each held signal's handler before ours

    def hold(self, signum: int, frame: FrameType | None) -> None:
        again = signum == signal.SIGINT and self.pending is not None
        self.pending = signum
        if again:  # a second Ctrl-C: at once, without the checkpoint
            self.act()

    def act(self) -> None:
        """Act on the pending signal as its previous handler would have."""
        signum, self.pending = self.pending, None
        if signum is None:
            return
        handler: Callable[[int, FrameType | None], Any] | None = self.previous.get(signum)
        if not callable(handler):  # SIG_DFL (or a handler not set from Python): stop as Ctrl-C does
            raise KeyboardInterrupt
        handler(signum, None)


@contextlib.contextmanager
def held_signals() -> Iterator[HeldSignals]:
    """SIGINT and SIGTERM held (unless ignored) for the block: the block asks `pending` at each step
    boundary and calls `act` after its checkpoint. One still pending at the end is acted on after
    the block; an exception leaving the block drops it (the run has stopped already). Outside the
    main thread signals cannot be handled from Python and nothing is held."""
    held = HeldSignals()
    if threading.current_thread() is threading.main_thread():
        for held_signal in HELD:
            previous = signal.getsignal(held_signal)
            if previous != signal.SIG_IGN:  # a pool worker leaves Ctrl-C to the main process
                held.previous[held_signal] = previous
                signal.signal(held_signal, held.hold)
    try:
        yield held
    finally:
        for signum, previous in held.previous.items():
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)
    held.act()
