"""The cross-suite figure: each variant against the baseline, every suite and metric."""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.ticker import PercentFormatter  # noqa: E402

from gdpp_bench.metrics import HIGHER_IS_BETTER  # noqa: E402
from gdpp_bench.report.figures.base import (  # noqa: E402
    save_figure,
    slant_labels,
    styled,
)
from gdpp_bench.report.tables import (  # noqa: E402
    variant_order,
)

# --- across suites ---------------------------------------------------------------------------------


def relative_change(mean: pd.Series, baseline_mean: pd.Series, metric: pd.Series) -> pd.Series:
    """(mean - baseline) / |baseline|, negated where lower is better: positive = better. NaN for
    metrics without a direction and for a zero baseline (0 where both are 0)."""
    sign = metric.map(
        lambda m: 1.0 if HIGHER_IS_BETTER.get(m) else -1.0 if m in HIGHER_IS_BETTER else math.nan
    )
    difference = mean - baseline_mean
    change = sign * difference / baseline_mean.abs().where(baseline_mean != 0)
    return change.where(~((difference == 0) & (baseline_mean == 0)), 0.0)


@styled
def gdpp_effect_heatmap(summary_by_suite: pd.DataFrame, stem: Path) -> list[Path]:
    """One heat map per variant (facets): rows suite / dataset, columns metrics, each cell the
    relative change of the variant's mean against the baseline's, signed so that positive =
    better, in a diverging colour map centred at 0 (clipped at ±100%) and annotated in %."""
    frame = summary_by_suite.assign(
        change=relative_change(
            summary_by_suite["mean"], summary_by_suite["baseline_mean"], summary_by_suite["metric"]
        )
    )
    frame = frame.dropna(subset=["change"])
    if frame.empty:
        return []
    frame = frame.assign(row=frame["suite"] + " / " + frame["dataset"])
    rows = sorted(frame["row"].unique())
    metrics = [m for m in HIGHER_IS_BETTER if m in set(frame["metric"])]
    variants = variant_order(frame["variant"], None)
    limit = float(np.clip(frame["change"].abs().max(), 0.05, 1.0))
    fig, axes = plt.subplots(
        len(variants),
        1,
        squeeze=False,
        layout="constrained",
        figsize=(0.85 * len(metrics) + 4.2, (0.42 * len(rows) + 0.5) * len(variants) + 2.6),
    )
    for ax, variant in zip(axes[:, 0], variants, strict=True):
        table = (
            frame[frame["variant"] == variant]
            .pivot_table(index="row", columns="metric", values="change", aggfunc="first")
            .reindex(index=rows, columns=metrics)
        )
        text = table.map(lambda c: "" if pd.isna(c) else "0%" if round(100 * c) == 0 else f"{100 * c:+.0f}%")
        with warnings.catch_warnings():  # seaborn 0.13 calls a colormap method matplotlib retires
            warnings.filterwarnings("ignore", "The set_bad function", PendingDeprecationWarning)
            sns.heatmap(
                table,
                ax=ax,
                cmap="RdBu",
                vmin=-limit,
                vmax=limit,
                center=0,
                annot=text,
                fmt="",
                annot_kws={"fontsize": 8},
                linewidths=0.6,
                linecolor="white",
                cbar=False,
            )
        ax.set_facecolor("#e6e6e6")  # cells without a value
        ax.grid(False)
        ax.set_title(variant, loc="left", fontweight="bold")
        ax.set(xlabel="", ylabel="")
        ax.tick_params(axis="y", labelrotation=0)
        # metric names below every facet: labels above the first one collided with its title
        ax.tick_params(axis="x", length=0, top=False, labeltop=False, bottom=True, labelbottom=True)
        slant_labels(ax.get_xticklabels(which="major"), "right")
    colorbar = fig.colorbar(
        axes[0, 0].collections[0],
        ax=axes[:, 0].tolist(),
        shrink=0.8,
        aspect=30,
        format=PercentFormatter(1.0, decimals=0),
    )
    colorbar.set_label(f"change vs baseline, positive = better\n(colours clipped at ±{limit:.0%})")
    fig.suptitle(
        "GDPP effect: each variant's mean relative to the baseline's, per suite and metric\n"
        "(mean − baseline) / |baseline|, negated for lower-is-better metrics; grey = no value"
    )
    return save_figure(fig, stem)
