"""Report figures: seaborn-styled matplotlib, each written atomically as PNG (150 dpi) and PDF.

Every figure function draws finished runs only (status "done"; the tables list the others) and
returns the paths it wrote, PNG first: [] where the figure does not apply (no finished runs, or
no such data). Titles name the suite, the dataset, what is drawn, the number of seeds and, for
final metrics, the evaluation protocol; intervals are 95% t intervals (`stats.mean_ci`).
"""

from __future__ import annotations

import functools
import itertools
import math
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
import torch  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullLocator, PercentFormatter  # noqa: E402

from gdpp_bench.data import DATASETS  # noqa: E402
from gdpp_bench.losses import TERM_DIAGNOSTICS, parse_variant  # noqa: E402
from gdpp_bench.metrics import HIGHER_IS_BETTER  # noqa: E402
from gdpp_bench.metrics.modes import mode_assignment  # noqa: E402
from gdpp_bench.report.stats import mean_ci  # noqa: E402
from gdpp_bench.report.tables import (  # noqa: E402
    DEFAULT_BASELINE,
    DEFAULT_LAST_K,
    read_run_csv,
    variant_order,
)
from gdpp_bench.rundir import RunDir, read_json, write_atomic  # noqa: E402
from gdpp_bench.samples import draw_samples_2d  # noqa: E402

DPI = 150
# log.csv columns that are not diversity terms (every other column but step is one)
LOG_FIXED_COLUMNS = ("step", "d_loss", "g_loss", "d_real", "d_fake", "gp", "imgs_per_s")
LOSS_LABELS = {"d_loss": "discriminator loss", "g_loss": "generator loss (incl. weighted terms)"}
DIAGNOSTIC_LABELS = {"gdpp_sign_flips": "eigenpairs (weight > 0.01) whose\nsign flipped since the last log"}
STYLE = {
    **sns.axes_style("whitegrid"),
    **sns.plotting_context("notebook", font_scale=0.85),
    "legend.frameon": False,
    "figure.titlesize": "large",
    "axes.titlesize": "medium",
}
BAND_ALPHA = 0.2

P = ParamSpec("P")
R = TypeVar("R")


def _styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a figure function under the report's style, leaving matplotlib's global state alone."""

    @functools.wraps(draw)
    def styled(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return styled


def _save(fig: plt.Figure, stem: Path) -> list[Path]:
    """stem.png (150 dpi) and stem.pdf, each written atomically; closes the figure.

    The layout and the tight bounding box are computed once, then frozen for both saves (each
    save would otherwise run the constrained layout again, and bbox_inches="tight" once more)."""
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    try:
        fig.draw_without_rendering()
        bbox = fig.get_tightbbox().padded(plt.rcParams["savefig.pad_inches"])
        fig.set_layout_engine("none")
        for path in paths:
            fmt = path.suffix[1:]
            metadata = {"CreationDate": None} if fmt == "pdf" else None  # reproducible PDF bytes
            write_atomic(path, functools.partial(_savefig, fig, fmt=fmt, bbox=bbox, metadata=metadata))
    finally:
        plt.close(fig)
    return paths


def _savefig(fig: plt.Figure, tmp: Path, fmt: str, bbox: Any, metadata: dict[str, Any] | None) -> None:
    fig.savefig(tmp, format=fmt, dpi=DPI, bbox_inches=bbox, metadata=metadata)


# --- which runs, in which order and colour -------------------------------------------------------


def _finished(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The finished runs of `dataset`."""
    if runs.empty or "status" not in runs.columns:
        return runs.iloc[0:0]
    return runs[(runs["dataset"] == dataset) & (runs["status"] == "done")]


def _palette(order: list[str]) -> dict[str, tuple[float, float, float]]:
    """One colour per variant (colour-blind safe up to 10)."""
    colors = sns.color_palette("colorblind" if len(order) <= 10 else "husl", len(order))
    return dict(zip(order, colors, strict=True))


def _grid(
    count: int, max_cols: int, panel: tuple[float, float], **kwargs
) -> tuple[plt.Figure, list[plt.Axes]]:
    """A constrained-layout figure of `count` panels in rows of at most `max_cols`; panels past
    `count` are removed, so none is left empty."""
    ncols = min(count, max_cols)
    nrows = math.ceil(count / ncols)
    fig, axes = plt.subplots(
        nrows,
        ncols,
        squeeze=False,
        layout="constrained",
        figsize=(panel[0] * ncols, panel[1] * nrows + 0.9),
        **kwargs,
    )
    flat = list(axes.flat)
    for ax in flat[count:]:
        ax.remove()
    return fig, flat[:count]


