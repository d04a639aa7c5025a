"""CelebA (aligned and cropped), centre-cropped to a square and resized, sampled from a uint8 cache.

Two layouts are read:
- torchvision's: DATA_ROOT/celeba/img_align_celeba/*.jpg with DATA_ROOT/celeba/list_eval_partition.txt
  (lines "000001.jpg 0"; 0 = train, 1 = valid, 2 = test);
- "processed_celeba_small": DATA_ROOT/processed_celeba_small/celeba/*.jpg, no partition file, so every
  image is a training image and there is no test split.
torchvision.datasets.CelebA is not used: it insists on md5 sums of files these layouts do not have.

Decoding 200k JPEGs takes minutes, so each (source folder, split, resolution, image count) is decoded
once into a .npy file under cache_dir() (the data root may be read-only) and memory-mapped afterwards.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from gdpp_bench.data.images import (
    ImageDataset,
    Sampler,
    Split,
    check_split,
    missing_data,
    require_root,
    to_signed_unit,
)
from gdpp_bench.errors import UserError

CACHE_ENV = "GDPP_BENCH_CACHE"
PARTITION_CODES: dict[Split, int] = {"train": 0, "test": 2}
_DECODE_BATCH = 256
_CACHE_FORMAT = 1  # bump when the crop/resize recipe changes so old caches are not reused


def cache_dir() -> Path:
    """Where decoded CelebA arrays live: $GDPP_BENCH_CACHE/celeba-cache (default ~/.cache/gdpp-bench/...)."""
    base = os.environ.get(CACHE_ENV) or "~/.cache/gdpp-bench"
    return Path(base).expanduser() / "celeba-cache"


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


def _decode_image(path: str, resolution: int) -> Tensor:
    """One JPEG -> uint8 [3, resolution, resolution]: centre crop to the shorter side, antialiased resize."""
    # imported here: torchvision's import costs seconds that runs of other datasets need not pay
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    # PIL rather than torchvision.io, whose image decoders are deprecated since torchvision 0.29.
    with Image.open(path) as file:
        image = TF.pil_to_tensor(file.convert("RGB"))
    side = min(image.shape[-2:])
    image = TF.center_crop(image, [side, side])
    return TF.resize(
        image, [resolution, resolution], interpolation=InterpolationMode.BILINEAR, antialias=True
    )


class _Decoded(torch.utils.data.Dataset):
    def __init__(self, files: list[Path], resolution: int) -> None:
        self.files, self.resolution = [str(f) for f in files], resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> Tensor:
        return _decode_image(self.files[i], self.resolution)


def cache_path(folder: Path, split: Split, resolution: int, count: int) -> Path:
    """The cache file of one (source folder, split, resolution, image count)."""
    key = f"{folder.resolve()}|{split}|{resolution}|{count}|v{_CACHE_FORMAT}"
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir() / f"celeba-{split}-{resolution}px-{count}-{digest}.npy"


def _write_cache(files: list[Path], resolution: int, path: Path, workers: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        shape = (len(files), 3, resolution, resolution)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        loader = DataLoader(_Decoded(files, resolution), batch_size=_DECODE_BATCH, num_workers=workers)
        start = 0
        for batch in tqdm(loader, desc=f"decoding CelebA once into {path.name}", unit="batch", disable=None):
            out[start : start + len(batch)] = batch.numpy()
            start += len(batch)
        out.flush()
        del out
        os.replace(tmp, path)  # readers see either no cache or a complete one
    finally:
        tmp.unlink(missing_ok=True)


def cached_images(
    name: str, data_root: str | Path | None, split: Split, resolution: int, workers: int | None = None
) -> np.ndarray:
    """The split as a read-only memory-mapped uint8 array [N, 3, resolution, resolution], decoding it once.

    `workers`: DataLoader processes for the one-off decode; default up to 4, none for small sets.
    """
    folder, files = find_celeba_images(name, data_root, split)
    path = cache_path(folder, split, resolution, len(files))
    expected = (len(files), 3, resolution, resolution)
    if path.is_file():
        images = np.load(path, mmap_mode="r")
        if images.shape == expected and images.dtype == np.uint8:
            return images
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(files) >= 4 * _DECODE_BATCH else 0
    _write_cache(files, resolution, path, workers)
    return np.load(path, mmap_mode="r")


class MemmapSampler:
    """Batches gathered on the host from a memory-mapped uint8 array and copied to the device.

    Indices come from the training generator (on its own device, so the same seed draws the same images
    on any device). On CUDA the gather lands in one of two pinned buffers and the copy is asynchronous;
    a buffer is refilled only after its previous copy has finished.
    """

    def __init__(self, images: np.ndarray, device: torch.device) -> None:
        self.images, self.device = images, device
        self.pinned = device.type == "cuda"
        self._buffers: list[Tensor] = []
        self._copied: list[torch.cuda.Event | None] = []
        self._turn = 0

    def _buffer(self, batch_size: int) -> Tensor:
        shape = (batch_size, *self.images.shape[1:])
        if not self._buffers or self._buffers[0].shape != shape:
            for event in self._copied:
                if event is not None:
                    event.synchronize()
            self._buffers = [torch.empty(shape, dtype=torch.uint8, pin_memory=self.pinned) for _ in range(2)]
            self._copied = [None, None]
        self._turn = 1 - self._turn
        event = self._copied[self._turn]
        if event is not None:
            event.synchronize()
        return self._buffers[self._turn]

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """float32 [batch_size, 3, R, R] in [-1, 1] on the sampler's device."""
        index = torch.randint(len(self.images), (batch_size,), generator=generator, device=generator.device)
        host = self._buffer(batch_size)
        # mode="clip" lets numpy write straight into `out` (the indices are in range by construction).
        np.take(self.images, index.cpu().numpy(), axis=0, out=host.numpy(), mode="clip")
        batch = host.to(self.device, non_blocking=self.pinned)
        if self.pinned:
            event = torch.cuda.Event()
            event.record()
            self._copied[self._turn] = event
        return to_signed_unit(batch)


@dataclass(frozen=True)
class CelebA(ImageDataset):
    """CelebA at the resolution of `shape` (3, R, R); no labels."""

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, None]:
        """The split as uint8 [N, 3, R, R] (a copy in memory of the cache) and no labels."""
        images = cached_images(self.name, data_root, split, self.shape[-1])
        return torch.from_numpy(np.array(images)), None

    def sampler(self, device: torch.device, data_root: str | None = None) -> Sampler:
        """Draws from the memory-mapped training cache (built on first use)."""
        return MemmapSampler(cached_images(self.name, data_root, "train", self.shape[-1]), device)


CELEBA = CelebA("celeba", (3, 32, 32), "dcgan32")
CELEBA64 = CelebA("celeba64", (3, 64, 64), "dcgan64")
