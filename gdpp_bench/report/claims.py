"""The decision rule applied to a suite's runs: a verdict per comparison and metric (decisions.csv)
and the lines of claims.md. The rule is fixed before any run; see `decisions`."""

from __future__ import annotations

import math

import pandas as pd

from gdpp_bench.metrics import HIGHER_IS_BETTER, IS_COUNT
from gdpp_bench.report.collapsed import collapse_note
from gdpp_bench.report.recipes import (
    COMPARED_ROLES,
    CONFIRM,
    SELECTION_NOTE,
    DecisionSettings,
    budget_of,
    compared_blocks,
    constraints_of,
    decision_settings,
    recipe_title,
    roles,
)
from gdpp_bench.report.render import fmt
from gdpp_bench.report.stats import (
    ALPHA,
    bootstrap_mean_difference,
    cliffs_delta,
    constant_value,
    hedges_g,
    holm,
    mann_whitney,
    smallest_mann_whitney_p,
)
from gdpp_bench.report.tables import compared_values, headline_kinds

DECISION_COLUMNS = [
    "dataset",
    "role",
    "variant",
    "reference",
    "metric",
    "higher_is_better",
    "n",
    "n_reference",
    "mean",
    "reference_mean",
    "difference",
    "difference_low",
    "difference_high",
    "hedges_g",
    "cliffs_delta",
    "mannwhitney_p",
    "mannwhitney_method",
    "mannwhitney_p_holm",
    "comparisons",
    "primary",
    "verdict",
    "stars",
]
NOT_PRIMARY = "descriptive (not primary)"  # a value outside the suite's primary family
DESCRIPTIVE = "descriptive"  # where a descriptive suite's Holm p would have said better or worse
UNINFORMATIVE = "uninformative here"  # every run of the comparison has the same value


def _sizes(n: int, m: int) -> str:
    return f"n = {n}" if n == m else f"n = {n} vs {m}"


