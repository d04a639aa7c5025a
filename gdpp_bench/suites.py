"""Suite TOML files -> frozen dataclasses -> one RunSpec per dataset x variant x seed.

Also the pre-registered study of a suite: [decision] (descriptive, primary values), [search] (the
optimisation fields `tune` searches, per variant too) and [budget] (trials, tuning and confirmation
seeds, objective). A suite with [budget] keeps `seeds`/[variant_seeds] for `run`; `tune` trains its
trials at budget.tuning_seeds and the selected configurations at budget.confirm_seeds.

Over 400 lines: the study's tables are validated here, at load, with the rest of the file, so that
every mistake is one line naming the file, the table and the field before anything runs."""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import operator
import os
import re
import tomllib
from collections.abc import Iterable
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from gdpp_bench.config import (  # re-exported: the suite files' types
    AGGREGATES,
    DISTRIBUTION_KINDS,
    EVAL_SAMPLE_COUNTS,
    LATENTS,
    PRECISIONS,
    SAMPLE_BN_MODES,
    SAMPLERS,
    SELECT_MODES,
    TERM_REAL_FEATURES,
    UPDATE_SCHEMES,
    Budget,
    DatasetSettings,
    DecisionConfig,
    Distribution,
    EvalConfig,
    Objective,
    RunSpec,
    Suite,
    TrainConfig,
    check_seeds,
)
from gdpp_bench.data import DATASETS, dataset_for, is_configurable, kind_of
from gdpp_bench.errors import UserError
from gdpp_bench.losses import parse_variant
from gdpp_bench.metrics import HIGHER_IS_BETTER, METRICS
from gdpp_bench.metrics.features import DEFAULT_FEATURES, check_features, fidelity_keys
from gdpp_bench.models import MODELS
from gdpp_bench.models.modifiers import check_batch_size, discriminator_options
from gdpp_bench.rundir import check_plain_name

BUILT_IN_SUITES = importlib.resources.files("gdpp_bench") / "suite_files"


def suite_folders() -> list[Traversable]:
    """Where suites are looked up by name: the folders of GDPP_BENCH_SUITES (a path list, searched
    first, so a user's suite may shadow a built-in one), then the suites shipped with the package."""
    extra = [Path(p) for p in os.environ.get("GDPP_BENCH_SUITES", "").split(os.pathsep) if p]
    return [*extra, BUILT_IN_SUITES]


def suite_files() -> dict[str, Traversable]:
    """Suite name -> its TOML file, the first folder of `suite_folders` that has it winning."""
    found: dict[str, Traversable] = {}
    for folder in suite_folders():
        if folder.is_dir():
            for entry in sorted(folder.iterdir(), key=lambda e: e.name):
                if entry.name.endswith(".toml") and entry.is_file():
                    found.setdefault(entry.name.removesuffix(".toml"), entry)
    return found


def suite_names() -> list[str]:
    return sorted(suite_files())


def suite_description(name: str) -> str:
    """The `description` of a suite, for listings (not validated: `load_suite` does that)."""
    try:
        description = tomllib.loads(suite_files()[name].read_text()).get("description", "")
    except (KeyError, OSError, tomllib.TOMLDecodeError):
        return "(unreadable suite file)"
    return str(description)


