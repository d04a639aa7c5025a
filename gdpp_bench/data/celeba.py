"""CelebA (aligned and cropped), centre-cropped to a square and resized, sampled from a uint8 cache.

Two layouts are read:
- torchvision's: DATA_ROOT/celeba/img_align_celeba/*.jpg with DATA_ROOT/celeba/list_eval_partition.txt
  (lines "000001.jpg 0"; 0 = train, 1 = valid, 2 = test);
- "processed_celeba_small": DATA_ROOT/processed_celeba_small/celeba/*.jpg, no partition file, so every
  image is a training image and there is no test split.
torchvision.datasets.CelebA is not used: it insists on md5 sums of files these layouts do not have.

Each (source folder, split, resolution, image count) is decoded once into a .npy file under cache_dir()
and memory-mapped afterwards (gdpp_bench.data.image_files).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gdpp_bench.data.image_files import CACHE_FORMAT, MemmapSampler, decoded_images
from gdpp_bench.data.images import ImageDataset, Sampler, Split, check_split, missing_data, require_root
from gdpp_bench.errors import UserError
from gdpp_bench.user_paths import cache_root

PARTITION_CODES: dict[Split, int] = {"train": 0, "test": 2}


def cache_dir() -> Path:
    """Where decoded CelebA arrays live: $GDPP_BENCH_CACHE/celeba-cache (default ~/.cache/gdpp-bench/...)."""
    return cache_root() / "celeba-cache"


def find_celeba_images(name: str, data_root: str | Path | None, split: Split) -> tuple[Path, list[Path]]:
    """The image folder found under `data_root` and the split's JPEG paths, in partition-file/name order."""
    split = check_split(name, split)
    root = require_root(name, data_root)
    aligned = root / "celeba" / "img_align_celeba"
    processed = root / "processed_celeba_small" / "celeba"
    if aligned.is_dir():
        partition = root / "celeba" / "list_eval_partition.txt"
        if not partition.is_file():
            raise missing_data(
                name,
                partition,
                f"it gives the split of each image in {aligned} "
                "(lines like '000001.jpg 0'; 0 = train, 1 = valid, 2 = test)",
            )
        code = str(PARTITION_CODES[split])
        names = [
            parts[0]
            for parts in (line.split() for line in partition.read_text().splitlines())
            if len(parts) == 2 and parts[1] == code
        ]
        present = set(os.listdir(aligned))  # one listing instead of 200k stat calls
        absent = [n for n in names if n not in present]
        if absent:
            raise missing_data(
                name,
                aligned / absent[0],
                f"{len(absent)} of the {len(names)} {split} images "
                f"listed in {partition} are missing from {aligned}",
            )
        folder, files = aligned, [aligned / n for n in names]
    elif processed.is_dir():
        if split != "train":
            raise UserError(
                f"dataset {name!r}: {processed} (processed_celeba_small layout) has no partition "
                f"file, so it has only a train split; use the aligned layout for {split!r}"
            )
        folder, files = processed, sorted(processed.glob("*.jpg"))
    else:
        raise missing_data(
            name,
            aligned,
            f"put the aligned-and-cropped CelebA JPEGs there with "
            f"{root / 'celeba' / 'list_eval_partition.txt'} (torchvision's layout), "
            f"or the processed_celeba_small JPEGs in {processed}",
        )
    if not files:
        raise UserError(f"dataset {name!r}: no {split} images in {folder}")
    return folder, files


def cache_path(folder: Path, split: Split, resolution: int, count: int) -> Path:
    """The cache file of one (source folder, split, resolution, image count)."""
    key = f"{folder.resolve()}|{split}|{resolution}|{count}|v{CACHE_FORMAT}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"celeba-{split}-{resolution}px-{count}-{digest}.npy"


def cached_images(
    name: str, data_root: str | Path | None, split: Split, resolution: int, workers: int | None = None
) -> np.ndarray:
    """The split as a read-only memory-mapped uint8 array [N, 3, resolution, resolution], decoding it once.

    `workers`: DataLoader processes for the one-off decode; default up to 4, none for small sets.
    """
    folder, files = find_celeba_images(name, data_root, split)
    path = cache_path(folder, split, resolution, len(files))
    return decoded_images(files, resolution, path, f"dataset {name!r}", workers)


@dataclass(frozen=True)
class CelebA(ImageDataset):
    """CelebA at the resolution of `shape` (3, R, R); no labels."""

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, None]:
        """The split as uint8 [N, 3, R, R] (a copy in memory of the cache) and no labels."""
        return torch.from_numpy(np.array(self.split_images(data_root, split))), None

    def split_images(self, data_root: str | Path | None, split: Split) -> np.ndarray:
        """The memory-mapped decoded cache of the split (built on first use)."""
        return cached_images(self.name, data_root, split, self.shape[-1])

    def sampler(self, device: torch.device, data_root: str | None = None) -> Sampler:
        """Draws from the memory-mapped training cache (built on first use)."""
        return MemmapSampler(cached_images(self.name, data_root, "train", self.shape[-1]), device)

    def train_count(self, data_root: str | Path | None) -> int:
        """The training images listed (none decoded)."""
        return len(find_celeba_images(self.name, data_root, "train")[1])

    def check_splits(self, data_root: str | Path | None, splits: set[str]) -> None:
        """A UserError before training for a split this layout lacks (processed_celeba_small: test)."""
        for split in sorted(splits):
            find_celeba_images(self.name, data_root, split)  # type: ignore[arg-type]  # train or test


CELEBA = CelebA("celeba", (3, 32, 32), "dcgan32")
CELEBA64 = CelebA("celeba64", (3, 64, 64), "dcgan64")
