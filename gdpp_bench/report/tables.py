"""The long per-run table (the report's source of truth), its summaries and the decision rule's
comparisons (their text: `render`).

Over 400 lines because reading run folders (every file that can be missing, unreadable or from an
older version) and pivoting them into runs.csv and the summary form one contract: the columns a
summary reads are the ones the loader guarantees."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from gdpp_bench.config import RunSpec
from gdpp_bench.errors import UserError
from gdpp_bench.losses import Variant, parse_variant
from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.metrics.inception_weights import comparability, feature_comparability, inception_sha256
from gdpp_bench.plugins import load_recorded_plugins
from gdpp_bench.report.collapsed import describe, fill_frame, fill_values, metric_bounds
from gdpp_bench.report.numbers import round_sig
from gdpp_bench.report.recipes import (
    CONFIRM,
    CONSTRAINT_SEPARATOR,
    TRIAL,
    compared_blocks,
    decision_settings,
    roles,
)
from gdpp_bench.report.stats import compare, constant_value, holm, mean_ci
from gdpp_bench.rundir import RunDir, UnreadableFile, find_run_dirs, read_json_object
from gdpp_bench.suites import SEARCHABLE_FIELDS, check_settings

ID_COLUMNS = ["suite", "dataset", "variant", "seed"]
# runs.csv's order: a variant's ordinary runs, then its confirmation runs, then its trials in order
SORT_COLUMNS = ["suite", "dataset", "variant", "role", "trial", "seed"]
# the optimisation settings `tune` may search (with the term weight, parsed from the variant), as
# runs.csv columns: each trial's drawn values; d_steps as resolved (0 in a suite: the loss's own)
OPTIMISATION_COLUMNS = SEARCHABLE_FIELDS
_TRIAL_FOLDER = re.compile(r"trial-(\d+)")
DEFAULT_BASELINE = "bce"  # the variant every other is tested against unless --baseline says otherwise
DEFAULT_LAST_K = 4  # periodic evaluations averaged into a run's headline value (report --last-k)
FINAL_PREFIX = "final_"  # runs.csv: the final checkpoint's value beside a K-window headline


def collect_runs(suite_dir: Path, last_k: int = DEFAULT_LAST_K) -> pd.DataFrame:
    """One row per run directory under `suite_dir`: identity, config, status and every metric.

    A metric's column holds the run's headline value (`headline` says which): the mean over the
    last `last_k` periodic evaluations where the run has them, with the final checkpoint's value
    in `final_METRIC`; for a suite that selects a checkpoint (eval.select), best.pt measured on
    the test split; otherwise the final checkpoint's value. An evaluation that ran and measured
    nothing (a NaN value: no high-quality sample for a KL) counts as the metric's worst value
    (`collapsed`), counted in `collapsed_evals` and named in `collapsed_metrics`, never dropped.

    A run with a file that cannot be read (truncated JSON, a log that is not a table, a config
    with values no suite file may hold) is listed with status 'unreadable: FILE' and the reason,
    never dropped and never a crash.

    `variant` is the suite's name of the variant (a tuned run's label: its drawn weight is in
    `term_weight`); `role` is "" (an ordinary run), "trial" or "confirm" and `trial` the trial
    number (-1: none); the optimisation settings, `tune`'s objective and budget and the suite's
    [decision] fields each have a column (runs.csv)."""
    if last_k < 1:
        raise UserError(f"--last-k must be >= 1, got {last_k}")
    rows = []
    for run_dir in find_run_dirs(suite_dir):
        try:
            rows.append(_run_row(run_dir, last_k))
        except UnreadableFile as exc:
            rows.append(_unreadable_row(run_dir, suite_dir, exc))
    if not rows:
        return pd.DataFrame(columns=[*ID_COLUMNS, "role", "trial", "status"])
    datasets = {row["dataset"] for row in rows} - {"?"}
    if len(datasets) == 1:  # a one-dataset suite: its folders do not name the dataset
        for row in rows:
            row["dataset"] = next(iter(datasets))
    return pd.DataFrame(rows).sort_values(SORT_COLUMNS).reset_index(drop=True)


def _unreadable_row(run_dir: RunDir, suite_dir: Path, exc: UnreadableFile) -> dict:
    """What the folder's path says of a run whose files cannot be read: its key is
    [DATASET/]VARIANT[/trial-NNN | /confirm]/seed-K (a confirmation run's trial is unknown)."""
    key = run_dir.path.relative_to(suite_dir).as_posix()
    *rest, last = key.split("/")
    seed_text = last.removeprefix("seed-")
    role, trial = "", -1
    folder = _TRIAL_FOLDER.fullmatch(rest[-1]) if rest else None
    if folder:
        role, trial, rest = TRIAL, int(folder.group(1)), rest[:-1]
    elif rest and rest[-1] == CONFIRM:
        role, rest = CONFIRM, rest[:-1]
    return {
        "suite": suite_dir.name,
        "dataset": rest[0] if len(rest) > 1 else "?",
        "variant": rest[-1] if rest else "?",
        "seed": int(seed_text) if seed_text.lstrip("-").isdigit() else -1,
        "role": role,
        "trial": trial,
        "status": f"unreadable: {exc.path.name}",
        "reason": str(exc),
        "run": key,
    }


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


_LAST_N = re.compile(r"mean of the last (\d+) evaluations")


def headline_kinds(headlines: Iterable[str], last_k: int) -> str:
    """What runs' headline values are (runs.csv's `headline`, steps left out) and the --last-k
    they were read with, saying why a window is shorter than it: 'mean of the last 2 evaluations
    (--last-k 4; these runs have only 2 periodic evaluations, and a run with fewer than 4 averages
    all it has)'; "" for no headline."""
    kinds = sorted({str(h).split(" (")[0] for h in headlines if isinstance(h, str) and h})
    if not kinds:
        return ""
    counts = sorted({int(m[1]) for kind in kinds if (m := _LAST_N.fullmatch(kind))})
    short = [n for n in counts if n < last_k]
    reason = ""
    if short:
        have = " or ".join(str(n) for n in short)
        reason = (
            f"; {'these runs have' if len(counts) == 1 else 'some runs have'} only {have} periodic "
            f"evaluation{'s' if short[-1] > 1 else ''}, and a run with fewer than {last_k} "
            "averages all it has"
        )
    return f"{'; '.join(kinds)} (--last-k {last_k}{reason})"


def term_weight(variant: Variant) -> tuple[str, float]:
    """(term, weight) of a variant whose only change to its adversarial loss is one weighted term;
    ("", 0.0) for a variant with no term and no modifier (every term's weight 0); ("", nan) else."""
    if variant.discriminator or len(variant.terms) > 1:
        return "", math.nan
    return variant.terms[0] if variant.terms else ("", 0.0)


def _headline(
    values: dict, evals: pd.DataFrame | None, spec: dict, last_k: int, checkpoint_step: int | None
) -> tuple[dict, str]:
    """The run's headline metric values (and `final_` copies), how many of the evaluations they
    come from collapsed (`collapsed_evals`, `collapsed_metrics`: see `collapsed`; such a value
    counts as the metric's worst) and the line saying what they are."""
    dataset = spec["dataset"]
    final, final_collapsed = fill_values(values, dataset)
    single = {  # a headline of one evaluation: the final checkpoint's, or best.pt's
        **final,
        "collapsed_evals": int(bool(final_collapsed)),
        "collapsed_metrics": describe(final_collapsed, dataset),
    }
    if spec["eval"].get("select"):
        return single, f"best.pt (step {checkpoint_step}) on the test split"
    compared = [m for m in HIGHER_IS_BETTER if evals is not None and m in evals.columns]
    if not compared or evals is None or evals.empty:
        return single, "final checkpoint"
    evals, collapsed = fill_frame(evals, compared, dataset)
    if checkpoint_step is not None and checkpoint_step > evals["step"].max():
        # the final evaluation came after the last periodic one (eval.every does not divide steps);
        # a metric it did not record is missing there, not collapsed
        row = {"step": checkpoint_step, **{m: final.get(m, math.nan) for m in compared}}
        evals = pd.concat([evals, pd.DataFrame([row])], ignore_index=True)
        marks = pd.DataFrame([{m: m in final_collapsed for m in compared}])
        collapsed = pd.concat([collapsed, marks], ignore_index=True)
    window, window_collapsed = evals.tail(last_k), collapsed.tail(last_k)
    headline = dict(final)
    for metric in compared:
        headline[f"{FINAL_PREFIX}{metric}"] = final.get(metric)
        column, fell = window[metric], window_collapsed[metric]
        if (column.isna() & fell).any():  # a collapse with no finite worst value: no headline
            headline[metric] = math.nan
            continue
        finite = column[column.map(lambda v: v is not None and math.isfinite(v))]
        headline[metric] = float(finite.mean()) if len(finite) else math.nan
    headline["collapsed_evals"] = int(window_collapsed.any(axis=1).sum())
    fallen = {m for m in compared if window_collapsed[m].any()} | final_collapsed
    headline["collapsed_metrics"] = describe(fallen, dataset)
    steps = window["step"].astype(int).tolist()
    span = f"step {steps[0]}" if len(steps) == 1 else f"steps {steps[0]}-{steps[-1]}"
    return headline, f"mean of the last {len(steps)} evaluations ({span})"


def _run_row(run_dir: RunDir, last_k: int = DEFAULT_LAST_K) -> dict:
    config = run_dir.read_config()
    load_recorded_plugins(run_dir, config)  # a plug-in run's names (metrics, terms) are the plug-in's
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
        v is None or (isinstance(v, int | float) and not isinstance(v, bool)) for v in values.values()
    ):
        raise UnreadableFile(run_dir.metrics, "its 'values' are not metric names with numbers")
    tables = {path: read_run_csv(path) if path.exists() else None for path in (run_dir.log, run_dir.evals)}
    protocols = metrics.get("protocol", {})
    first: dict[str, Any] = next(iter(protocols.values()), {})
    packages = environment.get("packages") or {}
    term, weight = term_weight(variant)
    headline, what = (
        ({}, "")
        if status["status"] != "done"
        else _headline(values, tables[run_dir.evals], spec, last_k, first.get("checkpoint_step"))
    )
    objective = parsed.objective
    row = {
        "suite": spec["suite"],
        "dataset": spec["dataset"],
        "variant": parsed.name,  # a tuned run's: the suite's name, its drawn weight kept out
        "seed": spec["seed"],
        "role": parsed.role,
        "trial": parsed.trial,
        "adversarial": variant.adversarial,
        "terms": " ".join(f"{name}@{weight:g}" for name, weight in variant.terms),
        "discriminator": " ".join(variant.discriminator),
        "term": term,  # with term_weight: the weight-sweep figures of every weighted term
        "term_weight": weight,
        **{name: getattr(parsed.train, name) for name in OPTIMISATION_COLUMNS},
        "d_steps": parsed.train.resolved_d_steps(variant.adversarial),
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
        "headline": what,
        "reference_split": _reference_splits(protocols),
        "device": environment.get("device", ""),
        "device_name": environment.get("device_name", ""),
        "torch": packages.get("torch", ""),
        "torch_fidelity": packages.get("torch-fidelity", ""),
        # the Inception-v3 weights the fidelity values were measured with, and whether they compare
        "inception_weights_sha256": inception_sha256(protocols),
        "fidelity_note": comparability(protocols),
        # values of a chosen extractor (eval.features) measured with stand-in weights
        "feature_note": feature_comparability(protocols),
        "git": environment.get("git", ""),
        "train_wall_s": status.get("train_wall_s"),
        "train_cpu_s": status.get("train_cpu_s"),
        "eval_wall_s": metrics.get("wall_s"),
        "trials": parsed.trials,  # `tune`'s budget per variant (0: not tuned)
        "objective_metric": objective.metric if objective else "",
        "objective_aggregate": objective.aggregate if objective else "",
        "objective_constraints": CONSTRAINT_SEPARATOR.join(objective.constraints) if objective else "",
        "decision_descriptive": parsed.decision.descriptive,
        "decision_primary": " ".join(parsed.decision.primary),
        "decision_underpowered": parsed.decision.underpowered,
        "run": spec["key"],
    }
    row.update(headline or values)
    return row


