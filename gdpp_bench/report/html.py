"""The report's HTML page: claims, tables, figures, protocol text and provenance. It is one page
with its figures/ folder beside it (the images are linked, not embedded): keep them together."""

from __future__ import annotations

import html
import math
import os
import re
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from PIL import Image

from gdpp_bench.data import kind_of
from gdpp_bench.errors import UserError
from gdpp_bench.metrics import HIGHER_IS_BETTER, entry_sees, sees_phrase
from gdpp_bench.report.claims import verdict_kind
from gdpp_bench.report.figures import FIGURES
from gdpp_bench.report.figures.base import DPI, FULL_WIDTH, PART
from gdpp_bench.report.recipes import (
    CONFIRM,
    SELECTION_NOTE,
    TRIAL,
    TUNED_FIGURES,
    budget_of,
    recipe_title,
    roles,
)
from gdpp_bench.report.render import (
    cell_texts,
    constant_note,
    fmt,
    reference_note,
    reference_rows,
    summary_blocks,
    summary_heading,
)
from gdpp_bench.report.tables import constant_metrics, variant_order
from gdpp_bench.report.tuning_report import tuning_html
from gdpp_bench.rundir import RunDir, read_json

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
.table { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
.table table { margin-bottom: 0.5em; }
th, td { border-bottom: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; white-space: nowrap; }
.ci { font-size: 0.85em; color: #666; }
th:first-child, td:first-child { text-align: left; }
thead th { border-bottom: 2px solid #444; }
tr.published td { font-style: italic; color: #555; }
tr.first-published td { border-top: 2px solid #999; }
figure { display: inline-block; margin: 0.5em; vertical-align: top; }
figure img { max-width: 560px; border: 1px solid #eee; }
figcaption { font-size: 0.8em; color: #555; max-width: 560px; }
figure.wide { display: block; margin: 1em 0; }
figure.wide img, figure.wide figcaption { width: 100%; max-width: none; box-sizing: border-box; }
p.note { font-size: 0.85em; color: #555; margin: 0 0 1em; }
.failed { color: #a00; }
"""
# a figure this wide (its panels in one row, FULL_WIDTH inches) is shown across the page
WIDE_PIXELS = 0.75 * FULL_WIDTH * DPI


def summary_table_html(
    summary: pd.DataFrame,
    decided: pd.DataFrame,
    baseline: str | None,
    constant: Mapping[str, float] | None = None,
) -> str:
    """One table: variants (baseline first) x metrics with their direction; best in bold; stars
    from the decision rule (`decided`: decisions.csv's rows of the table's family); then the
    published values of the dataset's metrics (`published`) as rows of their own. The metrics in
    `constant` (one value in every run: `constant_metrics`) are a line below it, not columns."""
    constant = constant or {}
    metrics = [m for m in HIGHER_IS_BETTER if m in set(summary["metric"]) and m not in constant]
    cells = cell_texts(
        summary, decided, baseline, ("<b>", "</b>"), "&plusmn;", "<sup>{}</sup>", "<span class='ci'>{}</span>"
    )
    head = "".join(
        f"<th>{html.escape(m)} {'&uarr;' if HIGHER_IS_BETTER[m] else '&darr;'}</th>" for m in metrics
    )
    rows = []
    for variant in variant_order(summary["variant"].tolist(), baseline):
        block = summary[summary["variant"] == variant]
        cpu = block["train_cpu_s"].iloc[0] if "train_cpu_s" in block.columns else math.nan
        tds = "".join(f"<td>{cells.get((variant, m), '')}</td>" for m in metrics)
        rows.append(
            f"<tr><td>{html.escape(variant)}</td><td>{int(block['n'].max())}</td>"
            f"<td>{f'{cpu:.0f}' if math.isfinite(cpu) else 'n/a'}</td>{tds}</tr>"
        )
    dataset = str(summary["dataset"].iloc[0]) if len(summary) else ""
    references = reference_rows(dataset, metrics)
    for index, (label, values) in enumerate(references):
        first = " first-published" if index == 0 else ""
        tds = "".join(f"<td>{html.escape(values.get(m, ''))}</td>" for m in metrics)
        rows.append(
            f"<tr class='published{first}'><td>{html.escape(label)}</td>"
            f"<td colspan='2'>published</td>{tds}</tr>"
        )
    table = (
        f"<div class='table'><table><thead><tr><th>variant</th><th>n</th><th>CPU s/run</th>{head}</tr>"
        f"</thead><tbody>{''.join(rows)}</tbody></table></div>"
    )
    notes = [reference_note(dataset, metrics)] if references else []
    if constant:
        notes.append(constant_note(constant))
    return table + "".join(f"<p class='note'>{html.escape(note)}</p>" for note in notes)


def summary_tables_html(
    summary: pd.DataFrame, decided: pd.DataFrame, baseline: str | None, trials: int | None = None
) -> str:
    """`summary_table_html` per recipe: the ordinary runs' table, then the confirmation runs'
    under a heading naming the recipe (a variant's two recipes are never one row)."""
    parts = []
    for dataset, role, block, family in summary_blocks(summary, decided):
        if role == CONFIRM:
            parts.append(f"<h4>{html.escape(summary_heading(dataset, role, trials))}</h4>")
        parts.append(summary_table_html(block, family, baseline))
    return "\n".join(parts)


def _tuning_figure(png: Path) -> bool:
    prefix = png.stem.split("_", 1)[0]
    return prefix in FIGURES and bool(FIGURES.meta(prefix).get("tuning"))


def figure_caption(png: Path) -> str:
    """What a report figure shows, from its registration (stem PREFIX_DATASET[_METRIC], or
    PREFIX_DATASET_P-of-N for part P of a figure drawn as N rows of panels); a figure of the
    confirmation runs (figures/tuned/) says so first."""
    prefix, dataset, *rest = png.stem.split("_", 2)
    if prefix not in FIGURES:
        return png.stem
    template = FIGURES.meta(prefix).get("caption", png.stem)
    if isinstance(template, Mapping):
        template = template.get(_kind(dataset), png.stem)
    part = PART.fullmatch(rest[0]) if rest else None
    metric = "" if part or not rest else rest[0]
    caption = str(template).format(dataset=dataset, metric=metric)
    if part:
        caption += f" (part {part[1]} of {part[2]})"
    return f"Tuned (confirmation seeds): {caption}" if png.parent.name == TUNED_FIGURES else caption


def _kind(dataset: str) -> str:
    """The dataset's kind ("2d", "image"), "" for one not registered here."""
    try:
        return kind_of(dataset)
    except (UserError, AttributeError):  # a plug-in's or a configurable dataset's name
        return ""


def figures_html(figures: list[Path], out_dir: Path) -> str:
    """The figures with their captions; one whose panels fill a row (FULL_WIDTH inches) across
    the page's width, the others side by side."""
    parts = []
    for png in figures:
        link = png.relative_to(out_dir).as_posix()
        pdf = png.with_suffix(".pdf")
        pdf_link = ""
        if pdf.exists():
            pdf_link = f' (<a href="{html.escape(pdf.relative_to(out_dir).as_posix())}">PDF</a>)'
        caption = figure_caption(png)
        with Image.open(png) as image:
            wide = image.width >= WIDE_PIXELS
        parts.append(
            f'<figure{" class=wide" if wide else ""}><a href="{html.escape(link)}"><img '
            f'src="{html.escape(link)}" alt="{html.escape(caption)}"></a><figcaption>'
            f"{html.escape(caption)}{pdf_link}</figcaption></figure>"
        )
    return "\n".join(parts)


def provenance_html(runs: pd.DataFrame) -> str:
    """The code and packages the runs were trained with: each git revision, torch and
    torch-fidelity version and device, with how many runs used it."""
    items = []
    for column, label in (
        ("git", "git revision"),
        ("torch", "torch"),
        ("torch_fidelity", "torch-fidelity"),
        ("device_name", "device"),
    ):
        if column not in runs.columns:
            continue
        counts = runs[column].fillna("unknown").astype(str).value_counts()
        shown = ", ".join(
            f"<code>{html.escape(value)}</code> ({count} runs)" for value, count in counts.items()
        )
        items.append(f"<li>{label}: {shown}</li>")
    return "<ul>" + "".join(items) + "</ul>"


def runs_html(runs: pd.DataFrame, suite_dir: Path, out_dir: Path) -> str:
    """Every run with its status; its folder linked where the report sits beside the run folders."""
    beside = out_dir.resolve().parent == suite_dir.resolve()
    rows = []
    for r in runs.itertuples():
        name = html.escape(str(r.run))
        if beside and (suite_dir / str(r.run)).is_dir():
            link = os.path.relpath(suite_dir / str(r.run), out_dir)
            name = f"<a href='{html.escape(Path(link).as_posix())}/'>{name}</a>"
        rows.append(
            f"<tr><td>{name}</td><td>{html.escape(str(r.dataset))}</td><td>{html.escape(str(r.variant))}</td>"
            f"<td>{r.seed}</td><td>{html.escape(str(r.status))}</td></tr>"
        )
    return (
        f"<details><summary>{len(runs)} run folders</summary><table><thead><tr><th>run</th>"
        "<th>dataset</th><th>variant</th><th>seed</th><th>status</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table></details>"
    )


def protocol_html(runs: pd.DataFrame, suite_dir: Path) -> str:
    """Per dataset: the training recipe and every metric's protocol, read from one finished run."""
    parts = []
    readable = runs[~runs["status"].astype(str).str.startswith("unreadable")]
    for dataset, block in readable.groupby("dataset", sort=True):
        # the suite's own recipe where it has ordinary runs; a tuned run's values are one trial's
        ranked = block.assign(rank=roles(block).map({"": 0, CONFIRM: 1}).fillna(2))
        ranked = ranked.assign(rank=ranked["rank"] + 3 * (ranked["status"] != "done"))
        sample = ranked.sort_values("rank", kind="mergesort").iloc[0]
        run_dir = RunDir(suite_dir / sample["run"])
        spec = read_json(run_dir.config)["spec"]
        train = spec["train"]
        items = [
            f"model <code>{html.escape(spec['model'])}</code>, {train['steps']:,} steps, batch "
            f"{train['batch_size']}, Adam lr G {train['lr_g']:g} / D {train['lr_d']:g}, betas "
            f"({train['beta1']:g}, {train['beta2']:g}), {html.escape(train['update'])} updates, "
            f"{html.escape(train.get('precision', 'fp32'))}; {_seeds_text(block)}",
        ]
        if (roles(block) != "").any():
            items.append(
                "tuned runs: the searched values (learning rates, term weight, ...) are each trial's "
                "own; the recipe above is one run's (see tuning.md for every trial's values)"
            )
        if run_dir.metrics.exists():
            for metric, entry in read_json(run_dir.metrics).get("protocol", {}).items():
                details = ", ".join(
                    f"{key.replace('_', ' ')} {html.escape(_shown(entry[key]))}"
                    for key in (
                        "protocol",
                        "generated_samples",
                        "real_samples",
                        "reference_split",
                        "extractor",
                        "checkpoint",
                    )
                    if key in entry
                )
                seen = "; ".join(f"{v} {sees_phrase(d)}" for v, d in entry_sees(metric).items())
                calibrated = f"; calibration: {html.escape(seen)}" if seen else ""
                items.append(
                    f"<b>{html.escape(metric)}</b>: {html.escape(entry.get('description', ''))} "
                    f"({details}){calibrated}"
                )
        parts.append(
            f"<h3>{html.escape(dataset)}</h3><ul>" + "".join(f"<li>{i}</li>" for i in items) + "</ul>"
        )
    return "\n".join(parts)


def _seeds_text(block: pd.DataFrame) -> str:
    """'seeds 0, 1, 2', or per role where a tuned suite's runs have several."""
    named = {"": "seeds", TRIAL: "tuning seeds", CONFIRM: "confirmation seeds"}
    role = roles(block)
    parts = []
    for wanted, name in named.items():
        seeds = sorted(block.loc[role == wanted, "seed"].unique())
        if seeds:
            parts.append(f"{name} {', '.join(str(s) for s in seeds)}")
    return "; ".join(parts)


def not_done_html(runs: pd.DataFrame) -> str:
    """Failed and incomplete runs, listed (never silently dropped); trial runs counted (tuning.md
    lists each trial)."""
    trial_runs = runs[roles(runs) == TRIAL]
    unfinished_trials = int((trial_runs["status"] != "done").sum())
    note = (
        f"<p>{unfinished_trials} of {len(trial_runs)} tuning trial runs failed or are unfinished "
        "(a failed trial is a result of the search: <a href='tuning.md'>tuning.md</a>).</p>"
        if unfinished_trials
        else ""
    )
    missing = runs[(runs["status"] != "done") & (roles(runs) != TRIAL)]
    if missing.empty:
        return note or "<p>Every run finished.</p>"
    rows = "".join(
        f"<tr class='failed'><td>{html.escape(r.dataset)}</td><td>{html.escape(r.variant)}</td>"
        f"<td>{r.seed}</td><td>{html.escape(r.status)}</td><td>{html.escape(str(r.reason or ''))}</td></tr>"
        for r in missing.itertuples()
    )
    return (
        "<table><thead><tr><th>dataset</th><th>variant</th><th>seed</th><th>status</th>"
        f"<th>reason</th></tr></thead><tbody>{rows}</tbody></table>{note}"
    )


def page(title: str, body: str) -> str:
    return (
        f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body>\n<h1>{html.escape(title)}</h1>\n{body}\n"
        "</body></html>\n"
    )


def _shown(value: object) -> str:
    return "none" if value is None else str(value)


def claims_html(
    decided: pd.DataFrame, headline: str, trials: int | None = None, notes: list[str] | None = None
) -> str:
    """The decision rule's verdicts as a table (claims.md's content); where a suite has tuned runs,
    a column names each verdict's recipe. `notes`: claims.md's lines on what the runs recorded of
    their suite's [decision] table (markdown: **bold** and `code`)."""
    noted = "".join(f"<p>{_inline_markdown(note)}</p>" for note in notes or ())
    if decided.empty:
        return noted + "<p>No comparison: the baseline or the other variants have no finished runs.</p>"
    tuned = bool((roles(decided) == CONFIRM).any())
    shown = decided.assign(
        recipe=[recipe_title(role, trials) for role in roles(decided)],
        comparison=decided["variant"] + " vs " + decided["reference"],
        **{
            "Δ [95% bootstrap]": [
                f"{fmt(r.difference)} [{fmt(r.difference_low)}, {fmt(r.difference_high)}]"
                for r in decided.itertuples()
            ]
        },
    )
    columns = {
        "dataset": "dataset",
        **({"recipe": "recipe"} if tuned else {}),
        "comparison": "comparison",
        "metric": "metric",
        "verdict": "verdict",
        "Δ [95% bootstrap]": "Δ [95% bootstrap]",
        "hedges_g": "g",
        "cliffs_delta": "δ",
        "mannwhitney_p_holm": "p (Holm)",
        "mannwhitney_method": "test",
    }
    table = (
        shown[list(columns)]
        .rename(columns=columns)
        .to_html(index=False, float_format=fmt, na_rep="n/a", classes="claims", border=0)
    )
    kinds = decided["verdict"].map(verdict_kind)
    counts = ", ".join(f"{count} {kind}" for kind, count in kinds.value_counts().items())
    separate = f" each recipe's runs are a Holm family of their own ({SELECTION_NOTE});" if tuned else ""
    return noted + (
        f"<p>{html.escape(headline)} The rule, fixed before the runs: two-sided Mann-Whitney U, "
        f"Holm over all comparisons and metrics of a dataset, alpha 0.05;{separate} the same lines are in "
        "<a href='claims.md'>claims.md</a> and <a href='decisions.csv'>decisions.csv</a>.</p>"
        f"<details><summary>{len(decided)} verdicts: {html.escape(counts)}</summary>"
        f"<div class='table'>{table}</div></details>"
    )


def _inline_markdown(text: str) -> str:
    """A claims.md line as HTML: escaped, with **bold** and `code`."""
    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text, quote=False))
    return re.sub(r"`(.+?)`", r"<code>\1</code>", text)


def suite_page(
    suite: str,
    runs: pd.DataFrame,
    summary: pd.DataFrame,
    decided: pd.DataFrame,
    baseline: str | None,
    figures: dict[str, list[Path]],
    suite_dir: Path,
    out_dir: Path,
    claims: str = "",
    tuning: pd.DataFrame | None = None,
) -> str:
    """index.html of one suite's report; `decided`: decisions.csv (the summary tables' stars);
    `tuning`: its trials (`trial_table`), if tuned."""
    sections = [
        f"<p>{len(runs)} runs, {int((runs['status'] == 'done').sum())} finished. Cells: mean &plusmn; std "
        "[95% t interval, cut to the metric's range] over seeds; the best mean in bold where one "
        "variant alone has it; arrows give the "
        "better direction; stars: the decision rule's Holm-corrected p (<a href='decisions.csv'>"
        f"decisions.csv</a>) against <code>{html.escape(baseline or 'n/a')}</code> "
        "(* p&lt;0.05, ** p&lt;0.01, *** p&lt;0.001), none for a value that is not primary or a "
        "descriptive suite; Welch's t beside the same Mann-Whitney test in <a href='significance.csv'>"
        "significance.csv</a>, per-run numbers in <a href='runs.csv'>runs.csv</a>, LaTeX in "
        "<a href='summary.tex'>summary.tex</a>.</p>",
    ]
    if claims:
        sections += ["<h2>Claims (the decision rule)</h2>", claims]
    trials = budget_of(runs[roles(runs) == CONFIRM])
    for dataset in sorted(runs["dataset"].unique()):
        block = summary[summary["dataset"] == dataset]
        pngs = figures.get(dataset, [])
        sections.append(f"<h2>{html.escape(dataset)}</h2>")
        if block.empty:
            sections.append("<p>No finished run with metrics.</p>")
        of_dataset = runs[runs["dataset"] == dataset]
        ordinary = block[roles(block) != CONFIRM]
        if not ordinary.empty:
            sections.append(
                summary_table_html(
                    ordinary,
                    decided[(decided["dataset"] == dataset) & (roles(decided) != CONFIRM)],
                    baseline,
                    constant_metrics(of_dataset[roles(of_dataset) == ""]),
                )
            )
        sections.append(
            figures_html(
                [p for p in pngs if p.parent.name != TUNED_FIGURES and not _tuning_figure(p)], out_dir
            )
        )
        tuned = block[roles(block) == CONFIRM]
        if not tuned.empty:
            sections.append(f"<h3>{html.escape(summary_heading(dataset, CONFIRM, trials))}</h3>")
            sections.append(
                summary_table_html(
                    tuned,
                    decided[(decided["dataset"] == dataset) & (roles(decided) == CONFIRM)],
                    baseline,
                    constant_metrics(of_dataset[roles(of_dataset) == CONFIRM]),
                )
            )
            sections.append(figures_html([p for p in pngs if p.parent.name == TUNED_FIGURES], out_dir))
        if tuning is not None and (tuning["dataset"] == dataset).any():
            sections += [
                f"<h3>Tuning: {html.escape(recipe_title(CONFIRM, trials))}</h3>",
                "<p>Every trial in <a href='tuning.csv'>tuning.csv</a>, the selection and the budget "
                "curves in <a href='tuning.md'>tuning.md</a> and <a href='budget.csv'>budget.csv</a>; "
                f"{SELECTION_NOTE}.</p>",
                tuning_html(tuning, runs, dataset, baseline),
                figures_html([p for p in pngs if _tuning_figure(p)], out_dir),
            ]
    sections += [
        "<h2>Runs not finished</h2>",
        not_done_html(runs),
        "<h2>Protocol</h2>",
        protocol_html(runs, suite_dir),
        "<h2>Provenance</h2>",
        provenance_html(runs),
        runs_html(runs, suite_dir, out_dir),
    ]
    return page(f"gdpp-bench report: {suite}", "\n".join(sections))
