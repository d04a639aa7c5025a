"""The long per-run table (the report's source of truth) and its summaries."""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from gdpp_bench.errors import UserError
from gdpp_bench.losses import parse_variant
from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.report.stats import compare, holm, mean_ci, stars
from gdpp_bench.rundir import RunDir, UnreadableFile, find_run_dirs, read_json_object
from gdpp_bench.suites import RunSpec, check_settings

ID_COLUMNS = ["suite", "dataset", "variant", "seed"]
DEFAULT_BASELINE = "bce"  # the variant every other is tested against unless --baseline says otherwise


def collect_runs(suite_dir: Path) -> pd.DataFrame:
    """One row per run directory under `suite_dir`: identity, config, status and every metric.

    A run with a file that cannot be read (truncated JSON, a log that is not a table, a config
    with values no suite file may hold) is listed with status 'unreadable: FILE' and the reason,
    never dropped and never a crash."""
    rows = []
    for run_dir in find_run_dirs(suite_dir):
        try:
            rows.append(_run_row(run_dir))
        except UnreadableFile as exc:
            rows.append(_unreadable_row(run_dir, suite_dir, exc))
    if not rows:
        return pd.DataFrame(columns=[*ID_COLUMNS, "status"])
    datasets = {row["dataset"] for row in rows} - {"?"}
    if len(datasets) == 1:  # a one-dataset suite: its folders do not name the dataset
        for row in rows:
            row["dataset"] = next(iter(datasets))
    return pd.DataFrame(rows).sort_values(ID_COLUMNS).reset_index(drop=True)


def _unreadable_row(run_dir: RunDir, suite_dir: Path, exc: UnreadableFile) -> dict:
    """What the folder's path says of a run whose files cannot be read."""
    key = run_dir.path.relative_to(suite_dir).as_posix()
    parts = key.split("/")
    seed_text = parts[-1].removeprefix("seed-")
    return {"suite": suite_dir.name, "dataset": parts[0] if len(parts) > 2 else "?",
            "variant": parts[-2] if len(parts) > 1 else "?",
            "seed": int(seed_text) if seed_text.lstrip("-").isdigit() else -1,
            "status": f"unreadable: {exc.path.name}", "reason": str(exc), "run": key}


def read_run_csv(path: Path) -> pd.DataFrame:
    """log.csv or evals.csv as a table; UnreadableFile unless every row has the header's fields and
    every field is a number (nan, inf and empty fields included)."""
    try:
        with path.open(newline="") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UnreadableFile(path, type(exc).__name__) from None
    if not rows or not rows[0] or rows[0][0] != "step":
        raise UnreadableFile(path, "no header starting with 'step'")
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]) or not all(_is_number(field) for field in row):
            raise UnreadableFile(path, f"line {number} is not a row of {len(rows[0])} numbers")
    return pd.read_csv(path)


def _is_number(text: str) -> bool:
    try:
        float(text or "nan")
    except ValueError:
        return False
    return True


def _run_row(run_dir: RunDir) -> dict:
    config = run_dir.read_config()
    try:
        parsed = RunSpec.from_dict(config["spec"])
        check_settings(parsed.train, parsed.eval)
    except (UserError, KeyError, TypeError, ValueError) as exc:
        detail = exc if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc}"
        raise UnreadableFile(run_dir.config, f"its run settings are not valid: {detail}") from None
    spec, environment = config["spec"], config.get("environment", {})
    variant = parse_variant(spec["variant"])
    status = run_dir.status()
    metrics = read_json_object(run_dir.metrics) if run_dir.metrics.exists() else {}
    values = metrics.get("values", {})
    if not isinstance(values, dict) or not all(
            v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values.values()):
        raise UnreadableFile(run_dir.metrics, "its 'values' are not metric names with numbers")
    for path in (run_dir.log, run_dir.evals):
        if path.exists():
            read_run_csv(path)
    protocols = metrics.get("protocol", {})
    first = next(iter(protocols.values()), {})
    packages = environment.get("packages") or {}
    gdpp = [weight for name, weight in variant.terms if name == "gdpp"]
    row = {
        "suite": spec["suite"],
        "dataset": spec["dataset"],
        "variant": spec["variant"],
        "seed": spec["seed"],
        "adversarial": variant.adversarial,
        "terms": " ".join(f"{name}@{weight:g}" for name, weight in variant.terms),
        "discriminator": " ".join(variant.discriminator),
        # the GDPP weight of variants whose only change is one gdpp term; 0 for none (the baseline)
        "gdpp_weight": math.nan if variant.discriminator else (
            gdpp[0] if len(gdpp) == len(variant.terms) == 1 else (0.0 if not variant.terms else math.nan)),
        "model": spec["model"],
        "status": _status_label(status),
        "reason": status.get("reason", ""),
        "steps": spec["train"]["steps"],
        "steps_trained": status.get("step"),
        "update": spec["train"]["update"],
        "precision_mode": spec["train"].get("precision", "fp32"),
        "checkpoint": first.get("checkpoint", ""),
        "checkpoint_step": first.get("checkpoint_step"),
        "protocol": first.get("protocol", ""),
        "device": environment.get("device", ""),
        "device_name": environment.get("device_name", ""),
        "torch": packages.get("torch", ""),
        "torch_fidelity": packages.get("torch-fidelity", ""),
        "git": environment.get("git", ""),
        "train_wall_s": status.get("train_wall_s"),
        "eval_wall_s": metrics.get("wall_s"),
        "run": spec["key"],
    }
    row.update(values)
    return row


