"""Datasets stored as image files (CelebA, users' folders): each image decoded once, centre-cropped to a
square and resized, into a uint8 .npy cache that is memory-mapped afterwards and sampled from the host.

Decoding 200k JPEGs takes minutes, so the cache is kept under $GDPP_BENCH_CACHE (the data root may be
read-only); its file name says which images it holds, so that a change of the source makes a new one.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import DataLoader
from tqdm import tqdm

from gdpp_bench.data.images import to_signed_unit
from gdpp_bench.errors import UserError

DECODE_BATCH = 256
# bump when the crop/resize recipe changes so old caches are not reused
CACHE_FORMAT = 1


def decode_image(path: str, resolution: int) -> Tensor:
    """One image file -> uint8 [3, resolution, resolution]: centre crop to the shorter side, antialiased
    resize (grayscale and palette images are converted to RGB)."""
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
    """Decoded images with the reason a file could not be read ("" when it could), so that one bad
    file is reported by name instead of as a DataLoader worker's traceback."""

    def __init__(self, files: list[Path], resolution: int) -> None:
        self.files, self.resolution = [str(f) for f in files], resolution

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, str]:
        try:
            return decode_image(self.files[i], self.resolution), ""
        except Exception as exc:  # PIL raises several types for truncated or foreign files
            first_line = (str(exc).strip().splitlines() or [""])[0]
            blank = torch.zeros(3, self.resolution, self.resolution, dtype=torch.uint8)
            return blank, f"{type(exc).__name__}: {first_line}"


def _write_cache(files: list[Path], resolution: int, path: Path, what: str, workers: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    try:
        shape = (len(files), 3, resolution, resolution)
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        loader = DataLoader(_Decoded(files, resolution), batch_size=DECODE_BATCH, num_workers=workers)
        start, unreadable = 0, []
        progress = tqdm(loader, desc=f"decoding {what} once into {path.name}", unit="batch", disable=None)
        for batch, errors in progress:
            unreadable += [f"{files[start + i]} ({error})" for i, error in enumerate(errors) if error]
            out[start : start + len(batch)] = batch.numpy()
            start += len(batch)
        if len(unreadable) == 1:
            raise UserError(f"{what}: cannot read image {unreadable[0]}; replace or remove that file")
        if unreadable:  # every one, so that one pass over the folder finds them all
            raise UserError(
                f"{what}: cannot read {len(unreadable)} images: {', '.join(unreadable)}; "
                "replace or remove those files"
            )
        out.flush()
        del out
        os.replace(tmp, path)  # readers see either no cache or a complete one
    finally:
        tmp.unlink(missing_ok=True)


def decoded_images(
    files: list[Path], resolution: int, path: Path, what: str, workers: int | None = None
) -> np.ndarray:
    """`files` as a read-only memory-mapped uint8 array [N, 3, resolution, resolution], decoded once into
    the cache file `path` (whose name must identify the files). `what` names the data in messages;
    `workers`: DataLoader processes for the decode, by default up to 4, none for small sets."""
    expected = (len(files), 3, resolution, resolution)
    if path.is_file():
        images = np.load(path, mmap_mode="r")
        if images.shape == expected and images.dtype == np.uint8:
            return images
    if workers is None:
        workers = min(4, os.cpu_count() or 1) if len(files) >= 4 * DECODE_BATCH else 0
    _write_cache(files, resolution, path, what, workers)
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
