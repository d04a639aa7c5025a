"""Executors share one `submit(fn, *args) -> Future` and `shutdown()`.

- `local`: one run after another in this process (workers = 1), or `workers` spawned processes
  (with several CUDA devices, worker i is pinned to device i % n);
- `slurm`: every submitted run becomes one task of a single Slurm job array, through submitit.

Whatever the executor, a run computes the same thing: the executor only decides where `fn` runs.

Over 400 lines because stopping is part of each executor's contract and lives beside it: the pool's
worker-side signal handling (Ctrl-C, orphaned workers) and the Slurm side's cancelling of the
array's pending and running tasks; split apart, each half would only make sense with the other.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from gdpp_bench.config import EXECUTORS
from gdpp_bench.errors import UserError

if TYPE_CHECKING:  # torch is imported where needed: a submitit task that runs no model starts faster
    import torch

SLURM_FLAGS = {  # SlurmExecutor's arguments as `gdpp-bench run` names them, for messages
    "partition": "--slurm-partition",
    "time_min": "--slurm-time",
    "gpus_per_run": "--slurm-gpus",
    "cpus_per_run": "--slurm-cpus",
    "mem_gb": "--slurm-mem-gb",
    "array_parallelism": "--slurm-array-parallelism",
    "folder": "--slurm-folder",
}


class Executor(Protocol):
    def submit(self, fn: Callable[..., Any], *args: Any) -> Future: ...

    def shutdown(self) -> None: ...

    def abort(self) -> str:
        """Stop what runs and cancel what waits (after Ctrl-C); say what was stopped."""
        ...


class InlineExecutor:
    """Runs each job at once in this process; exceptions land in the returned future, while
    KeyboardInterrupt (Ctrl-C) goes straight up and stops the caller's loop."""

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future: Future = Future()
        try:
            future.set_result(fn(*args))
        except Exception as exc:  # noqa: BLE001 - handed to the caller through the future
            future.set_exception(exc)
        return future

    def shutdown(self) -> None:
        pass

    def abort(self) -> str:
        return "stopped the run in progress"


# --- local processes, one CUDA device each -------------------------------------------------------


def visible_cuda_devices() -> list[str]:
    """The CUDA devices this process may use, as CUDA_VISIBLE_DEVICES entries (ids or UUIDs):
    the entries of an inherited CUDA_VISIBLE_DEVICES, else 0..n-1."""
    import torch

    count = torch.cuda.device_count()
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if inherited is not None:
        return [entry.strip() for entry in inherited.split(",") if entry.strip()][:count]
    return [str(index) for index in range(count)]


def assign_devices(workers: int, devices: Sequence[str] | int) -> list[str]:
    """CUDA_VISIBLE_DEVICES of each of `workers` workers: worker i gets device i % n."""
    devices = [str(d) for d in range(devices)] if isinstance(devices, int) else list(devices)
    if not devices:
        return []
    return [devices[index % len(devices)] for index in range(workers)]


_busy = False  # in a pool worker: whether it is running a job
_stopping = False  # in a pool worker: the suite was stopped; calls still queued end at once
_events: Any = None  # in a pool worker: where it tells the main process its pid and each run it starts
_parent_pid = 0  # in a pool worker: the main process's pid
EXIT_ORPHANED = 143  # a worker whose main process died (128 + SIGTERM)
ABORT_WAIT_S = 120  # how long Ctrl-C waits for the workers to unwind their runs before killing them


def _init_worker(threads: int, device_queue: Any, events: Any) -> None:
    """Pool initializer: take this worker's device (before anything initialises CUDA), split CPUs,
    and leave Ctrl-C to the main process, which stops the workers with SIGTERM: a worker in a run
    unwinds it (locks released, half-written files removed), an idle one starts nothing more."""
    global _events, _parent_pid
    _events, _parent_pid = events, os.getppid()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop_worker)
    _end_with_parent()
    events.put(("pid", os.getpid()))
    if device_queue is not None:
        try:
            os.environ["CUDA_VISIBLE_DEVICES"] = device_queue.get(timeout=10)
        except Exception:  # noqa: BLE001 - a replacement worker finds the queue empty: no pinning
            pass
    import torch

    torch.set_num_threads(threads)


