"""End to end through the command line: the smoke suite twice, the report, and user errors."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from browser import chromium, image_widths, wrapped_cells
from conftest import DATA_ROOT, gdpp_bench, result_lines
from PIL import Image

from gdpp_bench.report.figures.base import DPI, STYLE
from gdpp_bench.rundir import RunDir, read_json


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, mnist_classifier):
    """The CI suite, run once for the module (three datasets x two variants x two seeds)."""
    results = tmp_path_factory.mktemp("smoke") / "results"
    first = gdpp_bench(
        "run", "--suite", "smoke", "--results", str(results), "--device", "cpu", "--data-root", str(DATA_ROOT)
    )
    return results, first


def test_smoke_run_trains_and_evaluates_every_run(smoke):
    results, first = smoke
    assert first.returncode == 0, first.stderr
    lines = result_lines(first.stdout)
    assert len(lines) == 12 and all(": done  " in line for line in lines)
    assert first.stdout.splitlines()[-1] == "suite smoke: 12 done, 0 skipped, 0 failed, 0 incomplete"
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
    second = gdpp_bench(
        "run", "--suite", "smoke", "--results", str(results), "--device", "cpu", "--data-root", str(DATA_ROOT)
    )
    assert second.returncode == 0, second.stderr
    lines = result_lines(second.stdout)
    assert len(lines) == 12 and all("skipped (done)" in line for line in lines)
    assert second.stdout.splitlines()[-1] == "suite smoke: 0 done, 12 skipped, 0 failed, 0 incomplete"
    assert before == {p: p.stat().st_mtime_ns for p in before}


@pytest.fixture(scope="module")
def smoke_report(smoke) -> Path:
    """The smoke suite's report, with figures, beside its run folders (made once for the module)."""
    results, _ = smoke
    done = gdpp_bench("report", "--suite", "smoke", "--results", str(results))
    assert done.returncode == 0, done.stderr
    return results / "smoke" / "report"


def test_report_numbers_come_from_the_runs(smoke, smoke_report, tmp_path):
    results, _ = smoke
    report = smoke_report
    runs = pd.read_csv(report / "runs.csv")
    assert len(runs) == 12 and set(runs["status"]) == {"done"}
    summary = pd.read_csv(report / "summary.csv")
    assert set(summary["dataset"]) == {"ring8", "grid25", "mnist"}
    mnist = summary[summary.dataset == "mnist"]
    assert {"classes", "fid", "is", "kid", "precision", "recall", "density", "coverage"} <= set(mnist.metric)
    for (dataset, variant), group in runs[runs["dataset"] != "mnist"].groupby(["dataset", "variant"]):
        for metric in ("modes", "hq_percent"):
            row = summary[
                (summary.dataset == dataset) & (summary.variant == variant) & (summary.metric == metric)
            ].iloc[0]
            assert row["mean"] == pytest.approx(group[metric].mean())
            assert row["std"] == pytest.approx(group[metric].std(ddof=1))
            assert row["n"] == 2
    # a run's headline is the mean of its last 4 periodic evaluations (evals.csv); the final
    # checkpoint's numbers (metrics.json) stay beside it
    import json

    for record in runs.itertuples():
        run = results / "smoke" / record.run
        values = json.loads((run / "metrics.json").read_text())["values"]
        window = pd.read_csv(run / "evals.csv").tail(4)
        metric = "classes" if record.dataset == "mnist" else "modes"
        assert getattr(record, f"final_{metric}") == values[metric]
        assert getattr(record, metric) == pytest.approx(window[metric].mean())
        assert record.headline.startswith(f"mean of the last {len(window)} evaluations")
    claims = (report / "claims.md").read_text()
    assert "| bce+gdpp@1 vs bce | modes ↑ | n too small to decide: at n = 2" in claims
    # --last-k 1: the last evaluation, which measured the final checkpoint; run folders untouched
    before = {p: p.stat().st_mtime_ns for p in (results / "smoke").glob("*/*/seed-*/*")}
    again = gdpp_bench(
        *("report", "--suite", "smoke", "--results", str(results), "--last-k", "1", "--no-figures"),
        *("--out", str(tmp_path / "last-1")),
    )
    assert again.returncode == 0, again.stderr
    last = pd.read_csv(tmp_path / "last-1" / "runs.csv")
    assert (last["modes"].dropna() == last["final_modes"].dropna()).all()
    assert before == {p: p.stat().st_mtime_ns for p in before}
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
        assert (fidelity["generated_samples"], fidelity["real_samples"]) == (200, 500)
        assert fidelity["reference_split"] == "train" and fidelity["checkpoint"] == "checkpoint.pt"
        assert len(fidelity["extractor_weights_sha256"]) == 64 and fidelity["wall_s"] > 0
        assert fidelity["values"] == [
            "fid",
            "is",
            "is_std",
            "kid",
            "kid_std",
            "precision",
            "recall",
            "density",
            "coverage",
        ]
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
    for expected in (
        "bce",
        "hinge",
        "wgan-gp",
        "gdpp-si",
        "mlp2d",
        "ring8",
        "grid25",
        "modes2d",
        "smoke",
        "synthetic",
    ):
        assert expected in shown.stdout


