"""The report builders: every table, figure and index.html of a suite (and the cross-suite overview)."""

from __future__ import annotations

import html
from pathlib import Path

import pandas as pd

from gdpp_bench.errors import UserError
from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.metrics.features import DEFAULT_FEATURES, fidelity_keys
from gdpp_bench.metrics.inception_weights import NON_STANDARD_INCEPTION, PUBLISHED_INCEPTION_FILE
from gdpp_bench.report import figures
from gdpp_bench.report.calibrated import dataset_sees
from gdpp_bench.report.claims import claims_markdown, decisions, settings_notes
from gdpp_bench.report.collapsed import collapse_note
from gdpp_bench.report.html import claims_html, figures_html, page, suite_page, summary_tables_html
from gdpp_bench.report.recipes import CONFIRM, ORDINARY, TRIAL, TUNED_FIGURES, budget_of, of_role, roles
from gdpp_bench.report.render import STARS_NOTE, summary_latex, summary_markdown
from gdpp_bench.report.tables import (
    DEFAULT_BASELINE,
    DEFAULT_LAST_K,
    collect_runs,
    headline_kinds,
    metric_columns,
    significance,
    summarize,
)
from gdpp_bench.report.tuning import budget_curves, mark_selected, trial_table
from gdpp_bench.report.tuning_report import tuning_markdown
from gdpp_bench.rundir import suite_dirs, write_atomic