def load_suite(name_or_path: str) -> Suite:
    """Load a suite by name (see `suite_folders`) or by path to a TOML file."""
    source: Traversable | Path = Path(name_or_path)
    if Path(name_or_path).suffix != ".toml":
        files = suite_files()
        if name_or_path not in files:
            raise UserError(
                f"unknown suite {name_or_path!r}; known: {', '.join(sorted(files))} "
                "(or pass a path to a .toml file)"
            )
        source = files[name_or_path]
    try:
        table = tomllib.loads(source.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read suite file {source}: {exc}") from None
    return parse_suite(table, where=str(source))


def parse_suite(table: dict[str, Any], where: str = "suite") -> Suite:
    table = dict(table)
    if "dataset" in table and "datasets" in table:
        raise UserError(f"{where}: give either 'dataset' or 'datasets', not both")
    if "dataset" in table:
        table["datasets"] = [table.pop("dataset")]
    if "search_per_variant" in table:  # a Suite field, written in a file as [search."VARIANT"]
        raise UserError(f'{where}: unknown key search_per_variant; write [search."VARIANT"] tables')
    study: dict[str, Any] = {key: table.pop(key) for key in ("decision", "search", "budget") if key in table}
    raw_variants = table.get("variants", [])
    train_table, eval_table = table.pop("train", {}), table.pop("eval", {})
    train = _build(TrainConfig, train_table, f"{where} [train]")
    evaluation = _build(EvalConfig, eval_table, f"{where} [eval]")
    per_dataset = _per_dataset(table.pop("per_dataset", {}), table, train_table, eval_table, where)
    variant_seeds = _variant_seeds(table.pop("variant_seeds", {}), table.get("variants", []), where)
    suite = _build(
        Suite,
        table,
        where,
        train=train,
        eval=evaluation,
        per_dataset=per_dataset,
        variant_seeds=variant_seeds,
    )
    _validate(suite, where)
    canonical = tuple(_variant_name(v) for v in suite.variants)
    suite = dataclasses.replace(suite, variants=canonical)
    return _with_study(suite, study, dict(zip(canonical, raw_variants, strict=True)), where)


def _variant_seeds(table: Any, variants: Any, where: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """[variant_seeds]: "VARIANT" = [seeds] for variants of the suite run at other seeds."""
    here = f"{where} [variant_seeds]"
    if not isinstance(table, dict):
        raise UserError(f"{here}: expected a table of variant = [seeds], got {table!r}")
    listed = {_variant_name(v) for v in variants if isinstance(v, str)}
    pairs = []
    for variant, seeds in table.items():
        name = _variant_name(variant)
        if name not in listed:
            raise UserError(f"{here}: {variant!r} is not one of the suite's variants")
        seeds = _coerce(seeds, "tuple[int, ...]", f"{here}: {variant}")
        if not seeds:
            raise UserError(f"{here}: {variant} needs at least one seed")
        check_seeds(seeds, f"{here}: {variant}")
        pairs.append((name, seeds))
    return tuple(pairs)


def _variant_name(text: str) -> str:
    """The canonical name of a variant, which becomes a folder name."""
    return check_plain_name("variant", str(parse_variant(text)))


def _per_dataset(
    tables: Any, suite_table: dict[str, Any], train_table: Any, eval_table: Any, where: str
) -> tuple[tuple[str, DatasetSettings], ...]:
    """[per_dataset.NAME] tables: `model`, and `train`/`eval` keys that replace the suite's."""
    if not isinstance(tables, dict) or not isinstance(train_table, dict) or not isinstance(eval_table, dict):
        raise UserError(f"{where}: per_dataset, train and eval must be tables")
    settings = []
    for dataset, table in tables.items():
        here = f"{where} [per_dataset.{dataset}]"
        if dataset not in suite_table.get("datasets", []):
            raise UserError(f"{here}: {dataset!r} is not one of the suite's datasets")
        if not isinstance(table, dict):
            raise UserError(f"{here}: expected a table, got {table!r}")
        table = dict(table)
        train = _build(TrainConfig, {**train_table, **table.pop("train", {})}, f"{here} train")
        evaluation = _build(EvalConfig, {**eval_table, **table.pop("eval", {})}, f"{here} eval")
        model = {"model": suite_table.get("model", ""), **table}
        settings.append((dataset, _build(DatasetSettings, model, here, train=train, eval=evaluation)))
    return tuple(settings)


# -- the pre-registered study: [decision], [search], [budget] -------------------------------------

# what a study may search per variant: how a run optimises. Budget fields (steps, epochs,
# batch_size), machine fields (precision, compile, cuda_graph), what a run records (log_every,
# checkpoint_every) and the recipe under comparison (update, latent, term_real_features) stay equal
# for every variant, or the comparison would not be of losses at an equal budget
SEARCHABLE_FIELDS = (
    "lr_g",
    "lr_d",
    "beta1",
    "beta2",
    "eps",
    "d_steps",
    "d_real_target",
    "d_fake_target",
    "g_target",
)
WEIGHT = "weight"  # [search] key: the weight of the variant's diversity term
CONSTRAINT_OPS = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
_CONSTRAINT = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(>=|<=|>|<)\s*(\S+)\s*")
_KINDS = "log_uniform = [low, high], uniform = [low, high], int_uniform = [low, high], choice = [v1, ...]"
_TRAIN_FIELDS = {f.name: str(f.type) for f in dataclasses.fields(TrainConfig)}
_BUDGET_KEYS = ("trials", "tuning_seeds", "confirm_seeds", "objective", "sampler", "sampler_seed")


def parse_constraint(text: str) -> tuple[str, str, float]:
    """A constraint 'VALUE OP NUMBER' (OP one of >=, <=, >, <), e.g. "hq_percent >= 10", as
    (value, op, number); a UserError if malformed. Suites check at load that VALUE is a compared
    value of their metrics."""
    match = _CONSTRAINT.fullmatch(text) if isinstance(text, str) else None
    try:
        number = float(match.group(3)) if match else math.nan
    except ValueError:
        number = math.nan
    if match is None or not math.isfinite(number):
        raise UserError(
            f"malformed constraint {text!r}; write VALUE OP NUMBER with OP one of "
            f"{', '.join(CONSTRAINT_OPS)} and a finite NUMBER, e.g. 'hq_percent >= 10'"
        )
    return match.group(1), match.group(2), number


def constraint_holds(text: str, value: float) -> bool:
    """Whether `value` satisfies the constraint `text` (see `parse_constraint`); NaN never does."""
    _, op, number = parse_constraint(text)
    return not math.isnan(value) and bool(CONSTRAINT_OPS[op](value, number))


def declared_values(metrics: Iterable[str], features: str = DEFAULT_FEATURES) -> tuple[str, ...]:
    """The compared values (HIGHER_IS_BETTER's keys) that the named metrics declare, in order;
    of a metric measured with the chosen extractor, those `features` gives (fd_dinov2, not fid)."""
    found: dict[str, None] = {}
    for metric in metrics:
        meta = METRICS.meta(metric)
        given = set(fidelity_keys(features)) if meta.get("features") else None
        for value in meta.get("values", {}):
            if value in HIGHER_IS_BETTER and (given is None or value in given):
                found.setdefault(value)
    return tuple(found)


def _with_study(suite: Suite, study: dict[str, Any], raw: dict[str, str], where: str) -> Suite:
    """`suite` with its [decision], [search] and [budget] tables (`study`) parsed and checked; `raw`
    maps each canonical variant to the text the file wrote."""
    declared = {
        d: declared_values(suite.settings(d).eval.metrics, suite.settings(d).eval.features)
        for d in suite.datasets
    }
    suite = dataclasses.replace(
        suite, decision=_decision(study.get("decision", {}), declared, f"{where} [decision]")
    )
    if "search" in study and "budget" not in study:
        raise UserError(
            f"{where}: [search] needs a [budget] table (trials, tuning_seeds, confirm_seeds, "
            "objective): the same trials for every variant; add it or remove [search]"
        )
    if "budget" in study and "search" not in study:
        raise UserError(f"{where}: [budget] needs a [search] table (the fields its trials search)")
    if "search" not in study:
        return suite
    search, per_variant = _search(study["search"], suite, where)
    suite = dataclasses.replace(suite, search=search, search_per_variant=per_variant)
    _check_searched_variants(suite, raw, where)
    return dataclasses.replace(suite, budget=_budget(study["budget"], declared, f"{where} [budget]"))


def _decision(table: Any, declared: dict[str, tuple[str, ...]], here: str) -> DecisionConfig:
    if not isinstance(table, dict):
        raise UserError(f"{here}: expected a table, got {table!r}")
    unknown = sorted(set(table) - {"descriptive", "primary"})
    if unknown:
        why = " (underpowered is recorded by --allow-underpowered, never written)" * (
            "underpowered" in unknown
        )
        raise UserError(f"{here}: unknown key(s) {', '.join(unknown)}; known: descriptive, primary{why}")
    descriptive = _coerce(table.get("descriptive", False), "bool", f"{here}: descriptive")
    primary = _coerce(table.get("primary", []), "tuple[str, ...]", f"{here}: primary")
    _check_distinct(primary, f"{here}: primary")
    known = tuple(dict.fromkeys(v for values in declared.values() for v in values))
    for value in primary:
        if value not in known:
            raise UserError(
                f"{here}: primary value {value!r} is not a compared value of the suite's metrics; "
                f"choose from {', '.join(known) or '(none: eval.metrics is empty)'}"
            )
    for dataset, values in declared.items():
        if primary and not set(primary) & set(values):
            raise UserError(
                f"{here}: primary names no value of dataset {dataset!r}'s metrics; add one of "
                f"{', '.join(values) or '(none: its eval.metrics is empty)'}"
            )
    return DecisionConfig(descriptive=descriptive, primary=primary)


def _search(
    table: Any, suite: Suite, where: str
) -> tuple[
    tuple[tuple[str, Distribution], ...], tuple[tuple[str, tuple[tuple[str, Distribution], ...]], ...]
]:
    """[search]: (field, distribution) for every variant, and [search."VARIANT"] sub-tables."""
    here = f"{where} [search]"
    if not isinstance(table, dict):
        raise UserError(f"{here}: expected a table, got {table!r}")
    fields, per_variant = [], {}
    for key, value in table.items():
        if key == WEIGHT or key in _TRAIN_FIELDS:
            fields.append((key, _distribution(key, value, suite, f"{here} {key}")))
            continue
        sub = f'{where} [search."{key}"]'
        variant = _search_variant(key, suite, here, sub)
        if variant in per_variant:
            raise UserError(f"{sub}: a second table for variant {variant}; merge them into one")
        if not isinstance(value, dict):
            raise UserError(f"{sub}: expected a table of searched fields, got {value!r}")
        own = []
        for field, spec in value.items():
            if field != WEIGHT and field not in _TRAIN_FIELDS:
                raise UserError(f"{sub}: unknown field {field!r}; searchable: {_searchable()}")
            own.append((field, _distribution(field, spec, suite, f"{sub} {field}")))
        per_variant[variant] = tuple(own)
    if not fields and not any(per_variant.values()):
        raise UserError(
            f"{here}: nothing is searched; give a field, e.g. lr_g = {{ log_uniform = [1e-4, 1e-2] }}"
        )
    return tuple(fields), tuple(per_variant.items())


def _searchable() -> str:
    return f"{', '.join(SEARCHABLE_FIELDS)}, {WEIGHT}"


def _search_variant(key: str, suite: Suite, here: str, sub: str) -> str:
    """The canonical variant of a [search."VARIANT"] sub-table (a key that is no field)."""
    try:
        name = _variant_name(key)
    except UserError:
        raise UserError(
            f"{here}: unknown field {key!r}; searchable: {_searchable()} "
            '(or a sub-table [search."VARIANT"] for one of the suite\'s variants)'
        ) from None
    if name not in suite.variants:
        raise UserError(
            f"{sub}: {key!r} is not one of the suite's variants "
            f"({', '.join(suite.variants)}); name one of them or remove the table"
        )
    return name


def _distribution(field: str, value: Any, suite: Suite, here: str) -> Distribution:
    """One searched field's inline table, e.g. { log_uniform = [1e-4, 1e-2] }, checked."""
    if field != WEIGHT and field not in SEARCHABLE_FIELDS:
        raise UserError(
            f"{here}: train.{field} is not searchable: budget, machine and recipe fields must be "
            f"equal for every variant (set it in [train]); searchable: {_searchable()}"
        )
    if not isinstance(value, dict):
        raise UserError(f"{here}: expected an inline table with exactly one of {_KINDS}; got {value!r}")
    unknown = sorted(set(value) - set(DISTRIBUTION_KINDS))
    if unknown:
        raise UserError(
            f"{here}: unknown distribution kind(s) {', '.join(unknown)}; use exactly one of {_KINDS}"
        )
    if len(value) != 1:
        raise UserError(
            f"{here}: give exactly one of {', '.join(DISTRIBUTION_KINDS)}, got {', '.join(value) or 'none'}"
        )
    ((kind, values),) = value.items()
    integer = _TRAIN_FIELDS.get(field) == "int"
    if not isinstance(values, list) or not all(_is_number(v) for v in values):
        raise UserError(f"{here}: {kind} must be a list of finite numbers, got {values!r}")
    if kind == "choice":
        if not values:
            raise UserError(f"{here}: choice is empty; list at least one value")
        if integer and not all(isinstance(v, int) for v in values):
            raise UserError(f"{here}: train.{field} takes integers, got choice = {values!r}")
        _check_distinct(values, f"{here}: choice")
        chosen = tuple(v if integer else float(v) for v in values)
        for v in chosen:
            _check_value(field, v, suite, here)
        return Distribution(kind, chosen)
    if len(values) != 2:
        raise UserError(f"{here}: {kind} needs two bounds [low, high], got {values!r}")
    if kind == "int_uniform" and not all(isinstance(v, int) for v in values):
        raise UserError(f"{here}: int_uniform bounds must be integers, got {values!r}")
    if integer and kind != "int_uniform":
        raise UserError(f"{here}: train.{field} takes integers; use int_uniform or choice instead of {kind}")
    if kind == "int_uniform" and not integer:
        raise UserError(
            f"{here}: {field} is a real number; use uniform or log_uniform instead of int_uniform"
        )
    low, high = values
    if not low < high:
        raise UserError(
            f"{here}: {kind} range {values!r} is empty or reversed; write [low, high] with low < high"
        )
    if kind == "log_uniform" and low <= 0:
        raise UserError(
            f"{here}: log_uniform needs positive bounds, got {values!r}; use uniform to include {low}"
        )
    bounds = (low, high) if integer else (float(low), float(high))
    for v in bounds:
        _check_value(field, v, suite, here)
    return Distribution(kind, bounds)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _check_distinct(values: tuple[Any, ...] | list[Any], here: str) -> None:
    repeated = [v for i, v in enumerate(values) if v in values[:i]]
    if repeated:
        raise UserError(f"{here}: {', '.join(map(repr, repeated))} listed more than once; list each once")


def _check_value(field: str, value: Any, suite: Suite, here: str) -> None:
    """A UserError unless `field` may take `value` in every dataset's settings (check_settings)."""
    if field == WEIGHT:
        if not value > 0:
            raise UserError(
                f"{here}: {value!r} is outside weight's allowed values: a term's weight must be > 0"
            )
        return
    for dataset in suite.datasets:
        settings = suite.settings(dataset)
        try:
            changed: dict[str, Any] = {field: value}
            check_settings(dataclasses.replace(settings.train, **changed), settings.eval, "")
        except UserError as exc:
            reason = str(exc).removeprefix(": ")
            raise UserError(f"{here}: {value!r} is outside the field's allowed values ({reason})") from None


def _extent(distribution: Distribution) -> tuple[float, float]:
    return min(distribution.values), max(distribution.values)


def _check_searched_variants(suite: Suite, raw: dict[str, str], where: str) -> None:
    """What a searched field means for each variant: `weight` weighs its one diversity term, whose
    weight the variant must not fix; searched label targets keep fake below real."""
    own = {variant: dict(fields) for variant, fields in suite.search_per_variant}
    for variant in suite.variants:
        searched, terms = suite.search_of(variant), parse_variant(variant).terms
        table = f'[search."{variant}"]' if WEIGHT in own.get(variant, {}) else "[search]"
        if WEIGHT in own.get(variant, {}) and not terms:
            raise UserError(
                f"{where} {table} weight: {variant} has no diversity term to weigh; remove weight"
            )
        if WEIGHT in searched and terms:
            text = raw.get(variant, variant)
            if len(terms) > 1:
                raise UserError(
                    f"{where} {table} weight: {variant} has {len(terms)} diversity terms and weight "
                    "weighs one; fix their weights in the variant's name and do not search weight for it"
                )
            if "@" in text:
                plain = "+".join(part.partition("@")[0] for part in text.split("+"))
                raise UserError(
                    f"{where} {table} weight: variant {text!r} fixes the weight that is searched; "
                    f"list it as {plain!r} in variants (a searched variant keeps its plain name)"
                )
        if "d_real_target" in searched and "d_fake_target" in searched:
            fake, real = _extent(searched["d_fake_target"])[1], _extent(searched["d_real_target"])[0]
            if not fake < real:
                raise UserError(
                    f"{where} [search] d_fake_target: it reaches {fake} and d_real_target goes down to "
                    f"{real} for {variant}; keep every d_fake_target below every d_real_target"
                )


def _budget(table: Any, declared: dict[str, tuple[str, ...]], here: str) -> Budget:
    if not isinstance(table, dict):
        raise UserError(f"{here}: expected a table, got {table!r}")
    unknown = sorted(set(table) - set(_BUDGET_KEYS))
    if unknown:
        raise UserError(f"{here}: unknown key(s) {', '.join(unknown)}; known: {', '.join(_BUDGET_KEYS)}")
    missing = [key for key in _BUDGET_KEYS[:4] if key not in table]
    if missing:
        raise UserError(f"{here}: missing required key(s) {', '.join(missing)}")
    trials = _coerce(table["trials"], "int", f"{here}: trials")
    if trials < 1:
        raise UserError(f"{here}: trials (per variant) must be >= 1, got {trials}")
    seeds = {}
    for key in ("tuning_seeds", "confirm_seeds"):
        seeds[key] = _coerce(table[key], "tuple[int, ...]", f"{here}: {key}")
        if not seeds[key]:
            raise UserError(f"{here}: {key} must not be empty; list at least one seed")
        check_seeds(seeds[key], f"{here}: {key}")
        _check_distinct(seeds[key], f"{here}: {key}")
    shared = sorted(set(seeds["tuning_seeds"]) & set(seeds["confirm_seeds"]))
    if shared:
        raise UserError(
            f"{here}: confirm_seeds share seed(s) {', '.join(map(str, shared))} with tuning_seeds; "
            "confirmation needs fresh seeds: remove them from one list"
        )
    sampler = _coerce(table.get("sampler", "random"), "str", f"{here}: sampler")
    if sampler not in SAMPLERS:
        raise UserError(f"{here}: sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    sampler_seed = _coerce(table.get("sampler_seed", 0), "int", f"{here}: sampler_seed")
    check_seeds([sampler_seed], f"{here}: sampler_seed")
    objective = _objective(table["objective"], declared, f"{here} objective")
    return Budget(trials, seeds["tuning_seeds"], seeds["confirm_seeds"], objective, sampler, sampler_seed)


def _objective(table: Any, declared: dict[str, tuple[str, ...]], here: str) -> Objective:
    if not isinstance(table, dict):
        raise UserError(
            f'{here}: expected an inline table {{ metric = "VALUE", aggregate = "mean", '
            f"constraints = [...] }}, got {table!r}"
        )
    unknown = sorted(set(table) - {"metric", "aggregate", "constraints"})
    if unknown:
        raise UserError(f"{here}: unknown key(s) {', '.join(unknown)}; known: metric, aggregate, constraints")
    if "metric" not in table:
        raise UserError(f"{here}: missing required key metric (the compared value trials are selected by)")
    metric = _coerce(table["metric"], "str", f"{here}: metric")
    _check_compared(metric, declared, f"{here}: metric")
    aggregate = _coerce(table.get("aggregate", "mean"), "str", f"{here}: aggregate")
    if aggregate not in AGGREGATES:
        raise UserError(f"{here}: aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
    constraints = _coerce(table.get("constraints", []), "tuple[str, ...]", f"{here}: constraints")
    for text in constraints:
        try:
            value, _, _ = parse_constraint(text)
        except UserError as exc:
            raise UserError(f"{here}: constraints: {exc}") from None
        _check_compared(value, declared, f"{here}: constraint {text!r}")
    return Objective(metric, aggregate, constraints)


def _check_compared(value: str, declared: dict[str, tuple[str, ...]], here: str) -> None:
    """A UserError unless every dataset's metrics declare the compared value `value`."""
    missing = [dataset for dataset, values in declared.items() if value not in values]
    if missing:
        first, *others = declared.values()
        common = [v for v in first if all(v in values for values in others)]
        raise UserError(
            f"{here}: {value!r} is not a compared value of {', '.join(missing)}'s metrics; choose one "
            f"every dataset's metrics declare: {', '.join(common) or '(none)'}"
        )


def expand(
    suite: Suite,
    variants: list[str] | None = None,
    seeds: list[int] | None = None,
    steps: int | None = None,
    precision: str | None = None,
    compile: bool | None = None,
    cuda_graph: bool | None = None,
    eval_samples: int | None = None,
    datasets: list[str] | None = None,
    tensorboard: bool | None = None,
    data_root: str | None = None,
) -> list[RunSpec]:
    """One RunSpec per dataset x variant x seed; CLI overrides replace the suite's values.

    `eval_samples` caps every evaluation sample count (generated, real, IvOM images) for quick looks;
    `datasets` keeps only those of the suite's datasets (run folders stay where the whole suite
    puts them). A suite that trains for `epochs` gets its step count from the training images under
    `data_root`; `steps` replaces it (and the epochs).
    """
    if steps is not None and steps < 1:
        raise UserError(f"--steps must be >= 1, got {steps}")
    if eval_samples is not None and eval_samples < 1:
        raise UserError(f"--eval-samples must be >= 1, got {eval_samples}")
    if seeds is not None:
        check_seeds(seeds, "--seeds")
    overrides = {"steps": steps, "precision": precision, "compile": compile, "cuda_graph": cuda_graph}
    names = [_variant_name(v) for v in variants] if variants else list(suite.variants)
    unknown = sorted(set(datasets or ()) - set(suite.datasets))
    if unknown:
        raise UserError(
            f"--datasets: {', '.join(unknown)} not in suite {suite.name!r}; "
            f"its datasets: {', '.join(suite.datasets)}"
        )
    several = len(suite.datasets) > 1
    parsed = {name: parse_variant(name) for name in names}  # the one parse of each variant
    specs = []
    for dataset in suite.datasets:
        if datasets and dataset not in datasets:
            continue
        settings = suite.settings(dataset)
        # the suite's data_path and image_size belong to a configurable dataset (folder) only
        data_path, image_size = (suite.data_path, suite.image_size) if is_configurable(dataset) else ("", 0)
        data: Any = dataset_for(dataset, data_path, image_size)
        replaced: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
        if steps is not None:
            replaced["epochs"] = 0
        train = dataclasses.replace(settings.train, **replaced)
        if train.epochs:  # an image dataset (checked at load): its training images make an epoch
            count = data.train_count(data_root)
            train = dataclasses.replace(train, steps=math.ceil(train.epochs * count / train.batch_size))
        evaluation = settings.eval
        if eval_samples is not None:
            evaluation = dataclasses.replace(
                evaluation, **{key: min(getattr(evaluation, key), eval_samples) for key in EVAL_SAMPLE_COUNTS}
            )
        if tensorboard is not None:
            evaluation = dataclasses.replace(evaluation, tensorboard=tensorboard)
        specs += [
            RunSpec(
                suite=suite.name,
                dataset=dataset,
                model=settings.model or data.default_model,
                variant=parsed[variant],
                seed=seed,
                train=train,
                eval=evaluation,
                key=f"{dataset}/{variant}/seed-{seed}" if several else f"{variant}/seed-{seed}",
                data_path=data_path,
                image_size=image_size,
                decision=suite.decision,
            )
            for variant in names
            for seed in (seeds if seeds is not None else suite.seeds_of(variant))
        ]
    for spec in specs:
        check_batch_size(discriminator_options(spec.variant.discriminator), spec.train.batch_size)
    return specs


def _build(cls: type, table: Any, where: str, **ready: Any) -> Any:
    if not isinstance(table, dict):
        raise UserError(f"{where}: expected a table, got {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(table) - set(fields))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(fields))}")
    values = dict(ready)
    for key, value in table.items():
        values[key] = _coerce(value, str(fields[key].type), f"{where}: {key}")
    missing = [
        f.name
        for f in fields.values()
        if f.name not in values
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise UserError(f"{where}: missing required key(s) {', '.join(missing)}")
    return cls(**values)


def _coerce(value: Any, type_name: str, where: str) -> Any:
    ok = {
        "int": isinstance(value, int) and not isinstance(value, bool),
        "bool": isinstance(value, bool),
        "float": isinstance(value, int | float) and not isinstance(value, bool),
        "str": isinstance(value, str),
        "tuple[str, ...]": isinstance(value, list) and all(isinstance(v, str) for v in value),
        "tuple[int, ...]": isinstance(value, list)
        and all(isinstance(v, int) and not isinstance(v, bool) for v in value),
    }.get(type_name, False)
    if not ok:
        raise UserError(f"{where} must be of type {type_name}, got {value!r}")
    if type_name == "float":
        if not math.isfinite(value):  # TOML has inf and nan
            raise UserError(f"{where} must be a finite number, got {value!r}")
        return float(value)
    return tuple(value) if isinstance(value, list) else value


def _validate(suite: Suite, where: str) -> None:
    if not suite.datasets or not suite.variants or not suite.seeds:
        raise UserError(f"{where}: datasets, variants and seeds must not be empty")
    check_seeds(suite.seeds, f"{where}: seeds")
    check_plain_name(f"{where}: suite", suite.name)
    for dataset in suite.datasets:
        check_plain_name(f"{where}: dataset", dataset)
    _validate_settings(suite.settings(""), where)
    for dataset in suite.datasets:
        _validate_dataset(suite, dataset, where)
    for dataset, settings in suite.per_dataset:
        _validate_settings(settings, f"{where} [per_dataset.{dataset}]")


def _validate_dataset(suite: Suite, dataset: str, where: str) -> None:
    if suite.settings(dataset).train.epochs and kind_of(dataset) != "image":
        raise UserError(
            f"{where}: train.epochs counts passes over training images; {dataset!r} has none (use steps)"
        )
    if is_configurable(dataset):
        try:
            dataset_for(dataset, suite.data_path, suite.image_size)
        except UserError as exc:
            raise UserError(f"{where}: {exc}") from None
    elif suite.data_path or suite.image_size:
        folders = [name for name in DATASETS if is_configurable(name)]
        raise UserError(
            f"{where}: data_path and image_size are settings of dataset {' or '.join(folders)}, "
            f"not of {dataset!r}; remove them"
        )


def _validate_settings(settings: DatasetSettings, where: str) -> None:
    check_settings(settings.train, settings.eval, where)
    if settings.model:
        MODELS.get(settings.model)


def check_settings(train: TrainConfig, evaluation: EvalConfig, where: str = "run settings") -> None:
    """A UserError naming the first setting out of its range (non-finite numbers included)."""
    for section, config in (("train", train), ("eval", evaluation)):
        for key, value in dataclasses.asdict(config).items():
            if value is None or (isinstance(value, float) and not math.isfinite(value)):
                raise UserError(f"{where}: {section}.{key} must be a finite number, got {value!r}")
    positive = {
        "train.steps": train.steps,
        "train.batch_size": train.batch_size,
        "train.lr_g": train.lr_g,
        "train.lr_d": train.lr_d,
        "train.eps": train.eps,
        "train.log_every": train.log_every,
        "train.checkpoint_every": train.checkpoint_every,
        "eval.samples": evaluation.samples,
        "eval.grid_samples": evaluation.grid_samples,
        "eval.fidelity_samples": evaluation.fidelity_samples,
        "eval.real_samples": evaluation.real_samples,
        "eval.ivom_images": evaluation.ivom_images,
    }
    for key, value in positive.items():
        if not value > 0:
            raise UserError(f"{where}: {key} must be > 0, got {value}")
    for key, value in {"train.beta1": train.beta1, "train.beta2": train.beta2}.items():
        if not 0 <= value < 1:
            raise UserError(f"{where}: {key} must be in [0, 1), got {value}")
    targets = {
        "train.d_real_target": train.d_real_target,
        "train.d_fake_target": train.d_fake_target,
        "train.g_target": train.g_target,
    }
    for key, value in targets.items():
        if not 0 <= value <= 1:
            raise UserError(f"{where}: {key} must be in [0, 1], got {value}")
    if not train.d_fake_target < train.d_real_target:
        raise UserError(f"{where}: train.d_fake_target must be below train.d_real_target")
    if train.d_steps < 0 or train.epochs < 0 or evaluation.every < 0 or evaluation.patience < 0:
        raise UserError(f"{where}: train.d_steps, train.epochs, eval.every and eval.patience must be >= 0")
    choices = {
        "train.update": (train.update, UPDATE_SCHEMES),
        "train.precision": (train.precision, PRECISIONS),
        "eval.select_mode": (evaluation.select_mode, SELECT_MODES),
        "eval.reference_split": (evaluation.reference_split, ("train", "test")),
        "eval.sample_bn": (evaluation.sample_bn, SAMPLE_BN_MODES),
        "train.latent": (train.latent, LATENTS),
        "train.term_real_features": (train.term_real_features, TERM_REAL_FEATURES),
    }
    for key, (value, allowed) in choices.items():
        if value not in allowed:
            raise UserError(f"{where}: {key} must be one of {', '.join(allowed)}, got {value!r}")
    check_features(evaluation.features, f"{where}: eval.features")
    given = fidelity_keys(evaluation.features)
    fidelity = METRICS.meta("fidelity").get("values", {})
    if "fidelity" in evaluation.metrics and evaluation.select in fidelity and evaluation.select not in given:
        raise UserError(
            f"{where}: eval.select = {evaluation.select!r} is not measured with eval.features = "
            f"{evaluation.features!r}; its fidelity values: {', '.join(given)}"
        )
    if (evaluation.select or evaluation.patience) and not evaluation.every:
        raise UserError(f"{where}: eval.select and eval.patience need eval.every > 0")
    for metric in evaluation.metrics:
        METRICS.get(metric)
