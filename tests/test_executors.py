"""Executors: local (inline, process pool pinned one GPU per worker) and Slurm arrays through
submitit, run here with submitit's local cluster so that its real code path runs."""

from __future__ import annotations

import json
import operator
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import submitit
import torch
from conftest import tiny_suite

from gdpp_bench import executors
from gdpp_bench.errors import UserError
from gdpp_bench.executors import (
    InlineExecutor,
    LocalExecutor,
    SlurmExecutor,
    assign_devices,
    make_executor,
)
from gdpp_bench.suites import expand


def device_once_peer_started(folder: str) -> tuple[int, str | None]:
    """(pid, CUDA_VISIBLE_DEVICES) of the worker, returned once two workers have got here: each
    of two such calls then runs in its own worker."""
    Path(folder, str(os.getpid())).touch()
    deadline = time.monotonic() + 60
    while len(os.listdir(folder)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.getpid(), os.environ.get("CUDA_VISIBLE_DEVICES")


# --- local -----------------------------------------------------------------------------------------


def test_one_local_worker_runs_inline():
    executor = LocalExecutor(1)
    assert isinstance(executor._inner, InlineExecutor)
    assert executor.submit(operator.add, 2, 3).result() == 5
    with pytest.raises(ZeroDivisionError):
        executor.submit(operator.truediv, 1, 0).result()
    executor.shutdown()


def test_device_assignment_round_robin():
    assert assign_devices(5, 2) == ["0", "1", "0", "1", "0"]
    assert assign_devices(2, 4) == ["0", "1"]
    assert assign_devices(3, ["3", "GPU-ab12"]) == ["3", "GPU-ab12", "3"]
    assert assign_devices(3, []) == []


def test_visible_devices_follow_an_inherited_mask(monkeypatch):
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert executors.visible_cuda_devices() == ["0", "1"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4, 6")
    assert executors.visible_cuda_devices() == ["4", "6"]


def test_local_workers_are_pinned_and_return_results_and_exceptions(tmp_path):
    executor = LocalExecutor(2, ["4", "6"])  # two "GPUs": each worker sees one
    try:
        pinned = [executor.submit(device_once_peer_started, str(tmp_path)) for _ in range(2)]
        seen = dict(future.result(timeout=120) for future in pinned)
        futures = [
            executor.submit(operator.add, 1, 2),
            executor.submit(operator.truediv, 1, 0),
            executor.submit(os.getpid),
        ]
        assert futures[0].result(timeout=60) == 3
        assert isinstance(futures[1].exception(timeout=60), ZeroDivisionError)
        assert futures[2].result(timeout=60) in seen
    finally:
        executor.shutdown()
    assert len(seen) == 2 and sorted(seen.values()) == ["4", "6"] and os.getpid() not in seen


def test_workers_are_pinned_only_for_cuda_with_several_gpus(monkeypatch):
    made = []
    monkeypatch.setattr(executors, "LocalExecutor", lambda workers, devices: made.append(devices))
    monkeypatch.setattr(executors, "visible_cuda_devices", lambda: ["0", "1"])
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    make_executor("local", 2, device="cuda")
    make_executor("local", 2, device="auto")
    make_executor("local", 2, device="cpu")
    make_executor("local", 2)
    assert made == [["0", "1"], ["0", "1"], [], []]


# --- choosing --------------------------------------------------------------------------------------


def test_unknown_executor_names_the_known_ones():
    with pytest.raises(UserError, match="known executors: local, slurm"):
        make_executor("kubernetes")


def test_options_of_the_wrong_executor_are_refused(tmp_path):
    with pytest.raises(UserError, match="^--slurm-partition, --slurm-gpus: only with --executor slurm$"):
        make_executor("local", 1, partition="gpu", time_min=None, gpus_per_run=0)
    with pytest.raises(UserError, match="--workers is for --executor local"):
        make_executor("slurm", 2, folder=tmp_path, cluster="local")


@pytest.mark.skipif(shutil.which("srun") is not None, reason="this machine has Slurm")
def test_slurm_without_a_cluster_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="needs a Slurm cluster"):
        make_executor("slurm", folder=tmp_path)


def test_slurm_asks_for_gpus_only_for_gpu_runs(tmp_path):
    cpu = make_executor("slurm", folder=tmp_path, cluster="local", device="cpu")
    gpu = make_executor("slurm", folder=tmp_path, cluster="local", device="cuda")
    assert cpu._executor.parameters["gpus_per_node"] == 0
    assert gpu._executor.parameters["gpus_per_node"] == 1


# --- slurm through submitit ------------------------------------------------------------------------


def test_slurm_array_returns_results_and_exceptions(tmp_path):
    executor = SlurmExecutor(tmp_path / "%j", cluster="local", gpus_per_run=0, time_min=10, poll_s=0.2)
    heard = []
    futures = [
        executor.submit(operator.add, 1, 2),
        executor.submit(operator.truediv, 1, 0),
        executor.submit(make_executor, "nope"),  # raises a UserError in the task
        executor.submit(os.getpid),
    ]
    for future in futures:
        future.add_done_callback(lambda f: heard.append(f.exception() is None))
    assert executor.jobs == []  # nothing is submitted before someone waits
    assert futures[0].result(timeout=120) == 3  # submits all four as one array
    assert len(executor.jobs) == 4
    assert isinstance(futures[1].exception(timeout=120), ZeroDivisionError)
    with pytest.raises(UserError, match="unknown executor 'nope'"):  # the task's own exception
        futures[2].result(timeout=120)
    assert futures[3].result(timeout=120) != os.getpid()
    executor.shutdown()
    assert sorted(heard) == [False, False, True, True]
    assert executor.flush() == []  # nothing left to submit


FAKE_SBATCH = """\
import os, re, shlex, subprocess, sys
from pathlib import Path

script = Path(sys.argv[-1]).read_text()
calls = Path(os.environ["FAKE_SLURM_CALLS"])
calls.mkdir(exist_ok=True)
(calls / f"{len(list(calls.iterdir()))}.sh").write_text(script)
array_id = str(4000 + len(list(calls.iterdir())))
last = re.search(r"--array=0-(\\d+)%", script)
words = shlex.split(script.strip().splitlines()[-1])[1:]  # after srun
while words[0].startswith("--"):
    words = words[2:] if words[0] in ("--output", "--error") else words[1:]
for task in range(int(last.group(1)) + 1 if last else 1):
    env = dict(os.environ, SUBMITIT_EXECUTOR="slurm", SLURM_JOB_ID=f"{array_id}{task}", SLURM_NTASKS="1",
               SLURM_JOB_NUM_NODES="1", SLURM_NODEID="0", SLURM_PROCID="0", SLURM_LOCALID="0",
               SLURM_JOB_NODELIST="localhost")
    if last:
        env.update(SLURM_ARRAY_JOB_ID=array_id, SLURM_ARRAY_TASK_ID=str(task))
    subprocess.Popen(words, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)
print(f"Submitted batch job {array_id}")
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    """sbatch, srun and sacct stand-ins: sbatch records the script and starts its array tasks here,
    with the environment Slurm gives them. Returns the folder of the recorded sbatch scripts."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in [
        ("sbatch", FAKE_SBATCH),
        ("srun", "sys.exit(1)"),
        ("sacct", "print('JobID|State|NodeList')"),
    ]:
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\nimport sys\n{body}")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SLURM_CALLS", str(tmp_path / "sbatch-calls"))
    return tmp_path / "sbatch-calls"


