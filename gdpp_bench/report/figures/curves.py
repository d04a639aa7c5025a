"""Figures of curves over training: the training log and the periodic evaluations."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

from gdpp_bench.losses import TERM_DIAGNOSTICS  # noqa: E402
from gdpp_bench.metrics import HIGHER_IS_BETTER  # noqa: E402
from gdpp_bench.report.collapsed import fill_frame  # noqa: E402
from gdpp_bench.report.figures.base import (  # noqa: E402
    DIAGNOSTIC_LABELS,
    LOG_FIXED_COLUMNS,
    LOSS_LABELS,
    band,
    ci_frame,
    finished_runs,
    legend_outside,
    metric_label,
    palette,
    panel_parts,
    panel_row,
    part_stem,
    published_lines,
    run_csvs,
    save_figure,
    styled,
    suptitle,
    widen_flat_axis,
)
from gdpp_bench.report.numbers import fmt  # noqa: E402
from gdpp_bench.report.published import published  # noqa: E402
from gdpp_bench.report.tables import (  # noqa: E402
    DEFAULT_BASELINE,
    DEFAULT_LAST_K,
    metric_bounds,
    variant_order,
)

# --- curves over training --------------------------------------------------------------------------


MIN_SEEDS_FOR_BAND = 4  # below, a t band (t quantile 12.7 at n = 2) hides the curves it bands


def _curve_panels(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    dataset: str,
    columns: list[str],
    labels: dict[str, str],
    what: str,
    per_seed: bool,
    stem: Path,
    baseline: str,
    window: tuple[float, float] | None = None,
    notes: list[str] | None = None,
    references: bool = False,
) -> list[Path]:
    """One panel per column of `curves` against step, in figures of one row each (`panel_parts`):
    per variant the mean over seeds and its 95% band (and each seed faintly where `per_seed`);
    with `references`, each column's published values as black lines; one legend per figure. The
    y axis spans the seeds' values (and the published ones): with two or three seeds a t band can
    be many times wider and would flatten every mean line, so a band is cut at the panel's edge
    (and the title says so)."""
    parts = panel_parts(columns)
    written: list[Path] = []
    for number, part in enumerate(parts, start=1):
        title = what if len(parts) == 1 else f"{what} ({number} of {len(parts)})"
        written += _curve_row(
            runs,
            curves,
            dataset,
            part,
            labels,
            title,
            per_seed,
            part_stem(stem, number, len(parts)),
            baseline,
            window,
            notes or [],
            references,
        )
    return written


def _curve_row(
    runs: pd.DataFrame,
    curves: pd.DataFrame,
    dataset: str,
    columns: list[str],
    labels: dict[str, str],
    what: str,
    per_seed: bool,
    stem: Path,
    baseline: str,
    window: tuple[float, float] | None,
    notes: list[str],
    references: bool,
) -> list[Path]:
    """One figure of `_curve_panels`: a row of panels."""
    order = variant_order(curves["variant"], baseline)
    colors = palette(order)
    fig, axes = panel_row(len(columns), 3.2)
    clipped = few_seeds = False
    published_handles: dict[str, Line2D] = {}
    published_notes: dict[str, None] = {}
    for ax, column in zip(axes, columns, strict=True):
        present = curves.dropna(subset=[column])
        bands = []
        for variant in order:
            block = present[present["variant"] == variant]
            if block.empty:
                continue
            stats = ci_frame(block, ["step"], column, metric_bounds(column, dataset))
            banded = block["seed"].nunique() >= MIN_SEEDS_FOR_BAND
            if banded:
                bands.append(stats)
                band(ax, stats, "step", colors[variant], variant, linewidth=1.6)
            else:  # a t band of 1 or 2 degrees of freedom covers the panel: the seeds instead
                ax.plot(stats["step"], stats["mean"], color=colors[variant], label=variant, linewidth=1.6)
                few_seeds = True
            if per_seed or not banded:
                for _, seed_block in block.groupby("seed"):
                    ax.plot(
                        seed_block["step"],
                        seed_block[column],
                        color=colors[variant],
                        alpha=0.3,
                        linewidth=0.8,
                    )
        levels = [*present[column], *(r.value for r in published(dataset, column) if references)]
        low, high = min(levels), max(levels)
        pad = 0.08 * (high - low) or max(0.05 * abs(high), 0.05)
        ax.set_ylim(low - pad, high + pad)
        if references:
            handles, reference_notes = published_lines(ax, dataset, column)
            published_handles.update((str(h.get_label()), h) for h in handles)
            published_notes.update(dict.fromkeys(reference_notes))
        widen_flat_axis(ax, metric_bounds(column, dataset))
        bottom, top = ax.get_ylim()
        clipped |= any(((band["low"] < bottom) | (band["high"] > top)).any() for band in bands)
        if window is not None:
            ax.axvspan(*window, color="grey", alpha=0.12, linewidth=0, zorder=0)
        ax.set_title(column)
        ax.set_xlabel("training step")
        ax.set_ylabel(labels.get(column, column))
    handles = [Line2D([], [], color=colors[v], linewidth=2) for v in order]
    legend_outside(
        fig, [*handles, *published_handles.values()], [*order, *published_handles], title="variant"
    )
    shown = finished_runs(runs, dataset)
    notes = [
        "lines: mean over seeds, bands: 95% t interval"
        + (f" (variants with {MIN_SEEDS_FOR_BAND}+ seeds)" if few_seeds else "")
        + (" (cut at the seeds' range)" if clipped else ""),
        *notes,
        *published_notes,
    ]
    if per_seed or few_seeds:
        notes.append("faint lines: single seeds")
    if window is not None:
        notes.append("grey: the evaluations averaged into the headline (report --last-k)")
    suptitle(fig, runs, shown[shown["variant"].isin(order)], what, protocol=False, notes=notes)
    return save_figure(fig, stem)


@styled
def training_curves(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """From log.csv: d_loss, g_loss and each diversity term's value against step; per variant the
    mean over seeds and its 95% band (with fewer than 4 seeds, each seed faintly instead)."""
    curves = run_csvs(finished_runs(runs, dataset), suite_dir, lambda run_dir: run_dir.log)
    if curves.empty:
        return []
    diagnostics = [column for column, _ in TERM_DIAGNOSTICS.values() if column in curves.columns]
    terms = [
        c for c in curves.columns if c not in LOG_FIXED_COLUMNS and c not in ("variant", "seed", *diagnostics)
    ]
    columns = [c for c in ("d_loss", "g_loss", *terms, *diagnostics) if curves[c].notna().any()]
    labels = {**LOSS_LABELS, **{term: f"{term} term (unweighted)" for term in terms}, **DIAGNOSTIC_LABELS}
    return _curve_panels(runs, curves, dataset, columns, labels, "training losses", False, stem, baseline)


@styled
def evaluation_curves(
    runs: pd.DataFrame,
    suite_dir: Path,
    dataset: str,
    stem: Path,
    baseline: str = DEFAULT_BASELINE,
    last_k: int = DEFAULT_LAST_K,
) -> list[Path]:
    """From evals.csv: every compared metric of the periodic evaluations against step; per variant
    the mean over seeds, its 95% band and each seed faintly (how much a final number depends on
    the step at which it is read); the last `last_k` evaluations, whose mean is a run's headline,
    shaded (not for suites whose headline is a selected checkpoint). An evaluation that measured
    nothing is drawn at the metric's worst value, as the headline counts it (`collapsed`)."""
    curves = run_csvs(
        finished_runs(runs, dataset),
        suite_dir,
        lambda run_dir: run_dir.evals,
        lambda evals: fill_frame(evals, HIGHER_IS_BETTER, dataset)[0],
    )
    if curves.empty:
        return []
    measured = [m for m in HIGHER_IS_BETTER if m in curves.columns and curves[m].notna().any()]
    # a metric with one value in every evaluation of every run is a line of the title, not a panel
    flat = {m: curves[m].iloc[0] for m in measured if curves[m].notna().all() and curves[m].nunique() == 1}
    columns = [m for m in measured if m not in flat]
    if not columns:
        return []
    labels = {m: metric_label(m) for m in columns}
    steps = sorted(curves["step"].unique())
    done = finished_runs(runs, dataset)
    k_window = "headline" in done.columns and done["headline"].str.startswith("mean of the last").any()
    window = (steps[max(0, len(steps) - last_k)], steps[-1]) if k_window else None
    if window is not None and window[0] == window[1]:  # one evaluation: a visible strip around it
        pad = (steps[-1] - steps[0]) * 0.01 or 0.5
        window = (window[0] - pad, window[1] + pad)
    return _curve_panels(
        runs,
        curves,
        dataset,
        columns,
        labels,
        "periodic evaluations during training",
        True,
        stem,
        baseline,
        window,
        [f"the same in every evaluation: {', '.join(f'{m} = {fmt(v)}' for m, v in flat.items())}"]
        if flat
        else [],
        references=True,
    )
