"""Users' own image folders (`dataset = "folder"`): layouts, crop and resize, identity in caches and
config.json, label-free metrics, and the one-line errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from conftest import gdpp_bench
from image_fixtures import CELEBA_BAND_COLOR, write_folder_suite, write_image_folder

from gdpp_bench.data import dataset_for
from gdpp_bench.errors import UserError
from gdpp_bench.metrics.fidelity import fidelity_cache_dir
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import parse_suite


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _centre_colours(images):
    return [tuple(int(v) for v in image[:, 16, 16]) for image in images]


def test_a_flat_png_folder_is_cropped_and_resized_once_into_the_cache(tmp_path, cache):
    colours = write_image_folder(tmp_path / "faces", 7, ".png")
    dataset = dataset_for("folder", str(tmp_path / "faces"), 32)
    images, labels = dataset.load_split(None, "train")
    assert images.dtype == torch.uint8 and images.shape == (7, 3, 32, 32)
    assert labels.tolist() == [0] * 7
    # centre crop to the shorter side removes the band of every non-square image, so a lossless
    # solid square resizes to exactly its colour: any band pixel means a wrong crop
    assert _centre_colours(images) == colours
    assert (images == torch.tensor(colours, dtype=torch.uint8)[:, :, None, None]).all()
    band = torch.tensor(CELEBA_BAND_COLOR, dtype=torch.uint8)[None, :, None, None]
    assert not (images == band).all(1).any()
    (cached,) = (cache / "folder-cache").glob("*.npy")
    assert "32px-7-" in cached.name
    before = cached.stat().st_mtime_ns
    dataset.load_split(None, "train")  # read back from the cache, not decoded again
    assert cached.stat().st_mtime_ns == before
    assert dataset.splits(None) == ("train",)


def test_class_subfolders_of_jpegs_give_labels_in_name_order(tmp_path, cache):
    colours = write_image_folder(tmp_path / "pets", 8, ".jpg", classes=("dog", "cat"))
    # what ImageFolder would also take, or trip over, and a user's folder often holds
    write_image_folder(tmp_path / "pets" / ".ipynb_checkpoints", 2, ".png")
    write_image_folder(tmp_path / "pets" / "cat" / ".thumbnails", 1, ".png")
    (tmp_path / "pets" / "empty-class").mkdir()
    (tmp_path / "pets" / "dog" / "notes.txt").write_text("not an image")
    dataset = dataset_for("folder", "pets", 64)
    images, labels = dataset.load_split(tmp_path, "train")  # data_path relative to the data root
    assert images.shape == (8, 3, 64, 64)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]  # cat (0) before dog (1), nested files included
    for got, want in zip(_centre_colours(images), colours, strict=True):
        assert max(abs(g - w) for g, w in zip(got, want, strict=True)) <= 3  # JPEG's rounding
    listing = dataset.listing(tmp_path, "train")
    assert listing.classes == ("cat", "dog")
    assert dataset.default_model == "dcgan64"


def test_train_and_test_subfolders_are_the_splits(tmp_path, cache):
    write_image_folder(tmp_path / "data" / "train", 6, ".png")
    write_image_folder(tmp_path / "data" / "test", 3, ".png", first_color=50)
    dataset = dataset_for("folder", str(tmp_path / "data"), 32)
    assert dataset.splits(None) == ("train", "test")
    assert len(dataset.load_split(None, "train")[0]) == 6
    assert len(dataset.load_split(None, "test")[0]) == 3
    flat = dataset_for("folder", str(tmp_path / "data" / "train"), 32)
    with pytest.raises(UserError, match=r"has no test split; put the training images in .*train"):
        flat.load_split(None, "test")


def test_two_folders_of_equal_size_never_share_cached_statistics(tmp_path, cache, random_inception_weights):
    """Same image count, sizes and names, other pixels: other identities, so other cache names for
    their decoded images and real statistics (the end-to-end test below shows the statistics cached
    under that name). Touching one file changes the identity too."""
    from gdpp_bench.metrics.fidelity import Extractor, real_reference, reference_name

    write_image_folder(tmp_path / "a", 12, ".png")
    write_image_folder(tmp_path / "b", 12, ".png", first_color=100)
    extractor = Extractor("inception-v3-compat", random_inception_weights, "0" * 64, {})
    names, references = [], []
    for folder in ("a", "b"):
        dataset = dataset_for("folder", folder, 32)
        references.append(real_reference(dataset, str(tmp_path), "train", 10))
        names.append(reference_name(dataset, str(tmp_path), "train", references[-1], extractor))
    assert names[0] != names[1]
    assert all(name.startswith("folder-") and "-train-32px-n10-" in name for name in names)
    assert references[0].shape == references[1].shape == (10, 3, 32, 32)
    assert not torch.equal(references[0], references[1])
    assert len(list((cache / "folder-cache").glob("*.npy"))) == 2
    first = dataset_for("folder", str(tmp_path / "a"), 32)
    before = first.reference_id(None, "train")
    image = tmp_path / "a" / "img000.png"
    os.utime(image, ns=(image.stat().st_atime_ns, image.stat().st_mtime_ns + 1_000_000_000))
    assert first.reference_id(None, "train") != before


def test_bad_folders_and_files_give_one_line(tmp_path, cache):
    with pytest.raises(UserError, match=r"not found; set data_path"):
        dataset_for("folder", str(tmp_path / "absent"), 32).load_split(None, "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match=r"no images in .*empty"):
        dataset_for("folder", str(tmp_path / "empty"), 32).load_split(None, "train")
    write_image_folder(tmp_path / "mixed", 2, ".png", classes=("a",))
    write_image_folder(tmp_path / "mixed", 1, ".png")
    with pytest.raises(UserError, match=r"both images and class folders"):
        dataset_for("folder", str(tmp_path / "mixed"), 32).load_split(None, "train")
    write_image_folder(tmp_path / "broken", 3, ".png")
    (tmp_path / "broken" / "img001.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    with pytest.raises(UserError, match=r"cannot read image .*img001.png \(.*\); replace or remove") as error:
        dataset_for("folder", str(tmp_path / "broken"), 32).load_split(None, "train")
    assert "\n" not in str(error.value)
    # every unreadable image, in one line: one pass over the folder finds them all
    (tmp_path / "broken" / "img002.png").write_bytes(b"not an image")
    with pytest.raises(
        UserError, match=r"cannot read 2 images: .*img001.png \(.*\), .*img002.png \("
    ) as error:
        dataset_for("folder", str(tmp_path / "broken"), 32).load_split(None, "train")
    assert "\n" not in str(error.value) and "img000.png" not in str(error.value)
    assert not list((cache / "folder-cache").glob("*"))  # nothing half-written is left
    with pytest.raises(UserError, match=r"pass --data-root"):
        dataset_for("folder", "relative", 32).load_split(None, "train")


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"dataset": "folder", "image_size": 32}, r"needs data_path"),
        ({"dataset": "folder", "data_path": "x", "image_size": 48}, r"needs image_size = 32 or 64, got 48"),
        ({"dataset": "folder", "data_path": "x"}, r"needs image_size"),
        ({"dataset": "ring8", "data_path": "x"}, r"data_path and image_size are settings of dataset folder"),
    ],
)
def test_suite_settings_of_the_folder_dataset_are_checked_at_load(fields, message):
    with pytest.raises(UserError, match=message):
        parse_suite({"name": "mine", "variants": ["bce"], **fields}, where="mine.toml")


def _suite_file(tmp_path, data_path, extra=""):
    return write_folder_suite(
        tmp_path / "mine.toml", data_path=data_path, variants=("bce", "bce+gdpp"), steps=4, extra=extra
    )


def test_a_folder_suite_trains_evaluates_and_reports(tmp_path, cache, random_inception_weights):
    """A relative data_path with train/ and test/ splits (class folders of PNGs, flat JPEGs): the
    label-free fidelity metrics against the test split, real statistics cached under the folder's
    identity, config.json recording it, a report; another folder is another dataset."""
    write_image_folder(tmp_path / "root" / "mine" / "train", 20, ".png", classes=("x", "y"))
    write_image_folder(tmp_path / "root" / "mine" / "test", 10, ".jpg", first_color=60)
    write_image_folder(tmp_path / "root" / "other", 20, ".png", first_color=120)
    suite = _suite_file(tmp_path, "mine", 'reference_split = "test"')
    results = tmp_path / "results"
    common = ("--data-root", str(tmp_path / "root"), "--results", str(results), "--variants", "bce+gdpp")
    done = gdpp_bench(
        "run", "--suite", str(suite), *common, "--inception-weights", str(random_inception_weights)
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run = RunDir(results / "mine" / "bce+gdpp@1" / "seed-0")
    config = json.loads(run.config.read_text())
    assert config["spec"]["dataset"] == "folder" and config["spec"]["data_path"] == "mine"
    data = config["data"]
    assert data["image_size"] == 32
    assert data["train"]["images"] == 20 and data["train"]["classes"] == ["x", "y"]
    assert data["test"]["images"] == 10 and data["train"]["identity"] != data["test"]["identity"]
    assert data["train"]["path"] == str((tmp_path / "root" / "mine" / "train").resolve())
    metrics = json.loads(run.metrics.read_text())
    assert {"fid", "kid", "precision", "recall", "density", "coverage"} <= set(metrics["values"])
    reference = metrics["protocol"]["fidelity"]["reference"]
    assert reference.startswith(f"folder-{data['test']['identity'][:16]}-test-32px-n10-")
    assert list(fidelity_cache_dir().glob(f"{reference}-*stat-fid*"))
    report = gdpp_bench("report", "--suite", "mine", "--results", str(results), "--no-figures")
    assert report.returncode == 0, report.stdout + report.stderr
    assert (results / "mine" / "report" / "summary.csv").is_file()
    # the same suite on another folder trains other weights: the finished run is not reused
    other = _suite_file(tmp_path, "other", 'reference_split = "train"')
    moved = gdpp_bench("run", "--suite", str(other), *common)
    assert moved.returncode == 2
    (refused,) = [line for line in moved.stderr.splitlines() if line.startswith("error:")]
    assert "trained with other settings: data_path (recorded 'mine', asked 'other')" in refused


def test_a_flat_folder_with_checkpoint_selection_stops_before_training(tmp_path, cache):
    write_image_folder(tmp_path / "flat", 10, ".png")
    suite = _suite_file(tmp_path, str(tmp_path / "flat"), 'every = 2\nselect = "fid"')
    results = tmp_path / "results"
    result = gdpp_bench("run", "--suite", str(suite), "--results", str(results), "--variants", "bce")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if "error" in line]
    assert any("has no test split" in line for line in lines), result.stdout + result.stderr
    assert "Traceback" not in (result.stdout + result.stderr)
    assert not (results / "mine" / "bce" / "seed-0" / "checkpoint.pt").exists()
