"""MNIST, Fashion-MNIST (through torchvision) and Stacked-MNIST (three MNIST digits as RGB, 1000 modes)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from gdpp_bench.data.images import (
    ImageDataset,
    Sampler,
    Split,
    check_split,
    missing_data,
    require_root,
    to_signed_unit,
    try_download,
)

_RAW_FILES: dict[Split, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Stacked-MNIST sets for evaluation are drawn from the digits of the same MNIST split with a fixed
# seed per split, so every run and every machine compares against the same real images. 26,000 for
# the test split matches the 26k generated samples of the VEEGAN/PacGAN/GDPP mode-counting protocol;
# the training split gets as many stacks as MNIST has training digits.
STACKED_MNIST_SEEDS: dict[Split, int] = {"train": 1_000, "test": 1_001}
STACKED_MNIST_SIZES: dict[Split, int] = {"train": 60_000, "test": 26_000}
_PLACE_VALUES = (100, 10, 1)
STACKED_MODES = 10 ** len(_PLACE_VALUES)  # one mode per digit triple


@dataclass(frozen=True)
class TorchvisionDigits(ImageDataset):
    """MNIST or Fashion-MNIST in torchvision's raw layout: DATA_ROOT/<folder>/raw/<four IDX files>."""

    folder: str

    def raw_dir(self, data_root: str | Path | None) -> Path:
        return require_root(self.name, data_root) / self.folder / "raw"

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, Tensor]:
        """Images uint8 [N, 1, 28, 28] and int64 labels [N]; downloads only when the raw files are absent."""
        split = check_split(self.name, split)
        root = require_root(self.name, data_root)
        first = self._split_files(root, split)
        images, labels = _read_digits(self._torchvision_class(), str(root), split, first.stat().st_mtime_ns)
        return images.clone(), labels.clone()

    def check_splits(self, data_root: str | Path | None, splits: set[str]) -> None:
        """A UserError now where the raw files of a split are absent (and cannot be downloaded)."""
        root = require_root(self.name, data_root)
        for split in sorted(splits):
            self._split_files(root, check_split(self.name, split))

    def _split_files(self, root: Path, split: Split) -> Path:
        """The split's image file, after a download where any of the four raw files is absent."""
        raw = self.raw_dir(root)
        # torchvision wants all four files present before it reads any; name the split's own first.
        wanted = [*_RAW_FILES[split], *_RAW_FILES["test" if split == "train" else "train"]]
        missing = [raw / f for f in wanted if not (raw / f).is_file()]
        if missing:
            how = (
                f"put the four {self.folder} IDX files (torchvision raw layout) in {raw}, "
                f"or run once with internet access so torchvision can download them"
            )
            cls = self._torchvision_class()
            try_download(self.name, missing[0], how, lambda: cls(str(root), train=True, download=True))
            if not (raw / wanted[0]).is_file():
                raise missing_data(self.name, raw / wanted[0], how)
        return raw / wanted[0]

    def _torchvision_class(self) -> type:
        from torchvision import datasets  # here: its import costs seconds that 2D runs need not pay

        return getattr(datasets, self.folder)


@functools.lru_cache(maxsize=4)
def _read_digits(cls: type, root: str, split: Split, mtime_ns: int) -> tuple[Tensor, Tensor]:
    """The IDX files of one split, read once per process (a run, its metrics and the instruments
    each ask for them); callers get copies. The files' mtime is part of the key."""
    ds = cls(root, train=split == "train", download=False)
    return ds.data.unsqueeze(1).contiguous(), ds.targets.to(torch.int64)


def _stack(digits: Tensor, index: Tensor) -> Tensor:
    """digits [N, H, W] (or [N, 1, H, W]) gathered by index [B, 3] -> [B, 3, H, W], one digit per channel."""
    flat = digits.reshape(len(digits), *digits.shape[-2:])
    return flat[index]


