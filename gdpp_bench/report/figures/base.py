"""Shared pieces of the report figures: style, saving, run selection, colours, titles, intervals
and per-run files."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import re
import textwrap
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import LogFormatter  # noqa: E402

from gdpp_bench.metrics import HIGHER_IS_BETTER  # noqa: E402
from gdpp_bench.report import numbers  # noqa: E402
from gdpp_bench.report.published import published  # noqa: E402
from gdpp_bench.report.stats import mean_ci  # noqa: E402
from gdpp_bench.report.tables import (  # noqa: E402
    read_run_csv,
)
from gdpp_bench.rundir import RunDir, read_json, write_atomic  # noqa: E402

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
    "axes.formatter.useoffset": False,  # "1e-5+1" above an axis reads as noise, not as a value
}
BAND_ALPHA = 0.2
# A multi-panel figure is one row of at most ROW_PANELS panels, FULL_WIDTH inches wide, shown
# across the page's width (html.py): at 150 dpi in a 1200-pixel column its tick labels are about
# 12 pixels high. More panels are drawn as further figures of one row each.
FULL_WIDTH = 13.0
ROW_PANELS = 4
PART = re.compile(r"(\d+)-of-(\d+)")  # the stem suffix of a multi-panel figure's part
# an axis spans at least this share of its values' magnitude: a flat line, not float noise
MIN_RELATIVE_SPAN = 1e-3

P = ParamSpec("P")
R = TypeVar("R")
K = TypeVar("K")


def styled(draw: Callable[P, R]) -> Callable[P, R]:
    """Run a figure function under the report's style, leaving matplotlib's global state alone."""

    @functools.wraps(draw)
    def styled(*args: P.args, **kwargs: P.kwargs) -> R:
        with plt.rc_context(STYLE):
            return draw(*args, **kwargs)

    return styled


# the formats every figure is saved in: PNG (the HTML page's), and PDF where the report asks for
# vector copies (`report --pdf`; off by default, as each is a second rendering of the figure)
FIGURE_FORMATS: ContextVar[tuple[str, ...]] = ContextVar("FIGURE_FORMATS", default=("png",))


@contextlib.contextmanager
def figure_formats(pdf: bool) -> Iterator[None]:
    """Figures saved within the block are PNG, and also PDF if `pdf`."""
    token = FIGURE_FORMATS.set(("png", "pdf") if pdf else ("png",))
    try:
        yield
    finally:
        FIGURE_FORMATS.reset(token)


def save_figure(fig: plt.Figure, stem: Path) -> list[Path]:
    """stem.png (150 dpi), and stem.pdf under `figure_formats(pdf=True)`, each written atomically;
    closes the figure.

    The layout and the tight bounding box are computed once, then frozen for every save (each
    save would otherwise run the constrained layout again, and bbox_inches="tight" once more)."""
    paths = [stem.parent / f"{stem.name}.{fmt}" for fmt in FIGURE_FORMATS.get()]
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


def finished_runs(runs: pd.DataFrame, dataset: str) -> pd.DataFrame:
    """The finished runs of `dataset`."""
    if runs.empty or "status" not in runs.columns:
        return runs.iloc[0:0]
    return runs[(runs["dataset"] == dataset) & (runs["status"] == "done")]


def palette(order: list[K]) -> dict[K, tuple[float, float, float]]:
    """One colour per variant (or other key; colour-blind safe up to 10)."""
    if len(order) > 10:
        return dict(zip(order, sns.color_palette("husl", len(order)), strict=True))
    # seaborn's colour-blind palette with its 4th and 5th swapped: its 2nd (orange) and 4th
    # (vermillion) are hard to tell apart in thin lines, and four variants are common
    colors = sns.color_palette("colorblind", 10)
    colors[3], colors[4] = colors[4], colors[3]
    return dict(zip(order, colors[: len(order)], strict=True))


def panel_parts(items: list[K], per: int = ROW_PANELS) -> list[list[K]]:
    """`items` in as few rows of at most `per` as can hold them, the rows as even as possible
    (7 panels: 4 and 3; 9: 3, 3 and 3)."""
    if not items:
        return []
    parts = math.ceil(len(items) / per)
    size, extra = divmod(len(items), parts)
    bounds = list(itertools.accumulate([0] + [size + (i < extra) for i in range(parts)]))
    return [items[a:b] for a, b in itertools.pairwise(bounds)]


def part_stem(stem: Path, part: int, parts: int) -> Path:
    """The stem of part `part` (from 1) of a figure drawn as `parts` figures: the stem itself
    where there is one, else STEM_P-of-N."""
    return stem if parts == 1 else stem.with_name(f"{stem.name}_{part}-of-{parts}")


def panel_row(count: int, height: float, **kwargs) -> tuple[plt.Figure, list[plt.Axes]]:
    """A constrained-layout figure of one row of `count` panels (at most ROW_PANELS), FULL_WIDTH
    inches wide whatever the count: every multi-panel figure is shown at the page's width, its
    fonts at one size."""
    if not 1 <= count <= ROW_PANELS:
        raise ValueError(f"a panel row holds 1 to {ROW_PANELS} panels, not {count}")
    fig, axes = plt.subplots(
        1, count, squeeze=False, layout="constrained", figsize=(FULL_WIDTH, height + 0.9), **kwargs
    )
    return fig, list(axes.flat)


def widen_flat_axis(ax: plt.Axes, bounds: tuple[float | None, float | None] = (None, None)) -> None:
    """Where the y axis spans less than MIN_RELATIVE_SPAN of its values' magnitude (an IS of
    1 ± 1e-6), widen it to that span around its centre, kept within the metric's `bounds` (and a
    twentieth of the span beyond, so that a line on a bound stays visible): a flat line with
    readable ticks instead of an axis of float noise."""
    low, high = ax.get_ylim()
    need = MIN_RELATIVE_SPAN * max(abs(low), abs(high))
    if high - low >= need or need == 0:
        return
    centre, margin = (low + high) / 2, need / 20
    low, high = centre - need / 2, centre + need / 2
    if bounds[0] is not None and low < bounds[0] - margin:
        low, high = bounds[0] - margin, bounds[0] - margin + need
    if bounds[1] is not None and high > bounds[1] + margin:
        low, high = bounds[1] + margin - need, bounds[1] + margin
    ax.set_ylim(low, high)


class PlainLogFormatter(LogFormatter):
    """Log-axis tick labels as plain numbers ('2', '30', '0.5'), on the ticks matplotlib's
    LogFormatter labels (not '2x10^0')."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def plain_log_axis(axis: Any) -> None:
    """A log axis (ax.xaxis or ax.yaxis) labelled in plain numbers, minor ticks too where
    its range is under two decades."""
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def panel_grid(
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


def suptitle(
    fig: plt.Figure,
    runs: pd.DataFrame,
    shown: pd.DataFrame,
    what: str,
    protocol: bool = True,
    notes: Iterable[str] = (),
) -> None:
    """'SUITE / DATASET: what' ('DATASET: what' where the suite is named after it) over 'n = K
    seeds, P protocol, S steps[, excluded runs]' and a line of `notes`, if any."""
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
    suite = shown["suite"].iloc[0]
    where = dataset if suite == dataset else f"{suite} / {dataset}"  # not "ring8 / ring8"
    width = max(60, int(fig.get_figwidth() * 12))  # characters of the title's font across it
    lines = [f"{where}: {what}", ", ".join(details), textwrap.fill("; ".join(notes), width)]
    fig.suptitle("\n".join(line for line in lines if line))


def variant_ticks(ax: plt.Axes, order: list[str]) -> None:
    """Variant names under positions 0..n-1, slanted where they would overlap side by side."""
    ax.set_xticks(range(len(order)), order)
    ax.set_xlim(-0.6, len(order) - 0.4)
    figure = cast(plt.Figure, ax.figure)
    figure.draw_without_rendering()  # lays out the figure, so that the labels' extents are known
    boxes = [label.get_window_extent() for label in ax.get_xticklabels()]
    gap = 4 * figure.dpi / 72  # 4 points between neighbours
    if any(left.x1 + gap > right.x0 for left, right in itertools.pairwise(boxes)):
        slant_labels(ax.get_xticklabels(), "right")


def slant_labels(labels: list[plt.Text], align: Literal["left", "center", "right"]) -> None:
    """Tick labels at 30 degrees, anchored at their `align` end (right below an axis, left above)."""
    for label in labels:
        label.set_rotation(30)
        label.set_horizontalalignment(align)
        label.set_rotation_mode("anchor")


# the published values' dash styles, one per value of a metric (at most three per dataset)
PUBLISHED_STYLES: tuple[Any, ...] = (":", "-.", (0, (6, 2, 1, 2, 1, 2)), (0, (1, 4)))


def published_lines(ax: plt.Axes, dataset: str, metric: str) -> tuple[list[Line2D], list[str]]:
    """The published values of `metric` on `dataset` as black horizontal lines, one dash style
    each: (legend handles, the title notes naming their sources and protocols)."""
    references = published(dataset, metric)
    handles = []
    for reference, style in zip(references, PUBLISHED_STYLES, strict=False):
        ax.axhline(reference.value, color="black", linestyle=style, linewidth=1.2, zorder=1)
        label = f"{reference.method} (published): {numbers.fmt(reference.value)}"
        handles.append(Line2D([], [], color="black", linestyle=style, label=label))
    protocols = dict.fromkeys((r.source, r.protocol) for r in references)
    notes = [f"black lines: {source}, not our runs: {protocol}" for source, protocol in protocols]
    return handles, notes


def legend_outside(
    fig: plt.Figure, handles: list, labels: list[str], title: str | None = None, **kwargs
) -> None:
    """One legend for the whole figure, to the right of the panels."""
    fig.legend(handles, labels, loc="outside right center", title=title, **kwargs)


# --- statistics over seeds ------------------------------------------------------------------------


def ci_frame(
    frame: pd.DataFrame, by: list[str], value: str, bounds: tuple[float | None, float | None] = (None, None)
) -> pd.DataFrame:
    """Per group of `by`: mean, low, high (95% t interval cut to `bounds`, NaN with one value) and n."""
    rows = []
    for key, group in frame.groupby(by, sort=True):
        values = group[value].dropna().tolist()
        mean, low, high = mean_ci(values, bounds=bounds)
        rows.append(
            {**dict(zip(by, key, strict=True)), "mean": mean, "low": low, "high": high, "n": len(values)}
        )
    return pd.DataFrame(rows, columns=[*by, "mean", "low", "high", "n"])


def band(ax: plt.Axes, stats: pd.DataFrame, x: str, color: tuple, label: str, **line) -> None:
    """The mean as a line and its 95% interval as a shaded band."""
    ax.plot(stats[x], stats["mean"], color=color, label=label, **line)
    ax.fill_between(stats[x], stats["low"], stats["high"], color=color, alpha=BAND_ALPHA, linewidth=0)


# --- per-run files ---------------------------------------------------------------------------------


def run_csvs(
    done: pd.DataFrame,
    suite_dir: Path,
    file: Callable[[RunDir], Path],
    each: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
) -> pd.DataFrame:
    """The CSV `file(run_dir)` of every run in `done` that has one, with its variant and seed;
    `each` applied to each run's table before they are joined (a column one run lacks is NaN in
    the joined table, and must not be read as that run's values)."""
    frames = []
    for record in done.itertuples():
        path = file(RunDir(suite_dir / record.run))
        if path.is_file():
            frame = read_run_csv(path)
            if not frame.empty:
                frame = each(frame) if each is not None else frame
                frames.append(frame.assign(variant=record.variant, seed=record.seed))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def stacked_histograms(done: pd.DataFrame, suite_dir: Path) -> pd.DataFrame:
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
