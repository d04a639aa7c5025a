"""Adding a metric or a diversity term is one registered definition: a throw-away metric and a
throw-away term registered here (not in the package) show up in `list`, train and evaluate in a
run, and reach runs.csv, the summary with their direction, claims.md and a figure."""

from __future__ import annotations

import pandas as pd
import pytest
from conftest import gdpp_bench

from gdpp_bench.losses import TERMS
from gdpp_bench.metrics import METRICS, Value

SUITE = """name = "plugged"
dataset = "ring8"
model = "mlp2d"
variants = ["bce", "bce+spread"]
seeds = [0, 1]
[train]
steps = 20
batch_size = 64
log_every = 10
checkpoint_every = 10
update = "simultaneous"
[eval]
metrics = ["modes2d", "spread_metric"]
samples = 300
[decision]
descriptive = true
"""


def spread_metric(ctx):
    """Throw-away metric: the generated points' standard deviation."""
    return {"point_spread": ctx.samples().std().item()}


def spread_term(real, fake, generated):
    """Throw-away term: minus the batch's spread."""
    return -generated.samples.float().std()


@pytest.fixture
def registered():
    METRICS.register("spread_metric", values={"point_spread": Value(True, (0, None))})(spread_metric)
    TERMS.register("spread")(spread_term)
    yield
    METRICS.unregister("spread_metric")
    TERMS.unregister("spread")


def test_a_metric_and_a_term_registered_outside_the_package_work_everywhere(tmp_path, registered):
    listing = gdpp_bench("list")
    assert "spread_metric" in listing.stdout and "spread" in listing.stdout
    suite = tmp_path / "plugged.toml"
    suite.write_text(SUITE)
    results = tmp_path / "results"
    run = gdpp_bench("run", "--suite", str(suite), "--device", "cpu", "--results", str(results))
    assert run.returncode == 0, run.stderr
    report = gdpp_bench("report", "--suite", "plugged", "--results", str(results))
    assert report.returncode == 0, report.stderr
    out = results / "plugged" / "report"
    runs = pd.read_csv(out / "runs.csv")
    assert runs["point_spread"].notna().all() and set(runs["term"].fillna("")) == {"", "spread"}
    summary = pd.read_csv(out / "summary.csv")
    spread = summary[summary["metric"] == "point_spread"]
    assert len(spread) == 2 and spread["higher_is_better"].all()
    assert "| bce+spread@1 vs bce | point_spread ↑ |" in (out / "claims.md").read_text()
    assert (out / "figures" / "points_ring8_point_spread.png").is_file()
    log = (results / "plugged" / "bce+spread@1" / "seed-0" / "log.csv").read_text()
    assert log.splitlines()[0].split(",")[6] == "spread"  # the term's value is logged
