"""Cost of the fidelity metric's real reference subset from a memory-mapped image cache.

CelebA and image folders keep their decoded images in a memory-mapped .npy cache. A periodic
evaluation takes a fixed random subset of the reference split (10,000 images by default). The plain
way copies the whole split into memory and indexes it (what `load_split` + indexing did before);
`real_reference` now indexes the map, reading only the subset's rows. Both give the same tensor
(checked here and in tests/test_data_images.py).

A synthetic cache shaped like CelebA's 64 px training split (162,770 x 3 x 64 x 64 uint8, 2.0 GB)
is written to a temporary folder (`--images` to change the size); rounds alternate the two ways;
medians of CPU time (process time, which other jobs on the machine do not inflate) and wall time.

    python benchmarks/perf/reference_subset.py [--images 162770] [--subset 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gdpp_bench.data.images import ImageDataset, Split
from gdpp_bench.metrics.fidelity import SUBSET_SEED, real_reference


@dataclass(frozen=True)
class MappedCache(ImageDataset):
    """A dataset whose one split is a memory-mapped .npy file, as CelebA's decoded cache."""

    path: str = ""

    def split_images(self, data_root: str | Path | None, split: Split) -> np.ndarray:
        return np.load(self.path, mmap_mode="r")

    def load_split(self, data_root: str | Path | None, split: Split) -> tuple[Tensor, None]:
        return torch.from_numpy(np.array(self.split_images(data_root, split))), None


def whole_split_then_subset(dataset: ImageDataset, count: int) -> Tensor:
    """The plain reference: copy the split, then keep the same fixed subset."""
    images, _ = dataset.load_split(None, "train")
    keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(SUBSET_SEED))[:count]
    return images[keep.sort().values]


def timed(fn, *args) -> tuple[float, float, Tensor]:
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args)
    return time.process_time() - cpu, time.perf_counter() - wall, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=162_770, help="images in the synthetic split")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--subset", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cache.npy"
        shape = (args.images, 3, args.size, args.size)
        cache = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=shape)
        rows = np.random.default_rng(0)
        for start in range(0, args.images, 8192):
            stop = min(start + 8192, args.images)
            cache[start:stop] = rows.integers(0, 256, size=(stop - start, *shape[1:]), dtype=np.uint8)
        cache.flush()
        del cache
        dataset = MappedCache("mapped", shape[1:], "dcgan64", str(path))
        times: dict[str, list[tuple[float, float]]] = {"whole split, then subset": [], "real_reference": []}
        for _ in range(args.rounds):
            cpu, wall, plain = timed(whole_split_then_subset, dataset, args.subset)
            times["whole split, then subset"].append((cpu, wall))
            cpu, wall, mapped = timed(real_reference, dataset, None, "train", args.subset)
            times["real_reference"].append((cpu, wall))
            assert torch.equal(plain, mapped), "the two ways gave different subsets"
            del plain, mapped
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, {args.rounds} rounds")
    print(f"split {shape} uint8 ({np.prod(shape) / 1e9:.2f} GB), subset {args.subset}")
    medians = {}
    for name, pairs in times.items():
        medians[name] = tuple(statistics.median(p[i] for p in pairs) for i in (0, 1))
        print(f"{name:>26}: CPU {medians[name][0]:.3f} s, wall {medians[name][1]:.3f} s")
    plain_cpu, mapped_cpu = medians["whole split, then subset"][0], medians["real_reference"][0]
    print(f"CPU-time ratio (plain / real_reference): {plain_cpu / mapped_cpu:.1f}x")


if __name__ == "__main__":
    main()