def _end_with_parent() -> None:
    """Linux: SIGTERM this worker when the main process dies (killed with SIGKILL, say), so that no
    orphan goes on training a run whose folder a rerun then finds locked."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans end when their run does
        pass


class _NotStarted(KeyboardInterrupt):
    """A run the pool had already handed to a worker (it queues one call ahead) when the suite
    was stopped: it ends without starting."""


def _stop_worker(signum: int, frame: Any) -> None:
    """SIGTERM in a worker: a run in progress unwinds; calls the pool already queued for this
    worker end without starting. An idle worker stays until the pool's shutdown sentinel reaches
    it, so that the pool never sees a worker die (which would break it, with tracebacks), unless
    the main process is gone: then no sentinel will come, and it ends."""
    global _stopping
    _stopping = True
    if _busy:
        raise KeyboardInterrupt
    _end_if_orphaned()


def _end_if_orphaned() -> None:
    # the worker holds both ends of the pool's call queue, so a dead parent never shows as EOF
    if os.getppid() != _parent_pid:
        os._exit(EXIT_ORPHANED)


def _in_worker(index: int, fn: Callable[..., Any], *args: Any) -> Any:
    global _busy
    if _stopping:
        raise _NotStarted
    _events.put(("started", index))
    _busy = True
    try:
        return fn(*args)
    except KeyboardInterrupt:
        if _stopping:  # the run has unwound (locks released, temp files removed)
            _end_if_orphaned()
        raise
    finally:
        _busy = False


class PoolExecutor:
    """Independent runs in `workers` spawned processes, the CPU cores split between them.

    With two or more `devices` (CUDA_VISIBLE_DEVICES entries), each worker process sees one of
    them only, worker i device i % len(devices); a run's `cuda` then means that device.
    """

    def __init__(self, workers: int, devices: Sequence[str] = ()) -> None:
        context = multiprocessing.get_context("spawn")
        threads = max(1, (os.cpu_count() or 1) // workers)
        queue = None
        if len(devices) > 1:
            queue = context.Queue()
            for device in assign_devices(workers, devices):
                queue.put(device)
        self.devices = assign_devices(workers, devices) if queue is not None else []
        self._events = context.SimpleQueue()  # ("pid", pid) and ("started", index) from workers
        self._started: set[int] = set()
        self._worker_pids: list[int] = []
        self._futures: list[Future] = []
        self._pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(threads, queue, self._events),
        )

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        # a Ctrl-C waits until the job is both in the pool and in our list, so that abort()
        # accounts for every job the pool may hold
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            future = self._pool.submit(_in_worker, len(self._futures), fn, *args)
            self._futures.append(future)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        return future

    def shutdown(self) -> None:
        self._pool.shutdown()

    def _read_events(self) -> None:
        while not self._events.empty():
            kind, value = self._events.get()
            (self._worker_pids.append if kind == "pid" else self._started.add)(value)

    def abort(self) -> str:
        workers = multiprocessing.active_children()  # the pool's, started ones still booting included
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=False, cancel_futures=True)
        # shutdown(wait=False) lets go of the pool's thread, so a later shutdown(wait=True) waits for
        # nothing: wait for the workers here. One still booting (importing torch) registers later and
        # is stopped then; had this process exited first, its queues' semaphores would be gone and
        # the booting worker would die with a traceback.
        signalled: set[int] = set()
        deadline = time.monotonic() + ABORT_WAIT_S
        while any(worker.is_alive() for worker in workers) and time.monotonic() < deadline:
            self._read_events()
            for pid in set(self._worker_pids) - signalled:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
                signalled.add(pid)
            time.sleep(0.02)
        for worker in workers:
            if worker.is_alive():  # past the deadline (a run that does not unwind): as SIGKILL would
                worker.kill()
        self._read_events()
        finished = {
            i for i, f in enumerate(self._futures) if f.done() and not f.cancelled() and f.exception() is None
        }
        stopped = len(self._started - finished)
        not_started = len(self._futures) - len(self._started)
        return f"stopped {stopped} running runs and cancelled {not_started} queued"


class LocalExecutor:
    """This machine: inline for one worker, else a pool of `workers` processes (pinned to
    `devices` when there are several)."""

    def __init__(self, workers: int = 1, devices: Sequence[str] = ()) -> None:
        if workers < 1:
            raise UserError(f"--workers takes a number of processes >= 1; got {workers}")
        self._inner: Executor = InlineExecutor() if workers == 1 else PoolExecutor(workers, devices)

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        return self._inner.submit(fn, *args)

    def shutdown(self) -> None:
        self._inner.shutdown()

    def abort(self) -> str:
        return self._inner.abort()


# --- Slurm job arrays through submitit -------------------------------------------------------------


class _Failure:
    """What a job returns when its function raised: the exception travels back as itself
    (a UserError stays a UserError) rather than as submitit's FailedJobError with text."""

    def __init__(self, exception: Exception, trace: str) -> None:
        self.exception = exception
        self.trace = trace


