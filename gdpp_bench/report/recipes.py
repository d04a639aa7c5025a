"""Which recipe a run belongs to, and what its suite pre-registered for the decision rule.

A suite's runs come in three roles (config.RUN_ROLES): ordinary runs of the suite's own recipe
(role ""), the runs of `tune`'s trials ("trial") and the confirmation runs of each variant's
selected trial ("confirm"). The decision rule compares runs of one role only: ordinary with
ordinary, confirmation with confirmation; trial runs are never tested (they are what selection
read). Each run also records its suite's [decision] table (descriptive, primary values) and
whether it was run with --allow-underpowered; the rule reads them per family."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import pandas as pd

from gdpp_bench.report.stats import stars

ORDINARY, TRIAL, CONFIRM = "", "trial", "confirm"
COMPARED_ROLES = (ORDINARY, CONFIRM)  # the roles the decision rule tests, in the order reported
SELECTION_NOTE = "selection on tuning seeds only; verdicts on confirmation seeds"
CONSTRAINT_SEPARATOR = "; "  # runs.csv: a run's objective constraints in one cell
TUNED_FIGURES = "tuned"  # figures/tuned/: the registered figures of the confirmation runs


def roles(runs: pd.DataFrame) -> pd.Series:
    """Each run's role ("" for runs whose table has none: older runs, hand-made tables)."""
    if "role" not in runs.columns:
        return pd.Series(ORDINARY, index=runs.index, dtype=object)
    return runs["role"].map(lambda role: role if isinstance(role, str) else ORDINARY)


def of_role(runs: pd.DataFrame, role: str) -> pd.DataFrame:
    return runs[roles(runs) == role]


def compared_blocks(runs: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """(role, dataset, finished runs) of every family the decision rule tests: the ordinary runs
    of a dataset, then its confirmation runs (trial runs never)."""
    done = runs[runs["status"] == "done"] if "status" in runs.columns else runs.iloc[0:0]
    role = roles(done)
    for wanted in COMPARED_ROLES:
        block = done[role == wanted]
        for dataset, group in block.groupby("dataset", sort=True):
            yield wanted, str(dataset), group


def budget_of(runs: pd.DataFrame) -> int:
    """The trials per variant that tuned runs recorded (0 where none did)."""
    if "trials" not in runs.columns:
        return 0
    recorded = pd.to_numeric(runs["trials"], errors="coerce").dropna()
    return int(recorded.max()) if len(recorded) else 0


def recipe_title(role: str, trials: int | None = None) -> str:
    """What a family's verdicts hold under: the suite's recipe, or each variant tuned."""
    if role == CONFIRM:
        budget = f"equal budget of {trials} trials per variant" if trials else "equal budget per variant"
        return f"tuned, {budget}"
    return "suite recipe (untuned)"


@dataclass(frozen=True)
class DecisionSettings:
    """What the runs of a family recorded of their suite's [decision] table."""

    primary: tuple[str, ...] = ()  # the values in the Holm family (empty: every compared value)
    descriptive: bool = False  # not powered for a verdict: no 'better' or 'worse'
    underpowered: bool = False  # run with --allow-underpowered

    def in_family(self, metric: str) -> bool:
        return not self.primary or metric in self.primary

    def in_holm(self, metric: str, uninformative: bool) -> bool:
        """Whether a comparison enters the Holm family: its value is in the family, and it is not
        uninformative here (one value in every run) unless the suite pre-registered it as primary."""
        return self.in_family(metric) and (not uninformative or metric in self.primary)

    def stars(self, metric: str, p_holm: float) -> str:
        """The summary tables' mark of a comparison: its Holm p as stars, none for a value outside
        the Holm family (descriptive, not primary) or in a descriptive suite."""
        return "" if self.descriptive or not self.in_family(metric) else stars(p_holm)


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value) and not (isinstance(value, float) and math.isnan(value))


def decision_settings(runs: pd.DataFrame) -> DecisionSettings:
    """The settings `runs` recorded (runs of one suite record the same; where they do not, the
    primary values of all and either flag if any run has it). Runs from before these fields
    recorded none: every value is primary and the suite is not descriptive."""
    primary: dict[str, None] = {}
    for text in runs.get("decision_primary", pd.Series(dtype=object)):
        if isinstance(text, str):
            primary.update(dict.fromkeys(text.split()))
    return DecisionSettings(
        tuple(primary),
        any(_flag(v) for v in runs.get("decision_descriptive", ())),
        any(_flag(v) for v in runs.get("decision_underpowered", ())),
    )


def constraints_of(text: object) -> tuple[str, ...]:
    """The constraints of a runs.csv cell ("" or NaN: none)."""
    if not isinstance(text, str) or not text.strip():
        return ()
    return tuple(part.strip() for part in text.split(CONSTRAINT_SEPARATOR.strip()) if part.strip())
