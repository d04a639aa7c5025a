"""The project-trained classifiers used as metric instruments, and their torch-fidelity extractor.

The default MNIST classifier is trained once per machine (into the persistent cache, then copied into the
session's temporary cache) and shared by the tests; the training path, determinism, cache and corruption
tests use a tiny config (1 epoch on 256 images) and measure its test accuracy on the first 500 test
images (the full test split costs many times their training; the default classifier's test is on all of it).
"""

from __future__ import annotations

import contextlib
import dataclasses
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch_fidelity
from conftest import DATA_ROOT

from gdpp_bench.data import load_split
from gdpp_bench.data.images import to_signed_unit
from gdpp_bench.metrics import instruments
from gdpp_bench.metrics.fidelity_extractor import ClassifierFeatureExtractor, extractor_name, fidelity_kwargs
from gdpp_bench.metrics.instruments import (
    DEFAULT_CONFIGS,
    ClassifierConfig,
    classifier_path,
    classify_channels,
    load_or_train_classifier,
    train_classifier,
)

# Quick configs miss the protocol's accuracy on purpose; the warning that says so is tested once, below.
pytestmark = [
    pytest.mark.filterwarnings("ignore:.*the metrics protocol asks for:UserWarning"),
    pytest.mark.usefixtures("mnist_root"),
]

TINY = ClassifierConfig(epochs=1, train_size=256, seed=3)
FASHION_QUICK = ClassifierConfig(epochs=1, train_size=600)
N_FID = 1500  # > the 1024 feature dimensions
QUICK_TEST_IMAGES = 500


@contextlib.contextmanager
def accuracy_on_fewer_test_images():
    """train_classifier's test accuracy measured on the first QUICK_TEST_IMAGES test images: the
    quick configs' accuracy is only compared with itself (or with a threshold it misses by far)."""
    real = instruments.accuracy

    def first_images(model, images, labels, batch_size=256):
        return real(model, images[:QUICK_TEST_IMAGES], labels[:QUICK_TEST_IMAGES], batch_size)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(instruments, "accuracy", first_images)
        yield


@pytest.fixture
def quick_accuracy():
    with accuracy_on_fewer_test_images():
        yield


@pytest.fixture(scope="module")
def cache_root(instrument_cache: Path):
    """The session's temporary $GDPP_BENCH_CACHE (torch hub's home, torch-fidelity's caches, too)."""
    return instrument_cache


@pytest.fixture(scope="module")
def mnist(mnist_classifier):
    """(model, info) of the default MNIST classifier, in the session's temporary cache."""
    return mnist_classifier


@pytest.fixture(scope="module")
def tiny(cache_root: Path):
    with accuracy_on_fewer_test_images():
        return load_or_train_classifier("mnist", DATA_ROOT, config=TINY)


def test_mnist_classifier_reaches_99_percent_and_is_cached_with_its_accuracy(mnist, cache_root):
    model, info = mnist
    assert not info.trained and info.test_accuracy >= 0.99  # trained once per machine, then cached
    key = DEFAULT_CONFIGS["mnist"].sha256()
    assert info.path == cache_root / "instruments" / f"mnist-classifier-{key[:16]}.pt"
    assert info.weights_sha256 == instruments.file_sha256(info.path) and len(info.weights_sha256) == 64
    record = torch.load(info.path, weights_only=True)
    assert record["test_accuracy"] == info.test_accuracy and record["dataset"] == "mnist"
    assert record["config_sha256"] == DEFAULT_CONFIGS["mnist"].sha256()
    # the accuracy is recomputed from the reloaded weights, not only trusted from the record
    images, labels = load_split("mnist", DATA_ROOT, "test")
    reloaded, _ = instruments.load_classifier(info.path)
    assert instruments.accuracy(reloaded, images, labels) == pytest.approx(info.test_accuracy, abs=1e-12)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert model.features(torch.zeros(2, 1, 28, 28)).shape == (2, 1024)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(tiny, quick_accuracy):
    model, info = tiny
    again, info_again = train_classifier("mnist", DATA_ROOT, TINY)
    other, _ = train_classifier("mnist", DATA_ROOT, dataclasses.replace(TINY, seed=4))
    a, b, c = model.state_dict(), again.state_dict(), other.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert info_again.test_accuracy == info.test_accuracy
    assert not torch.equal(a["conv1.weight"], c["conv1.weight"])


def test_training_leaves_the_global_rng_alone(quick_accuracy):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    train_classifier("mnist", DATA_ROOT, ClassifierConfig(epochs=1, train_size=128))
    assert torch.equal(torch.rand(3), expected)


