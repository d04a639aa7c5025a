"""The summary tables as text: markdown (summary.md) and booktabs LaTeX (summary.tex), one table
per dataset and recipe, and the cells and number format the HTML page shares with them."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import pandas as pd

from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.report.calibrated import sees_note
from gdpp_bench.report.numbers import fmt
from gdpp_bench.report.published import published
from gdpp_bench.report.recipes import CONFIRM, TRIAL, budget_of, recipe_title, roles
from gdpp_bench.report.tables import constant_metrics, variant_order

__all__ = ["fmt"]  # the number format of every table (gdpp_bench.report.numbers)

STARS_NOTE = (
    "the decision rule's Holm-corrected p (decisions.csv) against {baseline}; none for a value that "
    "is not primary or a descriptive suite"
)


def reference_rows(dataset: str, metrics: Iterable[str]) -> list[tuple[str, dict[str, str]]]:
    """The published values of `dataset` (`published.PUBLISHED`) for the table's `metrics`: per
    method a row label ('GDPP-GAN, GDPP paper ...') and its values, formatted as our cells."""
    shown = set(metrics)
    rows: dict[str, dict[str, str]] = {}
    for reference in published(dataset):
        if reference.metric in shown:
            rows.setdefault(reference.label, {})[reference.metric] = fmt(reference.value)
    return list(rows.items())


def reference_note(dataset: str, metrics: Iterable[str]) -> str:
    """What the published rows of a table are: their sources and protocols."""
    shown = set(metrics)
    protocols = dict.fromkeys((r.source, r.protocol) for r in published(dataset) if r.metric in shown)
    sources = "; ".join(f"{source}: {protocol}" for source, protocol in protocols)
    return (
        f"Rows marked published: values as their source reports them ({sources}); not our runs, "
        "in no mean, interval, test or bold."
    )


def constant_note(constant: Mapping[str, float]) -> str:
    """The line that stands for the columns and figures of metrics with one value in every run."""
    values = ", ".join(f"{metric} = {fmt(value)}" for metric, value in constant.items())
    return f"The same value in every run, so no column or figure: {values}."


def decision_stars(decided: pd.DataFrame, baseline: str | None) -> dict[tuple[str, str], str]:
    """(variant, metric) -> the stars of its comparison with `baseline` in `decided` (decisions.csv
    rows of one family: one dataset and role)."""
    if decided.empty or "reference" not in decided.columns:
        return {}
    against = decided[decided["reference"] == baseline]
    return {
        (str(r.variant), str(r.metric)): r.stars if isinstance(r.stars, str) else ""
        for r in against.itertuples()
    }


def cell_texts(
    summary: pd.DataFrame,
    decided: pd.DataFrame,
    baseline: str | None,
    bold: tuple[str, str],
    pm: str,
    stars_format: str,
    interval_format: str = "{}",
) -> dict[tuple[str, str], str]:
    """(variant, metric) -> 'mean ± std [low, high]' with the best in bold and the decision rule's
    stars (its comparison with `baseline`, `decided` being decisions.csv's rows) appended; the
    interval written through `interval_format` (the page sets it in small type)."""
    marks = decision_stars(decided, baseline)
    cells = {}
    for row in summary.itertuples():
        text = f"{fmt(row.mean)} {pm} {fmt(row.std)}" if math.isfinite(row.std) else fmt(row.mean)
        interval = f"[{fmt(row.ci_low)}, {fmt(row.ci_high)}]" if math.isfinite(row.ci_low) else "[CI n/a]"
        star = marks.get((row.variant, row.metric), "")
        text = f"{bold[0]}{text}{bold[1]}" if row.best else text
        cells[(row.variant, row.metric)] = f"{text} {interval_format.format(interval)}" + (
            stars_format.format(star) if star else ""
        )
    return cells


def _arrow(metric: str, up: str, down: str) -> str:
    """`metric` (possibly escaped) with the arrow of its direction."""
    higher = HIGHER_IS_BETTER[metric.replace("\\_", "_")]
    return f"{metric} {up if higher else down}"


def summary_blocks(
    summary: pd.DataFrame, decided: pd.DataFrame
) -> Iterable[tuple[str, str, pd.DataFrame, pd.DataFrame]]:
    """(dataset, role, summary rows, decisions) of each table: per dataset the ordinary runs'
    table, then the confirmation runs' (never mixed: a variant's two recipes are two rows of two
    tables, each starred from its own Holm family)."""
    summary_roles, decided_roles = roles(summary), roles(decided)
    for dataset in sorted(summary["dataset"].unique()):
        for role in ("", CONFIRM):
            block = summary[(summary["dataset"] == dataset) & (summary_roles == role)]
            if not block.empty:
                family = decided[(decided["dataset"] == dataset) & (decided_roles == role)]
                yield dataset, role, block, family


def block_constant(runs: pd.DataFrame | None, dataset: str, role: str) -> dict[str, float]:
    """The metrics with one value in every run of a table (`constant_metrics`), which the table
    shows as a line instead of a column."""
    if runs is None or runs.empty:
        return {}
    return constant_metrics(runs[(runs["dataset"] == dataset) & (roles(runs) == role)])


def summary_heading(dataset: str, role: str, trials: int | None = None) -> str:
    """A summary table's title: the dataset, and for confirmation runs the recipe they hold under."""
    if role != CONFIRM:
        return dataset
    return f"{dataset}: {recipe_title(role, trials)} (confirmation seeds of each variant's selected trial)"


