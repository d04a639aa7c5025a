"""Figures of a tuned suite's trials: the objective of every trial per variant, and the expected
best objective against the budget in trials and in CPU seconds (Lucic et al. 2018)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from gdpp_bench.report.figures.base import (  # noqa: E402
    BAND_ALPHA,
    legend_outside,
    metric_label,
    palette,
    save_figure,
    styled,
    variant_ticks,
)
from gdpp_bench.report.stats import BOOTSTRAP_RESAMPLES  # noqa: E402
from gdpp_bench.report.tables import DEFAULT_BASELINE, variant_order  # noqa: E402
from gdpp_bench.report.tuning import (  # noqa: E402
    budget_curves,
    mark_selected,
    trial_table,
)


def _objective_name(trials: pd.DataFrame) -> tuple[str, str]:
    """(metric, 'mean metric over the tuning seeds of each trial')."""
    first = trials.iloc[0]
    metric = str(first["objective_metric"])
    return metric, f"{first['objective_aggregate']} {metric} over each trial's tuning seeds"


def _title(fig: plt.Figure, runs: pd.DataFrame, trials: pd.DataFrame, what: str, notes: str) -> None:
    per_variant = trials.groupby("variant")["trial"].nunique()
    low, high = int(per_variant.min()), int(per_variant.max())
    seeds = int(trials["seeds"].max())
    details = (
        f"{low if low == high else f'{low}–{high}'} trials per variant, {seeds} tuning "
        f"seed{'s' if seeds > 1 else ''} each"
    )
    suite = str(runs["suite"].dropna().iloc[0]) if "suite" in runs.columns else ""
    dataset = str(trials["dataset"].iloc[0])
    fig.suptitle("\n".join(line for line in (f"{suite} / {dataset}: {what}", details, notes) if line))


@styled
def objective_by_trial(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """Per variant the objective of every trial (one value per trial: its aggregate over the tuning
    seeds): a box over the trials with a value and each trial as a point, filled where it met
    the constraints, hollow where it violated one, the confirmed trial as a star; failed trials
    (a tuning seed diverged) and trials without a value are counted in a strip of crosses below."""
    del suite_dir
    trials = mark_selected(trial_table(runs), runs)
    trials = trials[(trials["dataset"] == dataset) & (trials["status"] != "incomplete")]
    if trials.empty:
        return []
    metric, what = _objective_name(trials)
    order = variant_order(trials["variant"], baseline)
    colors = palette(order)
    rng = np.random.default_rng(0)  # the same jitter every time the report is built
    valued = trials[np.isfinite(pd.to_numeric(trials["objective"], errors="coerce")) & ~trials["failed"]]
    lost = trials[~trials.index.isin(valued.index)]  # failed, or no value: drawn in a strip below
    width = max(5.5, 0.95 * len(order) + 3.0)
    if lost.empty:
        fig, ax = plt.subplots(figsize=(width, 4.8), layout="constrained")
        axes = [ax]
    else:
        fig, (ax, strip) = plt.subplots(
            2, 1, figsize=(width, 5.3), sharex=True, height_ratios=(7, 1), layout="constrained"
        )
        axes = [ax, strip]
    boxes = [valued.loc[valued["variant"] == v, "objective"].to_numpy(dtype=float) for v in order]
    drawn = [i for i, values in enumerate(boxes) if len(values)]
    if drawn:
        ax.boxplot(
            [boxes[i] for i in drawn],
            positions=drawn,
            widths=0.5,
            showfliers=False,
            medianprops={"color": "black"},
            boxprops={"color": "grey"},
            whiskerprops={"color": "grey"},
            capprops={"color": "grey"},
        )
    for position, variant in enumerate(order):
        block = valued[valued["variant"] == variant]
        x = position + rng.uniform(-0.16, 0.16, len(block))
        feasible = block["feasible"].astype(bool).to_numpy()
        y = block["objective"].to_numpy(dtype=float)
        color = colors[variant]
        ax.scatter(x[feasible], y[feasible], s=30, color=color, edgecolor="white", linewidth=0.5, zorder=3)
        ax.scatter(
            x[~feasible], y[~feasible], s=30, facecolor="none", edgecolor=color, linewidth=1.2, zorder=3
        )
        chosen = block["selected"].astype(bool).to_numpy()
        ax.scatter(
            x[chosen], y[chosen], s=160, marker="*", color=color, edgecolor="black", linewidth=0.8, zorder=4
        )
        mine = lost[lost["variant"] == variant]
        if len(mine):
            strip.scatter(
                position + rng.uniform(-0.16, 0.16, len(mine)),
                np.zeros(len(mine)),
                marker="x",
                color="#a00",
                s=28,
            )
            strip.text(
                position + 0.22,
                0,
                f"{len(mine)} of {len(mine) + len(block)}",
                va="center",
                fontsize=8,
                color="#a00",
            )
    constraints = "; ".join(sorted({str(c) for c in trials["constraints"] if c}))
    handles = [
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            color="grey",
            label="one trial" + (", constraints met" if constraints else ""),
        ),
        Line2D(
            [],
            [],
            marker="o",
            linestyle="",
            markerfacecolor="none",
            color="grey",
            label="violates a constraint",
        ),
        Line2D(
            [],
            [],
            marker="*",
            linestyle="",
            color="grey",
            markeredgecolor="black",
            markersize=11,
            label="confirmed trial",
        ),
        Line2D([], [], marker="x", linestyle="", color="#a00", label="failed (diverged) or no value"),
    ]
    ax.set_ylabel(metric_label(metric))
    if len(axes) > 1:
        strip.set_yticks([0], ["failed or\nno value"])
        strip.set_ylim(-1, 1)
        strip.grid(False, axis="y")
    axes[-1].set_xlabel("variant")
    legend_outside(fig, handles, [str(h.get_label()) for h in handles])
    _title(
        fig,
        runs,
        trials,
        f"the objective of every trial ({what})",
        f"constraints: {constraints}" if constraints else "",
    )
    variant_ticks(axes[-1], order)
    return save_figure(fig, stem)


@styled
def best_against_budget(
    runs: pd.DataFrame,
    suite_dir: Path,
    dataset: str,
    stem: Path,
    baseline: str = DEFAULT_BASELINE,
    resamples: int = BOOTSTRAP_RESAMPLES,
) -> list[Path]:
    """The expected best feasible objective among k trials drawn without replacement from each
    variant's N (exact), with its 95% bootstrap band over trials, against k (left) and against
    the mean CPU seconds k trials cost (right, log axis): one curve per variant (Lucic et al.)."""
    del suite_dir
    trials = trial_table(runs)
    trials = trials[trials["dataset"] == dataset]
    curves = budget_curves(trials, resamples=resamples) if not trials.empty else pd.DataFrame()
    if curves.empty or curves["expected_best"].isna().all():
        return []
    metric, what = _objective_name(trials)
    order = variant_order(curves["variant"], baseline)
    colors = palette(order)
    fig, axes = plt.subplots(1, 2, figsize=(11.0, 4.6), sharey=True, layout="constrained")
    for variant in order:
        curve = curves[curves["variant"] == variant]
        for ax, x in zip(axes, ("k", "cpu_s"), strict=True):
            ax.plot(
                curve[x],
                curve["expected_best"],
                color=colors[variant],
                marker="o",
                markersize=3,
                label=variant,
            )
            ax.fill_between(
                curve[x], curve["low"], curve["high"], color=colors[variant], alpha=BAND_ALPHA, linewidth=0
            )
    axes[0].set_xlabel("k trials (drawn without replacement)")
    axes[1].set_xlabel("mean CPU seconds of k trials (log scale)")
    positive = curves["cpu_s"] > 0
    if positive.any():
        axes[1].set_xscale("log")
    axes[0].set_ylabel(f"expected best {metric_label(metric)}")
    handles, labels = axes[0].get_legend_handles_labels()
    legend_outside(fig, handles, labels, title="variant (95% bootstrap band)")
    _title(
        fig,
        runs,
        trials,
        "expected best objective against the budget",
        f"{what}, feasible trials only; CPU: training + evaluation; bands: {resamples:,} bootstrap "
        "resamples of the trials",
    )
    return save_figure(fig, stem)
