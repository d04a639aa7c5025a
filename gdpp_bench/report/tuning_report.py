"""tuning.md and the tuning section of index.html: a tuned suite's selected configurations, its
trial counts (failures, constraints met) and the expected best objective against the budget."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.report.recipes import CONFIRM, SELECTION_NOTE, TRIAL, constraints_of, roles
from gdpp_bench.report.render import fmt
from gdpp_bench.report.tables import variant_order
from gdpp_bench.report.tuning import confirmed_trials, cpu_seconds, select_trials, shown_parameters
from gdpp_bench.suites import parse_constraint


def _objective_sentence(trials: pd.DataFrame) -> str:
    first = trials.iloc[0]
    metric = str(first["objective_metric"])
    direction = "higher" if HIGHER_IS_BETTER.get(metric) else "lower"
    constraints = constraints_of(first["constraints"])
    subject = f", subject to {' and '.join(constraints)}" if constraints else ""
    over = f"{first['objective_aggregate']} {metric} over a trial's tuning seeds"
    return f"the {over} ({direction} is better){subject}"


def _constrained(trials: pd.DataFrame) -> list[str]:
    names = {parse_constraint(t)[0] for text in trials["constraints"] for t in constraints_of(text)}
    return [name for name in trials.columns if name in names]


def _number(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, float | np.floating):
        return fmt(float(value))
    return str(value)


def selected_configurations(trials: pd.DataFrame, runs: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Per dataset and variant, the configuration `tune` confirmed: the trial number and drawn
    values its confirmation runs recorded, with that trial's objective and constraint values from
    `trials` and the confirmation seeds; a variant without confirmation runs shows the trial
    `select_trials` would confirm, marked 'not yet confirmed'."""
    confirmed = confirmed_trials(runs)
    chosen = select_trials(trials)
    confirm_runs = runs[roles(runs) == CONFIRM]
    parameters = shown_parameters(trials)
    constrained = _constrained(trials)
    rows = []
    for (dataset, variant), block in trials.groupby(["dataset", "variant"], sort=True):
        mine = confirmed[(confirmed["dataset"] == dataset) & (confirmed["variant"] == variant)]
        best = chosen[(chosen["dataset"] == dataset) & (chosen["variant"] == variant)]
        best_trial = int(best["trial"].iloc[0]) if len(best) else None
        entries = [(int(t), s, "confirmed") for t, s in zip(mine["trial"], mine["seeds"], strict=True)]
        if not entries and best_trial is not None:
            entries = [(best_trial, "", "not yet confirmed")]
        for trial, seeds, state in entries:
            row = block[block["trial"] == trial]
            source = confirm_runs[
                (confirm_runs["dataset"] == dataset)
                & (confirm_runs["variant"] == variant)
                & (pd.to_numeric(confirm_runs["trial"], errors="coerce") == trial)
            ]
            values = source.iloc[0] if len(source) else (row.iloc[0] if len(row) else None)
            note = state
            if state == "confirmed" and best_trial is not None and best_trial != trial:
                note += f"; the best of the trials now present is trial {best_trial}"
            if len(row) and not bool(row["feasible"].iloc[0]):
                note += "; no trial met the constraints"
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "trial": trial,
                    **{
                        p: values[p] if values is not None and p in values.index else math.nan
                        for p in parameters
                    },
                    "objective": row["objective"].iloc[0] if len(row) else math.nan,
                    **{c: row[c].iloc[0] if len(row) else math.nan for c in constrained},
                    "confirmation seeds": seeds,
                    "note": note,
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = {v: i for i, v in enumerate(variant_order(table["variant"], baseline))}
    return table.sort_values(["dataset", "variant"], key=lambda c: c.map(order) if c.name == "variant" else c)


