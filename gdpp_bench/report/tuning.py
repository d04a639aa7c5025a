"""A tuned suite's trials, from their run folders alone: one row per trial (its drawn values, its
objective and constraint values aggregated over the tuning seeds, whether it failed or met the
constraints, its CPU seconds), the selection rule `tune` confirms with, and the expected best
objective against the budget (Lucic et al. 2018, "Are GANs Created Equal?").

`trial_table` and `select_trials` read trial runs only (role "trial"): `tune` calls them on
`collect_runs(suite_dir)` to choose the configuration to confirm, and nothing a confirmation run
holds may change that choice."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
import pandas as pd

from gdpp_bench.metrics import HIGHER_IS_BETTER
from gdpp_bench.report.recipes import CONFIRM, CONSTRAINT_SEPARATOR, TRIAL, constraints_of, roles
from gdpp_bench.report.stats import BOOTSTRAP_RESAMPLES, BOOTSTRAP_SEED, CONFIDENCE
from gdpp_bench.report.tables import OPTIMISATION_COLUMNS
from gdpp_bench.suites import constraint_holds, parse_constraint

# a trial's values: the optimisation settings `tune` may draw and the diversity term's weight
PARAMETER_COLUMNS = (*OPTIMISATION_COLUMNS, "term_weight")
# always shown in tuning.md; the other parameters where some variant's trials drew several values
SHOWN_PARAMETERS = ("lr_g", "lr_d", "beta1", "beta2", "d_steps", "term_weight")
TRIAL_COLUMNS = [
    "dataset",
    "variant",
    "trial",
    *PARAMETER_COLUMNS,
    "objective_metric",
    "objective_aggregate",
    "higher_is_better",
    "objective",
    # then one column per constrained value (its aggregate over the tuning seeds)
    "constraints",
    "feasible",
    "failed",
    "status",
    "seeds",
    "cpu_s",
    "selected",
]
BUDGET_COLUMNS = [
    "dataset",
    "variant",
    "k",
    "trials",
    "expected_best",
    "low",
    "high",
    "p_none",
    "cpu_s",
]


def _aggregate(values: Sequence[float], how: str) -> float:
    """The mean (or median) of a trial's values over its tuning seeds; NaN if one is missing."""
    finite = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    if not finite or len(finite) < len(values):
        return math.nan
    return float(statistics.median(finite) if how == "median" else statistics.fmean(finite))


def cpu_seconds(block: pd.DataFrame) -> float:
    """A trial's cost: its runs' training CPU seconds, plus their evaluation seconds where recorded."""
    total = 0.0
    for column in ("train_cpu_s", "eval_wall_s"):
        if column in block.columns:
            total += float(pd.to_numeric(block[column], errors="coerce").fillna(0).sum())
    return total


def _first(block: pd.DataFrame, column: str, default: object = "") -> object:
    """The value of `column` the trial's runs recorded (its readable runs agree on it)."""
    if column not in block.columns:
        return default
    values = block[column].dropna()
    values = values[values.astype(str) != ""]
    return values.iloc[0] if len(values) else default