@pytest.mark.parametrize(
    "args,message",
    [
        (["run", "--suite", "nope"], "error: unknown suite 'nope'; known: "),
        (
            ["run", "--suite", "smoke", "--variants", "bce+gdp"],
            "error: unknown diversity term or discriminator modifier 'gdp'",
        ),
        (["run", "--suite", "smoke", "--variants", "pacgan3"], "error: batch size 128 is not a multiple of"),
        (["run", "--suite", "smoke", "--datasets", "cifar10"], "error: --datasets: cifar10 not in suite"),
        (["run", "--suite", "smoke", "--variants", "bce+gdpp@x"], "error: malformed weight 'x'"),
        (["run", "--suite", "smoke", "--seeds", "0,a"], "error: --seeds takes integers"),
        (["run", "--suite", "smoke", "--seeds", "-1"], "error: --seeds: a seed must be an integer in [0,"),
        (["run", "--suite", "smoke", "--seeds", "0,9223372036854775808"], "error: --seeds: a seed must be"),
        (["run", "--suite", "smoke", "--seeds", "4294967296", "--dry-run"], "error: --seeds: a seed must be"),
        (["sample", "results/s/bce/seed-0", "--out", "x.csv", "--seed", "-1"], "error: Invalid value"),
        (["run", "--suite", "smoke", "--steps", "0"], "error: --steps must be >= 1"),
        (["run", "--suite", "smoke", "--device", "tpu"], "error: "),
        (["report", "--suite", "ring8", "--results", "nowhere"], "error: no results for suite 'ring8'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path, args, message):
    done = gdpp_bench(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert done.stderr.startswith(message)
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert not (tmp_path / "results").exists()


def test_corrupt_checkpoint_is_named_and_left_alone(tmp_path):
    results = tmp_path / "results"
    args = [
        "run",
        "--suite",
        "ring8",
        "--results",
        str(results),
        "--device",
        "cpu",
        "--variants",
        "bce",
        "--seeds",
        "0",
        "--steps",
        "20",
        "--no-cuda-graph",
    ]
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


def test_bare_command_prints_help_and_version_works():
    bare = gdpp_bench()
    assert bare.returncode == 0 and bare.stdout.startswith("Usage: gdpp-bench")
    assert "run" in bare.stdout and "report" in bare.stdout and not bare.stderr
    version = gdpp_bench("--version")
    assert version.returncode == 0 and version.stdout.strip() == "gdpp-bench, version 0.1.0"


def test_list_shows_each_suite_with_its_description():
    shown = gdpp_bench("list").stdout.splitlines()
    suites = shown[shown.index("suites:") + 1 :]
    assert any(line.split() == ["ring8", "8-mode", "ring,", *line.split()[3:]] for line in suites)
    smoke = next(line for line in suites if line.split()[0] == "smoke")
    assert "CI smoke test" in smoke


def test_progress_lines_name_the_run_its_folder_and_the_step(tmp_path):
    done = gdpp_bench(
        "run",
        "--suite",
        "ring8",
        "--device",
        "cpu",
        "--variants",
        "bce",
        "--seeds",
        "0",
        "--steps",
        "500",
        "--results",
        str(tmp_path),
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[1] == f"bce/seed-0: training of 500 in {tmp_path / 'ring8' / 'bce' / 'seed-0'}"
    progress = [line for line in lines if " step " in line]
    assert [line.split()[2] for line in progress] == ["250/500", "500/500"]  # log_every = 250
    assert all(" it/s  ETA " in line and "d_loss=" in line for line in progress)


def test_a_terminal_gets_a_progress_bar(monkeypatch, capsys):
    from gdpp_bench import progress

    monkeypatch.setattr("sys.stderr.isatty", lambda: True)
    assert progress.choose_style("auto", 1) == "bar" and progress.choose_style("auto", 2) == "lines"
    shown = progress.RunProgress(total=100, start=20, style="bar")
    shown.logged(60, {"d_loss": 1.25, "g_loss": 0.5})
    shown.close()
    err = capsys.readouterr().err
    assert "60/100" in err and "d_loss=1.25" in err


def test_training_an_instrument_says_so(tmp_path, monkeypatch, mnist_root, capsys):
    from gdpp_bench.metrics.instruments import ClassifierConfig, load_or_train_classifier

    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path))
    with pytest.warns(UserWarning, match="below"):
        load_or_train_classifier("mnist", mnist_root, config=ClassifierConfig(epochs=1, train_size=64))
    assert "training the mnist classifier the metrics use (once; cached as" in capsys.readouterr().out


def test_the_report_page_in_a_real_browser(smoke_report):
    """index.html as a reader meets it in Chromium: every image decodes, no console error, captions
    say what a figure shows, the provenance names the code, and the page is not blank."""
    import io

    page = smoke_report / "index.html"
    with chromium() as browser:
        browser.get(page.as_uri())
        images = browser.execute_script(
            "return Array.from(document.images).map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])"
        )
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
        captions = browser.execute_script(
            "return Array.from(document.querySelectorAll('figcaption')).map(c => c.textContent)"
        )
        text = browser.find_element("tag name", "body").text  # what is shown
        everything = browser.execute_script("return document.body.textContent")  # closed <details> too
        links = browser.execute_script(
            "return Array.from(document.querySelectorAll('details a')).map(a => a.getAttribute('href'))"
        )
        shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("L")
        widths = image_widths(browser)
        browser.execute_script("document.querySelectorAll('details').forEach(d => d.open = true)")
        wrapped = wrapped_cells(browser)  # every table, the closed ones opened
    assert len(images) >= 10 and all(complete and width > 0 for _, complete, width in images), images
    assert errors == []
    assert captions and not any(caption.split(" (")[0].endswith(".png") for caption in captions)
    assert any(caption.startswith("Periodic evaluations on ring8") for caption in captions)
    assert "Provenance" in text and "git revision" in text and "torch" in text
    assert "ring8/bce/seed-0" in everything
    assert "../ring8/bce/seed-0/" in links  # the report sits beside the run folders: linked
    # multi-panel figures (one row of panels each) across the page's column, their tick labels
    # at least 11 pixels high at 100 % zoom; every table cell on one line
    tick_points = STYLE["xtick.labelsize"]
    rows = [w for w in widths if Path(w[0]).name.split("_")[0] in ("training", "evals", "modes")]
    assert {Path(w[0]).stem for w in rows} >= {
        "training_ring8",
        "evals_ring8",
        "modes_grid25",
        "evals_mnist_1-of-2",
    }
    for src, shown, natural, column in rows:
        assert shown >= 0.97 * column, src
        assert shown / natural * DPI / 72 * tick_points >= 11, src
    assert max(shown for src, shown, _, _ in widths if src not in {r[0] for r in rows}) < 0.6 * rows[0][3]
    assert wrapped == []
    # a metric with one value in every run: one line, no column or figure
    assert "The same value in every run, so no column or figure: precision = 0, recall = 0" in text
    assert not any("precision" in src for src, *_ in widths)
    # the published numbers beside ours, labelled
    assert "GDPP-GAN, GDPP paper (Elfeki et al., ICML 2019)" in text and "Rows marked published" in text
    extrema = shot.getextrema()
    assert extrema[1] - extrema[0] > 100 and np.asarray(shot).std() > 5  # drawn, not blank