# --- labels and titles ----------------------------------------------------------------------------


def metric_label(metric: str) -> str:
    """The metric's name and its direction, e.g. 'fid (lower is better)'."""
    if metric not in HIGHER_IS_BETTER:
        return metric
    return f"{metric} ({'higher' if HIGHER_IS_BETTER[metric] else 'lower'} is better)"


def _suptitle(
    fig: plt.Figure,
    runs: pd.DataFrame,
    shown: pd.DataFrame,
    what: str,
    protocol: bool = True,
    notes: Iterable[str] = (),
) -> None:
    """'SUITE / DATASET: what' over 'n = K seeds, P protocol, S steps[, excluded runs]' and a
    line of `notes`, if any."""
    dataset = shown["dataset"].iloc[0]
    per_variant = shown.groupby("variant")["seed"].nunique()
    low, high = int(per_variant.min()), int(per_variant.max())
    details = [f"n = {low if low == high else f'{low}–{high}'} seed{'s' if high > 1 else ''} per variant"]
    if protocol and "protocol" in shown.columns:
        names = sorted({str(p) for p in shown["protocol"].dropna()} - {""})
        if names:
            details.append(f"{' + '.join(names)} protocol")
    steps = sorted(shown["steps"].dropna().astype(int).unique()) if "steps" in shown.columns else []
    if steps:
        details.append(f"{'/'.join(f'{s:,}' for s in steps)} training steps")
    others = runs[(runs["dataset"] == dataset) & (runs["status"] != "done")]
    if len(others):
        details.append(f"{len(others)} unfinished or failed run{'s' if len(others) > 1 else ''} left out")
    lines = [f"{shown['suite'].iloc[0]} / {dataset}: {what}", ", ".join(details), "; ".join(notes)]
    fig.suptitle("\n".join(line for line in lines if line))


def _variant_ticks(ax: plt.Axes, order: list[str]) -> None:
    """Variant names under positions 0..n-1, slanted where they would overlap side by side."""
    ax.set_xticks(range(len(order)), order)
    ax.set_xlim(-0.6, len(order) - 0.4)
    figure = cast(plt.Figure, ax.figure)
    figure.draw_without_rendering()  # lays out the figure, so that the labels' extents are known
    boxes = [label.get_window_extent() for label in ax.get_xticklabels()]
    gap = 4 * figure.dpi / 72  # 4 points between neighbours
    if any(left.x1 + gap > right.x0 for left, right in itertools.pairwise(boxes)):
        _slant(ax.get_xticklabels(), "right")


def _slant(labels: list[plt.Text], align: Literal["left", "center", "right"]) -> None:
    """Tick labels at 30 degrees, anchored at their `align` end (right below an axis, left above)."""
    for label in labels:
        label.set_rotation(30)
        label.set_horizontalalignment(align)
        label.set_rotation_mode("anchor")


def _legend_outside(
    fig: plt.Figure, handles: list, labels: list[str], title: str | None = None, **kwargs
) -> None:
    """One legend for the whole figure, to the right of the panels."""
    fig.legend(handles, labels, loc="outside right center", title=title, **kwargs)


# --- statistics over seeds ------------------------------------------------------------------------


def ci_frame(frame: pd.DataFrame, by: list[str], value: str) -> pd.DataFrame:
    """Per group of `by`: mean, low, high (95% t interval, NaN bounds with one value) and n."""
    rows = []
    for key, group in frame.groupby(by, sort=True):
        values = group[value].dropna().tolist()
        mean, low, high = mean_ci(values)
        rows.append(
            {**dict(zip(by, key, strict=True)), "mean": mean, "low": low, "high": high, "n": len(values)}
        )
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


def _band(ax: plt.Axes, stats: pd.DataFrame, x: str, color: tuple, label: str, **line) -> None:
    """The mean as a line and its 95% interval as a shaded band."""
    ax.plot(stats[x], stats["mean"], color=color, label=label, **line)
    ax.fill_between(stats[x], stats["low"], stats["high"], color=color, alpha=BAND_ALPHA, linewidth=0)


# --- per-run files ---------------------------------------------------------------------------------


