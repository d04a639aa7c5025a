"""The run contract: frozen configs of training, evaluation, suites and one run (RunSpec), and the
choices their fields take. Loaded from suite TOML files by `suites`; stored in config.json."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gdpp_bench.errors import UserError

if TYPE_CHECKING:
    from gdpp_bench.losses.variants import Variant

# the choices of the command line and of suite fields, read by the CLI without importing torch
DEVICES = ("auto", "cpu", "cuda", "mps")
EXECUTORS = ("local", "slurm")
PROTOCOLS = ("quick", "paper")  # evaluation: the suite's sample counts, or the papers' 50,000
CLASSIFIER_DATASETS = ("mnist", "fashion-mnist")  # datasets with a project-trained classifier
UPDATE_SCHEMES = ("alternating", "simultaneous", "g-first")
PRECISIONS = ("fp32", "bf16")
SELECT_MODES = ("max", "min")
LATENTS = ("normal", "mixture")
TERM_REAL_FEATURES = ("pre-update", "post-update")
SAMPLE_BN_MODES = ("running", "batch")
RUN_ROLES = ("", "trial", "confirm")  # an ordinary run; a tuning trial's run; a confirmation run
SAMPLERS = ("random", "tpe")  # `tune`: Optuna's RandomSampler (Lucic et al.'s protocol) or TPESampler
AGGREGATES = ("mean", "median")  # a trial's objective over its tuning seeds
DISTRIBUTION_KINDS = ("log_uniform", "uniform", "int_uniform", "choice")
SEED_LIMIT = 2**32  # seeds are integers in [0, 2**32): what every generator a run seeds accepts
# the fidelity metrics' feature extractor (eval.features, evaluate --features): the default is each
# dataset's standard one (Inception-v3; the MNIST family's project classifier), the others are
# torch-fidelity 0.4's DINOv2 and CLIP models (gdpp_bench.metrics.features)
INCEPTION = "inception-v3-compat"  # torch-fidelity's name of the standard extractor
DINOV2_FEATURES = ("dinov2-vit-s-14", "dinov2-vit-b-14", "dinov2-vit-l-14", "dinov2-vit-g-14")
CLIP_FEATURES = (
    "clip-rn50",
    "clip-rn101",
    "clip-rn50x4",
    "clip-rn50x16",
    "clip-rn50x64",
    "clip-vit-b-32",
    "clip-vit-b-16",
    "clip-vit-l-14",
    "clip-vit-l-14-336px",
)
FEATURE_EXTRACTORS = (INCEPTION, *DINOV2_FEATURES, *CLIP_FEATURES)


def check_seeds(seeds: tuple[int, ...] | list[int], where: str) -> None:
    """A UserError naming the seeds outside [0, 2**32) (a negative one would make a folder
    seed--1, a huge one overflow a generator)."""
    bad = [seed for seed in seeds if not 0 <= seed < SEED_LIMIT]
    if bad:
        raise UserError(f"{where}: a seed must be an integer in [0, 2**32); got {', '.join(map(str, bad))}")


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings. Defaults are the GDPP paper's synthetic 2D recipe."""

    steps: int = 25_000
    # > 0: train this many passes over the training images instead of `steps` (the step count,
    # ceil(epochs * images / batch_size), is computed from the data when the runs are made)
    epochs: int = 0
    batch_size: int = 512
    lr_g: float = 1e-3
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.999
    eps: float = 1e-8
    d_steps: int = 0  # D updates per G update; 0 = the adversarial loss's default (wgan-gp 5, else 1)
    # or "simultaneous": G and D gradients from the same forward pass; "g-first": the G step, then
    # the D step(s) on the same real batch with fresh fakes (the official CIFAR-10 script)
    update: str = "alternating"
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
        from gdpp_bench.losses import ADVERSARIAL  # the loss's own default; losses sit above config

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
    # the fidelity metric's feature extractor (FEATURE_EXTRACTORS): INCEPTION is each dataset's
    # standard one; another names its values (fd_dinov2, not fid) and its real statistics
    features: str = INCEPTION
    # also write TensorBoard events into RUN/tensorboard/ (log.csv scalars, periodic metrics,
    # sample pictures); logging only: changing it never retrains or re-evaluates
    tensorboard: bool = False


EVAL_SAMPLE_COUNTS = ("samples", "fidelity_samples", "real_samples", "ivom_images")


@dataclass(frozen=True)
class DecisionConfig:
    """[decision]: what the decision rule may conclude from a suite (recorded in every run)."""

    descriptive: bool = False  # not powered for a verdict: runs without the power check's refusal
    primary: tuple[str, ...] = ()  # metric values in the Holm family (empty: every compared value)
    # not a suite field: set by `run`/`tune --allow-underpowered` on a design that cannot reach alpha
    underpowered: bool = False