def decisions(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The decision rule, per family (a dataset's ordinary runs; its confirmation runs apart:
    `role`), comparison (`comparisons`) and metric: two-sided Mann-Whitney U, Holm over every
    comparison and primary value of the family, alpha 0.05. Verdict: 'better' or 'worse' (Holm p <
    alpha, direction from the metric's better direction), 'no detectable difference at n = N',
    or, where no outcome at these n could reach alpha after Holm, 'n too small: ...'. Beside it:
    the difference in means with its 95% percentile bootstrap interval, Hedges' g and, for
    counts, Cliff's delta (both variant minus reference).

    What the runs recorded of their suite's [decision] table narrows this: where it names primary
    values, only those enter Holm and the others read 'descriptive (not primary)' (raw p and
    interval kept); a descriptive suite's 'better' or 'worse' reads 'descriptive'. Trial runs are
    never compared. `stars`: the Holm p as the summary tables mark it (none where a value is not
    primary or the suite descriptive)."""
    rows: list[dict] = []
    for role, dataset, block in compared_blocks(runs):
        settings = decision_settings(block)
        family = []
        for variant, reference, metric, a, b in compared_values(block, baseline):
            p, method = mann_whitney(a, b)
            low, high = bootstrap_mean_difference(a, b)
            mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
            family.append(
                {
                    "dataset": dataset,
                    "role": role,
                    "variant": variant,
                    "reference": reference,
                    "metric": metric,
                    "higher_is_better": HIGHER_IS_BETTER[metric],
                    "n": len(a),
                    "n_reference": len(b),
                    "mean": mean_a,
                    "reference_mean": mean_b,
                    "difference": mean_a - mean_b,
                    "difference_low": low,
                    "difference_high": high,
                    "hedges_g": hedges_g(a, b),
                    "cliffs_delta": cliffs_delta(a, b) if IS_COUNT.get(metric) else math.nan,
                    "mannwhitney_p": p,
                    "mannwhitney_method": method,
                    "primary": settings.in_holm(metric, constant_value(a, b) is not None),
                    "constant": constant_value(a, b),
                }
            )
        held = [row for row in family if row["primary"]]
        adjusted = holm([row["mannwhitney_p"] for row in held])
        floor = min((smallest_mann_whitney_p(r["n"], r["n_reference"]) for r in held), default=1.0)
        for row, p_holm in zip(held, adjusted, strict=True):
            row["mannwhitney_p_holm"], row["comparisons"] = p_holm, len(held)
            # no Holm-adjusted p of the family is below m x the smallest raw p any outcome allows
            bound = max(len(held) * floor, smallest_mann_whitney_p(row["n"], row["n_reference"]))
            row["verdict"] = _verdict(row, p_holm, bound, settings)
        for row in family:
            constant = row.pop("constant")
            if not row["primary"]:
                row["mannwhitney_p_holm"], row["comparisons"] = math.nan, len(held)
                row["verdict"] = NOT_PRIMARY
            if constant is not None:
                row["verdict"] = _uninformative(row["verdict"], constant)
            row["stars"] = settings.stars(row["metric"], row["mannwhitney_p_holm"])
        rows += family
    return pd.DataFrame(rows, columns=DECISION_COLUMNS)


def _uninformative(verdict: str, constant: float) -> str:
    """A comparison whose runs all have one value: kept out of the Holm family (NOT_PRIMARY), or,
    where the suite pre-registered the value as primary, its verdict kept and marked."""
    mark = f"{UNINFORMATIVE}: {fmt(constant)} in every run"
    return f"{mark}, left out of the Holm family" if verdict == NOT_PRIMARY else f"{verdict} ({mark})"


def _verdict(row: dict, p_holm: float, smallest_holm_p: float, settings: DecisionSettings) -> str:
    sizes = _sizes(row["n"], row["n_reference"])
    if smallest_holm_p >= ALPHA:
        return (
            f"n too small to decide: at {sizes}, Holm over {row['comparisons']} comparisons, the "
            f"smallest possible p is {min(1.0, smallest_holm_p):.3g}"
        )
    if math.isfinite(p_holm) and p_holm < ALPHA and row["difference"] != 0:
        if settings.descriptive:
            return DESCRIPTIVE
        return "better" if (row["difference"] > 0) == row["higher_is_better"] else "worse"
    return f"no detectable difference at {sizes}"


def verdict_kind(verdict: str) -> str:
    """A verdict without its sizes and notes: 'better', 'worse', 'no detectable difference',
    'n too small to decide', or the descriptive ones as written."""
    if verdict in ("better", "worse"):
        return verdict
    return verdict.split(" at ")[0].split(":")[0]


def claims_markdown(table: pd.DataFrame, runs: pd.DataFrame, suite: str, baseline: str, last_k: int) -> str:
    """claims.md: the fixed decision rule, what the runs recorded of their suite's [decision]
    table, then one line per comparison and metric; a suite with confirmation runs has a section
    per recipe (its own Holm families)."""
    lines = [
        f"# Claims: {suite}",
        "",
        "Generated by `gdpp-bench report` from the run folders; nothing here is written by hand.",
        "The rule was fixed before the runs: per dataset, every variant against the baseline "
        f"(`{baseline}`) and a variant with a diversity term also against the same variant without "
        "it; two-sided Mann-Whitney U (exact without ties, else tie-corrected asymptotic), Holm over "
        f"all comparisons and metrics of the dataset, alpha = {ALPHA}. 'better'/'worse' follow the "
        "metric's better direction. Δ = variant mean - reference mean over seeds, with its 95 % "
        "percentile bootstrap interval (10,000 resamples, fixed seed); g = Hedges' g; "
        "δ = Cliff's delta (counts only). A comparison whose runs all have one value (recall 0 in "
        f"every run, say) reads '{UNINFORMATIVE}' and is left out of Holm, unless the suite "
        "pre-registered that value as primary (then it stays in the family, marked).",
        "",
    ]
    present = _present_roles(runs)
    lines += [line for entry in settings_notes(runs) for line in (entry, "")]
    collapsed = collapse_note(runs)
    lines += [collapsed, ""] if collapsed else []
    none = "No comparison: the baseline or the other variants have no finished runs."
    sectioned = CONFIRM in present
    if not sectioned:
        return "\n".join(lines + ([none] if table.empty else []) + _dataset_tables(table, runs, last_k, "##"))
    for role in present:
        block = table[roles(table) == role]
        lines += _section_head(role, runs)
        lines += [none, ""] if block.empty else []
        lines += _dataset_tables(block, runs[roles(runs) == role], last_k, "###")
    return "\n".join(lines)


def _present_roles(runs: pd.DataFrame) -> list[str]:
    """The compared roles `runs` has runs of, in the order reported."""
    if "status" not in runs.columns:
        return []
    return [role for role in COMPARED_ROLES if (roles(runs) == role).any()]


def settings_notes(runs: pd.DataFrame) -> list[str]:
    """What the compared runs recorded of their suite's [decision] table, as markdown lines, each
    naming the recipe it holds for where the suite has two and only one of them recorded it."""
    present = _present_roles(runs)
    settings = {role: decision_settings(runs[roles(runs) == role]) for role in present}

    def scope(having: list[str]) -> str:
        return "" if len(having) == len(present) else f" ({'; '.join(recipe_title(r) for r in having)})"

    lines = []
    descriptive = [role for role in present if settings[role].descriptive]
    if descriptive:
        lines.append(
            f"**Descriptive, not powered for a verdict**{scope(descriptive)}: the suite says "
            "`descriptive = true`; where the Holm p is below alpha the verdict reads "
            f"'{DESCRIPTIVE}', not 'better' or 'worse' (the numbers stand)."
        )
    underpowered = [role for role in present if settings[role].underpowered]
    if underpowered:
        lines.append(
            f"**Run with --allow-underpowered: the design could not reach alpha**{scope(underpowered)}"
            "; no outcome at its sample sizes could give a Holm p below it."
        )
    for primary in sorted({settings[role].primary for role in present} - {()}):
        having = [role for role in present if settings[role].primary == primary]
        lines.append(
            f"Primary values{scope(having)}: {', '.join(f'`{v}`' for v in primary)}; only they enter "
            f"Holm; every other value is '{NOT_PRIMARY}' (its raw p and interval, no verdict)."
        )
    return lines


def _section_head(role: str, runs: pd.DataFrame) -> list[str]:
    """The heading of one recipe's verdicts; the tuned one says how the configurations were chosen."""
    if role != CONFIRM:
        return [f"## {recipe_title(role).capitalize()}", ""]
    confirmed = runs[roles(runs) == CONFIRM]
    trials = budget_of(confirmed)
    lines = [f"## {recipe_title(role, trials).capitalize()} ({SELECTION_NOTE})", ""]
    objective = _objective_text(confirmed)
    lines += [
        f"Each variant's configuration is its best of {trials or 'its'} trials on the tuning seeds"
        f"{objective}; these verdicts compare the confirmation seeds only, in Holm families of "
        "their own. Every trial and the selected configurations: tuning.md.",
        "",
    ]
    return lines


def _objective_text(runs: pd.DataFrame) -> str:
    """', by the mean kl_uniform (lower is better) subject to hq_percent >= 10' as recorded."""
    if "objective_metric" not in runs.columns:
        return ""
    recorded = runs.dropna(subset=["objective_metric"])
    recorded = recorded[recorded["objective_metric"].astype(str) != ""]
    if recorded.empty:
        return ""
    first = recorded.iloc[0]
    metric = str(first["objective_metric"])
    direction = "higher" if HIGHER_IS_BETTER.get(metric) else "lower"
    text = f", by the {first.get('objective_aggregate') or 'mean'} {metric} ({direction} is better)"
    constraints = constraints_of(first.get("objective_constraints"))
    return text + (f" subject to {' and '.join(constraints)}" if constraints else "")


def _dataset_tables(table: pd.DataFrame, runs: pd.DataFrame, last_k: int, level: str) -> list[str]:
    done = runs[runs["status"] == "done"] if "status" in runs.columns else runs.iloc[0:0]
    lines: list[str] = []
    for dataset, block in table.groupby("dataset", sort=True):
        headlines = (
            sorted(set(done.loc[done["dataset"] == dataset, "headline"].dropna()))
            if "headline" in done.columns
            else []
        )
        lines += [
            f"{level} {dataset}",
            "",
            f"Headline value per run: {headline_kinds(headlines, last_k) or 'n/a'}.",
            "",
            "| comparison | metric | verdict | Δ [95% bootstrap] | g | δ | p (Holm) | method |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in block.itertuples():
            arrow = "↑" if row.higher_is_better else "↓"
            delta = f"{fmt(row.difference)} [{fmt(row.difference_low)}, {fmt(row.difference_high)}]"
            lines.append(
                f"| {row.variant} vs {row.reference} | {row.metric} {arrow} | {row.verdict} | "
                f"{delta} | {fmt(row.hedges_g)} | {fmt(row.cliffs_delta)} | "
                f"{fmt(row.mannwhitney_p)} ({fmt(row.mannwhitney_p_holm)}) | "
                f"{row.mannwhitney_method} |"
            )
        lines.append("")
    return lines
