"""Figures of generated samples: image grids side by side and 2D samples over the mode centres."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from gdpp_bench.data import DATASETS, kind_of  # noqa: E402
from gdpp_bench.report.figures.base import (  # noqa: E402
    finished_runs,
    legend_outside,
    panel_grid,
    save_figure,
    styled,
    suptitle,
)
from gdpp_bench.report.tables import (  # noqa: E402
    DEFAULT_BASELINE,
    variant_order,
)
from gdpp_bench.rundir import RunDir  # noqa: E402
from gdpp_bench.samples import draw_samples_2d  # noqa: E402

# --- samples ----------------------------------------------------------------------------------------


def _common_seed(done: pd.DataFrame) -> int:
    """The smallest seed every variant finished; failing that, the smallest of those finished by
    the most variants."""
    counts = done.groupby("seed")["variant"].nunique()
    best = counts[counts == counts.max()]
    return int(best.index.min())


@styled
def sample_grids(
    runs: pd.DataFrame,
    suite_dir: Path,
    dataset: str,
    stem: Path,
    seed: int | None = None,
    baseline: str = DEFAULT_BASELINE,
) -> list[Path]:
    """Image datasets: each variant's final fixed-noise sample grid (samples.png) for one seed,
    side by side (the smallest seed every variant finished, unless `seed` is given)."""
    if kind_of(dataset) != "image":
        return []
    done = finished_runs(runs, dataset)
    done = done[[RunDir(suite_dir / run).samples_png.is_file() for run in done["run"]]]
    if done.empty:
        return []
    seed = _common_seed(done) if seed is None else seed
    chosen = done[done["seed"] == seed]
    if chosen.empty:
        return []
    order = variant_order(chosen["variant"], baseline)
    fig, axes = panel_grid(len(order), 4, (3.3, 3.5))
    for ax, variant in zip(axes, order, strict=True):
        record = chosen[chosen["variant"] == variant].iloc[0]
        ax.imshow(plt.imread(RunDir(suite_dir / record["run"]).samples_png), interpolation="nearest")
        ax.set_title(variant)
        ax.set_axis_off()
    missing = sorted(set(done["variant"]) - set(order))
    notes = [f"not finished with seed {seed}: {', '.join(missing)}"] if missing else []
    suptitle(
        fig, runs, chosen, f"fixed-noise samples after training, seed {seed}", protocol=False, notes=notes
    )
    return save_figure(fig, stem)


@styled
def samples_over_modes(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """2D datasets: each run's evaluation samples over the true mode centres; one column per
    variant, one row per seed, each panel titled with its modes and high-quality share."""
    if kind_of(dataset) != "2d":
        return []
    data: Any = DATASETS.get(dataset)  # a 2D mixture: centers_tensor() and std
    done = finished_runs(runs, dataset)
    done = done[[RunDir(suite_dir / run).eval_samples.is_file() for run in done["run"]]]
    if done.empty:
        return []
    order = variant_order(done["variant"], baseline)
    seeds = sorted(done["seed"].unique())
    centers = data.centers_tensor()
    fig, axes = plt.subplots(
        len(seeds),
        len(order),
        squeeze=False,
        layout="constrained",
        sharex=True,
        sharey=True,
        figsize=(2.7 * len(order) + 1.0, 2.9 * len(seeds) + 0.9),
    )
    for (row, seed), (col, variant) in ((r, c) for r in enumerate(seeds) for c in enumerate(order)):
        ax = axes[row][col]
        match = done[(done["variant"] == variant) & (done["seed"] == seed)]
        if match.empty:
            ax.set_axis_off()
            ax.set_title(f"{variant}, seed {seed}\nno samples", fontsize=9)
            continue
        record = match.iloc[0]
        samples = torch.load(RunDir(suite_dir / record["run"]).eval_samples, weights_only=True)
        draw_samples_2d(
            ax,
            samples,
            centers,
            f"{variant}, seed {seed}\n"
            f"modes {record.get('modes', math.nan):.0f}, "
            f"HQ {record.get('hq_percent', math.nan):.1f}%",
        )
        ax.tick_params(labelsize=7)
    handles = [
        Line2D([], [], marker="o", linestyle="", color="tab:blue", label="generated"),
        Line2D([], [], marker="x", linestyle="", color="tab:red", label="mode centre"),
    ]
    legend_outside(fig, handles, [str(h.get_label()) for h in handles])
    suptitle(fig, runs, done, f"evaluation samples ({len(samples):,} per run) over the mode centres")
    return save_figure(fig, stem)
