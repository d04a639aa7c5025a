"""Executors share one `submit(fn, *args) -> Future`: inline (tests, debugging) or process pool."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, Protocol

import torch


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...

    def shutdown(self) -> None: ...


class InlineExecutor:
    """Runs each job at once in this process; exceptions land in the returned future."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass


def _limit_threads(threads: int) -> None:
    torch.set_num_threads(threads)


class PoolExecutor:
    """Independent runs in `workers` spawned processes, the CPU cores split between them."""

    def __init__(self, workers: int) -> None:
        threads = max(1, (os.cpu_count() or 1) // workers)
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_limit_threads,
            initargs=(threads,),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._pool.submit(fn, *args)

    def shutdown(self) -> None:
        self._pool.shutdown()


def make_executor(jobs: int) -> Executor:
    return InlineExecutor() if jobs <= 1 else PoolExecutor(jobs)