def test_runs_go_to_slurm_as_one_array_with_the_options(tmp_path, fake_slurm):
    executor = make_executor(
        "slurm",
        folder=tmp_path / "logs" / "%j",
        partition="gpu",
        time_min=90,
        gpus_per_run=1,
        cpus_per_run=3,
        array_parallelism=2,
        mem_gb=16,
        poll_s=0.2,
    )
    futures = [
        executor.submit(operator.add, 1, 2),
        executor.submit(operator.truediv, 1, 0),
        executor.submit(os.getenv, "SLURM_ARRAY_TASK_ID"),
    ]
    executor.shutdown()
    assert futures[0].result() == 3 and futures[2].result() == "2"
    assert isinstance(futures[1].exception(), ZeroDivisionError)
    (script,) = [path.read_text() for path in fake_slurm.iterdir()]  # one sbatch for all three
    for line in [
        "--array=0-2%2",
        "--partition=gpu",
        "--time=90",
        "--gpus-per-node=1",
        "--cpus-per-task=3",
        "--mem=16GB",
        "--signal=USR2@90",
        "--job-name=gdpp-bench",
    ]:
        assert f"#SBATCH {line}\n" in script
    assert [job.job_id for job in executor.jobs] == ["4001_0", "4001_1", "4001_2"]


def test_slurm_task_threads_follow_its_cpus(monkeypatch):
    threads = torch.get_num_threads()
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "1")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    try:
        assert executors._Call(torch.get_num_threads)() == 1
    finally:
        torch.set_num_threads(threads)


def test_slurm_job_that_dies_fails_its_future(tmp_path, monkeypatch):
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)  # no shared-disk lag here
    executor = SlurmExecutor(tmp_path / "%j", cluster="local", gpus_per_run=0, time_min=10, poll_s=0.2)
    future = executor.submit(os._exit, 3)  # the task process ends without writing a result
    executor.shutdown()
    assert future.exception(timeout=60) is not None


