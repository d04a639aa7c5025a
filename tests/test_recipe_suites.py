"""The recipe suites (the GDPP paper's CIFAR-10, the seed project's faces) train on CPU on fixture
data in the real on-disk formats, and `epochs` turns into a step count from the training images."""

from __future__ import annotations

import dataclasses
import math

import pytest
from image_fixtures import (
    celeba_fixture_partition,
    write_celeba_small_fixture,
)

from gdpp_bench.errors import UserError
from gdpp_bench.pipeline import run_specs
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import expand, load_suite, parse_suite


@pytest.mark.parametrize(
    "suite,model,update",
    [
        ("cifar10-gdpp", "dcgan32-gdpp", "g-first"),
        ("faces", "dcgan32", "alternating"),
        ("faces-lr1e-4", "dcgan32", "alternating"),
        ("faces-pixelshuffle", "dcgan32-pixelshuffle", "alternating"),
    ],
)
def test_recipe_suites_train_a_few_steps_on_fixture_data(tmp_path, fixture_root, suite, model, update):
    """The paper's CIFAR-10 recipe and the seed face recipes train end to end (their metrics, the
    Inception ones, are exercised by the test above; here the runs are measured by nothing, to keep
    the suite's minutes for training)."""
    loaded = load_suite(suite)
    (spec,) = expand(loaded, ["bce+gdpp"], [0], steps=2, data_root=str(fixture_root))
    assert (spec.model, spec.train.update, spec.train.steps, spec.train.epochs) == (model, update, 2, 0)
    # batch 16 instead of 64 keeps the test's CPU seconds for the code paths, not the arithmetic
    spec = dataclasses.replace(
        spec,
        train=dataclasses.replace(spec.train, batch_size=16),
        eval=dataclasses.replace(spec.eval, metrics=(), every=0, grid_samples=4, select=""),
    )
    (outcome,) = run_specs([spec], tmp_path, str(fixture_root), "cpu")
    assert outcome["status"] == "done", outcome
    run = RunDir(tmp_path / suite / "bce+gdpp@1" / "seed-0")
    rows = run.log.read_text().splitlines()
    assert rows[0].split(",")[:7] == ["step", "d_loss", "g_loss", "d_real", "d_fake", "gp", "gdpp"]
    assert rows[-1].startswith("2,") and run.samples_png.is_file()


def test_epochs_give_the_step_count_from_the_training_images(tmp_path, fixture_root):
    """faces trains 40 epochs: ceil(40 x training images / batch 64) steps, counted in whichever
    CelebA layout the data root holds; --steps replaces it."""
    train_images = celeba_fixture_partition(24).count(0)  # the aligned fixture's train split: 12
    (spec,) = expand(load_suite("faces"), ["bce"], [0], data_root=str(fixture_root))
    assert spec.train.epochs == 40 and spec.train.steps == math.ceil(40 * train_images / 64)
    write_celeba_small_fixture(tmp_path, n=100)
    (spec,) = expand(load_suite("faces"), ["bce"], [0], data_root=str(tmp_path))
    assert spec.train.steps == math.ceil(40 * 100 / 64) == 63
    (spec,) = expand(load_suite("faces"), ["bce"], [0], steps=5, data_root=str(tmp_path))
    assert (spec.train.steps, spec.train.epochs) == (5, 0)
    with pytest.raises(UserError, match=r"train.epochs counts passes over training images; 'ring8'"):
        parse_suite({"name": "x", "dataset": "ring8", "variants": ["bce"], "train": {"epochs": 2}})
