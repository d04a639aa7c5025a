"""The power check of a study's design, before any run: the smallest Holm-corrected p that the
decision rule's exact two-sided Mann-Whitney test can reach with the design's seeds per arm and
Holm family (comparisons x metric values of a dataset). A design that cannot reach alpha cannot
give a verdict whatever the runs do; `check_design` refuses it unless the suite says it is
descriptive, the command line asked for a subset (a warning), or --allow-underpowered."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass

from gdpp_bench.config import RunSpec
from gdpp_bench.errors import UserError
from gdpp_bench.metrics.features import DEFAULT_FEATURES
from gdpp_bench.report.stats import ALPHA, smallest_mann_whitney_p
from gdpp_bench.report.tables import DEFAULT_BASELINE, comparisons
from gdpp_bench.suites import declared_values

COMPARED_ROLES = ("", "confirm")  # runs the decision rule compares; tuning trials are not


@dataclass(frozen=True)
class ArmPair:
    """One comparison of the decision rule: `variant` (n seeds) against `reference` (n_reference),
    and the smallest Holm-corrected p it can reach in its dataset's family."""

    variant: str
    reference: str
    n: int
    n_reference: int
    smallest_holm_p: float

    @property
    def smallest_p(self) -> float:
        """The smallest raw two-sided p of the exact Mann-Whitney test at these seeds."""
        return smallest_mann_whitney_p(self.n, self.n_reference)


@dataclass(frozen=True)
class DatasetPower:
    """The design of one dataset: its Holm family (`family` = len(comparisons) x len(values)
    pairs of comparison and metric value) and what each comparison can reach."""

    dataset: str
    family: int
    values: tuple[str, ...]
    comparisons: tuple[ArmPair, ...]

    @property
    def smallest_holm_p(self) -> float:
        """The smallest Holm p that every comparison can reach (the largest of their bounds);
        0.0 when there is nothing to decide."""
        return max((pair.smallest_holm_p for pair in self.comparisons), default=0.0)

    @property
    def reachable(self) -> bool:
        """Whether every comparison can reach alpha (true when there is nothing to decide)."""
        return self.family == 0 or self.smallest_holm_p < ALPHA


def family_values(
    metrics: Iterable[str], primary: Iterable[str] = (), features: str = DEFAULT_FEATURES
) -> tuple[str, ...]:
    """The metric values in a dataset's Holm family: the compared values its eval metrics declare
    (measured with `features`, eval.features), only the `primary` ones among them when [decision]
    primary is set."""
    declared = declared_values(metrics, features)
    chosen = set(primary)
    return tuple(v for v in declared if v in chosen) if chosen else declared


def family_size(
    variants: Iterable[str],
    metrics: Iterable[str],
    primary: Iterable[str] = (),
    baseline: str = DEFAULT_BASELINE,
    features: str = DEFAULT_FEATURES,
) -> int:
    """The number of (comparison, metric value) pairs in one dataset's Holm family: the decision
    rule's comparisons of `variants` (see report.tables.comparisons) x `family_values`."""
    return len(comparisons(list(variants), baseline)) * len(family_values(metrics, primary, features))


