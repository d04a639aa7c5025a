from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gdpp_bench.suites import EvalConfig, Suite, TrainConfig

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"


def tiny_suite(**overrides) -> Suite:
    """A ring8 suite small enough to train in a second on a CPU."""
    train = TrainConfig(steps=40, batch_size=64, log_every=10, checkpoint_every=10,
                        update="simultaneous")
    suite = Suite(
        name="tiny", datasets=("ring8",), variants=("bce", "bce+gdpp@1"), seeds=(0,),
        model="mlp2d", train=train, eval=EvalConfig(every=20, samples=500),
    )
    train_overrides = overrides.pop("train", {})
    suite = dataclasses.replace(suite, **overrides)
    return dataclasses.replace(suite, train=dataclasses.replace(suite.train, **train_overrides))


@pytest.fixture
def results(tmp_path: Path) -> Path:
    return tmp_path / "results"


def gdpp_bench(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """The installed command line, run as users run it (a fresh process)."""
    return subprocess.run(
        [sys.executable, "-m", "gdpp_bench.cli", *args],
        capture_output=True, text=True, cwd=cwd, timeout=600,
    )


@pytest.fixture(scope="session")
def instrument_cache(tmp_path_factory):
    """One $GDPP_BENCH_CACHE (and torch home) for the session, so the MNIST classifier the
    metrics need is trained once; subprocesses inherit it through the environment."""
    root = tmp_path_factory.mktemp("gdpp-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GDPP_BENCH_CACHE", str(root))
        patch.setenv("TORCH_HOME", str(root / "torch-home"))
        yield root


@pytest.fixture(scope="session")
def mnist_classifier(instrument_cache):
    """(model, info) of the default MNIST classifier, trained once into the session cache."""
    from gdpp_bench.metrics.instruments import load_or_train_classifier

    return load_or_train_classifier("mnist", SHARED_DATASETS)


class Replay(torch.nn.Module):
    """A 'generator' that hands out given images in order (real data as the generator)."""

    z_dim = 4

    def __init__(self, images: torch.Tensor) -> None:
        super().__init__()
        self.images, self.position = images, 0

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        out = self.images[self.position:self.position + len(z)]
        self.position += len(z)
        return out


def replay_context(images_uint8: torch.Tensor, dataset: str, **fields):
    """An EvalContext whose generator replays `images_uint8` (so metrics see real data)."""
    from gdpp_bench.data import DATASETS
    from gdpp_bench.metrics import EvalContext

    signed = images_uint8.float() / 127.5 - 1
    return EvalContext(Replay(signed), DATASETS.get(dataset), torch.device("cpu"), len(signed),
                       seed=0, data_root=str(SHARED_DATASETS), **fields)


@pytest.fixture(scope="session")
def random_inception_weights(tmp_path_factory):
    """A weights file of torch-fidelity's Inception-v3 with its exact structure and random values: the
    real loading path runs offline (the numbers it gives mean nothing)."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    path = tmp_path_factory.mktemp("inception") / "weights-inception-2015-12-05-6726825d.pth"
    with pytest.MonkeyPatch.context() as patch:
        # build the module without any weights: the file it names is never read
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state: None)
        patch.setattr(torch, "load", lambda *args, **kwargs: {})
        model = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"],
                                            feature_extractor_weights_path="unused")
    torch.manual_seed(0)
    torch.save(model.state_dict(), path)
    return path