def summary_markdown(
    summary: pd.DataFrame,
    decided: pd.DataFrame,
    runs: pd.DataFrame,
    baseline: str | None,
    sees: Mapping[str, Mapping[str, tuple[str, ...]]] | None = None,
) -> str:
    """One table per dataset and recipe: variants as rows (baseline first), metrics as columns
    with their direction; cells mean ± std [95% CI], best in bold, stars from the decision rule
    (`decided`: decisions.csv); under each, what its values can see (`sees`: dataset -> value ->
    defects, report.calibrated.dataset_sees)."""
    parts = []
    trials = budget_of(runs[roles(runs) == CONFIRM])
    for dataset, role, block, family in summary_blocks(summary, decided):
        constant = block_constant(runs, dataset, role)
        metrics = [m for m in HIGHER_IS_BETTER if m in set(block["metric"]) and m not in constant]
        cells = cell_texts(block, family, baseline, ("**", "**"), "±", " {}")
        header = ["variant", "n", "CPU s", *(_arrow(m, "↑", "↓") for m in metrics)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in variant_order(block["variant"].tolist(), baseline):
            rows = block[block["variant"] == variant]
            n = int(rows["n"].max())
            cpu = rows["train_cpu_s"].iloc[0] if "train_cpu_s" in rows.columns else math.nan
            row = [
                variant,
                str(n),
                f"{cpu:.0f}" if math.isfinite(cpu) else "n/a",
                *(cells.get((variant, m), "") for m in metrics),
            ]
            lines.append("| " + " | ".join(row) + " |")
        references = reference_rows(dataset, metrics)
        for label, values in references:
            lines.append(
                "| "
                + " | ".join([f"_{label}_", "published", "", *(values.get(m, "") for m in metrics)])
                + " |"
            )
        note = f"\n{reference_note(dataset, metrics)}\n" if references else ""
        note += f"\n{constant_note(constant)}\n" if constant else ""
        seen = sees_note((sees or {}).get(dataset, {}), [*metrics, *constant])
        note += f"\n{seen}\n" if seen else ""
        parts.append(f"### {summary_heading(dataset, role, trials)}\n\n" + "\n".join(lines) + "\n" + note)
    compared = runs[roles(runs) != TRIAL]
    not_done = compared[compared["status"] != "done"]
    if not not_done.empty:
        listed = not_done[["dataset", "variant", "seed", "status", "reason"]]
        parts.append(f"### Runs not in the summary\n\n{listed.to_markdown(index=False)}\n")
    trial_runs = runs[roles(runs) == TRIAL]
    if not trial_runs.empty:
        unfinished = int((trial_runs["status"] != "done").sum())
        parts.append(
            f"### Tuning trials\n\n{len(trial_runs)} trial runs ({unfinished} failed or unfinished) "
            "are not in these tables: each is one configuration of a search; see tuning.md and "
            "tuning.csv.\n"
        )
    return "\n".join(parts)


def _latex(text: str) -> str:
    for char, escaped in (
        ("\\", r"\textbackslash{}"),
        ("_", r"\_"),
        ("%", r"\%"),
        ("&", r"\&"),
        ("#", r"\#"),
    ):
        text = text.replace(char, escaped)
    return text


def summary_latex(
    summary: pd.DataFrame,
    decided: pd.DataFrame,
    baseline: str | None,
    suite: str,
    trials: int | None = None,
    runs: pd.DataFrame | None = None,
) -> str:
    """The summary tables as booktabs LaTeX (one table per dataset and recipe), stars from the
    decision rule (`decided`: decisions.csv); a metric with one value in every run of `runs` is a
    sentence of the caption, not a column."""
    parts = []
    for dataset, role, block, family in summary_blocks(summary, decided):
        constant = block_constant(runs, dataset, role)
        metrics = [m for m in HIGHER_IS_BETTER if m in set(block["metric"]) and m not in constant]
        cells = cell_texts(block, family, baseline, (r"\textbf{", "}"), r"$\pm$", "$^{{{}}}$")
        header = ["variant", "$n$", *(_arrow(_latex(m), r"$\uparrow$", r"$\downarrow$") for m in metrics)]
        lines = [
            r"\begin{table}[t]",
            r"\centering",
            r"\small",
            rf"\caption{{{_latex(suite)} / {_latex(summary_heading(dataset, role, trials))}: mean "
            r"$\pm$ std [95\% t interval] over "
            rf"seeds; best in bold; stars: {_latex(STARS_NOTE.format(baseline=baseline or 'n/a'))}"
            r" ($^{*}$ $p<0.05$, $^{**}$ $p<0.01$, $^{***}$ $p<0.001$)."
            + (f" {_latex(reference_note(dataset, metrics))}" if reference_rows(dataset, metrics) else "")
            + (f" {_latex(constant_note(constant))}" if constant else "")
            + "}",
            r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
            r"\toprule",
            " & ".join(header) + r" \\",
            r"\midrule",
        ]
        for variant in variant_order(block["variant"].tolist(), baseline):
            n = int(block[block["variant"] == variant]["n"].max())
            row = [_latex(variant), str(n)]
            row += [cells.get((variant, m), "").replace("[", "{[").replace("]", "]}") for m in metrics]
            lines.append(" & ".join(row) + r" \\")
        references = reference_rows(dataset, metrics)
        if references:
            lines.append(r"\midrule")
        for label, values in references:
            row = [rf"\textit{{{_latex(label)}}}", "--", *(values.get(m, "") for m in metrics)]
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)