def design_power(specs: list[RunSpec], baseline: str = DEFAULT_BASELINE) -> list[DatasetPower]:
    """Per dataset of `specs` (in their order), what the design can reach: seeds per arm are the
    distinct seeds of each dataset and variant name (`spec.name`) among the compared runs (role ""
    or "confirm"); the family uses the runs' [decision] primary values. Each comparison's bound is
    the one the report's decisions use: max(m x the family's smallest raw p, its own smallest p)."""
    seeds: dict[str, dict[str, set[int]]] = {}
    metrics: dict[str, dict[str, None]] = {}
    primary: dict[str, dict[str, None]] = {}
    features: dict[str, str] = {}
    for spec in specs:
        if spec.role not in COMPARED_ROLES:
            continue
        features.setdefault(spec.dataset, spec.eval.features)
        seeds.setdefault(spec.dataset, {}).setdefault(spec.name, set()).add(spec.seed)
        metrics.setdefault(spec.dataset, {}).update(dict.fromkeys(spec.eval.metrics))
        primary.setdefault(spec.dataset, {}).update(dict.fromkeys(spec.decision.primary))
    powers = []
    for dataset, arms in seeds.items():
        values = family_values(metrics[dataset], primary[dataset], features[dataset])
        pairs = comparisons(list(arms), baseline) if values else []
        m = len(pairs) * len(values)
        sizes = [
            (variant, reference, len(arms[variant]), len(arms[reference])) for variant, reference in pairs
        ]
        floor = min((smallest_mann_whitney_p(n, n_ref) for *_, n, n_ref in sizes), default=1.0)
        compared = tuple(
            ArmPair(variant, reference, n, n_ref, min(1.0, max(m * floor, smallest_mann_whitney_p(n, n_ref))))
            for variant, reference, n, n_ref in sizes
        )
        powers.append(DatasetPower(dataset, m, values, compared))
    return powers


def smallest_seeds_per_arm(m: int, alpha: float = ALPHA) -> int:
    """The smallest n for which a Holm family of `m` comparisons at n seeds against n can reach
    `alpha`: m x 2 / C(2n, n) < alpha."""
    n = 1
    while m * smallest_mann_whitney_p(n, n) >= alpha:
        n += 1
    return n


def describe(power: DatasetPower) -> str:
    """One clause on a dataset that cannot reach alpha: its weakest comparison's seeds, the family,
    the smallest reachable Holm p and the fewest seeds per arm that could reach alpha."""
    weakest = max(power.comparisons, key=lambda pair: pair.smallest_holm_p)
    arms = (
        f"{weakest.n} seeds per arm"
        if weakest.n == weakest.n_reference
        else f"{weakest.n} vs {weakest.n_reference} seeds ({weakest.variant} vs {weakest.reference})"
    )
    count = len(power.comparisons)
    return (
        f"dataset {power.dataset}: {arms} (smallest exact two-sided p {weakest.smallest_p:.3g}), "
        f"Holm family of {power.family} ({count} comparison{'s' * (count != 1)} x "
        f"{len(power.values)} metric values): the smallest reachable Holm p is "
        f"{weakest.smallest_holm_p:.3g}, not below alpha {ALPHA}; at this family size "
        f"{smallest_seeds_per_arm(power.family)} seeds per arm is the fewest that could reach it"
    )


def check_design(
    specs: list[RunSpec],
    *,
    subset: bool,
    allow_underpowered: bool,
    baseline: str = DEFAULT_BASELINE,
) -> tuple[list[RunSpec], str | None]:
    """The power check before `run`/`tune`: (specs, None) when the design can reach a verdict on
    every dataset, has nothing to decide (one variant, no baseline), or is descriptive ([decision]
    descriptive = true). Otherwise, for a subset asked on the command line (`subset`): the specs
    and one warning line; with `allow_underpowered`: the specs marked decision.underpowered and one
    line to show; else a UserError of one line saying why and how to fix it. The lines carry no
    "warning:" prefix (the caller's printer adds its own)."""
    if not specs or all(spec.decision.descriptive for spec in specs):
        return specs, None
    short = [power for power in design_power(specs, baseline) if not power.reachable]
    if not short:
        return specs, None
    also = f" (also datasets {', '.join(p.dataset for p in short[1:])})" if len(short) > 1 else ""
    why = f"suite {specs[0].suite}, {describe(short[0])}{also}"
    if subset:
        return specs, f"this subset cannot reach a verdict: {why}"
    if allow_underpowered:
        marked = [
            dataclasses.replace(spec, decision=dataclasses.replace(spec.decision, underpowered=True))
            for spec in specs
        ]
        return (
            marked,
            f"note: running an underpowered design (--allow-underpowered; the report says so): {why}",
        )
    raise UserError(
        f"{why}; no verdict is possible: add seeds, pre-register a smaller [decision] primary, "
        "declare [decision] descriptive = true, or pass --allow-underpowered"
    )