def trial_counts(trials: pd.DataFrame, baseline: str | None) -> pd.DataFrame:
    """Per dataset and variant: trials, failed ones, the divergence rate (failed / finished
    trials), the trials that met the constraints, the best feasible objective and the mean CPU
    seconds of a trial."""
    rows = []
    for (dataset, variant), block in trials.groupby(["dataset", "variant"], sort=True):
        finished = block[block["status"] != "incomplete"]
        failed = int(block["failed"].sum())
        feasible = block[block["feasible"].astype(bool)]
        objective = pd.to_numeric(feasible["objective"], errors="coerce").dropna()
        higher = bool(block["higher_is_better"].iloc[0])
        rows.append(
            {
                "dataset": dataset,
                "variant": variant,
                "trials": len(block),
                "unfinished": len(block) - len(finished),
                "failed": failed,
                "divergence rate": failed / len(finished) if len(finished) else math.nan,
                "met the constraints": len(feasible),
                "best objective": (objective.max() if higher else objective.min())
                if len(objective)
                else math.nan,
                "CPU s per trial": float(pd.to_numeric(finished["cpu_s"], errors="coerce").mean()),
            }
        )
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    order = {v: i for i, v in enumerate(variant_order(table["variant"], baseline))}
    return table.sort_values(["dataset", "variant"], key=lambda c: c.map(order) if c.name == "variant" else c)


def _budget_ks(n: int) -> list[int]:
    """The budgets tuning.md lists: every k up to 12 trials, else a 1-2-5 ladder and N."""
    if n <= 12:
        return list(range(1, n + 1))
    ladder = [k for k in (1, 2, 3, 5, 10, 20, 30, 50, 100, 200, 500, 1000) if k < n]
    return [*ladder, n]


def _best_with_band(point: pd.Series) -> str:
    return f"{fmt(point['expected_best'])} [{fmt(point['low'])}, {fmt(point['high'])}]"


def budget_table(curves: pd.DataFrame, dataset: str, baseline: str | None) -> pd.DataFrame:
    """k trials as rows, variants as columns: 'expected best [95% band] (mean CPU s)'."""
    block = curves[curves["dataset"] == dataset]
    if block.empty:
        return pd.DataFrame()
    rows = []
    for k in _budget_ks(int(block["k"].max())):
        row: dict[str, object] = {"k trials": k}
        for variant in variant_order(block["variant"], baseline):
            point = block[(block["variant"] == variant) & (block["k"] == k)]
            if point.empty:
                row[variant] = ""
                continue
            p = point.iloc[0]
            row[variant] = f"{_best_with_band(p)} ({p['cpu_s']:,.0f} s)"
        rows.append(row)
    return pd.DataFrame(rows)


def equal_cpu_table(curves: pd.DataFrame, dataset: str, baseline: str | None) -> pd.DataFrame:
    """The second view of an equal budget: equal CPU time rather than equal trials. The common
    budget is the smallest CPU time a variant's whole budget cost; each variant gets the trials
    that fit in it (at least 1, at most those it has: a cheaper variant's extra trials cannot be
    drawn from a pool that does not hold them), and its expected best objective at that k."""
    block = curves[curves["dataset"] == dataset]
    if block.empty:
        return pd.DataFrame()
    per_trial = block.groupby("variant")["cpu_s"].first()
    whole = block.groupby("variant")["cpu_s"].max()
    common = float(whole.min())
    base_cost = per_trial.get(baseline, math.nan) if baseline else math.nan
    rows = []
    for variant in variant_order(block["variant"], baseline):
        mine = block[block["variant"] == variant]
        cost = float(per_trial[variant])
        fit = int(math.floor(common / cost + 1e-9)) if cost > 0 else int(mine["k"].max())
        k = min(max(fit, 1), int(mine["k"].max()))
        point = mine[mine["k"] == k].iloc[0]
        rows.append(
            {
                "variant": variant,
                "CPU s per trial": cost,
                f"cost / {baseline}": cost / base_cost if baseline and base_cost > 0 else math.nan,
                "trials in the common CPU budget": fit,
                "trials drawn": k,
                "CPU s": k * cost,
                "expected best [95% band]": _best_with_band(point),
            }
        )
    table = pd.DataFrame(rows)
    return table if baseline else table.drop(columns=f"cost / {baseline}")


def _markdown(frame: pd.DataFrame) -> str:
    shown = frame.map(_number)
    return shown.to_markdown(index=False)