def _status_label(status: dict) -> str:
    """done, incomplete, or 'failed: <why>' shortened to its first word group (e.g. failed: diverged)."""
    if status["status"] != "failed":
        return status["status"]
    reason = status.get("reason", "")
    return f"failed: {reason.split(':')[0]}" if reason else "failed"


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The compared metric values present in `runs`, in HIGHER_IS_BETTER's order."""
    return [c for c in HIGHER_IS_BETTER if c in runs.columns and runs[c].notna().any()]


SUMMARY_COLUMNS = ["dataset", "variant", "metric", "higher_is_better", "mean", "std", "ci_low",
                   "ci_high", "n", "best"]
SIGNIFICANCE_COLUMNS = ["dataset", "variant", "baseline", "metric", "n", "n_baseline", "mean",
                        "baseline_mean", "hedges_g", "welch_p", "welch_p_holm", "mannwhitney_p",
                        "mannwhitney_p_holm", "stars"]


def variant_order(variants: Iterable[str], baseline: str | None = None) -> list[str]:
    """Distinct variants, the baseline first, then by adversarial loss, term name and weight (as a
    number), then discriminator modifiers: the order of table rows and figure axes."""
    def key(variant: str) -> tuple:
        parsed = parse_variant(variant)
        return variant != baseline, parsed.adversarial, parsed.terms, parsed.discriminator
    return sorted(set(variants), key=key)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, variant and metric over finished seeds: mean, std (ddof 1), 95% t interval, n,
    the metric's direction and whether this variant has the best mean of its dataset."""
    done = runs[runs["status"] == "done"]
    metrics = metric_columns(runs)
    if done.empty or not metrics:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    for (dataset, variant), group in done.groupby(["dataset", "variant"], sort=True):
        for metric in metrics:
            values = group[metric].dropna().tolist()
            if not values:
                continue
            mean, low, high = mean_ci(values)
            rows.append({"dataset": dataset, "variant": variant, "metric": metric,
                         "higher_is_better": HIGHER_IS_BETTER[metric], "mean": mean,
                         "std": pd.Series(values).std(ddof=1), "ci_low": low, "ci_high": high,
                         "n": len(values)})
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    best = summary.groupby(["dataset", "metric"])["mean"].transform(
        lambda means: means.max() if HIGHER_IS_BETTER[means.name[1]] else means.min())
    summary["best"] = summary["mean"] == best
    return summary


def significance(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """Every variant against `baseline` per dataset and metric: Welch's t and Mann-Whitney U
    (two-sided), Holm-corrected over all comparisons of the dataset, and Hedges' g (variant minus
    baseline; its sign is not flipped for lower-is-better metrics)."""
    done = runs[runs["status"] == "done"]
    rows = []
    for dataset, block in done.groupby("dataset", sort=True):
        base = block[block["variant"] == baseline]
        if base.empty:
            continue
        start = len(rows)
        for variant in variant_order(block["variant"].tolist(), baseline)[1:]:
            group = block[block["variant"] == variant]
            for metric in metric_columns(block):
                a, b = group[metric].dropna().tolist(), base[metric].dropna().tolist()
                if not a or not b:
                    continue
                rows.append({"dataset": dataset, "variant": variant, "baseline": baseline,
                             "metric": metric, "mean": sum(a) / len(a), "baseline_mean": sum(b) / len(b),
                             **compare(a, b)})
        family = rows[start:]
        for key in ("welch_p", "mannwhitney_p"):
            for row, adjusted in zip(family, holm([r[key] for r in family]), strict=True):
                row[f"{key}_holm"] = adjusted
        for row in family:
            row["stars"] = stars(row["welch_p_holm"])
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)


