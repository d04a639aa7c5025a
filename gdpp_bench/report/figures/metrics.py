"""Figures of final (headline) metric values: per variant, against a term weight, against CPU time."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import NullLocator  # noqa: E402

from gdpp_bench.losses import parse_variant  # noqa: E402
from gdpp_bench.report.figures.base import (  # noqa: E402
    BAND_ALPHA,
    band,
    ci_frame,
    finished_runs,
    legend_outside,
    metric_label,
    palette,
    plain_log_axis,
    published_lines,
    save_figure,
    styled,
    suptitle,
    variant_ticks,
    widen_flat_axis,
)
from gdpp_bench.report.stats import mean_ci  # noqa: E402
from gdpp_bench.report.tables import (  # noqa: E402
    DEFAULT_BASELINE,
    constant_metrics,
    metric_bounds,
    variant_order,
)


def _drawn(done: pd.DataFrame, metric: str) -> bool:
    """Whether `metric` gets a figure: measured in some finished run, and not one value in all
    of them (the page says that value in a line)."""
    return metric in done.columns and done[metric].notna().any() and metric not in constant_metrics(done)


# --- final metrics ---------------------------------------------------------------------------------


@styled
def metric_points(
    runs: pd.DataFrame, dataset: str, metric: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """One metric per variant: every seed as a dot, the mean with its 95% t interval as a bar
    beside the dots (no bar with one seed), and the baseline's mean as a dashed reference line.
    A finished variant without a finite value is kept on the axis, marked 'no value'."""
    done = finished_runs(runs, dataset)
    if not _drawn(done, metric):
        return []
    order = variant_order(done["variant"], baseline)
    colors = palette(order)
    shown = done.dropna(subset=[metric])
    stats = ci_frame(shown, ["variant"], metric, metric_bounds(metric, dataset)).set_index("variant")
    fig, ax = plt.subplots(figsize=(max(5.0, 0.85 * len(order) + 2.5), 4.6), layout="constrained")
    rng = np.random.default_rng(0)  # the same jitter every time the report is built
    for position, variant in enumerate(order):
        if variant not in stats.index:
            ax.text(
                position,
                0.02,
                "no value",
                transform=ax.get_xaxis_transform(),
                ha="center",
                color="grey",
                fontsize=8,
            )
            continue
        values = shown.loc[shown["variant"] == variant, metric].to_numpy()
        offsets = position - 0.12 + rng.uniform(-0.09, 0.09, len(values))
        ax.scatter(
            offsets,
            values,
            s=28,
            color=colors[variant],
            alpha=0.75,
            edgecolor="white",
            linewidth=0.5,
            zorder=2,
        )
        mean, low, high = stats.loc[variant, ["mean", "low", "high"]]
        yerr = None if math.isnan(low) else [[mean - low], [high - mean]]
        ax.errorbar(
            position + 0.15,
            mean,
            yerr=yerr,
            fmt="D",
            color="black",
            markersize=6,
            capsize=4,
            elinewidth=1.4,
            zorder=3,
        )
    handles = [
        Line2D([], [], marker="o", linestyle="", color="grey", label="one seed"),
        Line2D([], [], marker="D", color="black", label="mean, 95% t interval"),
    ]
    if baseline in stats.index:
        ax.axhline(stats.loc[baseline, "mean"], color="grey", linestyle="--", linewidth=1, zorder=1)
        handles.append(Line2D([], [], color="grey", linestyle="--", label=f"{baseline} mean"))
    references, notes = published_lines(ax, dataset, metric)
    widen_flat_axis(ax, metric_bounds(metric, dataset))
    ax.set_xlabel("variant")
    ax.set_ylabel(metric_label(metric))
    legend_outside(fig, handles + references, [str(h.get_label()) for h in handles + references])
    suptitle(fig, runs, shown, metric, notes=notes)
    variant_ticks(ax, order)  # last: the legend and title take their room first
    return save_figure(fig, stem)


@styled
def metric_vs_weight(
    runs: pd.DataFrame, dataset: str, metric: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """One metric against the weight of a diversity term (log axis): a line with 95% band per
    adversarial loss and term that runs at two or more weights (gdpp, gdpp-si, ...), its seeds as
    dots, and each adversarial loss without a term as a dashed line with its band."""
    done = finished_runs(runs, dataset)
    if not _drawn(done, metric) or "term_weight" not in done.columns:
        return []
    shown = done.dropna(subset=[metric, "term_weight"])
    weighted = shown[shown["term_weight"] > 0]
    swept = [
        key
        for key, group in weighted.groupby(["adversarial", "term"], sort=True)
        if group["term_weight"].nunique() >= 2
    ]
    if not swept:
        return []
    first = parse_variant(baseline).adversarial if baseline else ""
    swept.sort(key=lambda key: (key[0] != first, key))
    colors = palette(swept)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    rng = np.random.default_rng(0)
    for adversarial, term in swept:
        color = colors[(adversarial, term)]
        points = weighted[(weighted["adversarial"] == adversarial) & (weighted["term"] == term)]
        stats = ci_frame(points, ["term_weight"], metric, metric_bounds(metric, dataset))
        band(
            ax,
            stats,
            "term_weight",
            color,
            f"{adversarial}+{term}@w: mean, 95% band",
            marker="o",
            linewidth=1.8,
        )
        jitter = np.exp(rng.uniform(-0.06, 0.06, len(points)))  # multiplicative: the axis is log
        ax.scatter(points["term_weight"] * jitter, points[metric], s=14, color=color, alpha=0.5, linewidth=0)
    for adversarial in sorted({key[0] for key in swept}):
        reference = shown[(shown["adversarial"] == adversarial) & (shown["term_weight"] == 0)]
        if reference.empty:
            continue
        mean, low, high = mean_ci(reference[metric].tolist(), bounds=metric_bounds(metric, dataset))
        note = ", baseline" if reference["variant"].iloc[0] == baseline else ""
        ax.axhline(
            mean,
            color="grey",
            linestyle="--",
            linewidth=1.3,
            label=f"{adversarial} (no term{note}): mean, 95% band",
        )
        if not math.isnan(low):
            ax.axhspan(low, high, color="grey", alpha=BAND_ALPHA / 2, linewidth=0)
    weights = sorted(
        weighted.loc[weighted.set_index(["adversarial", "term"]).index.isin(swept), "term_weight"].unique()
    )
    ax.set_xscale("log")
    ax.set_xticks(weights, [f"{w:g}" for w in weights])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("weight w of the diversity term (log scale)")
    ax.set_ylabel(metric_label(metric))
    references, notes = published_lines(ax, dataset, metric)
    widen_flat_axis(ax, metric_bounds(metric, dataset))
    handles, labels = ax.get_legend_handles_labels()
    legend_outside(fig, handles + references, labels + [str(h.get_label()) for h in references])
    suptitle(fig, runs, shown, f"{metric} against the weight of each diversity term", notes=notes)
    return save_figure(fig, stem)


@styled
def metric_vs_cpu(
    runs: pd.DataFrame, dataset: str, metric: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """One metric against each run's training CPU seconds (process time, which two runs sharing
    the cores do not inflate): every seed as a dot, each variant's mean as a cross with its 95%
    t intervals on both axes. Whether a gain survives equal compute is read off the x axis."""
    done = finished_runs(runs, dataset)
    if not _drawn(done, metric) or "train_cpu_s" not in done.columns:
        return []
    shown = done.assign(train_cpu_s=pd.to_numeric(done["train_cpu_s"], errors="coerce")).dropna(
        subset=[metric, "train_cpu_s"]
    )
    if shown.empty:
        return []
    order = variant_order(shown["variant"], baseline)
    colors = palette(order)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    for variant in order:
        block = shown[shown["variant"] == variant]
        ax.scatter(block["train_cpu_s"], block[metric], s=18, color=colors[variant], alpha=0.45, linewidth=0)
        y, y_low, y_high = mean_ci(block[metric].tolist(), bounds=metric_bounds(metric, dataset))
        x, x_low, x_high = mean_ci(block["train_cpu_s"].tolist(), bounds=(0, None))
        xerr = None if math.isnan(x_low) else [[x - x_low], [x_high - x]]
        yerr = None if math.isnan(y_low) else [[y - y_low], [y_high - y]]
        ax.errorbar(
            x,
            y,
            xerr=xerr,
            yerr=yerr,
            fmt="D",
            color=colors[variant],
            markersize=6,
            capsize=3,
            elinewidth=1.2,
            markeredgecolor="black",
            label=variant,
        )
    ax.set_xscale("log")
    plain_log_axis(ax.xaxis)
    ax.set_xlabel("training CPU seconds per run (process time, log scale)")
    ax.set_ylabel(metric_label(metric))
    references, notes = published_lines(ax, dataset, metric)
    widen_flat_axis(ax, metric_bounds(metric, dataset))
    handles, labels = ax.get_legend_handles_labels()
    legend_outside(
        fig,
        handles + references,
        labels + [str(h.get_label()) for h in references],
        title="variant (mean, 95% t intervals)",
    )
    suptitle(fig, runs, shown, f"{metric} against training cost", notes=notes)
    return save_figure(fig, stem)
