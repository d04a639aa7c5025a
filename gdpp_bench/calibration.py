"""The calibration ladder (`gdpp-bench calibrate`): does each metric move when collapse happens?

For every dataset whose modes the project knows, "generated" sets are built from held-out real data
with one controlled defect at growing levels, and every sample-based metric of the dataset's suites
is computed on each set, with the suites' sample counts and reference split. Each image is measured
(classifier features, logits, class) once; a set is an index subset of those measurements, so a set
costs the metric arithmetic only (images degraded by noise or blur are measured per set).
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import Tensor, nn

from gdpp_bench.data import DATASETS, kind_of
from gdpp_bench.data.images import Split
from gdpp_bench.errors import UserError
from gdpp_bench.metrics import HIGHER_IS_BETTER, METRICS, EvalContext, MeasuredSet
from gdpp_bench.metrics.feature_fidelity import PoolGrams, RealFeatures
from gdpp_bench.progress import say
from gdpp_bench.rundir import write_atomic

CALIBRATED = ("ring8", "grid25", "mnist", "fashion-mnist", "stacked-mnist")
DEFECTS = ("mode dropping", "mode imbalance", "within-mode collapse", "noise", "blur")
DRAWS = 5
# A verdict needs |rho| >= 0.8 over every draw at every level: a metric that tracks the defect
# monotonically ranks the levels right despite the draws' spread (rho near -1 or 1); 0.8 keeps out
# a metric that moves at one extreme level only or whose draws overlap across most levels.
SEES_RHO = 0.8
REDUCED_HELD_OUT = 6_000  # held-out MNIST-family images a reduced ladder measures
LADDER_SEED = 27_000  # held-out draws never share a stream with training or evaluation noise


@dataclass(frozen=True)
class Protocol:
    """What the suites measure a dataset with: the sample-based metrics and their counts."""

    metrics: tuple[str, ...]
    samples: int
    fidelity_samples: int
    real_samples: int
    reference_split: str

    def count(self, field: str) -> int:
        return int(getattr(self, field))


def suite_protocol(dataset: str) -> Protocol:
    """Every sample-based metric of the suites that train on `dataset` (those needing a generator
    left out), with the counts of the suite named after the dataset."""
    from gdpp_bench.suites import load_suite, suite_names

    metrics: list[str] = []
    counts = None
    for name in suite_names():
        suite = load_suite(name)
        if dataset not in suite.datasets:
            continue
        settings = dict(suite.per_dataset).get(dataset)
        config = settings.eval if settings is not None else suite.eval
        metrics += [m for m in config.metrics if m in METRICS and not METRICS.meta(m).get("needs_generator")]
        if name == dataset or counts is None:
            counts = config
    if counts is None:
        raise UserError(f"no suite trains on {dataset!r}; nothing to calibrate")
    metrics += [m for m in METRICS.names() if METRICS.meta(m).get("any_dataset")]
    return Protocol(
        tuple(dict.fromkeys(metrics)),
        counts.samples,
        counts.fidelity_samples,
        counts.real_samples,
        counts.reference_split,
    )


def default_levels(modes: int, per_mode: int, image: bool) -> dict[str, tuple[float, ...]]:
    """Each defect's levels, the first the undistorted set: modes kept, Zipf exponent, distinct
    samples per mode (0: unlimited), noise std (2D: in mixture stds; images: of the [0, 1] pixel
    range), blur std (pixels)."""
    kept = sorted({modes, *(max(1, round(modes * f)) for f in (0.5, 0.2, 0.1, 0.03)), 1}, reverse=True)
    distinct = sorted({max(1, round(per_mode * f)) for f in (0.3, 0.1, 0.03, 0.01)} | {1}, reverse=True)
    levels: dict[str, tuple[float, ...]] = {
        "mode dropping": tuple(float(k) for k in kept),
        "mode imbalance": (0.0, 0.5, 1.0, 2.0, 3.0),
        "within-mode collapse": (0.0, *(float(r) for r in distinct)),
        "noise": (0.0, 0.05, 0.1, 0.2, 0.4) if image else (0.0, 1.0, 2.0, 4.0, 8.0),
    }
    if image:
        levels["blur"] = (0.0, 0.5, 1.0, 1.5, 2.0)
    return levels


def reduced_levels(levels: dict[str, tuple[float, ...]]) -> dict[str, tuple[float, ...]]:
    """First, middle and last level of each defect (a quick ladder for tests)."""
    return {d: tuple(dict.fromkeys((v[0], v[len(v) // 2], v[-1]))) for d, v in levels.items()}


def mode_weights(defect: str, level: float, modes: int, rng: torch.Generator) -> Tensor:
    """Each mode's probability in a set: m random modes kept, or Zipf(level) over a random order."""
    order = torch.randperm(modes, generator=rng)
    weights = torch.ones(modes, dtype=torch.float64)
    if defect == "mode dropping":
        weights[order[int(level) :]] = 0
    elif defect == "mode imbalance":
        weights[order] = torch.arange(1, modes + 1, dtype=torch.float64).pow(-level)
    return weights / weights.sum()


