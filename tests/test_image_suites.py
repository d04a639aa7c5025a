"""Every image suite trains end to end on CPU for a few steps, on real MNIST and on fixtures in the
real CIFAR-10 / CelebA on-disk formats; missing data gives one line and exit 2."""

from __future__ import annotations

import hashlib
import json

import pytest
from conftest import DATA_ROOT, gdpp_bench
from PIL import Image

from gdpp_bench.metrics import fidelity
from gdpp_bench.pipeline import run_specs
from gdpp_bench.report.tables import collect_runs
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import EvalConfig, Suite, TrainConfig, expand, load_suite

# as few as the metrics take (IS's 10 splits); every generated or real image costs a forward pass
# of the extractor (Inception-v3 at 299 px for CIFAR-10 and CelebA)
EVAL_SAMPLES = 10


@pytest.mark.parametrize(
    "suite,grid_side",
    [
        ("mnist", 28),
        ("fashion-mnist", 28),
        ("stacked-mnist", 28),
        ("cifar10", 32),
        ("celeba", 32),
    ],
)
def test_image_suite_trains_a_few_steps(
    request, tmp_path, fixture_root, random_inception_weights, suite, grid_side
):
    # the session's instrument cache (GDPP_BENCH_CACHE) holds the classifier the MNIST family's
    # metrics use
    if "mnist" in suite:
        request.getfixturevalue("fashion_classifier" if suite == "fashion-mnist" else "mnist_classifier")
    root = DATA_ROOT if "mnist" in suite else fixture_root
    results = tmp_path / "results"
    done = gdpp_bench(
        "run",
        "--suite",
        suite,
        "--data-root",
        str(root),
        "--results",
        str(results),
        "--steps",
        "2",
        "--variants",
        "bce+gdpp",
        "--seeds",
        "0",
        "--device",
        "cpu",
        "--eval-samples",
        str(EVAL_SAMPLES),
        "--inception-weights",
        str(random_inception_weights),
    )
    assert done.returncode == 0, done.stderr
    run = RunDir(results / suite / "bce+gdpp@1" / "seed-0")
    assert (run.status()["status"], run.status()["step"]) == ("done", 2)
    spec = load_suite(suite)
    with run.log.open() as handle:
        rows = handle.read().splitlines()
    assert rows[0].split(",")[:7] == ["step", "d_loss", "g_loss", "d_real", "d_fake", "gp", "gdpp"]
    assert rows[-1].startswith("2,")
    with Image.open(run.samples_png) as grid:  # 64 samples: an 8 x 8 grid with 2-pixel padding
        assert grid.size == (8 * (grid_side + 2) + 2,) * 2
        assert grid.mode == "RGB"
        assert len(set(grid.getpixel((x, x)) for x in range(2, 60))) > 5  # not blank
    assert spec.train.batch_size == 64
    record = json.loads(run.metrics.read_text())
    assert set(record["protocol"]) == set(spec.eval.metrics)
    if suite == "stacked-mnist":  # samples of an untrained generator: few triples
        assert 1 <= record["values"]["modes"] <= EVAL_SAMPLES
        assert record["protocol"]["stacked_mnist_modes"]["generated_samples"] == EVAL_SAMPLES
    fidelity = record["protocol"]["fidelity"]
    assert fidelity["extractor"] == (
        "inception-v3-compat" if root == fixture_root else f"gdpp-{suite}-classifier"
    )
    assert fidelity["generated_samples"] == EVAL_SAMPLES and fidelity["real_samples"] <= EVAL_SAMPLES
    assert record["values"]["fid"] > 0
    if suite == "cifar10":  # IvOM on the fixture's 8 test images
        assert 0 < record["values"]["ivom_mse"] < 1
        assert record["protocol"]["ivom"]["real_samples"] == 8
    if suite in ("mnist", "fashion-mnist"):
        assert 1 <= record["values"]["classes"] <= 10