def _reference_splits(protocols: dict) -> str:
    """The real-data splits the run's metrics compared with, e.g. 'fidelity: test'."""
    splits = [
        f"{name}: {entry['reference_split']}"
        for name, entry in protocols.items()
        if isinstance(entry, dict) and entry.get("reference_split")
    ]
    return "; ".join(splits)


def _status_label(status: dict) -> str:
    """done, incomplete, or 'failed: <why>' shortened to its first word group (e.g. failed: diverged)."""
    if status["status"] != "failed":
        return status["status"]
    reason = status.get("reason", "")
    return f"failed: {reason.split(':')[0]}" if reason else "failed"


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The compared metric values present in `runs`, in HIGHER_IS_BETTER's order."""
    return [c for c in HIGHER_IS_BETTER if c in runs.columns and runs[c].notna().any()]


def constant_metrics(runs: pd.DataFrame) -> dict[str, float]:
    """The compared metrics whose headline value is one finite number in every finished run of
    `runs` (two or more), with that number: a line of the report, not a column or a figure
    (precision, recall, density and coverage are 0 in every run of a generator that has not yet
    learnt the data's support)."""
    done = runs[runs["status"] == "done"] if "status" in runs.columns else runs.iloc[0:0]
    if len(done) < 2:
        return {}
    constant = {}
    for metric in metric_columns(done):
        values = pd.to_numeric(done[metric], errors="coerce")
        if values.map(math.isfinite).all() and values.nunique() == 1:
            constant[metric] = float(values.iloc[0])
    return constant