def _run_csvs(done: pd.DataFrame, suite_dir: Path, file: Callable[[RunDir], Path]) -> pd.DataFrame:
    """The CSV `file(run_dir)` of every run in `done` that has one, with its variant and seed."""
    frames = []
    for record in done.itertuples():
        path = file(RunDir(suite_dir / record.run))
        if path.is_file():
            frame = read_run_csv(path)
            if not frame.empty:
                frames.append(frame.assign(variant=record.variant, seed=record.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def _stacked_histograms(done: pd.DataFrame, suite_dir: Path) -> pd.DataFrame:
    """Per finished Stacked-MNIST run: variant, seed and its 1000 triple counts (metrics.json)."""
    rows = []
    for record in done.itertuples():
        path = RunDir(suite_dir / record.run).metrics
        if not path.is_file():
            continue
        protocol = read_json(path).get("protocol", {}).get("stacked_mnist_modes") or {}
        if protocol.get("histogram"):
            rows.append(
                {
                    "variant": record.variant,
                    "seed": record.seed,
                    "counts": np.asarray(protocol["histogram"], dtype=float),
                }
            )
    return pd.DataFrame(rows, columns=["variant", "seed", "counts"])


# --- final metrics ---------------------------------------------------------------------------------


@_styled
def metric_points(
    runs: pd.DataFrame, dataset: str, metric: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """One metric per variant: every seed as a dot, the mean with its 95% t interval as a bar
    beside the dots (no bar with one seed), and the baseline's mean as a dashed reference line.
    A finished variant without a finite value is kept on the axis, marked 'no value'."""
    done = _finished(runs, dataset)
    if metric not in done.columns or done[metric].isna().all():
        return []
    order = variant_order(done["variant"], baseline)
    colors = _palette(order)
    shown = done.dropna(subset=[metric])
    stats = ci_frame(shown, ["variant"], metric).set_index("variant")
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
    ax.set_xlabel("variant")
    ax.set_ylabel(metric_label(metric))
    _legend_outside(fig, handles, [str(h.get_label()) for h in handles])
    _suptitle(fig, runs, shown, metric)
    _variant_ticks(ax, order)  # last: the legend and title take their room first
    return _save(fig, stem)


@_styled
def metric_vs_weight(
    runs: pd.DataFrame, dataset: str, metric: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """One metric against the weight of a diversity term (log axis): a line with 95% band per
    adversarial loss and term that runs at two or more weights (gdpp, gdpp-si, ...), its seeds as
    dots, and each adversarial loss without a term as a dashed line with its band."""
    done = _finished(runs, dataset)
    if metric not in done.columns or "term_weight" not in done.columns:
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
    colors = dict(zip(swept, sns.color_palette("colorblind", len(swept)), strict=True))
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    rng = np.random.default_rng(0)
    for adversarial, term in swept:
        color = colors[(adversarial, term)]
        points = weighted[(weighted["adversarial"] == adversarial) & (weighted["term"] == term)]
        stats = ci_frame(points, ["term_weight"], metric)
        _band(
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
        mean, low, high = mean_ci(reference[metric].tolist())
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
    _legend_outside(fig, *ax.get_legend_handles_labels())
    _suptitle(fig, runs, shown, f"{metric} against the weight of each diversity term")
    return _save(fig, stem)


@_styled
def metric_vs_cpu(
    runs: pd.DataFrame, dataset: str, metric: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """One metric against each run's training CPU seconds (process time, which two runs sharing
    the cores do not inflate): every seed as a dot, each variant's mean as a cross with its 95%
    t intervals on both axes. Whether a gain survives equal compute is read off the x axis."""
    done = _finished(runs, dataset)
    if metric not in done.columns or "train_cpu_s" not in done.columns:
        return []
    shown = done.assign(train_cpu_s=pd.to_numeric(done["train_cpu_s"], errors="coerce")).dropna(
        subset=[metric, "train_cpu_s"]
    )
    if shown.empty:
        return []
    order = variant_order(shown["variant"], baseline)
    colors = _palette(order)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    for variant in order:
        block = shown[shown["variant"] == variant]
        ax.scatter(block["train_cpu_s"], block[metric], s=18, color=colors[variant], alpha=0.45, linewidth=0)
        y, y_low, y_high = mean_ci(block[metric].tolist())
        x, x_low, x_high = mean_ci(block["train_cpu_s"].tolist())
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
    ax.set_xlabel("training CPU seconds per run (process time, log scale)")
    ax.set_ylabel(metric_label(metric))
    _legend_outside(fig, *ax.get_legend_handles_labels(), title="variant (mean, 95% t intervals)")
    _suptitle(fig, runs, shown, f"{metric} against training cost")
    return _save(fig, stem)


# --- curves over training --------------------------------------------------------------------------


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
) -> list[Path]:
    """One panel per column of `curves` against step: per variant the mean over seeds and its
    95% band (and each seed faintly where `per_seed`); one legend for all panels. The y axis
    spans the seeds' values: with two or three seeds a t band can be many times wider and would
    flatten every mean line, so a band is cut at the panel's edge (and the title says so)."""
    order = variant_order(curves["variant"], baseline)
    colors = _palette(order)
    fig, axes = _grid(len(columns), 3, (4.4, 3.2))
    clipped = False
    for ax, column in zip(axes, columns, strict=True):
        present = curves.dropna(subset=[column])
        bands = []
        for variant in order:
            block = present[present["variant"] == variant]
            if block.empty:
                continue
            bands.append(ci_frame(block, ["step"], column))
            _band(ax, bands[-1], "step", colors[variant], variant, linewidth=1.6)
            if per_seed:
                for _, seed_block in block.groupby("seed"):
                    ax.plot(
                        seed_block["step"],
                        seed_block[column],
                        color=colors[variant],
                        alpha=0.3,
                        linewidth=0.8,
                    )
        low, high = present[column].min(), present[column].max()
        pad = 0.08 * (high - low) or max(0.05 * abs(high), 0.05)
        ax.set_ylim(low - pad, high + pad)
        clipped |= any(((band["low"] < low - pad) | (band["high"] > high + pad)).any() for band in bands)
        if window is not None:
            ax.axvspan(*window, color="grey", alpha=0.12, linewidth=0, zorder=0)
        ax.set_title(column)
        ax.set_xlabel("training step")
        ax.set_ylabel(labels.get(column, column))
    handles = [Line2D([], [], color=colors[v], linewidth=2) for v in order]
    _legend_outside(fig, handles, order, title="variant")
    shown = _finished(runs, dataset)
    notes = [
        "lines: mean over seeds, bands: 95% t interval" + (" (cut at the seeds' range)" if clipped else "")
    ]
    if per_seed:
        notes.append("faint lines: single seeds")
    if window is not None:
        notes.append("grey: the evaluations averaged into the headline (report --last-k)")
    _suptitle(fig, runs, shown[shown["variant"].isin(order)], what, protocol=False, notes=notes)
    return _save(fig, stem)


@_styled
def training_curves(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """From log.csv: d_loss, g_loss and each diversity term's value against step; per variant the
    mean over seeds and its 95% band."""
    curves = _run_csvs(_finished(runs, dataset), suite_dir, lambda run_dir: run_dir.log)
    if curves.empty:
        return []
    diagnostics = [column for column, _ in TERM_DIAGNOSTICS.values() if column in curves.columns]
    terms = [
        c for c in curves.columns if c not in LOG_FIXED_COLUMNS and c not in ("variant", "seed", *diagnostics)
    ]
    columns = [c for c in ("d_loss", "g_loss", *terms, *diagnostics) if curves[c].notna().any()]
    labels = {**LOSS_LABELS, **{term: f"{term} term (unweighted)" for term in terms}, **DIAGNOSTIC_LABELS}
    return _curve_panels(runs, curves, dataset, columns, labels, "training losses", False, stem, baseline)


@_styled
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
    shaded (not for suites whose headline is a selected checkpoint)."""
    curves = _run_csvs(_finished(runs, dataset), suite_dir, lambda run_dir: run_dir.evals)
    if curves.empty:
        return []
    columns = [m for m in HIGHER_IS_BETTER if m in curves.columns and curves[m].notna().any()]
    if not columns:
        return []
    labels = {m: metric_label(m) for m in columns}
    steps = sorted(curves["step"].unique())
    done = _finished(runs, dataset)
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
    )


# --- samples ----------------------------------------------------------------------------------------


def _common_seed(done: pd.DataFrame) -> int:
    """The smallest seed every variant finished; failing that, the smallest of those finished by
    the most variants."""
    counts = done.groupby("seed")["variant"].nunique()
    best = counts[counts == counts.max()]
    return int(best.index.min())


@_styled
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
    if len(DATASETS.get(dataset).shape) != 3:
        return []
    done = _finished(runs, dataset)
    done = done[[RunDir(suite_dir / run).samples_png.is_file() for run in done["run"]]]
    if done.empty:
        return []
    seed = _common_seed(done) if seed is None else seed
    chosen = done[done["seed"] == seed]
    if chosen.empty:
        return []
    order = variant_order(chosen["variant"], baseline)
    fig, axes = _grid(len(order), 4, (3.3, 3.5))
    for ax, variant in zip(axes, order, strict=True):
        record = chosen[chosen["variant"] == variant].iloc[0]
        ax.imshow(plt.imread(RunDir(suite_dir / record["run"]).samples_png), interpolation="nearest")
        ax.set_title(variant)
        ax.set_axis_off()
    missing = sorted(set(done["variant"]) - set(order))
    notes = [f"not finished with seed {seed}: {', '.join(missing)}"] if missing else []
    _suptitle(
        fig, runs, chosen, f"fixed-noise samples after training, seed {seed}", protocol=False, notes=notes
    )
    return _save(fig, stem)


@_styled
def samples_over_modes(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """2D datasets: each run's evaluation samples over the true mode centres; one column per
    variant, one row per seed, each panel titled with its modes and high-quality share."""
    data: Any = DATASETS.get(dataset)  # a 2D mixture: centers_tensor() and std
    done = _finished(runs, dataset)
    if len(data.shape) != 1:
        return []
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
    _legend_outside(fig, handles, [str(h.get_label()) for h in handles])
    _suptitle(fig, runs, done, f"evaluation samples ({len(samples):,} per run) over the mode centres")
    return _save(fig, stem)


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
    """Per variant a panel of bars: mean share of each mode over seeds with 95% t interval."""
    order = variant_order(shares["variant"], baseline)
    colors = _palette(order)
    modes = int(shares["mode"].max()) + 1
    fig, axes = _grid(len(order), 2 if modes > 12 else 3, (max(3.6, 0.2 * modes + 1.2), 2.9), sharey=True)
    for ax, variant in zip(axes, order, strict=True):
        stats = ci_frame(shares[shares["variant"] == variant], ["mode"], "share")
        spread = stats["high"] > stats["low"]  # no bar for one seed or seeds that agree
        ax.bar(stats["mode"], stats["mean"], color=colors[variant], width=0.8)
        ax.errorbar(
            stats["mode"][spread],
            stats["mean"][spread],
            fmt="none",
            ecolor="black",
            yerr=[(stats["mean"] - stats["low"])[spread], (stats["high"] - stats["mean"])[spread]],
            capsize=2,
            elinewidth=0.9,
        )
        ax.axhline(1 / modes, color="black", linestyle="--", linewidth=1)
        hq = stats["mean"].sum()
        ax.set_title(f"{variant}\nHQ {100 * hq:.1f}% of samples")
        ax.set_xlabel("mode")
        spec = ax.get_subplotspec()
        if spec is not None and spec.is_first_col():
            ax.set_ylabel("share of samples")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
        ax.set_xticks(range(0, modes, max(1, modes // 8)))
    handles = [
        Patch(color="grey", label="mean over seeds, 95% t interval"),
        Line2D([], [], color="black", linestyle="--", label=f"uniform (1/{modes})"),
    ]
    _legend_outside(fig, handles, [str(h.get_label()) for h in handles])
    _suptitle(
        fig,
        runs,
        done[done["variant"].isin(order)],
        "high-quality samples (within 3 std) per mode, as a share of all evaluation samples",
    )
    return _save(fig, stem)


def _triple_ranks(
    runs: pd.DataFrame, done: pd.DataFrame, histograms: pd.DataFrame, stem: Path, baseline: str
) -> list[Path]:
    """Stacked-MNIST: per variant the triples' counts sorted from most to least frequent, mean
    over seeds rank by rank (log-log; a line ends at the last triple generated); the uniform
    count as reference."""
    order = variant_order(histograms["variant"], baseline)
    colors = _palette(order)
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
    _legend_outside(fig, *ax.get_legend_handles_labels(), title="variant (triples covered)")
    _suptitle(
        fig, runs, done[done["variant"].isin(order)], "samples per digit triple, ranked, mean over seeds"
    )
    return _save(fig, stem)


@_styled
def mode_histograms(
    runs: pd.DataFrame, suite_dir: Path, dataset: str, stem: Path, baseline: str = DEFAULT_BASELINE
) -> list[Path]:
    """How evenly the modes are covered: 2D datasets, the share of evaluation samples that are
    high-quality samples of each mode; Stacked-MNIST, the ranked samples per digit triple."""
    done = _finished(runs, dataset)
    if done.empty:
        return []
    if len(DATASETS.get(dataset).shape) == 1:
        shares = _mode_shares_2d(done, suite_dir, dataset)
        return _mode_bars(runs, done, shares, stem, baseline) if not shares.empty else []
    histograms = _stacked_histograms(done, suite_dir)
    return _triple_ranks(runs, done, histograms, stem, baseline) if not histograms.empty else []


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


@_styled
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
        # metric names above the first facet and below the last one only
        ax.tick_params(
            axis="x",
            length=0,
            top=ax is axes[0, 0],
            labeltop=ax is axes[0, 0],
            bottom=ax is axes[-1, 0],
            labelbottom=ax is axes[-1, 0],
        )
        _slant(ax.get_xticklabels(which="major"), "right")
    if len(variants) > 1:
        _slant([tick.label2 for tick in axes[0, 0].xaxis.get_major_ticks()], "left")
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
    return _save(fig, stem)