class _RemoteTraceback(Exception):
    def __str__(self) -> str:
        return self.args[0]


class _Call:
    """`fn(*args)` as a submitit job; checkpointable: on a timeout or preemption submitit
    requeues the same call, which resumes the run from its last checkpoint.pt."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn

    def __call__(self, *args: Any) -> Any:
        cpus = os.environ.get("SLURM_CPUS_PER_TASK")
        if cpus and cpus.isdigit() and "OMP_NUM_THREADS" not in os.environ:
            import torch  # torch would size its thread pool by the node, not by the allocation

            torch.set_num_threads(int(cpus))
        try:
            return self.fn(*args)
        except Exception as exc:  # noqa: BLE001 - returned so that the caller re-raises it
            return _Failure(exc, traceback.format_exc())

    def checkpoint(self, *args: Any) -> Any:
        from submitit.helpers import DelayedSubmission

        return DelayedSubmission(self, *args)


def _resolve(future: Future, job: Any) -> None:
    """Hand a finished submitit job's outcome to its future."""
    try:
        outcome = job.result()
    except Exception as exc:  # noqa: BLE001 - the job failed outside fn (time limit, node, pickle)
        future.set_exception(exc)
        return
    if isinstance(outcome, _Failure):
        outcome.exception.__cause__ = _RemoteTraceback(f'\n"""\n{outcome.trace}"""')
        future.set_exception(outcome.exception)
    else:
        future.set_result(outcome)