def test_cache_is_reused_and_keyed_by_config(tiny, cache_root):
    _, info = tiny
    mtime = info.path.stat().st_mtime_ns
    model, again = load_or_train_classifier("mnist", DATA_ROOT, config=TINY)
    assert not again.trained and again.path == info.path and info.path.stat().st_mtime_ns == mtime
    assert again.weights_sha256 == info.weights_sha256 and again.test_accuracy == info.test_accuracy
    assert all(torch.equal(v, tiny[0].state_dict()[k]) for k, v in model.state_dict().items())
    # stacked-mnist is measured by the MNIST classifier: same file
    _, stacked = load_or_train_classifier("stacked-mnist", DATA_ROOT, config=TINY)
    assert stacked.path == info.path and not stacked.trained

    longer = ClassifierConfig(epochs=2, train_size=2000, seed=3)
    assert classifier_path("mnist", longer) != info.path
    assert classifier_path("mnist", longer).parent == info.path.parent == cache_root / "instruments"
    assert classifier_path("fashion-mnist", TINY) != info.path


def test_corrupt_cache_file_is_retrained_and_overwritten(tiny, quick_accuracy):
    _, info = tiny
    info.path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unusable"):
        model, retrained = load_or_train_classifier("mnist", DATA_ROOT, config=TINY)
    # the retrained file is the same bytes: deterministic weights and no time or host in the record
    assert retrained.trained and retrained.weights_sha256 == info.weights_sha256
    # a readable file holding something else is no better
    torch.save({"format": 1, "state_dict": {}}, info.path)
    with pytest.warns(UserWarning, match="unusable"):
        _, again = load_or_train_classifier("mnist", DATA_ROOT, config=TINY)
    assert again.trained and instruments.file_sha256(info.path) == info.weights_sha256
    assert all(torch.equal(v, tiny[0].state_dict()[k]) for k, v in model.state_dict().items())


