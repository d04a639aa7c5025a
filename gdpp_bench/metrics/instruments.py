"""Classifiers the project trains on real data and uses as metric instruments (MNIST-family data).

One small CNN per dataset (the classifier of the Stacked-MNIST protocol: two conv layers 32/64, FC 1024,
10 logits), trained on the real training split, deterministic given its seed, and cached under
`$GDPP_BENCH_CACHE/instruments/` (default `~/.cache/gdpp-bench/instruments/`) in a file named by the
dataset and the sha256 of its training config. The same file is what torch-fidelity loads through
`feature_extractor_weights_path` (see gdpp_bench.metrics.fidelity_extractor), and its sha256 is the
identity of the instrument recorded with every metric.

Stacked-MNIST uses the MNIST classifier on each channel (`classify_channels`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdpp_bench.config import CLASSIFIER_DATASETS
from gdpp_bench.data import DATASETS, classifier_of, load_split
from gdpp_bench.data.images import Split
from gdpp_bench.errors import UserError
from gdpp_bench.metrics.inception_weights import file_sha256
from gdpp_bench.progress import say
from gdpp_bench.rundir import write_atomic
from gdpp_bench.user_paths import cache_root

# Bump whenever the architecture or the training recipe changes: it is part of every cache key.
ARCH_VERSION = 1
RECORD_FORMAT = 1
IMAGE_SIZE = 28
NUM_CLASSES = 10
FEATURE_DIM = 1024

# Datasets with their own classifier; stacked-mnist is classified per channel by the MNIST one.
# The test accuracy an instrument must reach before its numbers are trusted.
REQUIRED_ACCURACY = {"mnist": 0.99, "fashion-mnist": 0.90}


@dataclass(frozen=True)
class ClassifierConfig:
    """Everything that determines the trained weights; its sha256 names the cache file.

    `train_size` keeps only the first N training images (None: all of them); meant for quick tests.
    The defaults were measured on one CPU thread (seed 0): 2 epochs give 99.21% on MNIST and 91.0% on
    Fashion-MNIST (1 epoch: 99.04%, too close to 99%); at 2 epochs, batch 64 without dropout beat
    batch 128 without (99.07%) and with dropout 0.5 (99.05%).
    """

    epochs: int = 2
    lr: float = 1e-3
    batch_size: int = 64
    seed: int = 0
    dropout: float = 0.0
    train_size: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"arch_version": ARCH_VERSION, **dataclasses.asdict(self)}

    def sha256(self) -> str:
        text = json.dumps(self.as_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()


DEFAULT_CONFIGS: dict[str, ClassifierConfig] = {
    "mnist": ClassifierConfig(epochs=2),
    "fashion-mnist": ClassifierConfig(epochs=2),
}


@dataclass(frozen=True)
class ClassifierInfo:
    """What a metric records about its instrument."""

    dataset: str
    config: ClassifierConfig
    test_accuracy: float
    train_seconds: float | None  # None when loaded from the cache
    path: Path | None = None
    weights_sha256: str | None = None
    trained: bool = True  # False when loaded from the cache

    @property
    def config_sha256(self) -> str:
        return self.config.sha256()

    def protocol(self) -> dict[str, Any]:
        """JSON-ready description for metrics.json."""
        return {
            "dataset": self.dataset,
            "config": self.config.as_dict(),
            "config_sha256": self.config_sha256,
            "test_accuracy": self.test_accuracy,
            "weights_path": str(self.path) if self.path else None,
            "weights_sha256": self.weights_sha256,
        }


class DigitClassifier(nn.Module):
    """1 x 28 x 28 images in [-1, 1] -> 10 logits; `features` gives the 1024-d penultimate layer."""

    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 5, padding=2)
        self.conv2 = nn.Conv2d(32, 64, 5, padding=2)
        self.fc = nn.Linear(64 * 7 * 7, FEATURE_DIM)
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(FEATURE_DIM, NUM_CLASSES)

    def features(self, x: Tensor) -> Tensor:
        """float [N, 1, 28, 28] in [-1, 1] -> the 1024-d ReLU features [N, 1024] (before dropout)."""
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc(x.flatten(1)))

    def head(self, features: Tensor) -> Tensor:
        """Penultimate features -> logits (dropout is active only in training mode)."""
        return self.out(self.dropout(features))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def prepare_images(images: Tensor) -> Tensor:
    """uint8 [N, 1, H, W] -> float32 [N, 1, 28, 28] in [-1, 1] (the classifier's input), on the same device.

    Other sizes are resized bilinearly (antialiased when shrinking).
    """
    x = images.to(torch.float32)
    if x.shape[-2:] != (IMAGE_SIZE, IMAGE_SIZE):
        x = F.interpolate(
            x,
            size=(IMAGE_SIZE, IMAGE_SIZE),
            mode="bilinear",
            align_corners=False,
            antialias=x.shape[-1] > IMAGE_SIZE,
        )
    return x / 127.5 - 1.0


def _for_inference(model: DigitClassifier) -> DigitClassifier:
    """Weights in channels_last: the convolutions of inference run ~1.3x faster on the CPU."""
    return model.to(memory_format=torch.channels_last)


def classifier_dataset(dataset: str) -> str:
    """The dataset whose classifier measures `dataset` (stacked-mnist -> mnist)."""
    classifier = classifier_of(dataset)
    if classifier is None:
        measured = [name for name in DATASETS if classifier_of(name)]
        raise UserError(f"no classifier instrument for dataset {dataset!r}; known: {', '.join(measured)}")
    return classifier


def instruments_dir(cache_dir: str | Path | None = None) -> Path:
    """`cache_dir`, else $GDPP_BENCH_CACHE/instruments, else ~/.cache/gdpp-bench/instruments."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    return cache_root() / "instruments"


def classifier_path(dataset: str, config: ClassifierConfig, cache_dir: str | Path | None = None) -> Path:
    """Where the classifier of `dataset` trained with `config` is cached."""
    return instruments_dir(cache_dir) / f"{dataset}-classifier-{config.sha256()[:16]}.pt"


@torch.no_grad()
def accuracy(model: DigitClassifier, images: Tensor, labels: Tensor, batch_size: int = 256) -> float:
    """Fraction of uint8 [N, 1, 28, 28] images whose predicted class equals `labels`."""
    predicted = classify_channels(model, images, batch_size)[:, 0]
    return (predicted == labels.to(predicted.device)).double().mean().item()


def _labelled(dataset: str, data_root: str | Path | None, split: Split) -> tuple[Tensor, Tensor]:
    """A classifier dataset's images and labels (every classifier dataset has labels)."""
    images, labels = load_split(dataset, data_root, split)
    if labels is None:
        raise UserError(f"{dataset} has no labels to train or test a classifier on")
    return images, labels


def train_classifier(
    dataset: str,
    data_root: str | Path | None,
    config: ClassifierConfig | None = None,
    device: torch.device | str = "cpu",
) -> tuple[DigitClassifier, ClassifierInfo]:
    """Train the classifier of `dataset` on its real training split; returns it (eval mode) and its info.

    Deterministic given `config.seed` on a given device (bit-identical on the CPU): the seed drives the
    initialisation and dropout (through a forked global RNG, so the caller's RNG state is untouched)
    and the data order (an explicit generator). Adam, cosine-decayed learning rate, one pass per epoch
    over a fresh permutation. `info.path` and `info.weights_sha256` are None: nothing is saved here.
    """
    if dataset not in CLASSIFIER_DATASETS:
        raise UserError(f"classifiers are trained for {', '.join(CLASSIFIER_DATASETS)}, not {dataset!r}")
    config = config or DEFAULT_CONFIGS[dataset]
    device = torch.device(device)
    images, labels = _labelled(dataset, data_root, "train")
    if config.train_size is not None:
        images, labels = images[: config.train_size], labels[: config.train_size]
    images, labels = images.to(device), labels.to(device)
    start = time.perf_counter()
    fork_devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=fork_devices):
        torch.manual_seed(config.seed)
        model = DigitClassifier(config.dropout).to(device)
        order = torch.Generator().manual_seed(config.seed)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        steps_per_epoch = math.ceil(len(images) / config.batch_size)
        total = config.epochs * steps_per_epoch
        model.train()
        for epoch in range(config.epochs):
            permutation = torch.randperm(len(images), generator=order).to(device)
            for i in range(steps_per_epoch):
                step = epoch * steps_per_epoch + i
                for group in optimizer.param_groups:
                    group["lr"] = config.lr * 0.5 * (1.0 + math.cos(math.pi * step / total))
                index = permutation[i * config.batch_size : (i + 1) * config.batch_size]
                loss = F.cross_entropy(model(prepare_images(images[index])), labels[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    model.eval()
    _for_inference(model)
    train_seconds = time.perf_counter() - start
    test_images, test_labels = _labelled(dataset, data_root, "test")
    test_accuracy = accuracy(model, test_images, test_labels)
    return model, ClassifierInfo(dataset, config, test_accuracy, train_seconds)


def _record(model: DigitClassifier, info: ClassifierInfo) -> dict[str, Any]:
    return {
        "format": RECORD_FORMAT,
        "dataset": info.dataset,
        "config": info.config.as_dict(),
        "config_sha256": info.config_sha256,
        "test_accuracy": info.test_accuracy,
        "torch_version": str(torch.__version__),
        "state_dict": {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
    }


def save_classifier(model: DigitClassifier, info: ClassifierInfo, path: Path) -> ClassifierInfo:
    """Write the classifier record atomically at `path`; returns `info` with path and weights sha256.

    The record holds no time or host, so the same config and torch version give the same file and sha256.
    """
    record = _record(model, info)

    def write(tmp: Path) -> None:
        # Through a handle: given a path, torch.save names the archive inside after the (random) temp file.
        with tmp.open("wb") as handle:
            torch.save(record, handle)

    write_atomic(path, write)
    return dataclasses.replace(info, path=path, weights_sha256=file_sha256(path))


def load_classifier(path: str | Path, device: torch.device | str = "cpu") -> tuple[DigitClassifier, dict]:
    """The classifier saved at `path` (eval mode, on `device`) and its record without the weights.

    Loads with weights_only=True; a file that is not a complete classifier record raises ValueError
    (or torch's own error for an unreadable file).
    """
    record = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(record, dict) or record.get("format") != RECORD_FORMAT or "state_dict" not in record:
        raise ValueError(f"{path} is not a gdpp-bench classifier record")
    config = record["config"]
    model = DigitClassifier(config["dropout"])
    model.load_state_dict(record.pop("state_dict"))
    return _for_inference(model.to(device).eval()), record


def load_or_train_classifier(
    dataset: str,
    data_root: str | Path | None,
    cache_dir: str | Path | None = None,
    config: ClassifierConfig | None = None,
    device: torch.device | str = "cpu",
) -> tuple[DigitClassifier, ClassifierInfo]:
    """The cached classifier of `dataset` (stacked-mnist: the MNIST one), training and caching it if absent.

    A cache file that cannot be read, or whose record does not match `config`, is retrained and
    overwritten with a warning. Training always runs on `device`; the cached weights are the same
    for every device only when trained on the CPU.
    """
    dataset = classifier_dataset(dataset)
    config = config or DEFAULT_CONFIGS[dataset]
    path = classifier_path(dataset, config, cache_dir)
    if path.is_file():
        try:
            model, record = load_classifier(path, device)
            if record["config_sha256"] != config.sha256() or record["dataset"] != dataset:
                raise ValueError("its config or dataset differs from the one asked for")
            info = ClassifierInfo(
                dataset, config, float(record["test_accuracy"]), None, path, file_sha256(path), trained=False
            )
            return model, info
        except Exception as exc:  # any unreadable or foreign file: the cache is only a cache
            warnings.warn(
                f"cached classifier {path} is unusable ({type(exc).__name__}: {exc}); retraining",
                stacklevel=2,
            )
    say(f"training the {dataset} classifier the metrics use (once; cached as {path})")
    model, info = train_classifier(dataset, data_root, config, device)
    required = REQUIRED_ACCURACY[dataset]
    if info.test_accuracy < required:
        warnings.warn(
            f"{dataset} classifier reached {info.test_accuracy:.4f} test accuracy, below the "
            f"{required} the metrics protocol asks for",
            stacklevel=2,
        )
    return model, save_classifier(model, info, path)


@torch.no_grad()
def classify_channels(model: DigitClassifier, images: Tensor, batch_size: int = 256) -> Tensor:
    """Predicted class of every channel of uint8 images [N, C, H, W] -> int64 [N, C] on the model's device.

    Each channel is classified as a separate grayscale image (Stacked-MNIST: C = 3; MNIST: C = 1).
    Batched; the images move to the model's device one batch at a time and no result leaves it.
    Batches of 256 keep the first conv's 32-channel maps in the CPU's caches: twice the images per
    second of batches of 4096 on 2 cores (benchmarks/RESULTS.md), the same predictions.
    """
    if images.dim() != 4:
        raise ValueError(f"expected images [N, C, H, W], got {tuple(images.shape)}")
    device = next(model.parameters()).device
    n, channels = images.shape[:2]
    flat = images.reshape(n * channels, 1, *images.shape[-2:])
    was_training = model.training
    model.eval()
    predictions = [
        model(prepare_images(flat[i : i + batch_size].to(device, non_blocking=True))).argmax(dim=1)
        for i in range(0, len(flat), batch_size)
    ]
    model.train(was_training)
    if not predictions:
        return torch.empty(n, channels, dtype=torch.int64, device=device)
    return torch.cat(predictions).reshape(n, channels)


__all__ = [
    "CLASSIFIER_DATASETS",
    "DEFAULT_CONFIGS",
    "FEATURE_DIM",
    "REQUIRED_ACCURACY",
    "ClassifierConfig",
    "ClassifierInfo",
    "DigitClassifier",
    "accuracy",
    "classifier_dataset",
    "classifier_path",
    "classify_channels",
    "file_sha256",
    "instruments_dir",
    "load_classifier",
    "load_or_train_classifier",
    "prepare_images",
    "save_classifier",
    "train_classifier",
]