def test_debug_cluster_runs_in_this_process(tmp_path):
    executor = SlurmExecutor(tmp_path, cluster="debug", poll_s=0.05)
    futures = [executor.submit(os.getpid), executor.submit(operator.truediv, 1, 0)]
    executor.shutdown()
    assert futures[0].result() == os.getpid()
    assert isinstance(futures[1].exception(), ZeroDivisionError)


def test_timed_out_task_is_requeued_with_the_same_call():
    call = executors._Call(operator.add)
    requeued = call.checkpoint(1, 2)
    assert requeued.function is call and requeued.args == (1, 2)
    assert requeued.result() == 3


# --- a run is the same whatever the executor -------------------------------------------------------


def _run_all(executor, specs, results: Path) -> list[dict]:
    from gdpp_bench.pipeline import run_one  # not at the top: pool workers import this module

    futures = [executor.submit(run_one, spec, results, None) for spec in specs]
    try:
        return [future.result() for future in futures]
    finally:
        executor.shutdown()


@pytest.fixture
def one_thread(monkeypatch):
    """torch on one thread here and in the processes started from here: quicker on a busy machine."""
    threads = torch.get_num_threads()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_runs_through_slurm_equal_runs_in_process(tmp_path, one_thread):
    specs = expand(tiny_suite(train={"steps": 10, "log_every": 5, "checkpoint_every": 5}))
    inline = _run_all(InlineExecutor(), specs, tmp_path / "inline")
    slurm = SlurmExecutor(
        tmp_path / "submitit" / "%j", cluster="local", gpus_per_run=0, time_min=10, poll_s=0.2
    )
    remote = _run_all(slurm, specs, tmp_path / "slurm")
    assert len(slurm.jobs) == len(specs) == 2
    assert [o["key"] for o in remote] == [o["key"] for o in inline]
    assert [o["values"] for o in remote] == [o["values"] for o in inline]
    for spec in specs:
        dirs = [tmp_path / name / spec.suite / spec.key for name in ("inline", "slurm")]
        weights = [torch.load(d / "checkpoint.pt", weights_only=True)["generator"] for d in dirs]
        assert weights[0].keys() == weights[1].keys()
        for name in weights[0]:
            assert torch.equal(weights[0][name], weights[1][name]), (spec.key, name)
        values = [json.loads((d / "metrics.json").read_text())["values"] for d in dirs]
        assert values[0] == values[1] and values[0]
    # a rerun skips the finished runs (submitit's in-process cluster, to spare process starts)
    again = _run_all(
        SlurmExecutor(tmp_path / "debug", cluster="debug", poll_s=0.05), specs, tmp_path / "slurm"
    )
    assert all(outcome["skipped"] for outcome in again)


def test_run_specs_takes_a_slurm_executor_as_it_is(tmp_path, monkeypatch, one_thread):
    """pipeline.run_specs, unchanged, with every run a task of one array (submitit in process)."""
    from gdpp_bench import pipeline

    made = []

    def slurm(*args, **kwargs):
        made.append(SlurmExecutor(tmp_path / "submitit", cluster="debug", poll_s=0.05))
        return made[-1]

    monkeypatch.setattr(pipeline, "make_executor", slurm)
    specs = expand(tiny_suite(train={"steps": 4, "log_every": 2, "checkpoint_every": 2}))
    heard = []
    outcomes = pipeline.run_specs(specs, tmp_path / "results", None, "cpu", on_result=heard.append)
    assert [o["key"] for o in outcomes] == [s.key for s in specs]
    assert sorted(o["key"] for o in heard) == sorted(s.key for s in specs)
    assert len(made[0].jobs) == len(specs) and all(o["status"] == "done" for o in outcomes)


