"""Shared test helpers: where the real data is (found as the CLI finds it), the trained instruments,
tiny suites, and the command line run in this process or as a separate one."""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gdpp_bench.suites import EvalConfig, Suite, TrainConfig
from gdpp_bench.user_paths import default_data_root

if os.environ.get("PYTEST_XDIST_WORKER"):  # parallel test processes share the cores: one thread each
    os.environ["OMP_NUM_THREADS"] = "1"  # and the processes they start
    torch.set_num_threads(1)

# A shell starts a background job (`cmd &` without job control, as in `nohup .ci/run &`) with
# SIGINT ignored, and an ignored signal stays ignored across exec: the interruption tests' Ctrl-C
# would never reach the processes they start. A handled signal is reset to default in a child.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

REPO = Path(__file__).resolve().parents[1]
# the processes the tests start import this checkout's package, not the one an editable install
# (made from another clone or worktree) would find
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
# the data root the CLI would use: $GDPP_BENCH_DATA, ../shared/datasets, else the user cache
DATA_ROOT = Path(default_data_root()).expanduser().resolve()
DOWNLOAD_ROOT = Path("~/.cache/gdpp-bench/data").expanduser().resolve()
# where instruments trained by earlier sessions are kept (read before any fixture changes the variable)
PERSISTENT_CACHE = Path(os.environ.get("GDPP_BENCH_CACHE") or "~/.cache/gdpp-bench").expanduser()
# every skip for absent data says this; .ci/run fails when it sees it (CI has the data)
MISSING_DATA = "real data missing"
RAW_FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def tiny_suite(**overrides) -> Suite:
    """A ring8 suite small enough to train in a second on a CPU."""
    train = TrainConfig(steps=40, batch_size=64, log_every=10, checkpoint_every=10, update="simultaneous")
    suite = Suite(
        name="tiny",
        datasets=("ring8",),
        variants=("bce", "bce+gdpp@1"),
        seeds=(0,),
        model="mlp2d",
        train=train,
        eval=EvalConfig(every=20, samples=500),
    )
    train_overrides = overrides.pop("train", {})
    suite = dataclasses.replace(suite, **overrides)
    return dataclasses.replace(suite, train=dataclasses.replace(suite.train, **train_overrides))


def small_ring8_suite(path: Path, variants: tuple[str, ...], seeds: tuple[int, ...]) -> Path:
    """A suite file named ring8 with the registered suite's model and updates at batch 64 and 1,000
    steps (its own batch of 512 makes GDPP's eigendecompositions a test's cost)."""
    path.write_text(
        f"""name = "ring8"
dataset = "ring8"
model = "mlp2d"
variants = {list(variants)!r}
seeds = {list(seeds)!r}
[train]
steps = 1000
batch_size = 64
update = "simultaneous"
log_every = 10
checkpoint_every = 10
[eval]
metrics = ["modes2d"]
samples = 500
""".replace("'", '"')
    )
    return path


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


# --- real data ----------------------------------------------------------------------------------


def _has_raw_files(root: Path, dataset: str) -> bool:
    return all((root / RAW_FOLDERS[dataset] / "raw" / name).is_file() for name in RAW_FILES)


