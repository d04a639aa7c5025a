"""Suite TOML files -> frozen dataclasses -> one RunSpec per dataset x variant x seed."""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdpp_bench.data import DATASETS
from gdpp_bench.errors import UserError
from gdpp_bench.losses import ADVERSARIAL, parse_variant
from gdpp_bench.metrics import METRICS
from gdpp_bench.models import MODELS
from gdpp_bench.models.modifiers import check_batch_size, discriminator_options
from gdpp_bench.rundir import check_plain_name

SUITES_DIR = Path(
    os.environ.get("GDPP_BENCH_SUITES", Path(__file__).resolve().parents[1] / "benchmarks" / "suites")
)
UPDATE_SCHEMES = ("alternating", "simultaneous")
PRECISIONS = ("fp32", "bf16")
SELECT_MODES = ("max", "min")
LATENTS = ("normal", "mixture")
TERM_REAL_FEATURES = ("pre-update", "post-update")
SAMPLE_BN_MODES = ("running", "batch")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults are the GDPP paper's synthetic 2D recipe."""

    steps: int = 25_000
    batch_size: int = 512
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    d_steps: int = 0  # D updates per G update; 0 = the adversarial loss's default (wgan-gp 5, else 1)
    update: str = "alternating"  # or "simultaneous": G and D gradients from the same forward pass
    log_every: int = 100
    checkpoint_every: int = 1_000
    precision: str = "fp32"  # or "bf16": autocast of forward passes (GDPP itself stays float32)
    compile: bool = False  # torch.compile the generator and discriminator
    d_real_target: float = 1.0  # D's label for real samples (0.9 = the official one-sided smoothing)
    d_fake_target: float = 0.0  # D's label for fake samples (bce only; hinge/wgan-gp have no labels)
    g_target: float = 1.0  # the label G's bce loss gives its samples (0.9: official Stacked-MNIST/CIFAR)
    # G's training latent: "normal" N(0, I); "mixture": the official Stacked-MNIST script's fixed,
    # untrained U(-1, 1) centre per batch position plus 0.2 N(0, I) (sampling always uses N(0, I))
    latent: str = "normal"
    # alternating updates: the real features a diversity term compares with come from D's forward
    # pass of its own step ("pre-update", no extra cost) or from the updated D ("post-update": one
    # more D forward on the real batch, as the official scripts' single D call per step)
    term_real_features: str = "pre-update"
    cuda_graph: bool = True  # on CUDA, replay each step from one CUDA graph where the variant allows

    def resolved_d_steps(self, adversarial: str) -> int:
        return self.d_steps or ADVERSARIAL.get(adversarial).d_steps


@dataclass(frozen=True)
class EvalConfig:
    """Evaluation: `every` N steps during training (0 = only at the end) and after training."""

    every: int = 0
    metrics: tuple[str, ...] = ("modes2d",)
    samples: int = 2_500
    select: str = ""  # metric value that picks best.pt at periodic evaluations ("" = keep none)
    select_mode: str = "max"  # or "min"
    patience: int = 0  # stop after this many evaluations without a better `select` (0 = never)
    grid_samples: int = 64  # images in each fixed-noise sample grid
    # BatchNorm when sampling for metrics: "running" statistics (eval mode) or "batch" statistics of
    # chunks of train.batch_size samples (the official GDPP code); recorded in each metric's protocol
    sample_bn: str = "running"
    fidelity_samples: int = 10_000  # generated samples for FID/IS/KID/PR (metric "fidelity")
    real_samples: int = 10_000  # real reference samples for them (the whole split if fewer)
    reference_split: str = "train"  # or "test"
    ivom_images: int = 1_000  # real test images for IvOM (metric "ivom"; the paper: 2,000)


EVAL_SAMPLE_COUNTS = ("samples", "fidelity_samples", "real_samples", "ivom_images")


@dataclass(frozen=True)
class DatasetSettings:
    """What one dataset of a suite trains with: the suite's settings, or its [per_dataset.NAME]."""

    model: str = ""  # "" = the dataset's default model
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)


