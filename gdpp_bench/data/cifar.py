"""CIFAR-10 from its python pickle batches (the `cifar-10-batches-py` folder torchvision downloads).

The pickles are read directly rather than through torchvision.datasets.CIFAR10, whose md5 check would
reject anything but the published files (test fixtures, re-packed copies). torchvision is used only to
download a missing folder, and there it keeps its md5 check.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gdpp_bench.data.images import ImageDataset, Split, check_split, missing_data, require_root, try_download
from gdpp_bench.errors import UserError

CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_BATCHES: dict[Split, tuple[str, ...]] = {
    "train": tuple(f"data_batch_{k}" for k in range(1, 6)),
    "test": ("test_batch",),
}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One pickle batch -> (uint8 [N, 3, 32, 32], int64 [N]).

    Each row of "data" holds 1024 red, then 1024 green, then 1024 blue bytes, each plane row-major,
    so a plain reshape gives CHW. The published batches were pickled by Python 2 (byte-string keys);
    a copy re-packed by Python 3 has str keys: both are read, as torchvision reads them. Like
    torchvision, this unpickles the file: only read trusted data. Anything else is a UserError.
    """
    try:
        with open(path, "rb") as f:
            batch = pickle.load(f, encoding="bytes")
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError) as exc:
        raise _not_a_batch(path, f"unreadable as a pickle: {type(exc).__name__}") from None
    if not isinstance(batch, dict):
        raise _not_a_batch(path, f"it holds a {type(batch).__name__}, not a dict")
    data, labels = (batch.get(key.encode(), batch.get(key)) for key in ("data", "labels"))
    if data is None or labels is None:
        raise _not_a_batch(path, f"no 'data' and 'labels' among its keys {sorted(map(str, batch))[:6]}")
    data = np.asarray(data, dtype=np.uint8)
    labels = np.asarray(labels, dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise _not_a_batch(path, f"expected data [N, 3072] and N labels, got {data.shape} and {len(labels)}")
    return data.reshape(-1, 3, 32, 32), labels


def _not_a_batch(path: Path, why: str) -> UserError:
    return UserError(
        f"dataset 'cifar10': {path} is not a CIFAR-10 python batch ({why}); replace it "
        "with the file of the same name from cifar-10-python.tar.gz"
    )


@dataclass(frozen=True)
class CIFAR10(ImageDataset):
    """CIFAR-10 at DATA_ROOT/cifar-10-batches-py: 50,000 training and 10,000 test images, 10 classes."""

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, Tensor]:
        """Images uint8 [N, 3, 32, 32] and int64 labels [N]; downloads only when the folder is absent."""
        parts = [
            read_cifar_batch(path) for path in self._batch_files(data_root, check_split(self.name, split))
        ]
        images = np.concatenate([p[0] for p in parts])
        labels = np.concatenate([p[1] for p in parts])
        return torch.from_numpy(images), torch.from_numpy(labels)

    def check_splits(self, data_root: str | Path | None, splits: set[str]) -> None:
        """A UserError now where a split's batch files are absent (and cannot be downloaded)."""
        for split in sorted(splits):
            self._batch_files(data_root, check_split(self.name, split))

    def _batch_files(self, data_root: str | Path | None, split: Split) -> list[Path]:
        """The split's pickle batches, after a download where the folder is absent."""
        root = require_root(self.name, data_root)
        folder = root / CIFAR10_FOLDER
        if not folder.is_dir():
            how = (
                f"put the python version of CIFAR-10 (cifar-10-python.tar.gz, unpacked) in {folder}, "
                f"or run once with internet access so torchvision can download it"
            )
            from torchvision import datasets

            try_download(
                self.name,
                folder / CIFAR10_BATCHES[split][0],
                how,
                lambda: datasets.CIFAR10(str(root), train=split == "train", download=True),
            )
        paths = [folder / name for name in CIFAR10_BATCHES[split]]
        for path in paths:
            if not path.is_file():
                raise missing_data(
                    self.name,
                    path,
                    f"the folder {folder} is incomplete: it needs "
                    f"{', '.join(n for names in CIFAR10_BATCHES.values() for n in names)}",
                )
        return paths


CIFAR10_DATASET = CIFAR10("cifar10", (3, 32, 32), "dcgan32")