def real_data_root(dataset: str) -> Path:
    """DATA_ROOT if it holds `dataset`'s raw files; into the user cache (the CLI's download folder)
    they are downloaded when missing; anywhere else, or offline, the test is skipped, never failed,
    and nothing is written outside the temp and cache folders."""
    if _has_raw_files(DATA_ROOT, dataset):
        return DATA_ROOT
    reason = f"{MISSING_DATA}: no {dataset} raw files under {DATA_ROOT}"
    if DATA_ROOT != DOWNLOAD_ROOT:
        pytest.skip(f"{reason}; set GDPP_BENCH_DATA to a folder holding {RAW_FOLDERS[dataset]}/raw/")
    from torchvision import datasets

    try:
        getattr(datasets, RAW_FOLDERS[dataset])(str(DATA_ROOT), train=True, download=True)
    except Exception as exc:  # offline: any failure means the same
        pytest.skip(
            f"{reason}, and downloading it failed ({type(exc).__name__}); "
            f"set GDPP_BENCH_DATA to a folder holding {RAW_FOLDERS[dataset]}/raw/"
        )
    return DATA_ROOT


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The data root holding real MNIST (the test is skipped where there is none)."""
    return real_data_root("mnist")


@pytest.fixture(scope="session")
def fashion_root() -> Path:
    return real_data_root("fashion-mnist")


# --- instruments --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def instrument_cache(tmp_path_factory):
    """One $GDPP_BENCH_CACHE (and torch home) for the session; CLI runs in this process see it."""
    root = tmp_path_factory.mktemp("gdpp-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GDPP_BENCH_CACHE", str(root))
        patch.setenv("TORCH_HOME", str(root / "torch-home"))
        yield root


def _default_classifier(dataset: str, data_root: Path, session_cache: Path):
    """(model, info) of `dataset`'s default classifier in the session cache.

    Training it costs minutes on a CPU, so it is trained once per machine into the persistent cache
    (as `gdpp-bench instruments train` does; a lock keeps parallel sessions from training it twice)
    and copied into the session's cache, where every test and CLI call of the session finds it."""
    from gdpp_bench.metrics.instruments import load_or_train_classifier

    persistent = PERSISTENT_CACHE / "instruments"
    persistent.mkdir(parents=True, exist_ok=True)
    with (persistent / f".{dataset}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        _, trained = load_or_train_classifier(dataset, data_root, cache_dir=persistent)
    target = session_cache / "instruments" / trained.path.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(trained.path, target)
    return load_or_train_classifier(dataset, data_root)


@pytest.fixture(scope="session")
def mnist_classifier(instrument_cache, mnist_root):
    """(model, info) of the default MNIST classifier, in the session cache."""
    return _default_classifier("mnist", mnist_root, instrument_cache)


@pytest.fixture(scope="session")
def fashion_classifier(instrument_cache, fashion_root):
    """(model, info) of the default Fashion-MNIST classifier, in the session cache."""
    return _default_classifier("fashion-mnist", fashion_root, instrument_cache)


# --- the command line -----------------------------------------------------------------------------


@dataclasses.dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def gdpp_bench(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> CliResult:
    """`gdpp-bench ARGS` run in this process (the same entry point and error handling as the
    installed command), its output captured; saves the seconds a fresh process spends on imports."""
    from click.testing import CliRunner

    from gdpp_bench.cli import main

    previous = os.getcwd()
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        try:
            if cwd is not None:
                os.chdir(cwd)
            main(list(args))
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            os.chdir(previous)
            sys.stdout.flush()
            sys.stderr.flush()
        return CliResult(code, stdout.getvalue().decode(), stderr.getvalue().decode())


RESULT_LINE = re.compile(r"^\S+/seed-\d+: (done|failed|incomplete|skipped \(done\))  ")


def result_lines(stdout: str) -> list[str]:
    """The lines `run` prints as runs end (its progress lines also start with a run's name)."""
    return [line for line in stdout.splitlines() if RESULT_LINE.match(line)]


def gdpp_bench_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The command line as a separate process, where that is the point (signals, a fresh clone)."""
    return subprocess.run(
        [sys.executable, "-m", "gdpp_bench.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def tensors(path) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint file, flattened to '.key.sub.name' -> tensor."""
    from gdpp_bench.checkpoint import flat_tensors

    return flat_tensors(torch.load(path, weights_only=True))


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's CPU thread count set to `count` for the block (CPU float sums depend on it)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class Replay(torch.nn.Module):
    """A 'generator' that hands out given images in order (real data as the generator)."""

    z_dim = 4

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.position = images, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.images[self.position : self.position + len(z)]
        self.position += len(z)
        return out


def replay_context(images_uint8: torch.Tensor, dataset, data_root: Path = DATA_ROOT, **fields):
    """An EvalContext whose generator replays `images_uint8` (so metrics see real data); `dataset`
    is a registered name or a dataset object (a folder's)."""
    from gdpp_bench.data import DATASETS
    from gdpp_bench.metrics import EvalContext

    signed = images_uint8.float() / 127.5 - 1
    return EvalContext(
        Replay(signed),
        DATASETS.get(dataset) if isinstance(dataset, str) else dataset,
        torch.device("cpu"),
        len(signed),
        seed=0,
        data_root=str(data_root),
        **fields,
    )


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory, instrument_cache):
    """A weights file of torch-fidelity's Inception-v3 with its exact structure and random values: the
    real loading path runs offline (the numbers it gives mean nothing). With the session's cache, so
    that the statistics these meaningless features give never reach the user's cache."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.MonkeyPatch.context() as patch:
        # build the module without any weights: the file it names is never read
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        patch.setattr(torch, "load", lambda *args, **kwargs: {})
        model = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048"], feature_extractor_weights_path="unused"
        )
    torch.manual_seed(0)
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory):
    """A data root with the CIFAR-10 and CelebA fixtures in their real on-disk formats (per module)."""
    from image_fixtures import write_celeba_fixture, write_cifar10_fixture

    root = tmp_path_factory.mktemp("data")
    write_cifar10_fixture(root)
    write_celeba_fixture(root)
    return root


# The slowest modules first: xdist's loadfile scheduling hands modules out in collection order,
# so a long module collected last can leave one process working alone at the end (longest first
# is the classic fix for that). Measured with `--durations=0`; order inside a module is kept.
SLOW_MODULES_FIRST = (
    "test_cli.py",
    "test_tune_processes.py",
    "test_tune.py",
    "test_archive.py",
    "test_instruments.py",
    "test_image_suites.py",
    "test_interrupt.py",
    "test_fidelity.py",
    "test_executors.py",
    "test_report_stats.py",
    "test_plugins.py",
    "test_gpu_study.py",
    "test_report_figures.py",
    "test_run_lifecycle.py",
    "test_folder_dataset.py",
    "test_diversity_methods.py",
    "test_metrics.py",
    "test_train.py",
    "test_packaging.py",
    "test_seed_parallel.py",
    "test_power.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(SLOW_MODULES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a module's order stays