SUMMARY_COLUMNS = [
    "dataset",
    "role",
    "variant",
    "metric",
    "higher_is_better",
    "mean",
    "std",
    "ci_low",
    "ci_high",
    "n",
    "train_cpu_s",
    "best",
]
SIGNIFICANCE_COLUMNS = [
    "dataset",
    "role",
    "variant",
    "baseline",
    "metric",
    "n",
    "n_baseline",
    "mean",
    "baseline_mean",
    "hedges_g",
    "welch_p",
    "welch_p_holm",
    "mannwhitney_p",
    "mannwhitney_method",
    "mannwhitney_p_holm",
    "stars",
]


def variant_order(variants: Iterable[str], baseline: str | None = None) -> list[str]:
    """Distinct variants, the baseline first, then by adversarial loss, term name and weight (as a
    number), then discriminator modifiers: the order of table rows and figure axes."""

    def key(variant: str) -> tuple:
        parsed = parse_variant(variant)
        return variant != baseline, parsed.adversarial, parsed.terms, parsed.discriminator

    return sorted(set(variants), key=key)


def summarize(runs: pd.DataFrame) -> pd.DataFrame:
    """Per dataset, role and variant and metric over finished seeds: mean, std (ddof 1), 95% t
    interval (cut to the metric's range), n, the variant's mean training CPU seconds per run, the
    metric's direction and whether this variant alone has the best mean of its dataset and role
    (means compared as the tables print them: 3 significant digits).
    Ordinary and confirmation runs are summarised apart (never one mean); trial runs not at all
    (each is one configuration of a search: tuning.csv)."""
    done = runs[(runs["status"] == "done") & (roles(runs) != TRIAL)]
    metrics = metric_columns(runs)
    if done.empty or not metrics:
        return pd.DataFrame(columns=SUMMARY_COLUMNS)
    rows = []
    done = done.assign(role=roles(done))
    for (dataset, role, variant), group in done.groupby(["dataset", "role", "variant"], sort=True):
        cpu = (
            pd.to_numeric(group["train_cpu_s"], errors="coerce").mean()
            if "train_cpu_s" in group.columns
            else math.nan
        )
        for metric in metrics:
            values = group[metric].dropna().tolist()
            if not values:
                continue
            mean, low, high = mean_ci(values, bounds=metric_bounds(metric, dataset))
            rows.append(
                {
                    "dataset": dataset,
                    "role": role,
                    "variant": variant,
                    "metric": metric,
                    "higher_is_better": HIGHER_IS_BETTER[metric],
                    "mean": mean,
                    "std": pd.Series(values).std(ddof=1),
                    "ci_low": low,
                    "ci_high": high,
                    "n": len(values),
                    "train_cpu_s": cpu,
                }
            )
    summary = pd.DataFrame(rows, columns=SUMMARY_COLUMNS[:-1])
    # compared as printed (3 significant digits): two means that read 4.54 tie
    shown = summary.assign(mean=summary["mean"].map(round_sig))
    best = shown.groupby(["dataset", "role", "metric"])["mean"].transform(
        lambda means: means.max() if HIGHER_IS_BETTER[means.name[2]] else means.min()
    )
    at_best = shown["mean"] == best
    # bold marks one winner: a best mean shared by several variants marks none
    keys = [summary["dataset"], summary["role"], summary["metric"]]
    unique = at_best.groupby(keys).transform("sum") == 1
    summary["best"] = at_best & unique
    return summary


