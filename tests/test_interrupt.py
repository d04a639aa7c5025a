"""Ctrl-C as a terminal sends it: SIGINT to the whole process group of `gdpp-bench run`, which must
stop the suite (workers included) at once, exit 130 with one line, and leave every run folder
resumable from the step the signal came in (SIGTERM alike). These start real processes: the signal
is the point."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import gdpp_bench, tensors, torch_threads

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.rundir import RunDir, find_run_dirs, read_json
from gdpp_bench.training.interrupts import held_signals

# The runs are signalled at step 100 (past the checkpoint at step 50): the 300 steps they still
# have to go leave seconds for the second worker to reach step 100 while the first trains on (it
# does so some 20 steps later), and the rerun that completes the three runs (the cost of these
# tests) trains only 1,000 steps.
SUITE = """name = "interrupt"
dataset = "ring8"
variants = ["bce"]
seeds = [0, 1, 2]
[train]
steps = 400
batch_size = 16
log_every = 50
checkpoint_every = 50
[eval]
metrics = ["modes2d"]
samples = 200
"""


def start(suite: Path, results: Path, *extra: str) -> subprocess.Popen:
    """`gdpp-bench run` in a process group of its own, as a shell runs a foreground job, with one
    torch thread (the runs the tests compare bit for bit with it train in this process on one)."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gdpp_bench.cli",
            "run",
            "--suite",
            str(suite),
            "--device",
            "cpu",
            "--results",
            str(results),
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


@contextlib.contextmanager
def started(suite: Path, results: Path, *extra: str) -> Iterator[subprocess.Popen]:
    """`start`, and the whole process group killed at the end if the test left it running."""
    process = start(suite, results, *extra)
    try:
        yield process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def read_until(process: subprocess.Popen, needle: str, count: int = 1, timeout: float = 120) -> list[str]:
    """stdout lines up to the `count`-th that contains `needle`."""
    lines, seen, deadline = [], 0, time.monotonic() + timeout
    while seen < count:
        line = process.stdout.readline()
        assert line and time.monotonic() < deadline, ("no progress line", lines, process.stderr.read())
        lines.append(line.rstrip("\n"))
        seen += needle in line
    return lines