def draw_members(
    weights: Tensor, members: list[Tensor], n: int, distinct: int, rng: torch.Generator
) -> Tensor:
    """`n` pool indices: each sample's mode from `weights`, then a member of that mode (`members[k]`:
    its pool indices) without replacement while the mode has enough, or from only `distinct` of
    them (within-mode collapse; 0: all)."""
    modes = torch.multinomial(weights.float(), n, replacement=True, generator=rng)
    chosen = torch.empty(n, dtype=torch.int64)
    for k in modes.unique().tolist():
        where = (modes == k).nonzero().squeeze(1)
        pool = members[k][torch.randperm(len(members[k]), generator=rng)]
        if distinct:
            pool = pool[:distinct]
        if len(where) <= len(pool) and not distinct:
            chosen[where] = pool[: len(where)]
        else:
            chosen[where] = pool[torch.randint(len(pool), (len(where),), generator=rng)]
    return chosen


def degrade(images: Tensor, defect: str, level: float, rng: torch.Generator) -> Tensor:
    """uint8 images with Gaussian noise (std `level` of the pixel range) or blur (std `level` px)."""
    if level == 0 or defect not in ("noise", "blur"):
        return images
    x = images.float()
    if defect == "noise":
        x = x + 255.0 * level * torch.randn(x.shape, generator=rng)
    else:
        from torchvision.transforms.functional import gaussian_blur

        size = 2 * math.ceil(3 * level) + 1
        x = gaussian_blur(x, [size, size], [level, level])
    return x.round().clamp(0, 255).to(torch.uint8)


@dataclass
class Measured:
    """Per-image measurements: classifier features, IS logits (log-softmax for stacking), class."""

    features: Tensor
    logits: Tensor
    log_probs: Tensor
    labels: Tensor


@torch.no_grad()
def measure_images(model: Any, images: Tensor, batch: int = 256) -> Measured:
    """The MNIST-family classifier on uint8 single-channel images [N, 1, 28, 28]."""
    from gdpp_bench.metrics.instruments import prepare_images

    features = torch.cat(
        [model.features(prepare_images(images[i : i + batch])) for i in range(0, len(images), batch)]
    )
    logits = model.out(features)
    return Measured(features, logits, logits.log_softmax(dim=1), logits.argmax(dim=1))


