"""Users' own images: `dataset = "folder"` with `data_path` and `image_size` in a suite.

Layouts (PNG, JPEG and the other formats torchvision's ImageFolder reads, listed by its rules;
hidden files are skipped):
- flat: DATA_PATH/*.png -- one class;
- class sub-folders: DATA_PATH/CLASS/**/*.jpg -- the classes in name order (as ImageFolder);
- with a held-out split: DATA_PATH/train/ and DATA_PATH/test/, each flat or with class sub-folders.
  Without both, every image is a training image and there is no test split.
`data_path` is absolute or relative to the data root. Each image is centre-cropped to a square and
resized to image_size once, into a uint8 cache (gdpp_bench.data.image_files).

A folder's identity is a sha256 of its resolved path and of every image's relative name, size and
modification time: the cache names of the decoded images and of the real-data FID statistics carry
it, so two folders (or one folder before and after an edit) never share them, and config.json
records it.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from gdpp_bench.data.image_files import CACHE_FORMAT, MemmapSampler, decoded_images
from gdpp_bench.data.images import (
    SPLITS,
    ImageDataset,
    Sampler,
    Split,
    check_split,
    missing_data,
    require_root,
)
from gdpp_bench.errors import UserError
from gdpp_bench.user_paths import cache_root

NAME = "folder"
MODEL_OF_SIZE = {32: "dcgan32", 64: "dcgan64"}


@dataclass(frozen=True)
class FolderListing:
    """The images of one split of a folder: files in order, their class indices and the identity."""

    folder: Path  # resolved
    files: tuple[Path, ...]
    labels: tuple[int, ...]
    classes: tuple[str, ...]  # () for a flat folder
    identity: str  # sha256 hex

    def describe(self) -> dict[str, Any]:
        return {
            "path": str(self.folder),
            "images": len(self.files),
            "classes": list(self.classes),
            "identity": self.identity,
        }


def list_images(folder: Path) -> FolderListing:
    """The listing of `folder` (an existing directory), flat or with class sub-folders: torchvision's
    ImageFolder rules (its extensions, classes in name order, files in path order, links followed),
    skipping hidden files and folders and class folders without images."""
    # imported here: torchvision's import costs seconds that runs of other datasets need not pay
    from torchvision.datasets.folder import IMG_EXTENSIONS, has_file_allowed_extension, make_dataset

    folder = folder.resolve()

    def is_image(path: str) -> bool:
        visible = not any(part.startswith(".") for part in Path(path).relative_to(folder).parts)
        return visible and has_file_allowed_extension(path, IMG_EXTENSIONS)

    entries = sorted(e for e in os.listdir(folder) if not e.startswith("."))
    top = [folder / e for e in entries if is_image(str(folder / e)) and (folder / e).is_file()]
    class_dirs = {e: i for i, e in enumerate(e for e in entries if (folder / e).is_dir())}
    found = make_dataset(folder, class_dirs, is_valid_file=is_image, allow_empty=True) if class_dirs else []
    classes = tuple(sorted({Path(path).relative_to(folder).parts[0] for path, _ in found}))
    if top and classes:
        raise UserError(
            f"dataset {NAME!r}: {folder} holds both images and class folders with images "
            f"({', '.join(classes[:3])}); move the loose images into a class folder"
        )
    if classes:
        index = {name: i for i, name in enumerate(classes)}  # as ImageFolder: classes with images
        files = [Path(path) for path, _ in found]
        labels = [index[path.relative_to(folder).parts[0]] for path in files]
    else:
        files, labels = top, [0] * len(top)
    if not files:
        raise UserError(
            f"dataset {NAME!r}: no images in {folder} (looked for {', '.join(IMG_EXTENSIONS)} files, "
            "directly or in class sub-folders)"
        )
    digest = hashlib.sha256(f"{folder}\n".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path.relative_to(folder)}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return FolderListing(folder, tuple(files), tuple(labels), classes, digest.hexdigest())


@dataclass(frozen=True)
class FolderImages(ImageDataset):
    """The images of a folder at the resolution of `shape` (3, S, S); class sub-folders give labels."""

    data_path: str = ""

    def root(self, data_root: str | Path | None) -> Path:
        """The folder: data_path itself when absolute, else under the data root."""
        path = Path(self.data_path).expanduser()
        if not path.is_absolute():
            path = require_root(self.name, data_root) / path
        if not path.is_dir():
            raise missing_data(
                self.name,
                path,
                "set data_path in the suite to a folder of images (absolute, or relative to --data-root)",
            )
        return path

    def splits(self, data_root: str | Path | None) -> tuple[Split, ...]:
        """('train', 'test') when the folder has train/ and test/ sub-folders, else ('train',)."""
        root = self.root(data_root)
        return SPLITS if all((root / split).is_dir() for split in SPLITS) else ("train",)

    def listing(self, data_root: str | Path | None, split: Split) -> FolderListing:
        split = check_split(self.name, split)
        root = self.root(data_root)
        if self.splits(data_root) == SPLITS:
            return list_images(root / split)
        if split != "train":
            raise UserError(
                f"dataset {self.name!r}: {root} has no {split} split; put the training images in "
                f"{root / 'train'} and held-out ones in {root / split} (class sub-folders optional), or "
                'evaluate against the training images (eval.reference_split = "train", no eval.select)'
            )
        return list_images(root)

    def check_splits(self, data_root: str | Path | None, splits: set[str]) -> None:
        """A UserError now, before training, if an evaluation will need a split the folder lacks."""
        for split in sorted(splits):
            if split not in self.splits(data_root):
                self.listing(data_root, split)  # type: ignore[arg-type]  # raises the missing-split error

    def _images(self, data_root: str | Path | None, split: Split) -> tuple[np.ndarray, FolderListing]:
        listing = self.listing(data_root, split)
        size = self.shape[-1]
        cache = (
            cache_root()
            / "folder-cache"
            / f"folder-{size}px-{len(listing.files)}-{listing.identity[:16]}-v{CACHE_FORMAT}.npy"
        )
        return decoded_images(list(listing.files), size, cache, f"dataset {self.name!r}"), listing

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, Tensor]:
        """The split as uint8 [N, 3, S, S] (a copy in memory of the cache) and int64 class indices."""
        images, listing = self._images(data_root, split)
        return torch.from_numpy(np.array(images)), torch.tensor(listing.labels, dtype=torch.int64)

    def split_images(self, data_root: str | Path | None, split: Split) -> np.ndarray:
        """The memory-mapped decoded cache of the split (built on first use)."""
        return self._images(data_root, split)[0]

    def sampler(self, device: torch.device, data_root: str | None = None) -> Sampler:
        """Draws from the memory-mapped training cache (built on first use)."""
        return MemmapSampler(self.split_images(data_root, "train"), device)

    def train_count(self, data_root: str | Path | None) -> int:
        """The training images listed (none decoded)."""
        return len(self.listing(data_root, "train").files)

    def reference_id(self, data_root: str | Path | None, split: Split) -> str:
        """The name of the split's real images in metric caches: the folder's identity."""
        return f"{self.name}-{self.listing(data_root, split).identity[:16]}"

    def describe(self, data_root: str | Path | None) -> dict[str, Any]:
        """What config.json records of the data: the folder, size and each split's listing."""
        return {
            "data_path": self.data_path,
            "image_size": self.shape[-1],
            **{split: self.listing(data_root, split).describe() for split in self.splits(data_root)},
        }


def folder_dataset(data_path: str, image_size: int) -> FolderImages:
    """The `folder` dataset of a suite's `data_path` and `image_size` (32 or 64)."""
    if not data_path:
        raise UserError(f'dataset {NAME!r} needs data_path = "DIR" (absolute, or relative to --data-root)')
    if image_size not in MODEL_OF_SIZE:
        raise UserError(
            f"dataset {NAME!r} needs image_size = {' or '.join(map(str, MODEL_OF_SIZE))}, got {image_size!r}"
        )
    return FolderImages(NAME, (3, image_size, image_size), MODEL_OF_SIZE[image_size], data_path)