def trial_table(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per trial of `runs`' trial runs (role "trial"; others are not read), per dataset,
    variant (the suite's name) and trial number: the drawn values, the objective (the recorded
    objective metric's headline values aggregated over the trial's tuning seeds as recorded:
    mean or median; NaN if a seed has none), each constrained value likewise (a column per value),
    `feasible` (every constraint holds on the aggregates and no run failed), `failed` (a tuning
    seed's run failed: diverged), `status` ("done", "failed" or "incomplete": a run unfinished,
    unreadable or not yet started, counted against the most tuning seeds any trial of the dataset
    has), `seeds`, `cpu_s` (training CPU seconds of its runs plus their evaluation seconds) and
    `selected` (False: which trial is confirmed is `select_trials`' answer, or the confirmation
    runs' record)."""
    trials = runs[roles(runs) == TRIAL] if "status" in runs.columns else runs.iloc[0:0]
    if trials.empty:
        return pd.DataFrame(columns=TRIAL_COLUMNS)
    trials = trials.assign(trial=pd.to_numeric(trials["trial"], errors="coerce").fillna(-1).astype(int))
    seeds = trials.groupby(["dataset", "variant", "trial"])["seed"].nunique()
    expected = seeds.groupby(level="dataset").max()
    rows = [
        _trial_row(str(dataset), str(variant), int(trial), block, int(expected[dataset]))
        for (dataset, variant, trial), block in trials.groupby(["dataset", "variant", "trial"], sort=True)
    ]
    constrained = dict.fromkeys(
        parse_constraint(text)[0] for row in rows for text in constraints_of(row["constraints"])
    )
    at = TRIAL_COLUMNS.index("constraints")
    columns = [*TRIAL_COLUMNS[:at], *(c for c in constrained if c not in TRIAL_COLUMNS), *TRIAL_COLUMNS[at:]]
    return pd.DataFrame(rows).reindex(columns=columns)


def _trial_row(dataset: str, variant: str, trial: int, block: pd.DataFrame, expected_seeds: int) -> dict:
    """One trial's row of `trial_table` from its runs (`block`)."""
    metric = str(_first(block, "objective_metric"))
    aggregate = str(_first(block, "objective_aggregate", "mean")) or "mean"
    constraints = constraints_of(_first(block, "objective_constraints"))
    status = block["status"].astype(str)
    failed = bool(status.str.startswith("failed").any())
    complete = bool((status == "done").all()) and block["seed"].nunique() >= expected_seeds
    state = "failed" if failed else "done" if complete else "incomplete"

    def value(name: str) -> float:
        if state == "incomplete" or name not in block.columns:
            return math.nan
        return _aggregate(pd.to_numeric(block[name], errors="coerce").tolist(), aggregate)

    values = {parse_constraint(text)[0]: value(parse_constraint(text)[0]) for text in constraints}
    holds = all(constraint_holds(text, values[parse_constraint(text)[0]]) for text in constraints)
    return {
        "dataset": dataset,
        "variant": variant,
        "trial": trial,
        **{name: _first(block, name, math.nan) for name in PARAMETER_COLUMNS},
        "objective_metric": metric,
        "objective_aggregate": aggregate,
        "higher_is_better": bool(HIGHER_IS_BETTER.get(metric, False)),
        "objective": value(metric),
        **values,
        "constraints": CONSTRAINT_SEPARATOR.join(constraints),
        "feasible": holds and state == "done",
        "failed": failed,
        "status": state,
        "seeds": int(block["seed"].nunique()),
        "cpu_s": cpu_seconds(block),
        "selected": False,
    }


def select_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and variant of `trial_table`'s rows, the trial to confirm: among the trials
    with an objective that did not fail, the feasible ones first, ranked by the objective in its
    metric's better direction, ties by the lowest trial number; where none is feasible, the best
    of the others (its `feasible` stays False). A variant whose trials all failed or have no
    objective has no row. The chosen rows are returned with `selected` True."""
    chosen = []
    for _, block in trials.groupby(["dataset", "variant"], sort=True):
        objective = pd.to_numeric(block["objective"], errors="coerce")
        usable = block[~block["failed"].astype(bool) & np.isfinite(objective)]
        feasible = usable[usable["feasible"].astype(bool)]
        pool = feasible if not feasible.empty else usable
        if pool.empty:
            continue
        higher = bool(pool["higher_is_better"].iloc[0])
        ranked = pool.sort_values(["objective", "trial"], ascending=[not higher, True], kind="mergesort")
        chosen.append(ranked.iloc[0].copy())
    if not chosen:
        return pd.DataFrame(columns=trials.columns)
    selected = pd.DataFrame(chosen).reset_index(drop=True)
    selected["selected"] = True
    return selected


def confirmed_trials(runs: pd.DataFrame) -> pd.DataFrame:
    """(dataset, variant, trial, seeds) the confirmation runs recorded: the trials `tune` chose."""
    confirm = runs[roles(runs) == CONFIRM] if len(runs) else runs
    columns = ["dataset", "variant", "trial", "seeds"]
    if confirm.empty or "trial" not in confirm.columns:
        return pd.DataFrame(columns=columns)
    confirm = confirm.assign(trial=pd.to_numeric(confirm["trial"], errors="coerce"))
    confirm = confirm[confirm["trial"] >= 0]
    grouped = confirm.groupby(["dataset", "variant", "trial"], sort=True)["seed"]
    table = grouped.apply(lambda s: ", ".join(str(v) for v in sorted(s.unique()))).reset_index()
    table = table.rename(columns={"seed": "seeds"})
    return table.assign(trial=table["trial"].astype(int))[columns]


def mark_selected(trials: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """`trials` with `selected` True on the trials the confirmation runs recorded."""
    confirmed = confirmed_trials(runs)
    keys = set(zip(confirmed["dataset"], confirmed["variant"], confirmed["trial"], strict=True))
    chosen = [
        (d, v, int(t)) in keys
        for d, v, t in zip(trials["dataset"], trials["variant"], trials["trial"], strict=True)
    ]
    return trials.assign(selected=chosen)


# --- the expected best objective against the budget (Lucic et al. 2018) ----------------------------


def _best_of_k_weights(n: int) -> np.ndarray:
    """w[k-1, i-1]: the chance that the i-th best of n trials is the best of k drawn without
    replacement, C(n - i, k - 1) / C(n, k) (it is drawn, and the other k - 1 are worse)."""
    weights = np.zeros((n, n))
    for k in range(1, n + 1):
        total = math.comb(n, k)
        for i in range(1, n - k + 2):
            weights[k - 1, i - 1] = math.comb(n - i, k - 1) / total
    return weights


def _none_usable(n: int, usable: np.ndarray) -> np.ndarray:
    """P(no usable trial among k drawn), k = 1..n, for each count of usable trials: C(n - F, k) / C(n, k)."""
    counts = np.atleast_1d(usable)
    table = np.array([[math.comb(n - f, k) / math.comb(n, k) for k in range(1, n + 1)] for f in range(n + 1)])
    return table[counts]


def _expected_best_rows(keys: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of `keys` (lower is better, +inf = unusable): E[best usable of k | one is usable]
    and P(none usable), k = 1..n."""
    ordered = np.sort(keys, axis=-1)
    finite = np.isfinite(ordered)
    numerator = np.where(finite, ordered, 0.0) @ weights.T
    p_none = _none_usable(keys.shape[-1], finite.sum(axis=-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = numerator / (1.0 - p_none)
    return np.where(p_none < 1.0, expected, np.nan), p_none


def expected_best(
    values: Sequence[float], higher_is_better: bool, usable: Sequence[bool] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(expected best, P(no usable trial)) for k = 1..N: the best `values` entry among k of the N
    trials drawn without replacement, in the metric's better direction, over the usable trials
    only (feasible, not failed; NaN values are never usable), given that one of the k is usable.
    Exact: the i-th best usable value is the best of k with chance C(N - i, k - 1) / C(N, k),
    unusable trials ranking last. E.g. minimising 1, 2, 3: 2, 4/3 and 1 for k = 1, 2, 3."""
    data = np.asarray(values, dtype=float)
    ok = np.isfinite(data) & (np.ones(len(data), bool) if usable is None else np.asarray(usable, bool))
    if len(data) == 0:
        return np.array([]), np.array([])
    keys = np.where(ok, -data if higher_is_better else data, np.inf)
    expected, p_none = _expected_best_rows(keys[None, :], _best_of_k_weights(len(data)))
    return (-expected[0] if higher_is_better else expected[0]), p_none[0]


def expected_best_band(
    values: Sequence[float],
    higher_is_better: bool,
    usable: Sequence[bool] | None = None,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap band of `expected_best` for k = 1..N: the N trials resampled with
    replacement `resamples` times from a fixed seed, the exact expected best computed on each
    (resamples without a usable trial left out)."""
    data = np.asarray(values, dtype=float)
    n = len(data)
    if n == 0:
        return np.array([]), np.array([])
    ok = np.isfinite(data) & (np.ones(n, bool) if usable is None else np.asarray(usable, bool))
    keys = np.where(ok, -data if higher_is_better else data, np.inf)
    draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    expected, _ = _expected_best_rows(keys[draws], _best_of_k_weights(n))
    tail = (1 - confidence) / 2 * 100
    low, high = np.full(n, np.nan), np.full(n, np.nan)
    for k in range(n):
        column = expected[:, k][np.isfinite(expected[:, k])]
        if len(column):
            low[k], high[k] = np.percentile(column, [tail, 100 - tail])
    if higher_is_better:
        low, high = -high, -low
    return low, high


def budget_curves(trials: pd.DataFrame, resamples: int = BOOTSTRAP_RESAMPLES) -> pd.DataFrame:
    """Per dataset and variant of `trial_table`'s finished trials (done or failed; unfinished ones
    are not yet a draw), for k = 1..N: the expected best feasible objective among k trials drawn
    without replacement, its 95% bootstrap band, P(none of the k feasible) and the mean CPU
    seconds k trials cost (k x the mean trial's)."""
    rows: list[dict] = []
    finished = trials[trials["status"].isin(["done", "failed"])] if len(trials) else trials
    for (dataset, variant), block in finished.groupby(["dataset", "variant"], sort=True):
        values = pd.to_numeric(block["objective"], errors="coerce").to_numpy(dtype=float)
        usable = block["feasible"].astype(bool).to_numpy() & ~block["failed"].astype(bool).to_numpy()
        higher = bool(block["higher_is_better"].iloc[0])
        expected, p_none = expected_best(values, higher, usable)
        low, high = expected_best_band(values, higher, usable, resamples=resamples)
        cpu = float(pd.to_numeric(block["cpu_s"], errors="coerce").mean())
        for k in range(1, len(block) + 1):
            rows.append(
                {
                    "dataset": dataset,
                    "variant": variant,
                    "k": k,
                    "trials": len(block),
                    "expected_best": expected[k - 1],
                    "low": low[k - 1],
                    "high": high[k - 1],
                    "p_none": p_none[k - 1],
                    "cpu_s": k * cpu,
                }
            )
    return pd.DataFrame(rows, columns=BUDGET_COLUMNS)


def shown_parameters(trials: pd.DataFrame) -> list[str]:
    """The parameters tuning.md shows: the usual searched ones, and any other some variant's
    trials drew more than one value of."""
    shown = []
    for name in PARAMETER_COLUMNS:
        if name not in trials.columns:
            continue
        varies = trials.groupby(["dataset", "variant"])[name].nunique(dropna=True).gt(1).any()
        if name in SHOWN_PARAMETERS or varies:
            shown.append(name)
    return shown
