"""What a suite's metrics need is looked for before anything trains (run, tune, evaluate,
--dry-run: one line naming what is missing and how to get it, exit 2); Inception-v3 weights other
than the published file are identified by sha256 (cached), warned about once, and what they
measured is marked in runs.csv, summary.md and index.html."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import textwrap
import time
import urllib.error

import pytest
import torch
from conftest import gdpp_bench
from image_fixtures import write_folder_suite, write_image_folder

from gdpp_bench.config import RunSpec
from gdpp_bench.metrics import fidelity as measure
from gdpp_bench.metrics import inception_weights as published
from gdpp_bench.preflight import Needs, check
from gdpp_bench.rundir import RunDir

MARK = "not comparable to published FID (non-standard Inception weights)"
FAST_S = 30  # "well under a minute": the check reads no image and trains nothing


@pytest.fixture
def offline_home(tmp_path, monkeypatch):
    """An empty torch hub (no Inception weights), a fresh gdpp-bench cache and no network (the
    weights' and torchvision's downloads fail): a machine where instruments are given by hand."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))

    def offline_download(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    def no_network(*args, **kwargs):
        raise OSError("no network in this test")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline_download)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    return tmp_path


def _folder_suite(tmp_path, extra: str = "") -> tuple[str, ...]:
    """A `folder` suite (Inception-v3 features for its FID) with train/ and test/ splits, as the
    README's own-images example; returns the run options that find its data."""
    write_image_folder(tmp_path / "root" / "mine" / "train", 12, ".png")
    write_image_folder(tmp_path / "root" / "mine" / "test", 6, ".png", first_color=60)
    path = write_folder_suite(
        tmp_path / "mine.toml",
        variants=("bce", "bce+gdpp"),
        samples=12,
        real_samples=6,
        extra='reference_split = "test"\n[decision]\ndescriptive = true\n' + textwrap.dedent(extra),
    )
    return (
        "--suite",
        str(path),
        "--data-root",
        str(tmp_path / "root"),
        "--results",
        str(tmp_path / "results"),
    )


def _one_error_line(result) -> str:
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stdout + result.stderr
    return errors[0]


def _assert_names_the_inception_weights(line: str) -> None:
    assert "Inception-v3 weights for FID/IS/KID are missing" in line
    assert measure.INCEPTION_FILE in line and "--inception-weights PATH" in line


def _assert_nothing_trained(tmp_path) -> None:
    assert not list((tmp_path / "results").rglob("checkpoint.pt"))
    assert not list((tmp_path / "results").rglob("config.json"))


def test_published_hash_is_the_one_the_file_name_abbreviates():
    # torch.hub's convention: the digits after the last '-' of a weights file's name are the first
    # digits of its sha256; torch-fidelity's release file follows it
    assert measure.INCEPTION_FILE == published.PUBLISHED_INCEPTION_FILE
    prefix = published.PUBLISHED_INCEPTION_FILE.rsplit("-", 1)[1].split(".")[0]
    assert published.PUBLISHED_INCEPTION_SHA256.startswith(prefix) and len(prefix) == 8
    assert len(published.PUBLISHED_INCEPTION_SHA256) == 64


@pytest.mark.parametrize("dry_run", [False, True])
def test_run_without_inception_weights_fails_before_training(tmp_path, offline_home, dry_run):
    options = _folder_suite(tmp_path)
    started = time.perf_counter()
    result = gdpp_bench("run", *options, "--device", "cpu", *(["--dry-run"] if dry_run else []))
    elapsed = time.perf_counter() - started
    assert result.returncode == 2 and elapsed < FAST_S, (elapsed, result.stdout + result.stderr)
    line = _one_error_line(result)
    _assert_names_the_inception_weights(line)
    assert str(offline_home / "torch-home") in line  # where it was looked for
    assert line.endswith("(2 runs would not start)" if dry_run else "(2 runs not started)")
    assert "would train" not in result.stdout
    _assert_nothing_trained(tmp_path)
    if not dry_run:
        assert result.stdout.strip().endswith("0 done, 0 skipped, 0 failed, 2 incomplete")