@pytest.mark.parametrize(
    "suite,looked_at",
    [
        ("mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("stacked-mnist", "MNIST/raw/train-images-idx3-ubyte"),
        ("cifar10", "cifar-10-batches-py"),
        ("celeba", "img_align_celeba"),
    ],
)
def test_missing_data_root_is_one_line(tmp_path, suite, looked_at):
    """Said once for the suite, not once per run; no run starts and nothing is written."""
    empty = tmp_path / "nothing-here"
    results = tmp_path / "results"
    done = gdpp_bench(
        "run",
        "--suite",
        suite,
        "--data-root",
        str(empty),
        "--results",
        str(results),
        "--steps",
        "2",
        "--variants",
        "bce,bce+gdpp",
        "--seeds",
        "0,1",
        "--device",
        "cpu",
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert lines[0].startswith(f"error: dataset {suite!r}: ")
    assert str(empty) in lines[0] and looked_at in lines[0]
    assert lines[0].endswith("(4 runs not started)")
    refused = [line for line in done.stdout.splitlines() if "not started" in line]
    assert sorted(line.split(":")[0] for line in refused) == [
        "bce+gdpp@1/seed-0",
        "bce+gdpp@1/seed-1",
        "bce/seed-0",
        "bce/seed-1",
    ]
    assert done.stdout.strip().endswith("0 done, 0 skipped, 0 failed, 4 incomplete")
    assert not results.exists()


def test_finished_runs_are_skipped_without_their_data(tmp_path, mnist_classifier):
    """Data are checked for the runs that will read them: a finished suite reruns without them."""
    results = tmp_path / "results"
    command = ["run", "--suite", "mnist", "--results", str(results), "--steps", "2", "--variants", "bce"]
    command += ["--seeds", "0", "--device", "cpu", "--eval-samples", "16"]
    first = gdpp_bench(*command, "--data-root", str(DATA_ROOT))
    assert first.returncode == 0, first.stderr
    again = gdpp_bench(*command, "--data-root", str(tmp_path / "nothing-here"))
    assert again.returncode == 0, again.stderr
    assert "bce/seed-0: skipped (done)" in again.stdout and again.stderr == ""


def test_selection_and_reporting_never_read_the_same_reference_images(
    tmp_path, mnist_classifier, monkeypatch
):
    """eval.select picks best.pt against the training split; best.pt is then measured once against
    the test split, and metrics.json says so: no reported number comes from the images that chose
    the checkpoint."""
    original = fidelity.real_reference
    read: list[tuple[str, set[str]]] = []

    def recording(dataset, data_root, split, count):
        images = original(dataset, data_root, split, count)
        read.append((split, {hashlib.sha1(image.numpy().tobytes()).hexdigest() for image in images}))
        return images

    monkeypatch.setattr(fidelity, "real_reference", recording)
    suite = Suite(
        name="select",
        datasets=("mnist",),
        variants=("bce",),
        seeds=(0,),
        model="dcgan28",
        train=TrainConfig(steps=4, batch_size=16, log_every=2, checkpoint_every=2, lr_g=3e-4, lr_d=3e-4),
        eval=EvalConfig(
            every=2,
            metrics=("fidelity",),
            select="fid",
            select_mode="min",
            samples=64,
            fidelity_samples=64,
            real_samples=100,
            grid_samples=4,
        ),
    )
    (spec,) = expand(suite)
    run_specs([spec], tmp_path, str(DATA_ROOT), "cpu")
    run = RunDir(tmp_path / "select" / spec.key)
    assert run.best.exists()
    periodic, final = read[:2], read[2:]  # two periodic evaluations, then best.pt
    assert [split for split, _ in periodic] == ["train", "train"]
    assert [split for split, _ in final] == ["test"]
    assert not (set.union(*(h for _, h in periodic)) & final[0][1])  # no image in both
    record = json.loads(run.metrics.read_text())
    assert record["protocol"]["fidelity"]["reference_split"] == "test"
    assert record["protocol"]["fidelity"]["checkpoint"] == "best.pt"
    assert record["protocol"]["fidelity"]["sample_bn"] == "running"  # BatchNorm mode recorded
    row = collect_runs(tmp_path / "select").iloc[0]
    assert row["headline"].startswith("best.pt (step") and row["headline"].endswith("on the test split")
    assert row["reference_split"] == "fidelity: test"
