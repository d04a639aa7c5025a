"""Suite TOML files -> frozen dataclasses -> one RunSpec per dataset x variant x seed."""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import os
import tomllib
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from gdpp_bench.config import (  # re-exported: the suite files' types
    EVAL_SAMPLE_COUNTS,
    LATENTS,
    PRECISIONS,
    SAMPLE_BN_MODES,
    SELECT_MODES,
    TERM_REAL_FEATURES,
    UPDATE_SCHEMES,
    DatasetSettings,
    EvalConfig,
    RunSpec,
    Suite,
    TrainConfig,
)
from gdpp_bench.data import DATASETS, dataset_for, is_configurable, kind_of
from gdpp_bench.errors import UserError
from gdpp_bench.losses import parse_variant
from gdpp_bench.metrics import METRICS
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
    return dataclasses.replace(suite, variants=canonical)


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
    if (evaluation.select or evaluation.patience) and not evaluation.every:
        raise UserError(f"{where}: eval.select and eval.patience need eval.every > 0")
    for metric in evaluation.metrics:
        METRICS.get(metric)