def test_every_missing_thing_is_said_in_the_one_line(tmp_path, offline_home):
    """A split the evaluation needs and the weights, at once: one fix round, not one per error."""
    options = _folder_suite(tmp_path)
    (tmp_path / "root" / "mine" / "test").rename(tmp_path / "root" / "other")
    result = gdpp_bench("run", *options, "--device", "cpu", "--dry-run")
    assert result.returncode == 2
    line = _one_error_line(result)
    assert "has no test split" in line and "; also: " in line
    _assert_names_the_inception_weights(line)


def test_tune_without_inception_weights_fails_before_any_trial(tmp_path, offline_home):
    search = """
    [search]
    lr_g = { log_uniform = [1e-4, 3e-3] }
    [budget]
    trials = 2
    tuning_seeds = [100]
    confirm_seeds = [0, 1]
    objective = { metric = "fid" }
    """
    options = _folder_suite(tmp_path, search)
    for dry_run in ([], ["--dry-run"]):
        started = time.perf_counter()
        result = gdpp_bench("tune", *options, "--device", "cpu", *dry_run)
        elapsed = time.perf_counter() - started
        assert result.returncode == 2 and elapsed < FAST_S, (elapsed, result.stdout + result.stderr)
        line = _one_error_line(result)
        _assert_names_the_inception_weights(line)
        assert line.endswith("(nothing tuned)")
        assert "trial 0" not in result.stdout
    _assert_nothing_trained(tmp_path)
    assert not (tmp_path / "results" / "mine" / "tuning.db").exists()  # no storage opened


def test_classifier_that_cannot_be_trained_is_named_with_how_to_get_it(tmp_path, offline_home):
    """A metric measured by a project classifier that is not cached, and whose data are absent."""
    need = Needs(("ring8", "", 0), frozenset({"train"}), frozenset({"fashion-mnist"}), False)
    found = check([need], str(tmp_path / "no-data"), None)
    (line,) = found.missing
    assert line.startswith("the fashion-mnist classifier the metrics measure with is not in the cache")
    assert str(tmp_path / "no-data" / "FashionMNIST" / "raw") in line
    assert "gdpp-bench instruments train --dataset fashion-mnist" in line
    assert found.warnings == []