def test_workers_2_on_the_command_line_give_the_runs_of_a_sequential_call(tmp_path, monkeypatch):
    """Bit-identical at the same CPU threads per run: 2 workers on 2 cores get 1 thread each, so the
    sequential reference runs with 1 thread too (float sums depend on the thread count)."""
    from conftest import gdpp_bench, small_ring8_suite, torch_threads

    from gdpp_bench.rundir import find_run_dirs, read_json

    suite = small_ring8_suite(tmp_path / "ring8.toml", ("bce", "bce+gdpp", "bce+gdpp-si"), (0, 1, 2))
    args = [
        "run",
        "--suite",
        str(suite),
        "--device",
        "cpu",
        "--steps",
        "30",
        "--seeds",
        "0,1",
        "--variants",
        "bce,bce+gdpp",
    ]
    threads = max(1, (os.cpu_count() or 1) // 2)
    for name, extra in (("sequential", []), ("parallel", ["--workers", "2"])):
        with torch_threads(threads):  # the workers' count, for the sequential call in this process
            done = gdpp_bench(*args, "--results", str(tmp_path / name), *extra)
        assert done.returncode == 0, done.stderr
    sequential = find_run_dirs(tmp_path / "sequential" / "ring8")
    parallel = find_run_dirs(tmp_path / "parallel" / "ring8")
    assert [r.path.relative_to(tmp_path / "sequential") for r in sequential] == [
        r.path.relative_to(tmp_path / "parallel") for r in parallel
    ]
    assert len(sequential) == 4
    for one, other in zip(sequential, parallel, strict=True):
        weights = [torch.load(r.checkpoint, weights_only=True)["generator"] for r in (one, other)]
        assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
        assert read_json(one.metrics)["values"] == read_json(other.metrics)["values"]
        assert read_json(one.config)["environment"]["threads"] == threads
        assert one.log.read_text().splitlines()[1:] and _without_rate(one.log) == _without_rate(other.log)


def _without_rate(log) -> list[list[str]]:
    """log.csv's rows without the imgs_per_s column (a timing, the one field that may differ)."""
    rows = [row.split(",") for row in log.read_text().splitlines()]
    rate = rows[0].index("imgs_per_s")
    return [row[:rate] + row[rate + 1 :] for row in rows]


# --- Ctrl-C ---------------------------------------------------------------------------------------


def test_abort_cancels_the_array_tasks_and_submits_nothing_more(tmp_path, monkeypatch):
    # the cancelled task writes no result: submitit would wait 15 s for one (shared-disk lag)
    monkeypatch.setattr(submitit.core.core.Job, "_results_timeout_s", 1)
    executor = SlurmExecutor(tmp_path / "%j", cluster="local", gpus_per_run=0, time_min=10, poll_s=0.2)
    started = tmp_path / "started"
    sleeping = executor.submit(subprocess.call, ["sh", "-c", f"touch {started}; sleep 600"])
    (job,) = executor.flush()
    unsent = executor.submit(operator.add, 1, 2)
    deadline = time.monotonic() + 120
    while not started.exists():
        assert time.monotonic() < deadline, "the task never started"
        time.sleep(0.1)
    said = executor.abort()
    assert said == f"cancelled 1 local tasks (job {job.job_id}) and did not submit 1 runs"
    begun = time.monotonic()
    executor.shutdown()  # the cancelled task ends at once instead of sleeping 600 s
    assert time.monotonic() - begun < 60
    assert unsent.cancelled() and sleeping.exception(timeout=1) is not None
    assert executor.flush() == [] and len(executor.jobs) == 1


def test_ctrl_c_while_waiting_aborts_the_executor_and_says_so_in_one_line(tmp_path, capsys):
    """run_specs with an executor whose runs never end: Ctrl-C (KeyboardInterrupt in the wait)
    stops submitting, aborts what was submitted and says what it stopped."""
    from concurrent.futures import Future

    from gdpp_bench.pipeline import run_specs

    class Interrupted(Future):
        def exception(self, timeout=None):
            raise KeyboardInterrupt

    class Stuck:
        def __init__(self):
            self.submitted, self.aborted = 0, False

        def submit(self, fn, *args):
            self.submitted += 1
            return Interrupted()

        def shutdown(self):
            pass

        def abort(self):
            self.aborted = True
            return f"cancelled {self.submitted} slurm tasks (job 42)"

    executor = Stuck()
    specs = expand(tiny_suite(seeds=(0, 1)))
    with pytest.raises(KeyboardInterrupt):
        run_specs(specs, tmp_path, None, "cpu", executor=executor)
    assert executor.aborted and executor.submitted == 4
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("interrupted: cancelled 4 slurm tasks (job 42); every run folder resumes")


def test_auto_is_resolved_once_into_every_run_spec(tmp_path, monkeypatch):
    """`--device auto` is resolved by run_specs, once: each run trains on (and config.json records)
    the resolved device type, and nothing downstream sees "auto"."""
    from gdpp_bench import environment
    from gdpp_bench.pipeline import run_specs
    from gdpp_bench.rundir import RunDir, read_json

    calls = []
    real = environment.resolve_device

    def counting(name):
        calls.append(name)
        return real(name)

    monkeypatch.setattr("gdpp_bench.pipeline.resolve_device", counting)
    specs = expand(tiny_suite(variants=("bce",), seeds=(0, 1), train={"steps": 10, "log_every": 5}))
    assert {spec.device for spec in specs} == {"cpu"}  # the default before resolution
    run_specs(specs, tmp_path, None, "auto")
    assert calls[0] == "auto" and "auto" not in calls[1:]  # later calls check the resolved type
    for spec in specs:
        recorded = read_json(RunDir.for_spec(tmp_path, spec).config)["spec"]
        assert recorded["device"] == real("auto").type
