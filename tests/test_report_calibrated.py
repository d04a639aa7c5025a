"""The report says beside its numbers what each value can show: the defects the calibration ladder
found it sees (its registered `sees`), in summary.md under each table and in index.html's protocol,
for the metric that measured it (`modes` of modes2d is not Stacked-MNIST's `modes`)."""

from __future__ import annotations

import pytest
from test_report_tuned import ring, spec, write_run

from gdpp_bench.metrics import METRICS, entry_sees, sees_phrase
from gdpp_bench.report import build_report
from gdpp_bench.report.calibrated import dataset_sees
from gdpp_bench.report.tables import collect_runs
from gdpp_bench.rundir import RunDir, read_json, write_json


def _ring_suite(suite_dir):
    for variant in ("bce", "bce+gdpp@1"):
        for seed in range(3):
            values = ring(kl=0.1 * seed + (variant == "bce"), modes=6 + seed)
            write_run(suite_dir, spec(variant, seed), values)


def test_summary_and_protocol_say_what_each_value_sees(tmp_path):
    suite_dir = tmp_path / "suite"
    _ring_suite(suite_dir)
    written = build_report(suite_dir, tmp_path / "report", "bce", with_figures=False)
    summary = written["summary.md"].read_text()
    seen = entry_sees("modes2d")
    assert seen, "modes2d is calibrated (results/calibration/)"
    for value in ("modes", "kl_uniform", "hq_percent"):
        assert f"`{value}` {sees_phrase(seen[value])}" in summary
    page = written["index.html"].read_text()
    assert f"calibration: modes {sees_phrase(seen['modes'])}" in page


def test_a_value_is_read_from_the_metric_that_measured_it(tmp_path):
    @METRICS.register("fake_modes", values={}, sees={"modes": ("blur",)})
    def fake_modes(ctx):  # pragma: no cover - never evaluated
        return {}

    try:
        suite_dir = tmp_path / "suite"
        write_run(suite_dir, spec("bce", 0, prefix="ring8/"), ring(kl=0.1))
        other = spec("bce", 0, dataset="grid25", prefix="grid25/")
        write_run(suite_dir, other, ring(kl=0.2))
        metrics = RunDir(suite_dir / other.key).metrics
        write_json(metrics, {**read_json(metrics), "protocol": {"fake_modes": {"protocol": "quick"}}})
        found = dataset_sees(collect_runs(suite_dir), suite_dir)
        assert found["ring8"]["modes"] == entry_sees("modes2d")["modes"]
        assert found["grid25"] == {"modes": ("blur",)}
    finally:
        METRICS.unregister("fake_modes")


@pytest.mark.parametrize("seen, phrase", [((), "sees none"), (("noise",), "sees only noise")])
def test_sees_phrase(seen, phrase):
    assert sees_phrase(seen) == phrase
