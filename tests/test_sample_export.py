"""`gdpp-bench sample`: a trained run's samples as a PNG folder, an .npz (uint8 NHWC) or a CSV of
2D points, the same for the same seed whatever the chunking (to float rounding), with what was
sampled recorded."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import gdpp_bench, tiny_suite
from PIL import Image

from gdpp_bench.config import EvalConfig, Suite, TrainConfig
from gdpp_bench.export import export_samples
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import expand
from gdpp_bench.training import train

CPU = torch.device("cpu")


def _trained(spec, results: Path, data_root: Path | None = None) -> Path:
    run_dir = RunDir.for_spec(results, spec)
    assert train(spec, run_dir, CPU, str(data_root) if data_root else None)["status"] == "done"
    return run_dir.path


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory) -> Path:
    (spec,) = expand(tiny_suite(variants=("bce",)))
    return _trained(spec, tmp_path_factory.mktemp("ring"))


@pytest.fixture(scope="module")
def mnist_run(tmp_path_factory, mnist_root) -> Path:
    """A few steps of dcgan28 (with BatchNorm) on real MNIST."""
    suite = Suite(
        name="img",
        datasets=("mnist",),
        variants=("bce",),
        seeds=(0,),
        model="dcgan28",
        train=TrainConfig(steps=3, batch_size=8, log_every=1, checkpoint_every=3, update="alternating"),
        eval=EvalConfig(metrics=("mnist_classes",), grid_samples=4),
    )
    (spec,) = expand(suite)
    return _trained(spec, tmp_path_factory.mktemp("mnist"), mnist_root)


def _points(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_2d_points_as_csv_with_the_record_beside(ring_run, tmp_path):
    out = tmp_path / "points.csv"
    done = gdpp_bench("sample", str(ring_run), "--out", str(out), "--count", "300", "--seed", "5")
    assert done.returncode == 0, done.stderr
    rows = _points(out)
    assert rows[0] == ["x", "y"] and len(rows) == 301
    record = json.loads((tmp_path / "points.csv.json").read_text())
    assert record | {"git": None} == {
        "run": str(ring_run),
        "key": "bce/seed-0",
        "checkpoint": "checkpoint.pt",
        "step": 40,
        "count": 300,
        "seed": 5,
        "sample_bn": "running",
        "chunk": 500,
        "format": "csv",
        "git": None,
    }
    # the same seed gives the same points in any chunking (to float rounding: a matmul's blocking
    # depends on its batch size); another seed others
    export_samples(ring_run, tmp_path / "chunked.csv", 300, seed=5, chunk=7)
    chunked = np.array(_points(tmp_path / "chunked.csv")[1:], dtype=float)
    np.testing.assert_allclose(chunked, np.array(rows[1:], dtype=float), rtol=0, atol=1e-5)
    export_samples(ring_run, tmp_path / "other.csv", 300, seed=6)
    assert _points(tmp_path / "other.csv") != rows


def test_bad_requests_are_one_line_and_overwrite_nothing(ring_run, tmp_path):
    out = tmp_path / "points.csv"
    out.write_text("mine\n")
    for args, message in [
        (("--out", str(out)), "exists; choose another --out"),
        (("--out", str(tmp_path / "pngs")), "ring8 samples are points: use --format csv"),
        (("--out", str(tmp_path / "p.csv"), "--checkpoint", "best"), "has no best.pt"),
        (("--out", str(tmp_path / "p.csv"), "--count", "0"), "--count must be at least 1"),
    ]:
        refused = gdpp_bench("sample", str(ring_run), *args)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr
        assert refused.stderr.startswith("error: ") and message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1
    not_a_run = gdpp_bench("sample", str(tmp_path), "--out", str(tmp_path / "x.csv"))
    assert not_a_run.returncode == 2 and "is not a run folder" in not_a_run.stderr
    assert out.read_text() == "mine\n" and sorted(p.name for p in tmp_path.iterdir()) == ["points.csv"]


def test_images_as_png_folder_and_npz_agree(mnist_run, tmp_path):
    folder, archive = tmp_path / "pngs", tmp_path / "images.npz"
    assert gdpp_bench("sample", str(mnist_run), "--out", str(folder), "--count", "20").returncode == 0
    assert gdpp_bench("sample", str(mnist_run), "--out", str(archive), "--count", "20").returncode == 0
    images = np.load(archive)["images"]
    assert images.dtype == np.uint8 and images.shape[0] == 20 and images.shape[1:3] == (28, 28)
    files = sorted(folder.glob("*.png"))
    assert [f.name for f in files] == [f"{i:06d}.png" for i in range(20)]
    for i in (0, 7, 19):
        decoded = np.asarray(Image.open(files[i]))
        assert np.array_equal(decoded.reshape(images[i].shape), images[i])
    assert json.loads((folder / "samples.json").read_text())["format"] == "png"
    assert not list(tmp_path.glob(".*"))  # no temporary folder left
    # BatchNorm with each chunk's statistics (the official GDPP sampling) gives other images;
    # with running statistics the chunking does not matter
    export_samples(mnist_run, tmp_path / "batch.npz", 20, bn="batch")
    assert not np.array_equal(np.load(tmp_path / "batch.npz")["images"], images)
    export_samples(mnist_run, tmp_path / "chunked.npz", 20, chunk=3)
    chunked = np.load(tmp_path / "chunked.npz")["images"].astype(int)
    assert np.abs(chunked - images).max() <= 1  # float rounding may move a pixel by one level
