"""End to end through the command line: the smoke suite twice, the report, and user errors."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from conftest import SHARED_DATASETS, gdpp_bench
from PIL import Image

from gdpp_bench.rundir import RunDir, read_json


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, mnist_classifier):
    """The CI suite, run once for the module (three datasets x two variants x two seeds)."""
    results = tmp_path_factory.mktemp("smoke") / "results"
    first = gdpp_bench("run", "--suite", "smoke", "--results", str(results), "--device", "cpu",
                       "--data-root", str(SHARED_DATASETS))
    return results, first


def test_smoke_run_trains_and_evaluates_every_run(smoke):
    results, first = smoke
    assert first.returncode == 0, first.stderr
    lines = [line for line in first.stdout.splitlines() if "seed-" in line]
    assert len(lines) == 12 and all(": done" in line for line in lines)
    run_dirs = sorted((results / "smoke").glob("*/*/seed-*"))
    assert len(run_dirs) == 12
    for run_dir in run_dirs:
        run = RunDir(run_dir)
        image_run = run_dir.parts[-3] == "mnist"
        status = run.status()
        assert (status["status"], status["step"]) == ("done", 8 if image_run else 200)
        for path in (run.config, run.log, run.checkpoint, run.metrics, run.samples_png):
            assert path.is_file(), path
        if image_run:  # a grid of 16 28x28 digits, and one grid per periodic evaluation
            with Image.open(run.samples_png) as grid:
                assert grid.size == (4 * 30 + 2, 4 * 30 + 2)
            assert run.sample_grid(4).is_file() and run.sample_grid(8).is_file()


def test_second_run_skips_finished_runs(smoke):
    results, _ = smoke
    before = {p: p.stat().st_mtime_ns for p in (results / "smoke").glob("**/checkpoint.pt")}
    second = gdpp_bench("run", "--suite", "smoke", "--results", str(results), "--device", "cpu",
                        "--data-root", str(SHARED_DATASETS))
    assert second.returncode == 0, second.stderr
    lines = [line for line in second.stdout.splitlines() if "seed-" in line]
    assert len(lines) == 12 and all("skipped (done)" in line for line in lines)
    assert before == {p: p.stat().st_mtime_ns for p in before}


def test_report_numbers_come_from_the_runs(smoke):
    results, _ = smoke
    done = gdpp_bench("report", "--suite", "smoke", "--results", str(results))
    assert done.returncode == 0, done.stderr
    report = results / "smoke" / "report"
    runs = pd.read_csv(report / "runs.csv")
    assert len(runs) == 12 and set(runs["status"]) == {"done"}
    summary = pd.read_csv(report / "summary.csv")
    assert set(summary["dataset"]) == {"ring8", "grid25", "mnist"}
    mnist = summary[summary.dataset == "mnist"]
    assert {"classes", "fid", "is", "kid", "precision", "recall", "density", "coverage"} <= set(mnist.metric)
    for (dataset, variant), group in runs[runs["dataset"] != "mnist"].groupby(["dataset", "variant"]):
        for metric in ("modes", "hq_percent"):
            row = summary[(summary.dataset == dataset) & (summary.variant == variant)
                          & (summary.metric == metric)].iloc[0]
            assert row["mean"] == pytest.approx(group[metric].mean())
            assert row["std"] == pytest.approx(group[metric].std(ddof=1))
            assert row["n"] == 2
    # every number in runs.csv is the one in that run's metrics.json
    import json
    for record in runs[runs["dataset"] != "mnist"].itertuples():
        values = json.loads((results / "smoke" / record.run / "metrics.json").read_text())["values"]
        assert record.modes == values["modes"] and record.hq_percent == values["hq_percent"]
    markdown = (report / "summary.md").read_text()
    assert "### ring8" in markdown and "bce+gdpp@1" in markdown
    assert (report / "index.html").is_file() and (report / "summary.tex").is_file()
    assert (report / "significance.csv").is_file()
    for dataset in ("ring8", "grid25"):
        with Image.open(report / "figures" / f"samples_{dataset}.png") as image:
            assert image.width > 600 and image.height > 400
            assert len(np.unique(np.asarray(image.convert("L")))) > 10  # not a blank canvas


def test_smoke_image_runs_record_every_metric_with_its_protocol(smoke):
    results, _ = smoke
    import json
    for path in (results / "smoke" / "mnist").glob("*/seed-*/metrics.json"):
        record = json.loads(path.read_text())
        assert set(record["protocol"]) == {"mnist_classes", "fidelity"}
        fidelity = record["protocol"]["fidelity"]
        assert fidelity["extractor"] == "gdpp-mnist-classifier"
        assert (fidelity["generated_samples"], fidelity["real_samples"]) == (500, 1000)
        assert fidelity["reference_split"] == "train" and fidelity["checkpoint"] == "checkpoint.pt"
        assert len(fidelity["extractor_weights_sha256"]) == 64 and fidelity["wall_s"] > 0
        assert fidelity["values"] == ["fid", "is", "is_std", "kid", "kid_std", "precision", "recall",
                                      "density", "coverage"]
        assert all(math.isfinite(record["values"][k]) for k in fidelity["values"])
        assert record["values"]["fid"] > 0


def test_evaluate_reuses_metrics_unless_forced(smoke):
    results, _ = smoke
    metrics = next((results / "smoke").glob("**/metrics.json"))
    stamp = metrics.stat().st_mtime_ns
    assert gdpp_bench("evaluate", "--suite", "smoke", "--results", str(results)).returncode == 0
    assert metrics.stat().st_mtime_ns == stamp
    forced = gdpp_bench("evaluate", "--suite", "smoke", "--results", str(results), "--force")
    assert forced.returncode == 0 and metrics.stat().st_mtime_ns != stamp


def test_list_shows_every_registry():
    shown = gdpp_bench("list")
    assert shown.returncode == 0
    for expected in ("bce", "hinge", "wgan-gp", "gdpp-si", "mlp2d", "ring8", "grid25",
                     "modes2d", "smoke", "synthetic"):
        assert expected in shown.stdout


@pytest.mark.parametrize("args,message", [
    (["run", "--suite", "nope"], "error: unknown suite 'nope'; known: "),
    (["run", "--suite", "smoke", "--variants", "bce+gdp"],
     "error: unknown diversity term or discriminator modifier 'gdp'"),
    (["run", "--suite", "smoke", "--variants", "pacgan3"], "error: batch size 128 is not a multiple of"),
    (["run", "--suite", "smoke", "--datasets", "cifar10"], "error: --datasets: cifar10 not in suite"),
    (["run", "--suite", "smoke", "--variants", "bce+gdpp@x"], "error: malformed weight 'x'"),
    (["run", "--suite", "smoke", "--seeds", "0,a"], "error: --seeds takes integers"),
    (["run", "--suite", "smoke", "--steps", "0"], "error: --steps must be >= 1"),
    (["run", "--suite", "smoke", "--device", "tpu"], "error: "),
    (["report", "--suite", "ring8", "--results", "nowhere"], "error: no results for suite 'ring8'"),
])
def test_user_errors_are_one_line_and_exit_2(tmp_path, args, message):
    done = gdpp_bench(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_corrupt_checkpoint_is_named_and_left_alone(tmp_path):
    results = tmp_path / "results"
    args = ["run", "--suite", "ring8", "--results", str(results), "--device", "cpu",
            "--variants", "bce", "--seeds", "0", "--steps", "20", "--no-cuda-graph"]
    assert gdpp_bench(*args).returncode == 0
    run_dir = RunDir(results / "ring8" / "bce" / "seed-0")
    assert read_json(run_dir.config)["spec"]["train"]["cuda_graph"] is False
    run_dir.done.unlink()
    run_dir.metrics.unlink()
    run_dir.checkpoint.write_bytes(b"not a checkpoint")
    done = gdpp_bench(*args)
    assert done.returncode == 2
    assert done.stderr.startswith(f"error: corrupt checkpoint {run_dir.checkpoint}")
    assert "delete it to restart" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert run_dir.checkpoint.read_bytes() == b"not a checkpoint"


def test_metrics_json_states_the_protocol(smoke):
    import json

    results, _ = smoke
    record = json.loads((results / "smoke" / "ring8" / "bce" / "seed-0" / "metrics.json").read_text())
    protocol = record["protocol"]["modes2d"]
    assert protocol["generated_samples"] == 1000
    assert protocol["checkpoint"] == "checkpoint.pt" and protocol["checkpoint_step"] == 200
    assert set(record["values"]) == {"modes", "hq_percent", "kl_uniform"}
    assert all(v is None or math.isfinite(v) for v in record["values"].values())