def test_classify_channels_reads_each_stacked_digit(mnist):
    model, _ = mnist
    images, modes = load_split("stacked-mnist", DATA_ROOT, "test", size=1000)
    digits = torch.stack([modes // 100, modes // 10 % 10, modes % 10], dim=1)
    predicted = classify_channels(model, images)
    assert predicted.shape == (1000, 3) and predicted.dtype == torch.int64
    assert (predicted == digits).double().mean().item() >= 0.98
    assert torch.equal(classify_channels(model, images, batch_size=7), predicted)  # batching is invisible
    # a single-channel batch gives the same labels as channel 0 classified alone
    assert torch.equal(classify_channels(model, images[:, :1]), predicted[:, :1])


class _UInt8Images(torch.utils.data.Dataset):
    """What torch-fidelity reads: uint8 3 x H x W tensors (grayscale replicated to three channels)."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = images.expand(-1, 3, -1, -1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


@torch.no_grad()
def _features(model: instruments.DigitClassifier, images: torch.Tensor) -> np.ndarray:
    return (
        torch.cat([model.features(to_signed_unit(images[i : i + 500])) for i in range(0, len(images), 500)])
        .double()
        .numpy()
    )


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def _frechet(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature rows a and b (independent of torch-fidelity,
    which takes scipy's general sqrtm of cov_a @ cov_b): tr sqrt(cov_a cov_b) is the sum of the square
    roots of the eigenvalues of the symmetric sqrt(cov_a) cov_b sqrt(cov_a), which has the same ones
    (symmetric eigensolvers only: a fraction of sqrtm's time at 1024 dimensions)."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(cov_a)  # the covariances are singular (dead ReLU units, or one repeated image)
    trace_covmean = np.sqrt(np.linalg.eigvalsh(root_a @ cov_b @ root_a).clip(min=0)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_covmean)


def _fidelity(input1, input2, weights: Path, **metrics) -> dict[str, float]:
    return torch_fidelity.calculate_metrics(
        input1=input1,
        input2=input2,
        feature_extractor=extractor_name("mnist"),
        feature_extractor_weights_path=str(weights),
        cuda=False,
        batch_size=500,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
        **metrics,
    )


def test_fid_with_the_classifier_matches_an_independent_frechet_distance(mnist, cache_root, monkeypatch):
    model, info = mnist

    def no_network(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    train, _ = load_split("mnist", DATA_ROOT, "train")
    test, _ = load_split("mnist", DATA_ROOT, "test")
    real_a, real_b = train[-N_FID:], test[:N_FID]  # disjoint from each other
    copies = test[:1].repeat(N_FID, 1, 1, 1)

    real = _fidelity(_UInt8Images(real_a), _UInt8Images(real_b), info.path, fid=True, isc=True)
    collapsed = _fidelity(_UInt8Images(copies), _UInt8Images(real_b), info.path, fid=True, isc=True)
    fid_real, fid_collapsed = real["frechet_inception_distance"], collapsed["frechet_inception_distance"]
    print(
        f"FID real-train vs real-test: {fid_real:.4f}; "
        f"one digit x {N_FID} vs real-test: {fid_collapsed:.4f}; "
        f"IS real {real['inception_score_mean']:.3f}, collapsed {collapsed['inception_score_mean']:.3f}"
    )

    features_a, features_b = _features(model, real_a), _features(model, real_b)
    independent_real = _frechet(features_a, features_b)
    independent_collapsed = _frechet(_features(model, copies), features_b)
    print(f"independent: {independent_real:.4f}, {independent_collapsed:.4f}")
    assert fid_real == pytest.approx(independent_real, rel=1e-3)
    assert fid_collapsed == pytest.approx(independent_collapsed, rel=1e-3)
    assert fid_collapsed > 20 * fid_real
    # IS on a 10-class classifier: near 10 for real digits, 1 for a single repeated image
    assert 8.5 < real["inception_score_mean"] <= 10.0
    assert collapsed["inception_score_mean"] == pytest.approx(1.0, abs=1e-4)
    assert not (cache_root / "torch-home" / "fidelity_cache").exists()  # nothing cached on disk


def test_extractor_takes_one_channel_resizes_and_checks_its_weights(mnist, tiny):
    model, info = mnist
    extractor = ClassifierFeatureExtractor(
        "gdpp-mnist-classifier",
        ["logits", "1024", "logits_unbiased"],
        feature_extractor_weights_path=str(info.path),
    )
    images = load_split("mnist", DATA_ROOT, "test")[0][:16]
    logits, features, unbiased = extractor(images.expand(-1, 3, -1, -1))
    with torch.no_grad():
        torch.testing.assert_close(features, model.features(to_signed_unit(images)))
        torch.testing.assert_close(logits, model(to_signed_unit(images)))
        torch.testing.assert_close(unbiased, logits - model.out.bias)
        # a 56 x 56 copy of the digits gives nearly the same prediction as the 28 x 28 one
        big = torch.nn.functional.interpolate(images.float(), scale_factor=2, mode="nearest").to(torch.uint8)
        big_logits = extractor(big.expand(-1, 3, -1, -1))[0]
    assert (big_logits.argmax(1) == logits.argmax(1)).double().mean() >= 0.9
    with pytest.raises(ValueError, match="feature_extractor_weights_path"):
        ClassifierFeatureExtractor("gdpp-mnist-classifier", ["1024"])
    with pytest.raises(ValueError, match="mnist classifier, not"):
        ClassifierFeatureExtractor(
            "gdpp-fashion-mnist-classifier", ["1024"], feature_extractor_weights_path=str(tiny[1].path)
        )
    with pytest.raises(ValueError, match="uint8"):
        extractor(images.expand(-1, 3, -1, -1).float())


def test_fidelity_kwargs_name_the_cached_classifier(mnist):
    kwargs, info = fidelity_kwargs("stacked-mnist", DATA_ROOT)
    assert not info.trained and info.path == mnist[1].path
    assert kwargs == {
        "feature_extractor": "gdpp-stacked-mnist-classifier",
        "feature_extractor_weights_path": str(info.path),
    }
    assert extractor_name("fashion-mnist") in torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY


def test_a_classifier_below_the_protocols_accuracy_is_flagged(cache_root, fashion_root, quick_accuracy):
    """One epoch on a hundredth of Fashion-MNIST misses the protocol's 90%: a warning says so."""
    with pytest.warns(UserWarning, match="below the 0.9"):
        _, info = load_or_train_classifier("fashion-mnist", DATA_ROOT, config=FASHION_QUICK)
    assert info.test_accuracy < 0.90 and info.path.name.startswith("fashion-mnist-classifier-")


def test_fashion_classifier_default_config_reaches_90_percent_and_extracts_its_logits(fashion_classifier):
    model, info = fashion_classifier
    assert info.test_accuracy >= 0.90 and info.config == DEFAULT_CONFIGS["fashion-mnist"]
    assert info.path.name.startswith("fashion-mnist-classifier-")
    extractor = ClassifierFeatureExtractor(
        extractor_name("fashion-mnist"), ["logits"], feature_extractor_weights_path=str(info.path)
    )
    images, _ = load_split("fashion-mnist", DATA_ROOT, "test")
    logits = extractor(images[:500].expand(-1, 3, -1, -1))[0]
    assert torch.equal(logits.argmax(1), classify_channels(model, images[:500])[:, 0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_classifier_on_cuda_agrees_with_cpu(mnist):
    model, info = mnist
    on_gpu, again = load_or_train_classifier("mnist", DATA_ROOT, device="cuda")
    assert not again.trained and next(on_gpu.parameters()).is_cuda
    images, _ = load_split("stacked-mnist", DATA_ROOT, "test", size=2000)
    labels = classify_channels(on_gpu, images)
    assert labels.is_cuda and labels.shape == (2000, 3)
    assert (labels.cpu() == classify_channels(model, images)).double().mean().item() >= 0.999