@dataclass(frozen=True)
class Suite:
    name: str
    datasets: tuple[str, ...]
    variants: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    model: str = ""  # "" = each dataset's default model
    description: str = ""
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    # (dataset, settings) for datasets whose [per_dataset.NAME] table replaces some of the above
    per_dataset: tuple[tuple[str, DatasetSettings], ...] = ()
    # (variant, seeds) for variants whose [variant_seeds] entry replaces `seeds` (a costlier
    # variant run at fewer seeds in a study)
    variant_seeds: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def seeds_of(self, variant: str) -> tuple[int, ...]:
        return dict(self.variant_seeds).get(variant, self.seeds)

    def settings(self, dataset: str) -> DatasetSettings:
        for name, settings in self.per_dataset:
            if name == dataset:
                return settings
        return DatasetSettings(self.model, self.train, self.eval)


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs; `key` is its folder under RESULTS/SUITE/."""

    suite: str
    dataset: str
    model: str
    variant: str
    seed: int
    train: TrainConfig
    eval: EvalConfig
    key: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Read back `to_dict()` (e.g. from config.json); fields added since take their defaults,
        so runs started by an older version still resume. Unknown fields raise TypeError."""
        fields = dict(data)
        train = TrainConfig(**fields.pop("train"))
        raw_eval = dict(fields.pop("eval"))
        raw_eval["metrics"] = tuple(raw_eval.get("metrics", EvalConfig.metrics))
        return cls(**fields, train=train, eval=EvalConfig(**raw_eval))


def suite_names() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def suite_description(name: str) -> str:
    """The `description` of a suite, for listings (not validated: `load_suite` does that)."""
    try:
        description = tomllib.loads((SUITES_DIR / f"{name}.toml").read_text()).get("description", "")
    except (OSError, tomllib.TOMLDecodeError):
        return "(unreadable suite file)"
    return str(description)


def load_suite(name_or_path: str) -> Suite:
    """Load a suite by name (benchmarks/suites/NAME.toml) or by path to a TOML file."""
    path = Path(name_or_path)
    if path.suffix != ".toml":
        path = SUITES_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UserError(
                f"unknown suite {name_or_path!r}; known: {', '.join(suite_names())} "
                "(or pass a path to a .toml file)"
            )
    try:
        table = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UserError(f"cannot read suite file {path}: {exc}") from None
    return parse_suite(table, where=str(path))


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
) -> list[RunSpec]:
    """One RunSpec per dataset x variant x seed; CLI overrides replace the suite's values.

    `eval_samples` caps every evaluation sample count (generated, real, IvOM images) for quick looks;
    `datasets` keeps only those of the suite's datasets (run folders stay where the whole suite
    puts them).
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
    specs = []
    for dataset in suite.datasets:
        if datasets and dataset not in datasets:
            continue
        settings = suite.settings(dataset)
        replaced: dict[str, Any] = {key: value for key, value in overrides.items() if value is not None}
        train = dataclasses.replace(settings.train, **replaced)
        evaluation = settings.eval
        if eval_samples is not None:
            evaluation = dataclasses.replace(
                evaluation, **{key: min(getattr(evaluation, key), eval_samples) for key in EVAL_SAMPLE_COUNTS}
            )
        specs += [
            RunSpec(
                suite=suite.name,
                dataset=dataset,
                model=settings.model or DATASETS.get(dataset).default_model,
                variant=variant,
                seed=seed,
                train=train,
                eval=evaluation,
                key=f"{dataset}/{variant}/seed-{seed}" if several else f"{variant}/seed-{seed}",
            )
            for variant in names
            for seed in (seeds if seeds is not None else suite.seeds_of(variant))
        ]
    for spec in specs:
        check_batch_size(
            discriminator_options(parse_variant(spec.variant).discriminator), spec.train.batch_size
        )
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
        DATASETS.get(dataset)
    for dataset, settings in suite.per_dataset:
        _validate_settings(settings, f"{where} [per_dataset.{dataset}]")


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
    if train.d_steps < 0 or evaluation.every < 0 or evaluation.patience < 0:
        raise UserError(f"{where}: train.d_steps, eval.every and eval.patience must be >= 0")
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