def _stacked_measurements(digits: Measured, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Features [N, 3072], 1000 joint log-probabilities and channel classes [N, 3] of stacks whose
    channels are the digits `index` [N, 3] (as the Stacked-MNIST feature extractor computes them)."""
    features = torch.cat([digits.features[index[:, c]] for c in range(3)], dim=1)
    first, second, third = (digits.log_probs[index[:, c]] for c in range(3))
    joint = (first[:, :, None, None] + second[:, None, :, None] + third[:, None, None, :]).flatten(1)
    return features, joint, digits.labels[index]


class Source:
    """Draws a dataset's defect sets: `draw` gives the MeasuredSet and a function making the raw
    samples (for a metric without `from_set`)."""

    modes: int
    pool: PoolGrams | None = None  # Gram blocks of the measured pool, once `attach`ed to a reference

    def draw(
        self, defect: str, level: float, n: int, rng: torch.Generator
    ) -> tuple[MeasuredSet, Callable[[], Tensor]]:
        raise NotImplementedError

    def attach(self, real: RealFeatures) -> None:
        """Compute the pool's Gram blocks against the fidelity reference (image datasets)."""


class MixtureSource(Source):
    """A 2D mixture: fresh points from its Gaussians (the held-out data is any new draw)."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.centers = dataset.centers_tensor()
        self.modes = len(self.centers)

    def draw(self, defect: str, level: float, n: int, rng: torch.Generator) -> tuple[MeasuredSet, Any]:
        weights = mode_weights(defect, level, self.modes, rng)
        distinct = int(level) if defect == "within-mode collapse" else 0
        if distinct:
            bases = self.centers.repeat_interleave(distinct, 0)
            bases = bases + self.dataset.std * torch.randn(bases.shape, generator=rng)
            members = [torch.arange(k * distinct, (k + 1) * distinct) for k in range(self.modes)]
            points = bases[draw_members(weights, members, n, distinct, rng)]
        else:
            modes = torch.multinomial(weights.float(), n, replacement=True, generator=rng)
            points = self.centers[modes] + self.dataset.std * torch.randn(n, 2, generator=rng)
        if defect == "noise":
            points = points + level * self.dataset.std * torch.randn(points.shape, generator=rng)
        return MeasuredSet(self.dataset, points=points), lambda: points


class DigitSource(Source):
    """MNIST or Fashion-MNIST: the training images outside the reference subset, as 10 class modes.

    They are held out from the reference and come from its distribution (the classifier saw both),
    so the undistorted set is what a perfect generator would give; ~5,000 per class, so a set of
    10,000 repeats images only where it keeps one class."""

    def __init__(
        self,
        dataset: Any,
        data_root: str | None,
        protocol: Protocol,
        model: nn.Module,
        held_out: int | None = None,
    ) -> None:
        from gdpp_bench.metrics.fidelity import SUBSET_SEED

        images, labels = dataset.load_split(data_root, protocol.reference_split)
        outside = torch.ones(len(images), dtype=torch.bool)
        if protocol.real_samples < len(images):  # the reference subset real_reference draws
            keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(SUBSET_SEED))
            outside[keep[: protocol.real_samples]] = False
        else:
            raise UserError(f"{dataset.name}: the reference is the whole split; nothing is held out")
        self.dataset, self.model = dataset, model
        self.images, self.labels = images[outside], labels[outside]
        if held_out is not None:  # a fixed random part of them (quick ladders)
            part = torch.randperm(len(self.images), generator=torch.Generator().manual_seed(SUBSET_SEED))
            self.images, self.labels = self.images[part[:held_out]], self.labels[part[:held_out]]
        self.modes = 10
        self.members = [(self.labels == k).nonzero().squeeze(1) for k in range(self.modes)]
        say(f"{dataset.name}: measuring {len(self.images)} held-out images (once)")
        self.measured = measure_images(model, self.images)

    def attach(self, real: RealFeatures) -> None:
        self.pool = PoolGrams(self.measured.features, [real.features])

    def draw(self, defect: str, level: float, n: int, rng: torch.Generator) -> tuple[MeasuredSet, Any]:
        weights = mode_weights(defect, level, self.modes, rng)
        distinct = int(level) if defect == "within-mode collapse" else 0
        index = draw_members(weights, self.members, n, distinct, rng)
        measured = self.measured
        images = self.images[index]
        grams = None if self.pool is None else self.pool.grams(index)
        if defect in ("noise", "blur") and level:  # new images: measured, their blocks multiplied
            images = degrade(images, defect, level, rng)
            measured, grams = measure_images(self.model, images), None
            index = torch.arange(n)
        found = MeasuredSet(
            self.dataset,
            labels=measured.labels[index][:, None],
            features=measured.features[index],
            logits=measured.logits[index],
            grams=grams,
        )
        return found, lambda: images.float().div(127.5).sub(1)


class StackedSource(Source):
    """Stacked-MNIST: stacks of MNIST's test digits, each channel drawn from the digits of its mode's
    class; 1,000 modes (digit triples). Noise and blur degrade the digits, which are measured again."""

    def __init__(self, dataset: Any, data_root: str | None, model: nn.Module) -> None:
        self.dataset, self.model = dataset, model
        self.digits, self.labels = dataset.source.load_split(data_root, "test")
        self.modes = 1000
        self.by_class = [(self.labels == k).nonzero().squeeze(1) for k in range(10)]
        say(f"{dataset.name}: measuring {len(self.digits)} MNIST test digits (once)")
        self.measured = measure_images(model, self.digits)
        self.real_parts: list[Tensor] = []
        self.blurred: dict[float, tuple[Tensor, Measured, PoolGrams | None]] = {}  # the last level's

    def attach(self, real: RealFeatures) -> None:
        self.real_parts = list(real.features.chunk(3, dim=1))
        self.pool = PoolGrams(self.measured.features, self.real_parts)

    def _degraded(
        self, defect: str, level: float, rng: torch.Generator
    ) -> tuple[Tensor, Measured, PoolGrams | None]:
        digits = degrade(self.digits, defect, level, rng)
        measured = measure_images(self.model, digits)
        return digits, measured, PoolGrams(measured.features, self.real_parts) if self.real_parts else None

    def draw(self, defect: str, level: float, n: int, rng: torch.Generator) -> tuple[MeasuredSet, Any]:
        weights = mode_weights(defect, level, self.modes, rng)
        distinct = int(level) if defect == "within-mode collapse" else 0
        if distinct:  # `distinct` stacks per mode, then the samples drawn from them
            triples = torch.arange(self.modes).repeat_interleave(distinct)
        else:
            triples = torch.multinomial(weights.float(), n, replacement=True, generator=rng)
        classes = torch.stack([triples // 100, triples // 10 % 10, triples % 10], dim=1)
        index = torch.empty_like(classes)
        for k in range(10):
            where = classes == k
            pool = self.by_class[k]
            index[where] = pool[torch.randint(len(pool), (int(where.sum()),), generator=rng)]
        if distinct:
            members = [torch.arange(k * distinct, (k + 1) * distinct) for k in range(self.modes)]
            index = index[draw_members(weights, members, n, distinct, rng)]
        measured, digits, pool = self.measured, self.digits, self.pool
        if defect == "blur" and level:  # deterministic: the blurred digits are measured once a level
            if level not in self.blurred:
                self.blurred = {level: self._degraded(defect, level, rng)}
            digits, measured, pool = self.blurred[level]
        elif defect == "noise" and level:  # every digit with its own noise, measured again
            digits, measured, pool = self._degraded(defect, level, rng)
        features, joint, labels = _stacked_measurements(measured, index)
        grams = None if pool is None else pool.grams(index)

        def images() -> Tensor:
            return digits[:, 0][index].float().div(127.5).sub(1)

        found = MeasuredSet(self.dataset, labels=labels, features=features, logits=joint, grams=grams)
        return found, images


class _NoGenerator(nn.Module):
    def forward(self, *args: Any) -> Tensor:
        raise UserError("a calibration set has no generator; this metric needs one")


def _values(
    name: str, found: MeasuredSet, raw: Callable[[], Tensor], protocol: Protocol, data_root: str | None
) -> dict[str, float]:
    """One metric's values on a set: its `from_set` on the prefix of its count, else the metric
    itself on an evaluation context whose samples are the set's (a plug-in's metric)."""
    meta = METRICS.meta(name)
    count = protocol.count(meta.get("count", "samples"))
    if "from_set" in meta:
        return meta["from_set"](found.prefix(count))
    samples = raw()
    ctx = EvalContext(
        _NoGenerator(),
        found.dataset,
        torch.device("cpu"),
        protocol.samples,
        0,
        data_root,
        protocol.fidelity_samples,
        protocol.real_samples,
        protocol.reference_split,  # type: ignore[arg-type]
    )
    for size in {protocol.samples, protocol.fidelity_samples}:
        ctx._samples[size] = samples[:size]
    return METRICS.get(name)(ctx)


def _source(
    dataset: str, protocol: Protocol, data_root: str | None, held_out: int | None = None
) -> tuple[Source, Any]:
    """The dataset's source of defect sets and its reference features (None for 2D)."""
    entry: Any = DATASETS.get(dataset)
    if kind_of(dataset) == "2d":
        return MixtureSource(entry), None
    from gdpp_bench.metrics.fidelity import real_reference
    from gdpp_bench.metrics.instruments import load_or_train_classifier

    model, _ = load_or_train_classifier(dataset, data_root)
    source: Source = (
        StackedSource(entry, data_root, model)
        if dataset == "stacked-mnist"
        else DigitSource(entry, data_root, protocol, model, held_out)
    )
    real = None
    if any(METRICS.meta(m).get("count") == "fidelity_samples" for m in protocol.metrics):
        split = cast(Split, protocol.reference_split)
        images = real_reference(entry, data_root, split, protocol.real_samples)
        say(f"{dataset}: measuring {len(images)} reference images (once)")
        per_channel = [measure_images(model, images[:, c : c + 1]).features for c in range(images.shape[1])]
        real = RealFeatures(torch.cat(per_channel, dim=1))
        source.attach(real)
    return source, real