def comparisons(variants: Iterable[str], baseline: str) -> list[tuple[str, str]]:
    """(variant, reference) pairs of the decision rule: every variant against `baseline`, and a
    variant with diversity terms also against the variant it becomes without them (wgan-gp+gdpp
    against wgan-gp) where that one is present and is not the baseline."""
    present = variant_order(variants, baseline)
    if baseline not in present:
        return []
    pairs = [(variant, baseline) for variant in present if variant != baseline]
    for variant in present:
        parsed = parse_variant(variant)
        without = str(Variant(parsed.adversarial, (), parsed.discriminator))
        if parsed.terms and without in present and without not in (baseline, variant):
            pairs.append((variant, without))
    return pairs


def compared_values(block: pd.DataFrame, baseline: str) -> Iterable[tuple[str, str, str, list, list]]:
    """(variant, reference, metric, values, reference values) of every comparison of one dataset."""
    for variant, reference in comparisons(block["variant"].tolist(), baseline):
        group, base = block[block["variant"] == variant], block[block["variant"] == reference]
        for metric in metric_columns(block):
            a, b = group[metric].dropna().tolist(), base[metric].dropna().tolist()
            if a and b:
                yield variant, reference, metric, a, b


def significance(runs: pd.DataFrame, baseline: str) -> pd.DataFrame:
    """The decision rule's comparisons (see `comparisons`) per dataset, role and metric, seen
    through Welch's t and the decision rule's own Mann-Whitney U (`stats.mann_whitney`: exact
    without ties, else tie-corrected asymptotic; its p values are decisions.csv's), each
    Holm-corrected over the comparisons of the decision rule's family (the dataset's runs of one
    role; only the primary values where the runs recorded some, the others' Holm p left empty),
    and Hedges' g (variant minus reference; its sign is not flipped for lower-is-better metrics).
    The `baseline` column names each comparison's reference. Stars as decisions.csv's: none for a
    value that is not primary or where the runs recorded a descriptive suite."""
    rows: list[dict[str, Any]] = []
    for role, dataset, block in compared_blocks(runs):
        settings = decision_settings(block)
        family = [
            {
                "dataset": dataset,
                "role": role,
                "variant": variant,
                "baseline": reference,
                "metric": metric,
                "mean": sum(a) / len(a),
                "baseline_mean": sum(b) / len(b),
                **compare(a, b),
                "uninformative": constant_value(a, b) is not None,  # not a column: SIGNIFICANCE_COLUMNS
            }
            for variant, reference, metric, a, b in compared_values(block, baseline)
        ]
        held = [row for row in family if settings.in_holm(row["metric"], row["uninformative"])]
        for row in family:
            row["welch_p_holm"] = row["mannwhitney_p_holm"] = math.nan
        for key in ("welch_p", "mannwhitney_p"):
            for row, adjusted in zip(held, holm([r[key] for r in held]), strict=True):
                row[f"{key}_holm"] = adjusted
        for row in family:
            row["stars"] = settings.stars(row["metric"], row["mannwhitney_p_holm"])
        rows += family
    return pd.DataFrame(rows, columns=SIGNIFICANCE_COLUMNS)