def _write_text(path: Path, text: str) -> Path:
    write_atomic(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return path


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
    return path


def _suite_figures(
    runs: pd.DataFrame, suite_dir: Path, fig_dir: Path, baseline: str, last_k: int = DEFAULT_LAST_K
) -> dict[str, list[Path]]:
    """Every registered figure that applies, per dataset: {dataset: [PNG paths]}. The figures of
    compared runs are drawn per recipe (ordinary runs into fig_dir, confirmation runs into
    fig_dir/tuned/), never of both at once; `tuning` figures once, from all runs."""
    made: dict[str, list[Path]] = {}
    recipes = [(of_role(runs, ORDINARY), fig_dir), (of_role(runs, CONFIRM), fig_dir / TUNED_FIGURES)]
    for dataset in sorted(runs["dataset"].unique()):
        written: list[Path] = []
        for prefix, meta in figures.FIGURES.declared():
            draw = figures.FIGURES.get(prefix)
            if meta.get("tuning"):
                if (of_role(runs, TRIAL)["dataset"] == dataset).any():
                    written += draw(
                        runs, suite_dir, dataset, fig_dir / f"{prefix}_{dataset}", baseline=baseline
                    )
                continue
            extra = {"last_k": last_k} if meta.get("last_k") else {}
            for recipe, folder in recipes:
                block = recipe[recipe["dataset"] == dataset]
                if not (block["status"] == "done").any():  # nothing to draw (unreadable runs are listed)
                    continue
                if meta["per"] == "metric":
                    for metric in metric_columns(block):
                        written += draw(
                            recipe, dataset, metric, folder / f"{prefix}_{dataset}_{metric}", baseline
                        )
                else:
                    written += draw(
                        recipe, suite_dir, dataset, folder / f"{prefix}_{dataset}", baseline=baseline, **extra
                    )
        if written:
            made[dataset] = [p for p in written if p.suffix == ".png"]
    return made


def build_report(
    suite_dir: Path,
    out_dir: Path | None = None,
    baseline: str = DEFAULT_BASELINE,
    with_figures: bool = True,
    last_k: int = DEFAULT_LAST_K,
) -> dict[str, Path]:
    """Write runs.csv, summary.{csv,md,tex}, significance.csv, decisions.csv, claims.md, figures/
    (unless not `with_figures`) and index.html for one suite's results folder, and for a tuned
    suite tuning.csv, tuning.md and budget.csv; return what was written. `last_k`: periodic
    evaluations averaged into each run's headline value."""
    return _suite_report(suite_dir, out_dir, baseline, with_figures, last_k)[0]


def _suite_report(
    suite_dir: Path,
    out_dir: Path | None,
    baseline: str,
    with_figures: bool = True,
    last_k: int = DEFAULT_LAST_K,
) -> tuple[dict[str, Path], pd.DataFrame, pd.DataFrame, list[str]]:
    """build_report, also returning the summary and the decisions (decisions.csv) it wrote, and
    the lines marking fidelity values measured with non-standard Inception weights."""
    runs = collect_runs(suite_dir, last_k)
    if runs.empty:
        raise UserError(f"no runs under {suite_dir}; run `gdpp-bench run --suite NAME` first")
    out_dir = out_dir or suite_dir / "report"
    suite = str(runs["suite"].iloc[0])
    summary = summarize(runs)
    tests = significance(runs, baseline)
    decided = decisions(runs, baseline)
    claims = claims_markdown(decided, runs, suite, baseline, last_k)
    trials = budget_of(of_role(runs, CONFIRM))
    written = {
        "runs.csv": _write_csv(out_dir / "runs.csv", runs),
        "summary.csv": _write_csv(out_dir / "summary.csv", summary),
        "significance.csv": _write_csv(out_dir / "significance.csv", tests),
        "decisions.csv": _write_csv(out_dir / "decisions.csv", decided),
        "claims.md": _write_text(out_dir / "claims.md", claims),
        "summary.md": _write_text(
            out_dir / "summary.md",
            f"# {suite}\n\n{_headline_note(runs, last_k)} "
            f"mean ± std [95% t interval, cut to the metric's range] over seeds; "
            f"CPU s: mean training CPU seconds per run; stars: "
            f"{STARS_NOTE.format(baseline=baseline)} (verdicts in claims.md)\n\n"
            + "".join(f"{note}\n\n" for note in inception_notes(runs))
            + summary_markdown(summary, decided, runs, baseline, dataset_sees(runs, suite_dir)),
        ),
        "summary.tex": _write_text(
            out_dir / "summary.tex", summary_latex(summary, decided, baseline, suite, trials, runs)
        ),
    }
    tuning = mark_selected(trial_table(runs), runs)
    if not tuning.empty:
        curves = budget_curves(tuning)
        written["tuning.csv"] = _write_csv(out_dir / "tuning.csv", tuning)
        written["budget.csv"] = _write_csv(out_dir / "budget.csv", curves)
        written["tuning.md"] = _write_text(
            out_dir / "tuning.md", tuning_markdown(tuning, curves, runs, suite, baseline)
        )
    made = _suite_figures(runs, suite_dir, out_dir / "figures", baseline, last_k) if with_figures else {}
    for png in (p for paths in made.values() for p in paths):
        written[png.relative_to(out_dir).as_posix()] = png
    written["index.html"] = _write_text(
        out_dir / "index.html",
        suite_page(
            suite,
            runs,
            summary,
            decided,
            baseline,
            made,
            suite_dir,
            out_dir,
            claims_html(
                decided,
                _headline_note(runs, last_k),
                trials,
                [*inception_notes(runs), *settings_notes(runs)],
            ),
            tuning,
        ),
    )
    return written, summary, decided, inception_notes(runs, markdown=False)


def _headline_note(runs: pd.DataFrame, last_k: int) -> str:
    """What a run's headline value is, in one sentence (two where evaluations collapsed)."""
    kinds = headline_kinds(runs.get("headline", pd.Series(dtype=str)).dropna(), last_k)
    text = f"Headline value of a run: {kinds or 'final checkpoint'}."
    return " ".join(part for part in (text, collapse_note(runs)) if part)


def inception_notes(runs: pd.DataFrame, markdown: bool = True) -> list[str]:
    """One line per dataset whose summarised runs measured their fidelity values with Inception-v3
    weights other than the published ones (runs.csv's fidelity_note), marking those values; none
    where every run used the published weights (`markdown`: summary.md, index.html's claims;
    else plain text). Then one per dataset and note of values measured with a chosen extractor's
    stand-in weights (eval.features; runs.csv's feature_note)."""
    bold, code = ("**", "`") if markdown else ("", "")
    if "fidelity_note" not in runs.columns:
        return []
    marked = runs[(runs["fidelity_note"].fillna("") != "") & (roles(runs) != TRIAL)]
    values = [v for v in fidelity_keys(DEFAULT_FEATURES) if v in runs.columns and v in HIGHER_IS_BETTER]
    notes = []
    for dataset, block in marked.groupby("dataset", sort=True):
        total = int(((runs["dataset"] == dataset) & (roles(runs) != TRIAL)).sum())
        digests = ", ".join(
            f"{code}{str(d)[:16]}{code}" for d in sorted(block["inception_weights_sha256"].unique())
        )
        notes.append(
            f"{bold}{dataset}: {', '.join(values)} are {NON_STANDARD_INCEPTION}{bold} ({len(block)} of "
            f"{total} runs measured with Inception-v3 weights of sha256 {digests}..., not "
            f"torch-fidelity's published {PUBLISHED_INCEPTION_FILE}; runs.csv: fidelity_note)."
        )
    if "feature_note" in runs.columns:
        compared = runs[(runs["feature_note"].fillna("") != "") & (roles(runs) != TRIAL)]
        for (dataset, note), block in compared.groupby(["dataset", "feature_note"], sort=True):
            total = int(((runs["dataset"] == dataset) & (roles(runs) != TRIAL)).sum())
            notes.append(
                f"{bold}{dataset}: fidelity values {note}{bold} ({len(block)} of {total} runs; "
                "runs.csv: feature_note)."
            )
    return notes


def build_overview(
    results: Path,
    out_dir: Path | None = None,
    baseline: str = DEFAULT_BASELINE,
    with_figures: bool = True,
    last_k: int = DEFAULT_LAST_K,
) -> dict[str, Path]:
    """A report for every suite under `results`, and a cross-suite overview in results/report/."""
    suites = suite_dirs(results) if results.is_dir() else []
    if not suites:
        raise UserError(
            f"no suite results under {results}; run `gdpp-bench run --suite NAME` first or pass --results"
        )
    out_dir = out_dir or results / "report"
    written: dict[str, Path] = {}
    summaries, sections = [], []
    for suite_dir in suites:
        report, summary, decided, marks = _suite_report(suite_dir, None, baseline, with_figures, last_k)
        written.update({f"{suite_dir.name}/{name}": path for name, path in report.items()})
        summary = summary.assign(suite=suite_dir.name)
        summaries.append(summary)
        link = report["index.html"].relative_to(results).as_posix()
        sections.append(f"<h2><a href='../{link}'>{suite_dir.name}</a></h2>")
        sections += [f"<p>{html.escape(note)}</p>" for note in marks]
        for dataset, block in summary.groupby("dataset", sort=True):
            sections.append(
                f"<h3>{dataset}</h3>"
                + summary_tables_html(block, decided[decided["dataset"] == dataset], baseline)
            )
    combined = pd.concat(summaries, ignore_index=True)
    written["summary.csv"] = _write_csv(out_dir / "summary.csv", combined)
    effect = _relative_to_baseline(combined, baseline)
    heat = (
        []
        if effect.empty or not with_figures
        else figures.gdpp_effect_heatmap(effect, out_dir / "figures" / "gdpp_effect")
    )
    for path in heat:
        written[path.relative_to(out_dir).as_posix()] = path
    images = figures_html([p for p in heat if p.suffix == ".png"], out_dir)
    body = (
        f"<p>{len(suites)} suites; baseline <code>{baseline}</code>. The heat map shows each "
        "variant's change of every metric relative to the baseline, signed so that positive is "
        f"better.</p>{images}" + "\n".join(sections)
    )
    written["index.html"] = _write_text(out_dir / "index.html", page("gdpp-bench: all suites", body))
    return written


def _relative_to_baseline(summary: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Rows of non-baseline variants with the baseline's mean of the same suite, dataset, recipe
    and metric; a tuned recipe's dataset reads 'DATASET (tuned)'."""
    summary = summary.assign(role=roles(summary))
    keys = ["suite", "dataset", "role", "metric"]
    base = summary[summary["variant"] == baseline][[*keys, "mean"]]
    merged = summary[summary["variant"] != baseline].merge(
        base.rename(columns={"mean": "baseline_mean"}), on=keys
    )
    tuned = merged["role"] == CONFIRM
    merged.loc[tuned, "dataset"] = merged.loc[tuned, "dataset"] + " (tuned)"
    return merged[["suite", "dataset", "variant", "metric", "mean", "baseline_mean"]]


__all__ = ["DEFAULT_BASELINE", "build_overview", "build_report", "collect_runs", "suite_dirs", "summarize"]