def sample_stacked_mnist(
    images: Tensor, labels: Tensor, n: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """`n` Stacked-MNIST samples and their mode labels, deterministic given `generator`.

    images: MNIST digits [N, 1, H, W] or [N, H, W] (any dtype; the stacks keep it); labels: [N] digit
    labels; both on the generator's device. Each sample takes three digits drawn independently and
    uniformly with replacement, as the R, G and B channels; its label is 100*d_R + 10*d_G + d_B (0..999).
    Returns (x [n, 3, H, W], y int64 [n]).
    """
    index = torch.randint(len(images), (n, 3), generator=generator, device=images.device)
    return _stack(images, index), stacked_mode_labels(labels.to(torch.int64)[index])


def stacked_mode_labels(digits: Tensor) -> Tensor:
    """Each stack's mode, 0..STACKED_MODES - 1, from its channels' digits [N, 3]: 100*d_R + 10*d_G + d_B."""
    place = torch.tensor(_PLACE_VALUES, dtype=torch.int64, device=digits.device)
    return (digits.to(torch.int64) * place).sum(dim=1)


class StackedSampler:
    """Stacked-MNIST training batches from MNIST digits held on the device.

    Draws the same images as `sample_stacked_mnist` does from the same generator state.
    """

    device_only = True  # no host copies: a CUDA graph can capture sample()

    def __init__(self, digits: Tensor) -> None:
        self.digits = digits

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """float32 [batch_size, 3, 28, 28] in [-1, 1]."""
        index = torch.randint(
            len(self.digits), (batch_size, 3), generator=generator, device=self.digits.device
        )
        return to_signed_unit(_stack(self.digits, index))


@dataclass(frozen=True)
class StackedMNIST(ImageDataset):
    """Stacked-MNIST of the PacGAN/GDPP protocol: 3 x 28 x 28, 1000 modes, from MNIST's raw files."""

    source: TorchvisionDigits
    modes: int = STACKED_MODES

    def load_split(
        self, data_root: str | Path | None, split: Split, size: int | None = None
    ) -> tuple[Tensor, Tensor]:
        """A fixed labelled set built from the digits of MNIST's `split` with seed STACKED_MNIST_SEEDS[split].

        `size` defaults to STACKED_MNIST_SIZES[split] (60,000 train, 26,000 test). Returns uint8
        [size, 3, 28, 28] and int64 mode labels [size] on the CPU; the same call gives the same set.
        """
        split = check_split(self.name, split)
        digits, labels = self.source.load_split(require_root(self.name, data_root), split)
        generator = torch.Generator().manual_seed(STACKED_MNIST_SEEDS[split])
        return sample_stacked_mnist(digits, labels, size or STACKED_MNIST_SIZES[split], generator)

    def check_splits(self, data_root: str | Path | None, splits: set[str]) -> None:
        """A UserError now where MNIST's raw files are absent (and cannot be downloaded)."""
        self.source.check_splits(require_root(self.name, data_root), splits)

    def sampler(self, device: torch.device, data_root: str | None = None) -> Sampler:
        """Samples fresh stacks from the MNIST training digits (loaded once onto `device`)."""
        digits, _ = self.source.load_split(require_root(self.name, data_root), "train")
        return StackedSampler(digits.to(device))


MNIST = TorchvisionDigits("mnist", (1, 28, 28), "dcgan28", folder="MNIST")
FASHION_MNIST = TorchvisionDigits("fashion-mnist", (1, 28, 28), "dcgan28", folder="FashionMNIST")
# The source carries the name "stacked-mnist" so that a missing-data error names the dataset asked for.
STACKED_MNIST = StackedMNIST(
    "stacked-mnist",
    (3, 28, 28),
    "dcgan28",
    source=TorchvisionDigits("stacked-mnist", (1, 28, 28), "dcgan28", folder="MNIST"),
)

__all__ = [
    "FASHION_MNIST",
    "MNIST",
    "STACKED_MNIST",
    "STACKED_MNIST_SEEDS",
    "STACKED_MNIST_SIZES",
    "STACKED_MODES",
    "StackedMNIST",
    "StackedSampler",
    "TorchvisionDigits",
    "sample_stacked_mnist",
    "stacked_mode_labels",
]
