"""Image datasets: real MNIST / Fashion-MNIST from the shared folder, Stacked-MNIST, and CIFAR-10 and
CelebA from fixture folders written in their real formats (nothing is downloaded)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from conftest import DATA_ROOT
from image_fixtures import (
    celeba_fixture_color,
    write_celeba_fixture,
    write_celeba_small_fixture,
    write_cifar10_fixture,
)
from torch.testing import assert_close

from gdpp_bench.data import (
    DATASETS,
    dataset_for,
    image_files,
    is_configurable,
    load_split,
    sample_stacked_mnist,
)
from gdpp_bench.data import celeba as celeba_module
from gdpp_bench.data.images import to_signed_unit
from gdpp_bench.errors import UserError

CPU = torch.device("cpu")
IMAGE_DATASETS = ["mnist", "fashion-mnist", "stacked-mnist", "cifar10", "celeba", "celeba64"]
# From the shared datasets README.
LABEL_COUNTS = {
    ("mnist", "train"): [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
    ("mnist", "test"): [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    ("fashion-mnist", "train"): [6000] * 10,
    ("fashion-mnist", "test"): [1000] * 10,
}
TRAIN_MEAN = {"mnist": 0.1307, "fashion-mnist": 0.2860}


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def mnist_train(mnist_root) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = load_split("mnist", DATA_ROOT, "train")
    assert labels is not None
    return images, labels


def digit_labels(images: torch.Tensor, labels: torch.Tensor) -> dict[bytes, set[int]]:
    """Pixel bytes of each digit -> its labels, to find which digit a stacked channel came from."""
    lookup: dict[bytes, set[int]] = {}
    for image, label in zip(images.reshape(len(images), -1).numpy(), labels.tolist(), strict=True):
        lookup.setdefault(image.tobytes(), set()).add(label)
    return lookup


def check_stacks(x: torch.Tensor, y: torch.Tensor, lookup: dict[bytes, set[int]]) -> None:
    """Every channel of every stack is a source digit whose label is the matching digit of y."""
    for stack, label in zip(x.numpy(), y.tolist(), strict=True):
        for channel, digit in zip(stack, (label // 100, label // 10 % 10, label % 10), strict=True):
            assert digit in lookup[channel.tobytes()], label


def test_every_dataset_is_registered_under_its_own_name() -> None:
    for name in DATASETS:
        dataset = dataset_for(name, "somewhere", 32) if is_configurable(name) else DATASETS.get(name)
        assert dataset.name == name and isinstance(dataset.shape, tuple) and dataset.default_model
    assert set(IMAGE_DATASETS) <= set(DATASETS.names())


@pytest.mark.parametrize(("name", "split"), list(LABEL_COUNTS))
def test_real_mnist_splits(mnist_root, fashion_root, name: str, split: str) -> None:
    images, labels = load_split(name, DATA_ROOT, split)
    n = sum(LABEL_COUNTS[name, split])
    assert images.shape == (n, 1, 28, 28) and images.dtype == torch.uint8
    assert labels is not None and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == LABEL_COUNTS[name, split]
    if split == "train":
        assert images.float().mean().item() / 255 == pytest.approx(TRAIN_MEAN[name], abs=1e-4)


@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
def test_mnist_sampler_draws_training_images_with_the_generator(mnist_root, fashion_root, name: str) -> None:
    images, _ = load_split(name, DATA_ROOT, "train")
    sampler = DATASETS.get(name).sampler(CPU, str(DATA_ROOT))
    batch = sampler.sample(256, seeded(3))
    assert batch.shape == (256, 1, 28, 28) and batch.dtype == torch.float32
    assert batch.min().item() == -1.0 and batch.max().item() == 1.0
    index = torch.randint(len(images), (256,), generator=seeded(3))
    assert_close(batch, images[index].float() / 127.5 - 1, rtol=0, atol=0)
    assert_close(sampler.sample(256, seeded(3)), batch, rtol=0, atol=0)
    assert not torch.equal(sampler.sample(256, seeded(4)), batch)


def test_signed_unit_scaling_is_exact_at_the_ends() -> None:
    values = torch.tensor([0, 51, 127, 128, 255], dtype=torch.uint8)
    assert_close(to_signed_unit(values), torch.tensor([-1.0, -0.6, -1 / 255, 1 / 255, 1.0]))
    assert to_signed_unit(values)[[0, -1]].tolist() == [-1.0, 1.0]


def test_stacked_mnist_labels_match_the_channels(mnist_train) -> None:
    images, labels = mnist_train
    x, y = sample_stacked_mnist(images, labels, 300, seeded(0))
    assert x.shape == (300, 3, 28, 28) and x.dtype == torch.uint8 and y.dtype == torch.int64
    check_stacks(x, y, digit_labels(images, labels))
    x_again, y_again = sample_stacked_mnist(images, labels, 300, seeded(0))
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    assert not torch.equal(sample_stacked_mnist(images, labels, 300, seeded(1))[1], y)


def test_stacked_mnist_sampler_matches_the_labelled_draw(mnist_train) -> None:
    images, labels = mnist_train
    sampler = DATASETS.get("stacked-mnist").sampler(CPU, str(DATA_ROOT))
    batch = sampler.sample(64, seeded(5))
    assert batch.shape == (64, 3, 28, 28) and batch.dtype == torch.float32
    x, _ = sample_stacked_mnist(images, labels, 64, seeded(5))
    assert_close(batch, to_signed_unit(x), rtol=0, atol=0)
    assert not torch.equal(sampler.sample(64, seeded(6)), batch)


def test_stacked_mnist_test_set_is_fixed_and_covers_1000_modes(mnist_root) -> None:
    x, y = load_split("stacked-mnist", DATA_ROOT, "test")
    assert x.shape == (26_000, 3, 28, 28) and x.dtype == torch.uint8
    assert y is not None and y.min().item() == 0 and y.max().item() == 999
    assert len(torch.unique(y)) == 1000
    x_again, y_again = load_split("stacked-mnist", DATA_ROOT, "test")
    assert torch.equal(x, x_again) and torch.equal(y, y_again)
    digits, digit_y = load_split("mnist", DATA_ROOT, "test")  # built from the test digits
    check_stacks(x[:200], y[:200], digit_labels(digits, digit_y))
    small_x, small_y = load_split("stacked-mnist", DATA_ROOT, "test", size=100)
    assert small_x.shape == (100, 3, 28, 28) and small_y.shape == (100,)


def test_cifar10_reads_the_pickles_without_torchvision(tmp_path: Path, monkeypatch) -> None:
    written = write_cifar10_fixture(tmp_path, n_per_batch=8)

    def no_torchvision(*args, **kwargs):
        raise AssertionError("torchvision's CIFAR10 (md5 check) must not be used for an existing folder")

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", no_torchvision)
    for split, batches in [("train", [f"data_batch_{k}" for k in range(1, 6)]), ("test", ["test_batch"])]:
        images, labels = load_split("cifar10", tmp_path, split)
        rows = np.concatenate([written[b][b"data"] for b in batches])
        assert images.shape == (len(rows), 3, 32, 32) and images.dtype == torch.uint8
        assert labels is not None and labels.tolist() == [v for b in batches for v in written[b][b"labels"]]
        # Rows are 1024 red, then 1024 green, then 1024 blue bytes, each plane row-major.
        for channel in range(3):
            plane = rows[:, channel * 1024 : (channel + 1) * 1024].reshape(-1, 32, 32)
            assert torch.equal(images[:, channel], torch.from_numpy(plane))
        assert images[1, 2, 5, 7].item() == rows[1, 2 * 1024 + 5 * 32 + 7]


def test_cifar10_batches_pickled_by_python3_read_the_same(tmp_path: Path) -> None:
    """A re-packed copy has str keys (Python 3's pickle); torchvision reads it, so do we."""
    written = write_cifar10_fixture(tmp_path / "bytes", n_per_batch=4)
    folder = tmp_path / "str" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, batch in written.items():
        with open(folder / name, "wb") as handle:
            pickle.dump({key.decode(): value for key, value in batch.items()}, handle)
    for split in ("train", "test"):
        ours = load_split("cifar10", tmp_path / "str", split)
        reference = load_split("cifar10", tmp_path / "bytes", split)
        assert torch.equal(ours[0], reference[0]) and torch.equal(ours[1], reference[1])


@pytest.mark.parametrize("content", [b"not a pickle", pickle.dumps([1, 2]), pickle.dumps({"data": [1]})])
def test_a_file_that_is_not_a_cifar_batch_is_one_line(tmp_path: Path, content: bytes) -> None:
    write_cifar10_fixture(tmp_path, n_per_batch=2)
    broken = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    broken.write_bytes(content)
    expected = f"^dataset 'cifar10': {broken} is not a CIFAR-10 python batch"
    with pytest.raises(UserError, match=expected) as info:
        load_split("cifar10", tmp_path, "train")
    assert "\n" not in str(info.value)


def test_cifar10_sampler_and_incomplete_folder(tmp_path: Path) -> None:
    write_cifar10_fixture(tmp_path, n_per_batch=8)
    images, _ = load_split("cifar10", tmp_path, "train")
    batch = DATASETS.get("cifar10").sampler(CPU, str(tmp_path)).sample(16, seeded(2))
    index = torch.randint(len(images), (16,), generator=seeded(2))
    assert_close(batch, to_signed_unit(images[index]), rtol=0, atol=0)
    missing = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    missing.unlink()
    with pytest.raises(UserError, match="'cifar10'") as info:
        load_split("cifar10", tmp_path, "train")
    assert str(missing) in str(info.value) and "\n" not in str(info.value)


def expected_colors(indices: list[int], resolution: int) -> torch.Tensor:
    colors = torch.tensor([celeba_fixture_color(i) for i in indices], dtype=torch.int32)
    return colors[:, :, None, None].expand(-1, -1, resolution, resolution)


@pytest.mark.parametrize("size", [(178, 218), (48, 64), (64, 48)])
def test_celeba_aligned_layout_crops_resizes_and_keeps_the_partition(
    tmp_path: Path, monkeypatch, size: tuple[int, int]
) -> None:
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    partition = write_celeba_fixture(tmp_path / "data", n=24, size=size)
    for name, resolution in [("celeba", 32), ("celeba64", 64)]:
        assert DATASETS.get(name).shape == (3, resolution, resolution)
        for split, code in [("train", 0), ("test", 2)]:
            images, labels = load_split(name, tmp_path / "data", split)
            wanted = [i for i, p in enumerate(partition) if p == code]
            assert labels is None and images.dtype == torch.uint8
            assert images.shape == (len(wanted), 3, resolution, resolution)
            # Solid-colour JPEGs decode to within one grey level; band pixels (255, 0, 255) from a
            # wrong crop would be far off.
            assert_close(images.int(), expected_colors(wanted, resolution), rtol=0, atol=1)


def test_celeba_cache_is_written_once_and_reused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    write_celeba_fixture(tmp_path / "data", n=24)
    first, _ = load_split("celeba", tmp_path / "data", "train")
    cache = tmp_path / "cache" / "celeba-cache"
    files = sorted(cache.iterdir())
    assert [f.suffix for f in files] == [".npy"]  # one complete file, no temp file left behind
    stamp = files[0].stat().st_mtime_ns

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache exists")

    monkeypatch.setattr(image_files, "decode_image", no_decoding)
    again, _ = load_split("celeba", tmp_path / "data", "train")
    assert torch.equal(again, first)
    sampler = DATASETS.get("celeba").sampler(CPU, str(tmp_path / "data"))
    batch = sampler.sample(8, seeded(1))
    index = torch.randint(len(first), (8,), generator=seeded(1))
    assert_close(batch, to_signed_unit(first[index]), rtol=0, atol=0)
    assert_close(sampler.sample(8, seeded(1)), batch, rtol=0, atol=0)
    assert sorted(cache.iterdir()) == files and files[0].stat().st_mtime_ns == stamp
    # a new image count is a new cache (the decoder's failure is reported as the file's)
    with pytest.raises(UserError, match=r"cannot read 15 images: .*decoded again"):
        write_celeba_fixture(tmp_path / "data", n=30)
        load_split("celeba", tmp_path / "data", "train")


def test_a_metric_reference_subset_reads_only_its_rows_of_a_memory_mapped_cache(
    tmp_path: Path, monkeypatch
) -> None:
    """The fidelity reference of CelebA (and of image folders, which share the cache code) is the
    same fixed subset as before, taken from the memory-mapped cache: the whole split is never
    copied into memory (load_split does that), and a subset as large as the split is all of it."""
    from gdpp_bench.metrics.fidelity import SUBSET_SEED, real_reference

    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    write_celeba_fixture(tmp_path / "data", n=40)
    dataset = DATASETS.get("celeba")
    whole, _ = dataset.load_split(str(tmp_path / "data"), "train")
    keep = torch.randperm(len(whole), generator=torch.Generator().manual_seed(SUBSET_SEED))[:9].sort().values

    def no_whole_split(*args, **kwargs):
        raise AssertionError("the whole split was copied for a subset")

    monkeypatch.setattr(type(dataset), "load_split", no_whole_split)
    subset = real_reference(dataset, str(tmp_path / "data"), "train", 9)
    assert subset.dtype == torch.uint8 and torch.equal(subset, whole[keep])
    assert torch.equal(real_reference(dataset, str(tmp_path / "data"), "train", len(whole)), whole)


def test_celeba_processed_small_layout(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    write_celeba_small_fixture(tmp_path, n=12)
    in_name_order = sorted(range(12), key=lambda i: f"{i}.jpg")
    images = celeba_module.cached_images("celeba", tmp_path, "train", 32, workers=2)  # worker processes
    assert images.shape == (12, 3, 32, 32)
    assert_close(torch.from_numpy(np.array(images)).int(), expected_colors(in_name_order, 32), rtol=0, atol=1)
    loaded, labels = load_split("celeba64", tmp_path, "train")
    assert labels is None and loaded.shape == (12, 3, 64, 64)
    with pytest.raises(UserError, match="processed_celeba_small") as info:
        load_split("celeba", tmp_path, "test")
    assert "\n" not in str(info.value)


def test_celeba_without_partition_file_names_it(tmp_path: Path) -> None:
    write_celeba_fixture(tmp_path, n=6)
    partition = tmp_path / "celeba" / "list_eval_partition.txt"
    partition.unlink()
    with pytest.raises(UserError, match="'celeba'") as info:
        DATASETS.get("celeba").sampler(CPU, str(tmp_path))
    assert str(partition) in str(info.value)


MISSING_PATHS = {
    "mnist": "MNIST/raw/train-images-idx3-ubyte",
    "fashion-mnist": "FashionMNIST/raw/train-images-idx3-ubyte",
    "stacked-mnist": "MNIST/raw/train-images-idx3-ubyte",
    "cifar10": "cifar-10-batches-py/data_batch_1",
    "celeba": "celeba/img_align_celeba",
    "celeba64": "celeba/img_align_celeba",
}


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_missing_data_is_one_line_naming_the_dataset_and_path(tmp_path: Path, monkeypatch, name: str) -> None:
    attempts = []

    def offline(self) -> None:
        attempts.append(type(self).__name__)
        raise RuntimeError("Error downloading file:\nTried https://example.invalid/, got:\nno network")

    # FashionMNIST inherits MNIST.download; patching keeps the test offline even where a network exists.
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", offline)
    monkeypatch.setattr(torchvision.datasets.CIFAR10, "download", offline)
    root = tmp_path / "absent"
    with pytest.raises(UserError) as info:
        DATASETS.get(name).sampler(CPU, str(root))
    message = str(info.value)
    assert "\n" not in message and f"'{name}'" in message
    assert str(root / MISSING_PATHS[name]) in message
    assert len(attempts) == (0 if name.startswith("celeba") else 1)
    if attempts:
        assert "downloading it failed (RuntimeError: Error downloading file:)" in message


def test_test_split_error_names_the_test_file(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(torchvision.datasets.MNIST, "download", lambda self: None)
    with pytest.raises(UserError) as info:
        load_split("mnist", tmp_path, "test")
    assert str(tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte") in str(info.value)


@pytest.mark.parametrize("name", IMAGE_DATASETS)
def test_image_datasets_need_a_data_root(name: str) -> None:
    with pytest.raises(UserError, match=f"'{name}'.*--data-root"):
        DATASETS.get(name).sampler(CPU, None)


def test_load_split_rejects_2d_datasets_and_bad_splits(mnist_root) -> None:
    with pytest.raises(UserError, match="ring8"):
        load_split("ring8", DATA_ROOT, "train")
    with pytest.raises(UserError, match="'valid'"):
        load_split("mnist", DATA_ROOT, "valid")  # type: ignore[arg-type]