def _fmt(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4g}"


def cell_texts(summary: pd.DataFrame, tests: pd.DataFrame, bold: tuple[str, str],
           pm: str, stars_format: str) -> dict[tuple[str, str], str]:
    """(variant, metric) -> 'mean ± std [low, high]' with the best in bold and stars appended."""
    marks = {(r.variant, r.metric): r.stars for r in tests.itertuples()} if not tests.empty else {}
    cells = {}
    for row in summary.itertuples():
        text = f"{_fmt(row.mean)} {pm} {_fmt(row.std)}" if math.isfinite(row.std) else _fmt(row.mean)
        interval = f"[{_fmt(row.ci_low)}, {_fmt(row.ci_high)}]" if math.isfinite(row.ci_low) else "[CI n/a]"
        star = marks.get((row.variant, row.metric), "")
        text = f"{bold[0]}{text}{bold[1]}" if row.best else text
        cells[(row.variant, row.metric)] = f"{text} {interval}" + (stars_format.format(star) if star else "")
    return cells


def _arrow(metric: str, up: str, down: str) -> str:
    """`metric` (possibly escaped) with the arrow of its direction."""
    higher = HIGHER_IS_BETTER[metric.replace("\\_", "_")]
    return f"{metric} {up if higher else down}"


def summary_markdown(summary: pd.DataFrame, tests: pd.DataFrame, runs: pd.DataFrame,
                     baseline: str | None) -> str:
    """One table per dataset: variants as rows (baseline first), metrics as columns with their
    direction; cells mean ± std [95% CI], best in bold, stars from the Holm-corrected Welch test."""
    parts = []
    for dataset, block in summary.groupby("dataset", sort=True):
        metrics = [m for m in HIGHER_IS_BETTER if m in set(block["metric"])]
        cells = cell_texts(block, tests[tests["dataset"] == dataset], ("**", "**"), "±", " {}")
        header = ["variant", "n", *(_arrow(m, "↑", "↓") for m in metrics)]
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for variant in variant_order(block["variant"].tolist(), baseline):
            n = int(block[block["variant"] == variant]["n"].max())
            row = [variant, str(n), *(cells.get((variant, m), "") for m in metrics)]
            lines.append("| " + " | ".join(row) + " |")
        parts.append(f"### {dataset}\n\n" + "\n".join(lines) + "\n")
    not_done = runs[runs["status"] != "done"]
    if not not_done.empty:
        listed = not_done[["dataset", "variant", "seed", "status", "reason"]]
        parts.append(f"### Runs not in the summary\n\n{listed.to_markdown(index=False)}\n")
    return "\n".join(parts)


def _latex(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("_", r"\_"), ("%", r"\%"), ("&", r"\&"),
                          ("#", r"\#")):
        text = text.replace(char, escaped)
    return text


def summary_latex(summary: pd.DataFrame, tests: pd.DataFrame, baseline: str | None, suite: str) -> str:
    """The summary tables as booktabs LaTeX (one table per dataset)."""
    parts = []
    for dataset, block in summary.groupby("dataset", sort=True):
        metrics = [m for m in HIGHER_IS_BETTER if m in set(block["metric"])]
        cells = cell_texts(block, tests[tests["dataset"] == dataset], (r"\textbf{", "}"), r"$\pm$",
                           "$^{{{}}}$")
        header = ["variant", "$n$", *(_arrow(_latex(m), r"$\uparrow$", r"$\downarrow$") for m in metrics)]
        lines = [r"\begin{table}[t]", r"\centering", r"\small",
                 rf"\caption{{{_latex(suite)} / {_latex(dataset)}: mean $\pm$ std [95\% t interval] over "
                 rf"seeds; best in bold; stars: Holm-corrected Welch test against {_latex(baseline or 'n/a')}"
                 r" ($^{*}$ $p<0.05$, $^{**}$ $p<0.01$, $^{***}$ $p<0.001$).}",
                 r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
                 " & ".join(header) + r" \\", r"\midrule"]
        for variant in variant_order(block["variant"].tolist(), baseline):
            n = int(block[block["variant"] == variant]["n"].max())
            row = [_latex(variant), str(n)]
            row += [cells.get((variant, m), "").replace("[", "{[").replace("]", "]}") for m in metrics]
            lines.append(" & ".join(row) + r" \\")
        lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
        parts.append("\n".join(lines))
    return "\n".join(parts)