@dataclass(frozen=True)
class Distribution:
    """One searched field of [search]: `kind` (DISTRIBUTION_KINDS) over `values`, the (low, high)
    bounds of a range or the allowed values of a choice."""

    kind: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Objective:
    """What selects a variant's configuration among its trials: `metric` (a value name; its
    declared direction says minimise or maximise), aggregated over the tuning seeds, subject to
    `constraints` such as "hq_percent >= 10" (on the aggregated values)."""

    metric: str
    aggregate: str = "mean"
    constraints: tuple[str, ...] = ()


@dataclass(frozen=True)
class Budget:
    """[budget]: `trials` per variant (the same for every variant), each trained at every one of
    `tuning_seeds`; the selected configuration of each variant is trained at `confirm_seeds`."""

    trials: int
    tuning_seeds: tuple[int, ...]
    confirm_seeds: tuple[int, ...]
    objective: Objective
    sampler: str = "random"
    sampler_seed: int = 0


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
    # dataset "folder": the images' folder (absolute, or relative to the data root) and the
    # side (32 or 64) they are cropped and resized to
    data_path: str = ""
    image_size: int = 0
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    # [search]: (field, distribution) for every variant, and (variant, its overrides) of
    # [search.VARIANT]; `weight` is the weight of the variant's diversity term
    search: tuple[tuple[str, Distribution], ...] = ()
    search_per_variant: tuple[tuple[str, tuple[tuple[str, Distribution], ...]], ...] = ()
    budget: Budget | None = None

    def search_of(self, variant: str) -> dict[str, Distribution]:
        """The searched fields of `variant`: [search], then its [search.VARIANT] replacing some."""
        return {**dict(self.search), **dict(dict(self.search_per_variant).get(variant, ()))}

    def seeds_of(self, variant: str) -> tuple[int, ...]:
        return dict(self.variant_seeds).get(variant, self.seeds)

    def settings(self, dataset: str) -> DatasetSettings:
        for name, settings in self.per_dataset:
            if name == dataset:
                return settings
        return DatasetSettings(self.model, self.train, self.eval)


@dataclass(frozen=True)
class RunSpec:
    """Everything one training run needs; `key` is its folder under RESULTS/SUITE/.

    `variant` is parsed once, when the spec is made (a variant name is accepted and parsed);
    `to_dict` writes its canonical name, which is what config.json holds."""

    suite: str
    dataset: str
    model: str
    variant: Variant
    seed: int
    train: TrainConfig
    eval: EvalConfig
    key: str
    # dataset "folder": the suite's data_path (as written: a run may move to another data root)
    # and image_size; training fields
    data_path: str = ""
    image_size: int = 0
    # the device type it trains on, resolved once for the suite ("auto" never reaches a run);
    # not a training field: a run may resume on another device
    device: str = "cpu"
    # `tune`: the variant as the suite names it when its term weight was drawn ("bce+gdpp" for
    # bce+gdpp@3.7; "" = the variant's own name), the run's role (RUN_ROLES), its trial number
    # (-1: none; a confirmation run records the trial it confirms), the objective and the budget
    label: str = ""
    role: str = ""
    trial: int = -1
    objective: Objective | None = None
    trials: int = 0
    decision: DecisionConfig = field(default_factory=DecisionConfig)

    def __post_init__(self) -> None:
        if isinstance(self.variant, str):
            from gdpp_bench.losses import parse_variant  # the losses own the variant grammar

            object.__setattr__(self, "variant", parse_variant(self.variant))

    @property
    def name(self) -> str:
        """The variant's name in reports: the suite's (searched weights kept out of it)."""
        return self.label or str(self.variant)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["variant"] = str(self.variant)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        """Read back `to_dict()` (e.g. from config.json); fields added since take their defaults,
        so runs started by an older version still resume. Unknown fields raise TypeError."""
        fields = dict(data)
        train = TrainConfig(**fields.pop("train"))
        raw_eval = dict(fields.pop("eval"))
        raw_eval["metrics"] = tuple(raw_eval.get("metrics", EvalConfig.metrics))
        decision = dict(fields.pop("decision", {}))
        decision["primary"] = tuple(decision.get("primary", ()))
        objective = fields.pop("objective", None)
        if objective is not None:
            objective = Objective(**{**objective, "constraints": tuple(objective.get("constraints", ()))})
        return cls(
            **fields,
            train=train,
            eval=EvalConfig(**raw_eval),
            decision=DecisionConfig(**decision),
            objective=objective,
        )