def _study_cpu_sentence(runs: pd.DataFrame) -> str:
    """What the study's runs cost: training CPU seconds plus evaluation seconds, trials and
    confirmation apart."""
    role = roles(runs)
    tuning, confirming = cpu_seconds(runs[role == TRIAL]), cpu_seconds(runs[role == CONFIRM])
    return (
        f"CPU time of the study's runs (training CPU seconds plus evaluation seconds): "
        f"{(tuning + confirming) / 3600:.2f} CPU-hours, of which tuning trials {tuning / 3600:.2f} "
        f"and confirmation runs {confirming / 3600:.2f}."
    )


def tuning_markdown(
    trials: pd.DataFrame, curves: pd.DataFrame, runs: pd.DataFrame, suite: str, baseline: str | None
) -> str:
    """tuning.md: how the budget was spent and what was selected, per dataset."""
    budget = int(pd.to_numeric(trials["trial"]).nunique()) if len(trials) else 0
    recorded = pd.to_numeric(runs.get("trials", pd.Series(dtype=float)), errors="coerce").max()
    budget = int(recorded) if pd.notna(recorded) and recorded > 0 else budget
    seeds = int(trials["seeds"].max()) if len(trials) else 0
    lines = [
        f"# Tuning: {suite}",
        "",
        "Generated by `gdpp-bench report` from the run folders; nothing here is written by hand.",
        f"Equal budget (Lucic et al. 2018): every variant {budget} trials drawn from the suite's "
        f"[search] space, each trained at {seeds} tuning seed{'s' if seeds != 1 else ''}; objective: "
        f"{_objective_sentence(trials)}. A trial fails when one of its tuning seeds' runs failed "
        "(diverged) and is never selected. Each variant's best trial was trained at fresh "
        f"confirmation seeds ({SELECTION_NOTE}: claims.md). Every trial: tuning.csv; the expected "
        "best against the budget for every k: budget.csv.",
        "",
    ]
    lines += [_study_cpu_sentence(runs), ""]
    selected = selected_configurations(trials, runs, baseline)
    counts = trial_counts(trials, baseline)
    for dataset in sorted(trials["dataset"].unique()):
        lines += [f"## {dataset}", "", "### Selected configurations", ""]
        block = selected[selected["dataset"] == dataset] if len(selected) else selected
        lines += [
            _markdown(block.drop(columns="dataset"))
            if len(block)
            else "No trial to select: every trial failed.",
            "",
            "### Trials",
            "",
            _markdown(counts[counts["dataset"] == dataset].drop(columns="dataset")),
            "",
            "### Expected best objective against the budget",
            "",
            "Among k trials drawn without replacement from the variant's budget, the expected best "
            "feasible objective (exact), its 95% bootstrap band over trials and the mean CPU "
            "seconds k trials cost (training and evaluation); where k trials can all miss the "
            "constraints, the expectation is over the draws that have a feasible one.",
            "",
        ]
        table = budget_table(curves, dataset, baseline)
        lines += [_markdown(table) if len(table) else "No finished trial.", ""]
        at_equal_cpu = equal_cpu_table(curves, dataset, baseline)
        if len(at_equal_cpu):
            lines += [
                "### At equal CPU time (reported, not tested)",
                "",
                "The primary view above gives every variant the same number of trials. Here every "
                "variant gets the same CPU time, the smallest whole budget any variant spent, and "
                "draws the trials that fit in it: a variant whose trials cost more draws fewer (never "
                "more than it ran: where it could afford more, 'trials in the common CPU budget' "
                "says how many, and its expected best is that of all its trials). No test rests on "
                "this view.",
                "",
                _markdown(at_equal_cpu),
                "",
            ]
    return "\n".join(lines)


def tuning_html(trials: pd.DataFrame, runs: pd.DataFrame, dataset: str, baseline: str | None) -> str:
    """index.html's tuning tables of one dataset: the selected configurations and trial counts."""
    selected = selected_configurations(trials, runs, baseline)
    counts = trial_counts(trials, baseline)
    parts = []
    for title, frame in (("Selected configurations", selected), ("Trials", counts)):
        block = frame[frame["dataset"] == dataset].drop(columns="dataset") if len(frame) else frame
        if len(block):
            parts.append(f"<h4>{html.escape(title)}</h4>" + block.map(_number).to_html(index=False, border=0))
    return "\n".join(parts)