def reduced_protocol(protocol: Protocol, size: int = 1000) -> Protocol:
    """The protocol with every count cut to `size` (a quick ladder for tests)."""
    return dataclasses.replace(
        protocol,
        samples=min(protocol.samples, size),
        fidelity_samples=min(protocol.fidelity_samples, size),
        real_samples=min(protocol.real_samples, size),
    )


class Partial:
    """A dataset's finished ladder steps, saved after each (OUT/partial/DATASET.csv, atomically) so
    that an interrupted ladder resumes where it stopped; kept only while its design (protocol,
    draws, levels) is the one asked for. A step's sets are seeded by (draw, defect, step) alone,
    so a resumed ladder gives the values of an uninterrupted one."""

    def __init__(self, folder: Path | None, dataset: str, design: dict[str, Any]) -> None:
        self.path = None if folder is None else folder / f"{dataset}.csv"
        self.design_path = None if folder is None else folder / f"{dataset}.json"
        self.design = json.loads(json.dumps(design))  # as it reads back from JSON
        self.rows: list[dict[str, Any]] = []
        if self.path is None or self.design_path is None or not self.path.is_file():
            return
        try:
            same = json.loads(self.design_path.read_text()) == self.design
            saved = pd.read_csv(self.path).to_dict("records") if same else []
        except (OSError, ValueError, pd.errors.ParserError):
            saved = []  # unreadable: the ladder starts again
        self.rows = saved
        if saved:
            say(f"{dataset}: resuming after {len(self.done())} finished steps ({self.path})")

    def done(self) -> set[tuple[str, int]]:
        return {(row["defect"], int(row["step"])) for row in self.rows}

    def step(self, defect: str, step: int) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["defect"] == defect and int(r["step"]) == step]

    def save(self, rows: list[dict[str, Any]]) -> None:
        if self.path is None or self.design_path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.design_path.write_text(json.dumps(self.design) + "\n")
        write_atomic(self.path, lambda tmp: pd.DataFrame(rows).to_csv(tmp, index=False))


