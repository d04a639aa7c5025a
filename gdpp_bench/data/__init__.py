"""Datasets by name. Each has a `name`, a sample `shape`, a `default_model` and `sampler(device, data_root)`.

Image datasets also load a whole split as uint8 for the metrics stage: `load_split(name, root, split)`.
A configurable dataset (`folder`) is registered as a function of the suite's `data_path` and
`image_size`: get any run's dataset with `dataset_of(spec)` (or `dataset_for`), not `DATASETS.get`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import Tensor

from gdpp_bench.data.celeba import CELEBA, CELEBA64
from gdpp_bench.data.cifar import CIFAR10_DATASET
from gdpp_bench.data.folder import FolderImages, folder_dataset
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
# registered as the function that makes it from the suite's data_path and image_size
DATASETS.register("folder", kind="image", configurable=True)(folder_dataset)  # type: ignore[arg-type]


def is_configurable(name: str) -> bool:
    """Whether dataset `name` is made from a suite's data_path and image_size (`folder`)."""
    return bool(DATASETS.meta(name).get("configurable"))


def dataset_for(name: str, data_path: str = "", image_size: int = 0) -> Dataset:
    """The dataset `name`; a configurable one made from `data_path` and `image_size`."""
    entry: Any = DATASETS.get(name)
    return entry(data_path, image_size) if is_configurable(name) else entry


def dataset_of(spec: Any) -> Dataset:
    """The dataset a run (a RunSpec) trains on."""
    return dataset_for(spec.dataset, spec.data_path, spec.image_size)


def mode_count(name: str) -> int | None:
    """How many modes a registered dataset has where its mode metric counts them (ring8: 8,
    Stacked-MNIST: 1000); None for other or unknown datasets."""
    entry = DATASETS.get(name) if name in DATASETS and not is_configurable(name) else None
    return getattr(entry, "modes", None)


def describe_data(dataset: Dataset, data_root: str | None) -> dict[str, Any]:
    """What config.json records of a run's data beyond the dataset's name (a folder's path, size
    and identity); {} for datasets whose name says it all."""
    describe = getattr(dataset, "describe", None)  # image datasets have it; 2D mixtures do not
    return describe(data_root) if describe is not None else {}


def kind_of(name: str) -> str:
    """'2d' (a point mixture) or 'image': as registered, else from the sample shape (a plug-in's)."""
    kind = DATASETS.meta(name).get("kind")
    if kind is None:
        kind = "2d" if len(DATASETS.get(name).shape) == 1 else "image"
    return kind


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
    "FolderImages",
    "ImageDataset",
    "Mixture2D",
    "Sampler",
    "Split",
    "classifier_of",
    "dataset_for",
    "describe_data",
    "dataset_of",
    "is_configurable",
    "kind_of",
    "load_split",
    "mode_count",
    "sample_stacked_mnist",
]