def _rows(path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_stand_in_weights_are_recorded_warned_once_and_marked(
    tmp_path, offline_home, random_inception_weights
):
    """The sha256 goes into every fidelity protocol; a file that is not the published one gives one
    warning and its values are marked in runs.csv, summary.md and index.html; `evaluate` without
    the weights then refuses fast, before measuring anything."""
    options = _folder_suite(tmp_path)
    weights = ("--inception-weights", str(random_inception_weights))
    done = gdpp_bench("run", *options, "--device", "cpu", "--variants", "bce", *weights)
    assert done.returncode == 0, done.stdout + done.stderr
    warnings = [line for line in done.stderr.splitlines() if "torch-fidelity's published" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: Inception-v3 weights ")
    assert MARK in warnings[0] and str(random_inception_weights) in warnings[0]
    digest = hashlib.sha256(random_inception_weights.read_bytes()).hexdigest()
    run = RunDir(tmp_path / "results" / "mine" / "bce" / "seed-0")
    fidelity = json.loads(run.metrics.read_text())["protocol"]["fidelity"]
    assert fidelity["extractor_weights_sha256"] == digest
    assert fidelity["inception_weights_published"] is False and fidelity["comparability"] == MARK

    report = gdpp_bench("report", "--suite", "mine", "--results", str(tmp_path / "results"), "--no-figures")
    assert report.returncode == 0, report.stdout + report.stderr
    out = tmp_path / "results" / "mine" / "report"
    (row,) = _rows(out / "runs.csv")
    assert row["fidelity_note"] == MARK and row["inception_weights_sha256"] == digest
    summary = (out / "summary.md").read_text()
    assert f"folder: fid, is, kid, precision, recall, density, coverage are {MARK}" in summary
    assert digest[:16] in summary
    assert MARK in (out / "index.html").read_text()
    overview = gdpp_bench("report", "--results", str(tmp_path / "results"), "--no-figures")
    assert overview.returncode == 0, overview.stdout + overview.stderr
    assert MARK in (tmp_path / "results" / "report" / "index.html").read_text()

    before = run.metrics.stat().st_mtime_ns
    started = time.perf_counter()
    again = gdpp_bench("evaluate", *options[2:], "--suite", "mine", "--device", "cpu", "--force")
    elapsed = time.perf_counter() - started
    assert again.returncode == 2 and elapsed < FAST_S, (elapsed, again.stdout + again.stderr)
    line = _one_error_line(again)
    _assert_names_the_inception_weights(line)
    assert line.endswith("(1 run to measure; nothing evaluated)")
    assert run.metrics.stat().st_mtime_ns == before


def test_published_weights_are_neither_warned_about_nor_marked(
    tmp_path, offline_home, random_inception_weights, monkeypatch
):
    need = Needs(("ring8", "", 0), frozenset({"train"}), frozenset(), True)
    assert len(check([need], None, random_inception_weights).warnings) == 1
    digest = published.weights_sha256(random_inception_weights)
    monkeypatch.setattr(published, "PUBLISHED_INCEPTION_SHA256", digest)  # as if it were the file
    assert check([need], None, random_inception_weights).warnings == []
    entry = {"extractor": published.INCEPTION, "extractor_weights_sha256": digest}
    assert published.comparability({"fidelity": entry}) == ""
    monkeypatch.undo()
    assert published.comparability({"fidelity": entry}) == MARK
    assert published.comparability({"fidelity": {"extractor": "gdpp-mnist-classifier"}}) == ""
    # records written before the weights' sha256 was checked are judged by the one they hold
    assert published.inception_sha256({"fidelity": {"extractor": published.INCEPTION}}) == "unknown"


def test_the_weights_sha256_is_computed_once_per_file_version(tmp_path, monkeypatch):
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    weights = tmp_path / published.PUBLISHED_INCEPTION_FILE
    weights.write_bytes(b"a stand-in with the right name")
    hashed = []
    real = published.file_sha256
    monkeypatch.setattr(published, "file_sha256", lambda path: hashed.append(path) or real(path))
    published._sha256.cache_clear()
    digest = published.weights_sha256(weights)
    assert digest == hashlib.sha256(weights.read_bytes()).hexdigest() and len(hashed) == 1
    assert published.weights_sha256(weights) == digest and len(hashed) == 1  # this process
    published._sha256.cache_clear()  # another process: the cache file answers
    assert published.weights_sha256(weights) == digest and len(hashed) == 1
    assert (tmp_path / "cache" / published.SHA256_CACHE_FILE).is_file()
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a new version of the file
    assert published.weights_sha256(weights) == digest and len(hashed) == 2
    weights.write_bytes(b"other contents")
    assert published.weights_sha256(weights) == hashlib.sha256(b"other contents").hexdigest()
    assert len(hashed) == 3


def test_needs_follow_the_metrics_and_the_dataset(tmp_path):
    from gdpp_bench.preflight import needs_of
    from gdpp_bench.suites import expand, load_suite

    def need(suite: str) -> Needs:
        return needs_of(expand(load_suite(suite))[0])

    assert need("cifar10").inception and need("cifar10").splits == {"train", "test"}  # IvOM's test
    assert need("mnist").classifiers == {"mnist"} and not need("mnist").inception
    assert need("stacked-mnist").classifiers == {"mnist"}
    assert need("fashion-mnist").classifiers == {"fashion-mnist"}
    assert need("ring8") == Needs(("ring8", "", 0), frozenset({"train"}), frozenset(), False)
    spec: RunSpec = expand(load_suite("cifar10"))[0]
    assert needs_of(spec, ["ivom"], training=False).splits == {"test"}
    assert not needs_of(spec, ["ivom"], training=False).inception