@pytest.mark.parametrize("workers", [1, 2])
def test_one_ctrl_c_stops_the_suite_and_every_run_resumes(tmp_path, workers):
    suite = tmp_path / "interrupt.toml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    with started(suite, results, "--workers", str(workers)) as process:
        # a run is past a checkpoint (step 50) and still training: Ctrl-C now
        lines = read_until(process, "step 100/400", count=workers)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    # the pool had already handed seed 2 to a worker (it queues a call ahead): it must not start
    stopped = (
        "stopped the run in progress, 2 runs not started"
        if workers == 1
        else "stopped 2 running runs and cancelled 1 queued"
    )
    assert line.startswith(f"interrupted: {stopped}; every run folder resumes")
    if workers > 1:  # interleaved lines of the two workers each start with the run's name
        progress = [line for line in lines if " step " in line]
        assert {line.split(":")[0] for line in progress} == {"bce/seed-0", "bce/seed-1"}
    assert "seed-2: training" not in stdout
    runs = find_run_dirs(results / "interrupt")
    assert runs and not any(run.is_done() for run in runs)
    assert not list(results.glob("**/.*.tmp"))  # no half-written file left behind

    again = gdpp_bench("run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
    assert again.returncode == 0, again.stderr
    assert "resuming at step" in again.stdout
    assert all(
        RunDir(results / "interrupt" / "bce" / f"seed-{seed}").status()["step"] == 400 for seed in (0, 1, 2)
    )


@pytest.mark.parametrize("delay_s", [0.0, 0.5])
def test_ctrl_c_while_the_workers_start_stops_cleanly(tmp_path, delay_s):
    """Ctrl-C before any worker has begun a run: as the pool is made (0 s), or while its workers
    are still importing torch (0.5 s later; the main process once exited without waiting for them,
    and they died with tracebacks): no run starts, the pool is not broken (no BrokenProcessPool, no
    traceback), one line, exit 130."""
    suite = tmp_path / "interrupt.toml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    with started(suite, results, "--workers", "2") as process:
        read_until(process, "suite interrupt: 3 runs")
        time.sleep(delay_s)
        os.killpg(process.pid, signal.SIGINT)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr and "BrokenProcessPool" not in stdout + stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    # the signal lands while the pool is made, while runs are handed to it or while its workers
    # start, depending on timing: whichever, no run started and all 3 are accounted for
    counts = re.match(
        r"interrupted: stopped 0 running runs and cancelled (\d+) queued(?:, (\d+) runs not started)?;", line
    )
    assert line.startswith("interrupted: stopped before anything more was done") or (
        counts and int(counts[1]) + int(counts[2] or 0) == 3
    ), line
    assert "training of" not in stdout


def test_workers_end_when_the_main_process_is_killed(tmp_path):
    """SIGKILL of `gdpp-bench run` (no chance to stop its pool): its workers, busy or idle, stop
    their runs and exit instead of lingering as orphans; the runs resume."""
    suite = tmp_path / "interrupt.toml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    with started(suite, results, "--workers", "2") as process:
        read_until(process, "step 100/400", count=2)
        workers = [
            int(pid)
            for pid in subprocess.run(
                ["pgrep", "-P", str(process.pid), "-f", "spawn_main"], capture_output=True, text=True
            ).stdout.split()
        ]
        assert len(workers) == 2
        os.kill(process.pid, signal.SIGKILL)  # the main process only, as the OOM killer would
        process.wait(timeout=30)
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_alive(pid) for pid in workers), "orphaned workers still running"
    again = gdpp_bench("run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
    assert again.returncode == 0, again.stderr
    assert "resuming at step" in again.stdout


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


# the default checkpoint_every (1,000 steps) is past the end: the run's only scheduled checkpoint is
# its last, so a signal lands before its first one
HELD_SUITE = """name = "held"
dataset = "ring8"
variants = ["bce"]
seeds = [0]
[train]
steps = 200
batch_size = 16
log_every = 50
[eval]
metrics = ["modes2d"]
samples = 200
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> RunDir:
    """The run trained in one go, in this process on one torch thread as the interrupted process
    (float sums depend on the thread count)."""
    root = tmp_path_factory.mktemp("uninterrupted")
    (root / "held.toml").write_text(HELD_SUITE)
    with torch_threads(1):
        done = gdpp_bench(
            "run", "--suite", str(root / "held.toml"), "--device", "cpu", "--results", str(root / "results")
        )
    assert done.returncode == 0, done.stderr
    return RunDir(root / "results" / "held" / "bce" / "seed-0")


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_before_the_first_checkpoint_keeps_the_steps_and_the_resumed_run_is_identical(
    tmp_path, signum, uninterrupted
):
    """Ctrl-C (or SIGTERM: `kill`, a Slurm preemption) mid-run writes a checkpoint at the step it came
    in (atomically, at the step's end) and exits 130; rerun, the run ends bit-identical to one trained
    in one go."""
    suite = tmp_path / "held.toml"
    suite.write_text(HELD_SUITE)
    results = tmp_path / "results"
    with started(suite, results) as process:
        read_until(process, "step 50/200")
        os.killpg(process.pid, signum)
        stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    (line,) = [line for line in stderr.splitlines() if line.strip()]
    assert line.startswith("interrupted: stopped the run in progress; every run folder resumes")
    run = RunDir(results / "held" / "bce" / "seed-0")
    step = load_checkpoint(run.checkpoint)["step"]
    assert 50 <= step < 200 and not run.is_done()
    assert not list(results.glob("**/.*.tmp"))  # written through a temp file renamed into place
    plan = gdpp_bench("run", "--suite", str(suite), "--device", "cpu", "--results", str(results), "--dry-run")
    assert f"bce/seed-0: would resume at step {step} of 200 in {run.path}" in plan.stdout

    with torch_threads(1):  # resumed in this process, as the uninterrupted run was trained
        again = gdpp_bench("run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
    assert again.returncode == 0, again.stderr
    assert f"resuming at step {step} of 200" in again.stdout
    resumed, straight = tensors(run.checkpoint), tensors(uninterrupted.checkpoint)
    assert resumed.keys() == straight.keys() and len(resumed) > 10
    assert all(torch.equal(resumed[k], straight[k]) for k in resumed), [
        k for k in resumed if not torch.equal(resumed[k], straight[k])
    ]
    logged = [pd.read_csv(r.log).drop(columns="imgs_per_s") for r in (run, uninterrupted)]
    pd.testing.assert_frame_equal(*logged)  # every log row, once, with the same means
    assert read_json(run.metrics)["values"] == read_json(uninterrupted.metrics)["values"]


def test_a_held_signal_waits_for_the_step_boundary_and_a_second_ctrl_c_does_not():
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # Python's own Ctrl-C
    try:
        with pytest.raises(KeyboardInterrupt), held_signals() as held:
            os.kill(os.getpid(), signal.SIGINT)
            assert held.pending == signal.SIGINT  # held: the step goes on
            os.kill(os.getpid(), signal.SIGINT)  # raises here
            pytest.fail("a second Ctrl-C must act at once")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    finally:
        signal.signal(signal.SIGINT, previous)


def test_a_held_signal_acts_as_the_handler_before_it():
    """A handler that returns (submitit's SIGTERM handler in a Slurm task only logs) lets training
    go on after the checkpoint; the default action of SIGTERM (death) becomes KeyboardInterrupt."""
    heard = []
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: heard.append(signum))
    try:
        with held_signals() as held:
            os.kill(os.getpid(), signal.SIGTERM)
            assert held.pending == signal.SIGTERM and not heard
            held.act()
            assert heard == [signal.SIGTERM] and held.pending is None
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        with pytest.raises(KeyboardInterrupt), held_signals():
            os.kill(os.getpid(), signal.SIGTERM)  # acted on at the end of the block
    finally:
        signal.signal(signal.SIGTERM, previous)
