"""The dataset interface, and what the image datasets share: the split names, uint8 -> [-1, 1]
scaling, the in-memory sampler, the data-root checks and the one-line "data not found" error.

Every image dataset keeps its real images as uint8 NCHW and converts a batch to float32 in [-1, 1] only
when it is drawn, so a whole training set costs one byte per pixel on the training device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import torch
from torch import Tensor

from gdpp_bench.errors import UserError

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")


class Sampler(Protocol):
    """Draws training batches on the training device; every random draw uses the passed generator."""

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor: ...


class Dataset(Protocol):
    """What the harness needs of a registered dataset (2D mixtures and image datasets alike).

    The attributes are read-only properties so that frozen dataclasses satisfy the protocol.
    """

    @property
    def name(self) -> str: ...

    @property
    def shape(self) -> tuple[int, ...]: ...

    @property
    def default_model(self) -> str: ...

    def sampler(self, device: torch.device, data_root: str | None) -> Sampler: ...


def to_signed_unit(images: Tensor) -> Tensor:
    """uint8 images (0..255) -> float32 in [-1, 1]; 0 maps to exactly -1 and 255 to exactly 1."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def check_split(name: str, split: str) -> Split:
    """`split` if it is 'train' or 'test', else a UserError naming the dataset."""
    if split not in SPLITS:
        raise UserError(f"dataset {name!r} has splits 'train' and 'test', not {split!r}")
    return split  # type: ignore[return-value]  # narrowed by the membership test


def require_root(name: str, data_root: str | Path | None) -> Path:
    """The data root as a Path (with ~ expanded); a UserError if no root was given."""
    if data_root is None or str(data_root) == "":
        raise UserError(f"dataset {name!r} reads files: pass --data-root DIR (the folder holding its data)")
    return Path(data_root).expanduser()


def missing_data(name: str, looked_at: Path | str, how: str, cause: BaseException | None = None) -> UserError:
    """The one-line error for absent data: the dataset, the exact path looked at and how to get it."""
    reason = ""
    if cause is not None:
        first_line = (str(cause).strip().splitlines() or [""])[0]
        reason = f" and downloading it failed ({type(cause).__name__}: {first_line})"
    return UserError(f"dataset {name!r}: {looked_at} not found{reason}; {how}")


def try_download(name: str, looked_at: Path, how: str, download: Callable[[], object]) -> None:
    """Run `download` (a torchvision download); any failure becomes the one-line missing-data error.

    Offline, torchvision raises RuntimeError or URLError, a read-only root raises OSError; all mean the
    same thing to the user, so they are not told apart.
    """
    try:
        download()
    except Exception as exc:
        raise missing_data(name, looked_at, how, exc) from exc


class TensorSampler:
    """Draws batches from uint8 images held in one tensor on the training device (no host round trip)."""

    device_only = True  # no host copies: a CUDA graph can capture sample()

    def __init__(self, images: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 NCHW images, got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """`batch_size` images drawn uniformly with replacement, float32 in [-1, 1], on the images' device."""
        index = torch.randint(len(self.images), (batch_size,), generator=generator, device=self.images.device)
        return to_signed_unit(self.images[index])


@dataclass(frozen=True)
class ImageDataset:
    """Base of the registered image datasets: loads a split as uint8; samples the training split.

    Subclasses implement `load_split`; those too large to hold on the device override `sampler`.
    """

    name: str
    shape: tuple[int, ...]
    default_model: str

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, Tensor | None]:
        """Real images of `split` as uint8 [N, C, H, W] on the CPU, and int64 labels where it has them."""
        raise NotImplementedError

    def split_images(self, data_root: str | Path | None, split: Split) -> Tensor | np.ndarray:
        """The split's uint8 images [N, C, H, W] as stored: datasets whose decoded cache is
        memory-mapped return the map, so that a subset reads only its own rows."""
        return self.load_split(data_root, split)[0]

    def sampler(self, device: torch.device, data_root: str | None = None) -> Sampler:
        """A sampler over the training split, loaded once onto `device`."""
        images, _ = self.load_split(data_root, "train")
        return TensorSampler(images.to(device))

    def train_count(self, data_root: str | Path | None) -> int:
        """How many training images there are (an epoch's worth of samples)."""
        return len(self.load_split(data_root, "train")[0])

    def reference_id(self, data_root: str | Path | None, split: Split) -> str:
        """What names the split's real images in metric caches (with the split, size and count)."""
        return self.name

    def check_splits(self, data_root: str | Path | None, splits: set[str]) -> None:
        """A UserError before training where the data lack one of `splits` (training's or an
        evaluation's); subclasses check their files without reading them."""

    def describe(self, data_root: str | Path | None) -> dict[str, Any]:
        """What config.json records of the data beyond its name ({}: the name says it all)."""
        return {}
