"""Writers of small image-dataset folders in the real on-disk formats, for tests (no downloads)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
from PIL import Image

CIFAR10_LABEL_NAMES = [
    b"airplane",
    b"automobile",
    b"bird",
    b"cat",
    b"deer",
    b"dog",
    b"frog",
    b"horse",
    b"ship",
    b"truck",
]
CIFAR10_BATCH_NAMES = [*(f"data_batch_{k}" for k in range(1, 6)), "test_batch"]
# Colour of everything outside the centred square of a CelebA fixture image: far from every
# celeba_fixture_color, so a wrong crop shows up in the pixels.
CELEBA_BAND_COLOR = (255, 0, 255)


def write_cifar10_fixture(root: Path, n_per_batch: int = 8, seed: int = 0) -> dict[str, dict[bytes, object]]:
    """ROOT/cifar-10-batches-py with data_batch_1..5, test_batch and batches.meta of random uint8 images.

    Returns each batch's dict as written (b"data" uint8 [n_per_batch, 3072], b"labels" list of int).
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    written = {}
    for name in CIFAR10_BATCH_NAMES:
        batch = {
            b"batch_label": name.encode(),
            b"labels": [int(v) for v in rng.integers(0, 10, n_per_batch)],
            b"data": rng.integers(0, 256, (n_per_batch, 3072), dtype=np.uint8),
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n_per_batch)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f, protocol=2)
        written[name] = batch
    meta = {b"num_cases_per_batch": n_per_batch, b"label_names": CIFAR10_LABEL_NAMES, b"num_vis": 3072}
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return written


def celeba_fixture_color(i: int) -> tuple[int, int, int]:
    """The RGB colour of the centred square of fixture image `i` (all distinct for i < 200)."""
    return (40 + (37 * i) % 160, 40 + (91 * i) % 160, 40 + (53 * i) % 160)


def _write_jpeg(path: Path, color: tuple[int, int, int], size: tuple[int, int]) -> None:
    """An image of `size` (width, height): `color` in its centred square, CELEBA_BAND_COLOR outside;
    JPEG or PNG by the file's suffix."""
    width, height = size
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:] = CELEBA_BAND_COLOR
    side = min(width, height)
    top, left = (height - side) // 2, (width - side) // 2
    pixels[top : top + side, left : left + side] = color
    if path.suffix.lower() == ".png":
        Image.fromarray(pixels).save(path)
    else:
        # Quality 100 without chroma subsampling keeps the solid colours within a grey level or two.
        Image.fromarray(pixels).save(path, quality=100, subsampling=0)


def write_image_folder(
    folder: Path,
    n: int,
    suffix: str = ".png",
    classes: tuple[str, ...] = (),
    first_color: int = 0,
    sizes: tuple[tuple[int, int], ...] = ((48, 40), (36, 60), (50, 50)),
) -> list[tuple[int, int, int]]:
    """`n` images in `folder` (flat, or spread in turn over the `classes` sub-folders, one nested a
    level deeper), image i coloured celeba_fixture_color(first_color + i) in its centred square and
    of size sizes[i % len(sizes)]. Returns the colours in the order a name-sorted listing gives."""
    folder = Path(folder)
    placed = []
    for i in range(n):
        where = folder
        if classes:
            where = folder / classes[i % len(classes)] / ("nested" if i % 4 == 3 else "")
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"img{i:03d}{suffix}"
        _write_jpeg(path, celeba_fixture_color(first_color + i), sizes[i % len(sizes)])
        placed.append((path, celeba_fixture_color(first_color + i)))
    return [color for path, color in sorted(placed, key=lambda item: str(item[0]))]


def celeba_fixture_partition(n: int) -> list[int]:
    """The split code (0 train, 1 valid, 2 test) of each fixture image, interleaved on purpose."""
    return [(0, 2, 0, 1, 0, 2)[i % 6] for i in range(n)]


def write_celeba_fixture(root: Path, n: int = 24, size: tuple[int, int] = (178, 218)) -> list[int]:
    """ROOT/celeba/img_align_celeba/000001.jpg.. (width x height `size`) + list_eval_partition.txt.

    Image i (0-based, file f"{i + 1:06d}.jpg") is celeba_fixture_color(i) in its centred square and
    CELEBA_BAND_COLOR outside it. Returns celeba_fixture_partition(n).
    """
    folder = Path(root) / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True, exist_ok=True)
    partition = celeba_fixture_partition(n)
    for i in range(n):
        _write_jpeg(folder / f"{i + 1:06d}.jpg", celeba_fixture_color(i), size)
    lines = [f"{i + 1:06d}.jpg {p}" for i, p in enumerate(partition)]
    (Path(root) / "celeba" / "list_eval_partition.txt").write_text("\n".join(lines) + "\n")
    return partition


def write_celeba_small_fixture(root: Path, n: int = 12, size: tuple[int, int] = (64, 64)) -> None:
    """ROOT/processed_celeba_small/celeba/<i>.jpg, image i coloured celeba_fixture_color(i).

    Names are unpadded numbers so that the expected order (sorted by name) is not the numeric one.
    """
    folder = Path(root) / "processed_celeba_small" / "celeba"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        _write_jpeg(folder / f"{i}.jpg", celeba_fixture_color(i), size)


def write_folder_suite(
    path: Path,
    *,
    data_path: str = "mine",
    variants: tuple[str, ...] = ("bce",),
    steps: int = 2,
    samples: int = 16,
    real_samples: int = 16,
    extra: str = "",
) -> Path:
    """A suite file named mine on the `folder` dataset at 32 px, measured with the fidelity metrics
    (the README's own-images example at a test's size); `extra` is appended after its [eval] keys."""
    path.write_text(
        f"""name = "mine"
dataset = "folder"
data_path = "{data_path}"
image_size = 32
variants = {list(variants)!r}
seeds = [0]
[train]
steps = {steps}
batch_size = 8
log_every = {max(steps // 2, 1)}
checkpoint_every = 2
[eval]
metrics = ["fidelity"]
samples = {samples}
fidelity_samples = {samples}
real_samples = {real_samples}
grid_samples = 4
""".replace("'", '"')
        + extra.strip()
        + "\n"
    )
    return path
