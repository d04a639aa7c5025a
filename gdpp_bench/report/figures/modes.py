"""Figures of mode histograms: 2D mode shares and Stacked-MNIST sorted triples."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, PercentFormatter  # noqa: E402

from gdpp_bench.data import DATASETS, kind_of  # noqa: E402
from gdpp_bench.metrics.modes import mode_assignment  # noqa: E402
from gdpp_bench.report.figures.base import (  # noqa: E402
    ci_frame,
    finished_runs,
    legend_outside,
    palette,
    panel_parts,
    panel_row,
    part_stem,
    save_figure,
    stacked_histograms,
    styled,
    suptitle,
)
from gdpp_bench.report.tables import (  # noqa: E402
    DEFAULT_BASELINE,
    variant_order,
)
from gdpp_bench.rundir import RunDir  # noqa: E402

# --- mode histograms -------------------------------------------------------------------------------


def _mode_shares_2d(done: pd.DataFrame, suite_dir: Path, dataset: str) -> pd.DataFrame:
    """Per run and mode: the share of its evaluation samples that are high-quality samples of
    that mode (within 3 std of its centre)."""
    data: Any = DATASETS.get(dataset)  # a 2D mixture: centers_tensor() and std
    centers = data.centers_tensor()
    frames = []
    for record in done.itertuples():
        path = RunDir(suite_dir / record.run).eval_samples
        if not path.is_file():
            continue
        samples = torch.load(path, weights_only=True)
        nearest, high_quality = mode_assignment(samples, centers, data.std)
        counts = torch.bincount(nearest[high_quality], minlength=len(centers))
        frames.append(
            pd.DataFrame(
                {
                    "variant": record.variant,
                    "seed": record.seed,
                    "mode": range(len(centers)),
                    "share": (counts.double() / len(samples)).numpy(),
                }
            )
        )
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _mode_bars(
    runs: pd.DataFrame, done: pd.DataFrame, shares: pd.DataFrame, stem: Path, baseline: str
) -> list[Path]:
    """Per variant a panel of bars: mean share of each mode over seeds with 95% t interval (cut
    to [0, 1]), in rows of panels (`panel_parts`) on one y axis from 0."""
    order = variant_order(shares["variant"], baseline)
    colors = palette(order)
    modes = int(shares["mode"].max()) + 1
    stats = {
        variant: ci_frame(shares[shares["variant"] == variant], ["mode"], "share", (0.0, 1.0))
        for variant in order
    }
    top = max([1 / modes, *(frame[["mean", "high"]].max().max() for frame in stats.values())])
    parts = panel_parts(order)
    written: list[Path] = []
    for number, part in enumerate(parts, start=1):
        fig, axes = panel_row(len(part), 2.9, sharey=True)
        for ax, variant in zip(axes, part, strict=True):
            frame = stats[variant]
            spread = frame["high"] > frame["low"]  # no bar for one seed or seeds that agree
            ax.bar(frame["mode"], frame["mean"], color=colors[variant], width=0.8)
            ax.errorbar(
                frame["mode"][spread],
                frame["mean"][spread],
                fmt="none",
                ecolor="black",
                yerr=[(frame["mean"] - frame["low"])[spread], (frame["high"] - frame["mean"])[spread]],
                capsize=2,
                elinewidth=0.9,
            )
            ax.axhline(1 / modes, color="black", linestyle="--", linewidth=1)
            ax.set_title(f"{variant}\nHQ {100 * frame['mean'].sum():.1f}% of samples")
            ax.set_xlabel("mode")
            ax.set_xlim(-0.7, modes - 0.3)
            ax.set_ylim(0, 1.08 * top)  # a share is never below 0 %
            ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=None))
            ax.set_xticks(range(0, modes, max(1, modes // 8)))
        axes[0].set_ylabel("share of samples")
        handles = [
            Patch(color="grey", label="mean over seeds, 95% t interval"),
            Line2D([], [], color="black", linestyle="--", label=f"uniform (1/{modes})"),
        ]
        legend_outside(fig, handles, [str(h.get_label()) for h in handles])
        what = "high-quality samples (within 3 std) per mode, as a share of all evaluation samples"
        suptitle(
            fig,
            runs,
            done[done["variant"].isin(part)],
            what if len(parts) == 1 else f"{what} ({number} of {len(parts)})",
        )
        written += save_figure(fig, part_stem(stem, number, len(parts)))
    return written


def _triple_ranks(
    runs: pd.DataFrame, done: pd.DataFrame, histograms: pd.DataFrame, stem: Path, baseline: str
) -> list[Path]:
    """Stacked-MNIST: per variant the triples' counts sorted from most to least frequent, mean
    over seeds rank by rank (log-log; a line ends at the last triple generated); the uniform
    count as reference."""
    order = variant_order(histograms["variant"], baseline)
    colors = palette(order)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    uniform = []
    for variant in order:
        counts = np.stack(histograms.loc[histograms["variant"] == variant, "counts"].to_list())
        ranked = -np.sort(-counts, axis=1)
        mean = ranked.mean(axis=0)
        covered = (counts > 0).sum(axis=1).mean()
        ranks = np.arange(1, len(mean) + 1)
        ax.step(
            ranks,
            np.where(mean > 0, mean, np.nan),
            where="post",
            color=colors[variant],
            linewidth=1.6,
            label=f"{variant} ({covered:.0f})",
        )
        uniform.append(counts.sum(axis=1).mean() / counts.shape[1])
    ax.axhline(
        np.mean(uniform),
        color="black",
        linestyle="--",
        linewidth=1,
        label=f"uniform ({np.mean(uniform):.3g} per triple)",
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(0.9, histograms["counts"].iloc[0].size * 1.1)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}"))
    ax.set_xlabel("rank of the triple, most frequent first (log scale)")
    ax.set_ylabel("generated samples (log scale)")
    legend_outside(fig, *ax.get_legend_handles_labels(), title="variant (triples covered)")
    suptitle(
        fig, runs, done[done["variant"].isin(order)], "samples per digit triple, ranked, mean over seeds"
    )
    return save_figure(fig, stem)


@styled
def mode_histograms(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """How evenly the modes are covered: 2D datasets, the share of evaluation samples that are
    high-quality samples of each mode; Stacked-MNIST, the ranked samples per digit triple."""
    done = finished_runs(runs, dataset)
    if done.empty:
        return []
    if kind_of(dataset) == "2d":
        shares = _mode_shares_2d(done, suite_dir, dataset)
        return _mode_bars(runs, done, shares, stem, baseline) if not shares.empty else []
    histograms = stacked_histograms(done, suite_dir)
    return _triple_ranks(runs, done, histograms, stem, baseline) if not histograms.empty else []