def ladder_values(
    dataset: str,
    data_root: str | None,
    draws: int = DRAWS,
    reduced: bool = False,
    partial: Path | None = None,
) -> tuple[pd.DataFrame, Protocol]:
    """Long table (dataset, defect, step, level, draw, entry, metric, value) of one dataset's ladder
    and the protocol it ran under; `reduced`: 1,000 samples and three levels per defect (tests).
    The undistorted set of a draw is drawn once and shared by every defect's first step.
    `partial`: the folder of finished steps (Partial) to resume from and save to."""
    protocol = suite_protocol(dataset)
    if reduced:
        protocol = reduced_protocol(protocol)
    source, real = _source(dataset, protocol, data_root, REDUCED_HELD_OUT if reduced else None)
    n = max(protocol.samples, protocol.fidelity_samples if real is not None else 0)
    levels = default_levels(source.modes, max(1, n // source.modes), kind_of(dataset) == "image")
    if reduced:
        levels = reduced_levels(levels)
    saved = Partial(
        partial, dataset, {"protocol": dataclasses.asdict(protocol), "draws": draws, "levels": levels}
    )
    rows: list[dict[str, Any]] = []
    clean: dict[int, list[dict[str, Any]]] = {}  # the undistorted sets' values, by draw
    finished = saved.done()
    first = next(((d, 0) for d in levels if (d, 0) in finished), None)
    for row in saved.step(*first) if first else []:
        clean.setdefault(int(row["draw"]), []).append(row)
    for defect, ladder in levels.items():
        for step, level in enumerate(ladder):
            if (defect, step) in finished:
                rows += saved.step(defect, step)
                continue
            for draw in range(draws):
                if step == 0 and draw in clean:
                    rows += [{**row, "defect": defect, "level": level} for row in clean[draw]]
                    continue
                seed = LADDER_SEED + 1_000 * draw + (0 if step == 0 else 100 * DEFECTS.index(defect) + step)
                rng = torch.Generator().manual_seed(seed)
                found, raw = source.draw(defect if step else "none", level, n, rng)
                found = dataclasses.replace(found, real=real)
                here = []
                for entry in protocol.metrics:
                    for metric, value in _values(entry, found, raw, protocol, data_root).items():
                        if metric in HIGHER_IS_BETTER:
                            here.append(
                                dict(
                                    dataset=dataset,
                                    defect=defect,
                                    step=step,
                                    level=level,
                                    draw=draw,
                                    entry=entry,
                                    metric=metric,
                                    value=value,
                                )
                            )
                if step == 0:
                    clean[draw] = here
                rows += here
            saved.save(rows)
            say(f"{dataset}: {defect} level {level:g} done")
    return pd.DataFrame(rows), protocol


def verdict(rho: float, higher_is_better: bool) -> str:
    """'sees it' when the metric worsens with the defect with |rho| >= SEES_RHO, 'moves the wrong
    way' when it improves as strongly, else 'blind' (a constant metric included)."""
    if math.isnan(rho):
        return "blind"
    worse = -rho if higher_is_better else rho
    return "sees it" if worse >= SEES_RHO else "moves the wrong way" if worse <= -SEES_RHO else "blind"


def verdicts(values: pd.DataFrame) -> pd.DataFrame:
    """(dataset, defect, metric, rho, verdict, entry, higher_is_better): Spearman's rho of every
    draw's value against the defect's step (0 = undistorted), per metric value."""
    rows = []
    for (dataset, defect, entry, metric), group in values.groupby(
        ["dataset", "defect", "entry", "metric"], sort=False
    ):
        y = group["value"].to_numpy(dtype=float)
        rho = math.nan if np.nanstd(y) == 0 else float(stats.spearmanr(group["step"], y).statistic)
        better = HIGHER_IS_BETTER[metric]
        rows.append(
            dict(
                dataset=dataset,
                defect=defect,
                metric=metric,
                rho=rho,
                verdict=verdict(rho, better),
                entry=entry,
                higher_is_better=better,
            )
        )
    return pd.DataFrame(rows)


def level_summary(values: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation over draws at each level."""
    keys = ["dataset", "defect", "step", "level", "entry", "metric"]
    summary = values.groupby(keys, sort=False)["value"].agg(["mean", "std", "count"]).reset_index()
    return summary.rename(columns={"count": "draws"})


def sees_table(table: pd.DataFrame) -> dict[str, dict[str, tuple[str, ...]]]:
    """entry -> value -> defects it sees on every dataset it was calibrated on (DEFECTS order)."""
    found: dict[str, dict[str, tuple[str, ...]]] = {}
    for (entry, metric), group in table.groupby(["entry", "metric"], sort=False):
        seen = group.groupby("defect")["verdict"].agg(lambda v: bool((v == "sees it").all()))
        found.setdefault(entry, {})[metric] = tuple(d for d in DEFECTS if seen.get(d, False))
    return found


def figure(summary: pd.DataFrame, dataset: str, path: Path) -> None:
    """One panel per metric value (rows) and defect (columns): mean +- sd over draws by level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = summary[summary["dataset"] == dataset]
    metrics = list(dict.fromkeys(data["metric"]))
    defects = [d for d in DEFECTS if d in set(data["defect"])]
    fig, axes = plt.subplots(
        len(metrics), len(defects), figsize=(3.0 * len(defects), 2.1 * len(metrics)), squeeze=False
    )
    for i, metric in enumerate(metrics):
        for j, defect in enumerate(defects):
            part = data[(data["metric"] == metric) & (data["defect"] == defect)].sort_values("step")
            ax = axes[i][j]
            ax.errorbar(part["step"], part["mean"], yerr=part["std"].fillna(0), marker="o", ms=3, capsize=2)
            ax.set_xticks(part["step"], [f"{v:g}" for v in part["level"]], fontsize=7)
            if i == 0:
                ax.set_title(defect, fontsize=9)
            if j == 0:
                ax.set_ylabel(metric, fontsize=9)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{dataset}: metric (mean ± sd over draws) against defect level", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))  # room for the title
    fig.savefig(path, dpi=90)
    plt.close(fig)


LEVEL_MEANING = {
    "mode dropping": "modes kept (m of K)",
    "mode imbalance": "Zipf exponent of the mode frequencies (random order of modes)",
    "within-mode collapse": "distinct samples per mode (0: unlimited)",
    "noise": "Gaussian noise std (2D: in the mixture's std; images: fraction of the pixel range)",
    "blur": "Gaussian blur std in pixels",
}


def protocol_text(runs: dict[str, dict[str, Any]]) -> str:
    """protocol.md from each dataset's record (OUT/runs/DATASET.json)."""
    lines = [
        "# Calibration ladder protocol (`gdpp-bench calibrate`)",
        "",
        "Generated sets are built from held-out real data with one controlled defect at growing levels;",
        "every sample-based metric of the dataset's suites, and every metric registered for any dataset",
        "(the Vendi score), is computed on each (IvOM needs a generator and is left out), with the",
        "sample counts and reference split of the suite named after the dataset.",
        "",
        "- ring8, grid25: fresh draws from the mixture (seeds from 27000, apart from training's).",
        "- MNIST, Fashion-MNIST: the training images outside the 10,000-image reference subset",
        "  (50,000, ~5,000 per class; the reference's distribution, seen by the classifier as the",
        "  reference was), modes = the 10 classes; a set repeats images only where one class must",
        "  fill it (one class kept of 10,000 samples).",
        "- Stacked-MNIST: stacks of MNIST's test digits, each channel drawn from its mode's class;",
        "  modes = the 1,000 digit triples; noise and blur degrade the digits.",
        "- Each image is measured once by the dataset's classifier (features, logits, class); a set",
        "  is an index subset of those measurements (the metrics' registered `from_set`). Fidelity",
        "  values come from gdpp_bench.metrics.feature_fidelity: the evaluation path's definitions",
        "  (tested equal); the Gram blocks of the held-out pool against the reference are computed",
        "  once and a set's are gathered from them. Noisy or blurred images are measured per set.",
        "- The undistorted set of each draw is shared by every defect's first level.",
        "- Verdict: Spearman's rho (scipy.stats.spearmanr) of every draw's value against the level's",
        f"  step; 'sees it' when the metric worsens (its declared better direction), |rho| >= {SEES_RHO};",
        "  'moves the wrong way' when it improves as strongly, else 'blind' (constant values included).",
        "- A metric's registered `sees` (shown by `gdpp-bench list`) holds the defects it sees on every",
        "  dataset it was calibrated on.",
        "",
        "Levels (the first of each defect: no defect):",
    ]
    lines += [f"- {d}: {LEVEL_MEANING[d]}" for d in DEFECTS]
    lines += [
        "",
        "| dataset | metrics | samples | fidelity samples | real samples | reference | draws | CPU s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, run in runs.items():
        p = run["protocol"]
        lines.append(
            f"| {name} | {', '.join(p['metrics'])} | {p['samples']} | {p['fidelity_samples']} "
            f"| {p['real_samples']} | {p['reference_split']} | {run['draws']} | {run['cpu_seconds']:.1f} |"
        )
    lines += ["", "Levels per dataset:"]
    for name, run in runs.items():
        ladder = "; ".join(f"{d}: {', '.join(f'{v:g}' for v in vs)}" for d, vs in run["levels"].items())
        lines.append(f"- {name}: {ladder}")
    return "\n".join(lines) + "\n"


def write_outputs(out: Path) -> pd.DataFrame:
    """calibration.csv, levels.csv, the figures and protocol.md from OUT/values.csv and OUT/runs/."""
    everything = pd.read_csv(out / "values.csv")
    summary = level_summary(everything)
    table = verdicts(everything)
    summary.to_csv(out / "levels.csv", index=False)
    table.to_csv(out / "calibration.csv", index=False)
    for dataset in dict.fromkeys(everything["dataset"]):
        figure(summary, dataset, out / f"{dataset}.png")
    runs = {p.stem: json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))}
    runs = {name: runs[name] for name in CALIBRATED if name in runs}
    (out / "protocol.md").write_text(protocol_text(runs))
    return table


def calibrate(
    datasets: Sequence[str] = CALIBRATED,
    out: str | Path = "results/calibration",
    data_root: str | None = None,
    draws: int = DRAWS,
    reduced: bool = False,
) -> pd.DataFrame:
    """Run the ladder on `datasets` and write OUT/calibration.csv (the verdicts), levels.csv (mean
    and sd per level), values.csv (every draw), DATASET.png, runs/DATASET.json and protocol.md;
    returns the verdicts. Each dataset's rows replace its earlier ones and keep other datasets'
    (ladders of several datasets may run in parallel processes into one OUT), so an interrupted
    ladder keeps what it finished."""
    unknown = [d for d in datasets if d not in CALIBRATED]
    if unknown:
        raise UserError(
            f"cannot calibrate {', '.join(unknown)}; datasets with known modes: {', '.join(CALIBRATED)}"
        )
    if draws < 2:
        raise UserError(f"--draws must be >= 2 (a spread needs two draws), got {draws}")
    out = Path(out)
    (out / "runs").mkdir(parents=True, exist_ok=True)
    table = pd.DataFrame()
    for dataset in datasets:
        started = time.process_time()
        values, protocol = ladder_values(dataset, data_root, draws, reduced, out / "partial")
        levels = {
            d: list(g.drop_duplicates("step")["level"]) for d, g in values.groupby("defect", sort=False)
        }
        record = {
            "protocol": dataclasses.asdict(protocol),
            "draws": draws,
            "reduced": reduced,
            "levels": levels,
            "cpu_seconds": time.process_time() - started,
        }
        with (out / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            path = out / "values.csv"
            if path.is_file():
                earlier = pd.read_csv(path)
                values = pd.concat([earlier[earlier["dataset"] != dataset], values], ignore_index=True)
            order = {name: i for i, name in enumerate(CALIBRATED)}
            values = values.sort_values("dataset", key=lambda c: c.map(order), kind="stable")
            values.to_csv(path, index=False)
            (out / "runs" / f"{dataset}.json").write_text(json.dumps(record, indent=1) + "\n")
            table = write_outputs(out)
        for suffix in (".csv", ".json"):  # the finished steps are in values.csv now
            (out / "partial" / f"{dataset}{suffix}").unlink(missing_ok=True)
    return table


__all__ = [
    "CALIBRATED",
    "DEFECTS",
    "SEES_RHO",
    "Protocol",
    "calibrate",
    "ladder_values",
    "sees_table",
    "suite_protocol",
    "verdict",
    "verdicts",
]
