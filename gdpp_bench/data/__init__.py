"""Datasets by name. Each has a `name`, a sample `shape`, a `default_model` and `sampler(device, data_root)`.

Image datasets also load a whole split as uint8 for the metrics stage: `load_split(name, root, split)`.
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from gdpp_bench.data.celeba import CELEBA, CELEBA64
from gdpp_bench.data.cifar import CIFAR10_DATASET
from gdpp_bench.data.images import Dataset, ImageDataset, Sampler, Split
from gdpp_bench.data.mnist import FASHION_MNIST, MNIST, STACKED_MNIST, StackedMNIST, sample_stacked_mnist
from gdpp_bench.data.synthetic import Mixture2D, grid, ring
from gdpp_bench.errors import UserError
from gdpp_bench.registry import Registry

# each dataset declares its kind ("2d" point mixture or "image") and, where the project trains
# one, the dataset whose classifier measures it (metrics and fidelity features read this)
DATASETS: Registry[Dataset] = Registry("dataset")
DATASETS.register("ring8", kind="2d")(ring(8, radius=1.0, std=0.01))
DATASETS.register("grid25", kind="2d")(grid(5, spacing=2.0, std=0.05))
DATASETS.register("mnist", kind="image", classifier="mnist")(MNIST)
DATASETS.register("fashion-mnist", kind="image", classifier="fashion-mnist")(FASHION_MNIST)
DATASETS.register("stacked-mnist", kind="image", classifier="mnist")(STACKED_MNIST)
for _image_dataset in (CIFAR10_DATASET, CELEBA, CELEBA64):
    DATASETS.register(_image_dataset.name, kind="image")(_image_dataset)


def classifier_of(dataset: str) -> str | None:
    """The dataset whose project-trained classifier measures `dataset`, or None."""
    return DATASETS.meta(dataset).get("classifier") if dataset in DATASETS else None


def load_split(
    name: str, data_root: str | Path | None, split: Split, size: int | None = None
) -> tuple[Tensor, Tensor | None]:
    """Real images of a registered image dataset: (uint8 [N, C, H, W] on the CPU, int64 labels [N] or None).

    `size` applies to stacked-mnist only, whose sets are drawn with a fixed seed (default 60,000 train,
    26,000 test; see gdpp_bench.data.mnist). CelebA has no labels.
    """
    dataset = DATASETS.get(name)
    if isinstance(dataset, StackedMNIST):
        return dataset.load_split(data_root, split, size)
    if not isinstance(dataset, ImageDataset):
        raise UserError(
            f"dataset {name!r} has no image files to load; image datasets: "
            f"{', '.join(n for n in DATASETS if isinstance(DATASETS.get(n), ImageDataset))}"
        )
    if size is not None:
        raise ValueError(f"size is for stacked-mnist only, not {name!r}")
    return dataset.load_split(data_root, split)


__all__ = [
    "DATASETS",
    "Dataset",
    "ImageDataset",
    "Mixture2D",
    "Sampler",
    "Split",
    "classifier_of",
    "load_split",
    "sample_stacked_mnist",
]