class _ArrayFuture(Future):
    """A future of a run not yet submitted: waiting on it submits the pending array first."""

    def __init__(self, flush: Callable[[], Any]) -> None:
        super().__init__()
        self._flush = flush

    def result(self, timeout: float | None = None) -> Any:
        self._flush()
        return super().result(timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        self._flush()
        return super().exception(timeout)


class SlurmExecutor:
    """Each submitted run is one task of one Slurm job array, submitted through submitit.

    `submit` only records the call; `flush()` (also called by `shutdown()` and by `result()` or
    `exception()` of any returned future) submits everything recorded so far as one array; call
    `flush()` yourself before `concurrent.futures.wait`/`as_completed`, which do not. A background
    thread polls the jobs and resolves each future as its task ends, with the function's result or
    the very exception it raised. Tasks that hit the time limit or are preempted are requeued by
    submitit (up to 3 times) and resume from their checkpoint.

    cluster: "slurm" (sbatch), "local" (submitit's local executor: subprocesses on this machine,
    the real submitit path, used by the tests) or "debug" (in this process).
    """

    def __init__(
        self,
        folder: str | Path,
        partition: str | None = None,
        time_min: int = 12 * 60,
        gpus_per_run: int = 1,
        cpus_per_run: int = 4,
        array_parallelism: int = 256,
        mem_gb: float | None = None,
        cluster: str = "slurm",
        name: str = "gdpp-bench",
        parameters: dict[str, Any] | None = None,
        poll_s: float = 1.0,
        announce: Callable[[str], None] | None = None,
    ) -> None:
        import submitit

        try:
            self._executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        except RuntimeError as exc:  # no sbatch/srun here
            raise UserError(
                f"--executor slurm needs a Slurm cluster ({exc}); use --executor local on this machine"
            ) from None
        self._executor.update_parameters(
            name=name,
            timeout_min=time_min,
            gpus_per_node=gpus_per_run,
            cpus_per_task=cpus_per_run,
            mem_gb=mem_gb,
            slurm_partition=partition,
            slurm_array_parallelism=array_parallelism,
            **(parameters or {}),
        )
        self.cluster = cluster
        self.jobs: list[Any] = []  # submitit jobs, in submission order
        self._pending: list[tuple[Callable[..., Any], tuple[Any, ...], Future]] = []
        self._lock = threading.RLock()
        self._watchers: list[threading.Thread] = []
        self._poll_s = poll_s
        self._announce = announce

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future:
        future = _ArrayFuture(self.flush)
        with self._lock:
            self._pending.append((fn, args, future))
        return future

    def flush(self) -> list[Any]:
        """Submit the runs recorded since the last flush as one job array; returns its jobs."""
        with self._lock:
            batch, self._pending = self._pending, []
            if not batch:
                return []
            try:
                with self._executor.batch():
                    jobs = [self._executor.submit(_Call(fn), *args) for fn, args, _ in batch]
            except Exception as exc:  # noqa: BLE001 - every run of the array gets the error
                for _, _, future in batch:
                    future.set_exception(exc)
                return []
            self.jobs.extend(jobs)
            if self._announce:
                ids = list(dict.fromkeys(str(job.job_id).split("_")[0] for job in jobs))
                self._announce(
                    f"submitted {len(jobs)} runs ({self.cluster} job {', '.join(ids)}); "
                    f"logs in {self._executor.folder}"
                )
            watcher = threading.Thread(
                target=self._watch,
                args=(list(zip(jobs, batch, strict=True)),),
                name="submitit-watcher",
                daemon=True,
            )
            watcher.start()
            self._watchers.append(watcher)
            return jobs

    def _watch(self, pairs: list[tuple[Any, tuple[Any, Any, Future]]]) -> None:
        pending = [(job, future) for job, (_, _, future) in pairs]
        try:
            while pending:
                still = []
                for job, future in pending:
                    try:
                        done = job.done()
                    except Exception:  # noqa: BLE001 - let job.result() say what went wrong
                        done = True
                    if done:
                        _resolve(future, job)
                    else:
                        still.append((job, future))
                pending = still
                if pending:
                    time.sleep(self._poll_s)
        finally:  # never leave a caller waiting forever
            for _, future in pending:
                if not future.done():
                    future.set_exception(RuntimeError("stopped watching the submitit job"))

    def shutdown(self) -> None:
        """Submit what is pending and wait until every run has ended (after `abort`, nothing is
        submitted and the cancelled tasks end at once)."""
        self.flush()
        for watcher in self._watchers:
            watcher.join()

    def abort(self) -> str:
        """Submit nothing more and cancel the array tasks that have not ended (scancel through
        submitit); their run folders resume on the next `run`."""
        with self._lock:
            unsent, self._pending = self._pending, []
            for _, _, future in unsent:
                future.cancel()
            live = []
            for job in self.jobs:
                try:
                    if not job.done():
                        live.append(job)
                except Exception:  # noqa: BLE001 - a job whose state cannot be read: cancel it too
                    live.append(job)
            for job in live:
                job.cancel(check=False)
        ids = ", ".join(dict.fromkeys(str(job.job_id).split("_")[0] for job in live)) or "none"
        return f"cancelled {len(live)} {self.cluster} tasks (job {ids}) and did not submit {len(unsent)} runs"


# --- choosing one ----------------------------------------------------------------------------------


def uses_cuda(device: torch.device | str | None) -> bool:
    """Whether runs on `device` (a torch device or a --device name such as auto) use CUDA here."""
    from gdpp_bench.environment import device_type  # torch is imported only where needed

    return device is not None and device_type(device) == "cuda"


def make_executor(
    name: str = "local", workers: int = 1, *, device: torch.device | str | None = None, **slurm_options: Any
) -> Executor:
    """The executor `name` (local or slurm) for runs on `device` (a torch device or --device name).

    local: `workers` processes, pinned one per GPU when the runs use CUDA and several GPUs are
    visible. slurm: SlurmExecutor(**slurm_options) (folder is required; None values keep their
    defaults); gpus_per_run defaults to 0 for --device cpu/mps, else 1.
    """
    slurm_options = {k: v for k, v in slurm_options.items() if v is not None}
    if name == "local":
        if slurm_options:
            given = ", ".join(SLURM_FLAGS.get(key, key) for key in slurm_options)
            raise UserError(f"{given}: only with --executor slurm")
        return LocalExecutor(workers, visible_cuda_devices() if uses_cuda(device) else [])
    if name == "slurm":
        if workers != 1:
            raise UserError(
                "--workers is for --executor local; Slurm runs array tasks in parallel "
                "(see --slurm-array-parallelism)"
            )
        if device is not None and "gpus_per_run" not in slurm_options:
            from gdpp_bench.environment import device_type

            slurm_options["gpus_per_run"] = int(device_type(device, on_cluster_node=True) == "cuda")
        return SlurmExecutor(**slurm_options)
    raise UserError(f"unknown executor {name!r}; known executors: {', '.join(EXECUTORS)}")
