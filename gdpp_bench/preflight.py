"""Everything a suite's runs need, checked before any of them trains or is evaluated.

A run reads its dataset's real data (the training split, and the splits its evaluations compare
with: the reference split, IvOM's test images) and its metrics measure with instruments: the
MNIST-family classifiers (trained from the real data on first use and cached) and, for the
fidelity metrics of every other image dataset, torch-fidelity's Inception-v3 weights. Any of them
missing used to surface at a run's first evaluation, after hours of training; here `run`, `tune`,
`evaluate` and `--dry-run` look for all of them first (downloading what can be downloaded, as the
runs would) and say in one line what is missing and how to get it, before anything trains.

Weights that are there but are not the published Inception-v3 file give one warning: what they
measure is not comparable to published FID (gdpp_bench.metrics.inception_weights).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from gdpp_bench.config import RunSpec
from gdpp_bench.data import DATASETS, classifier_of, dataset_for, kind_of
from gdpp_bench.errors import UserError
from gdpp_bench.evaluation import check_data, pending_metrics, real_splits_read
from gdpp_bench.metrics import METRICS, EvalOptions
from gdpp_bench.metrics import inception_weights as published
from gdpp_bench.metrics.features import DINOV2, is_default
from gdpp_bench.rundir import RunDir, UnreadableFile, find_run_dirs

JOINER = "; also: "  # between the missing things of one line


@dataclass(frozen=True)
class Needs:
    """What one run (or one evaluation) reads: its dataset's splits and its metrics' instruments."""

    dataset: tuple[str, str, int]  # dataset_for's arguments: name, data_path, image_size
    splits: frozenset[str]
    classifiers: frozenset[str]  # datasets whose project classifier the metrics use
    inception: bool  # the fidelity metrics on a dataset without a classifier
    features: frozenset[str] = frozenset()  # chosen extractors other than the default (DINOv2, CLIP)


def needs_of(
    spec: RunSpec, metrics: Iterable[str] | None = None, training: bool = True, features: str | None = None
) -> Needs:
    """What `spec` reads when trained and evaluated (`training`), or when only `metrics` (default:
    the suite's) are measured on its finished checkpoint (with the extractor `features`, default
    the suite's eval.features)."""
    metrics = list(spec.eval.metrics if metrics is None else metrics)
    chosen = features or spec.eval.features
    classifiers, inception, extractors = set(), False, set()
    for metric in metrics:
        meta = METRICS.meta(metric)
        if meta.get("classifier"):
            classifiers.add(meta["classifier"])
        if meta.get("extractor") and kind_of(spec.dataset) == "image":  # 2D: coordinates, no extractor
            if meta.get("features") and not is_default(chosen):
                extractors.add(chosen)
                continue
            measured_by = classifier_of(spec.dataset)
            if measured_by:
                classifiers.add(measured_by)
            else:
                inception = True
    splits = real_splits_read(spec, metrics) | ({"train"} if training else set())
    return Needs(
        (spec.dataset, spec.data_path, spec.image_size),
        frozenset(splits),
        frozenset(classifiers),
        inception,
        frozenset(extractors),
    )


@dataclass
class Preflight:
    """What the check found: one entry per missing thing (what, where it was looked for and how
    to get it) and warnings (non-standard Inception weights)."""

    missing: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def line(self) -> str:
        """Every missing thing in one line (the command's one error line)."""
        return JOINER.join(self.missing)

    def tell(self, warn: Callable[[str], None] | None) -> None:
        """Each warning to `warn` (nothing where it is None)."""
        if warn is not None:
            for line in self.warnings:
                warn(line)

    def add(self, message: str) -> None:
        if message not in self.missing:
            self.missing.append(message)


def check(
    needs: Iterable[Needs],
    data_root: str | None,
    inception: str | Path | None,
    feature_weights: str | Path | None = None,
) -> Preflight:
    """Look for everything `needs` name: each dataset's splits (downloaded where absent and
    possible), each classifier (cached, or its dataset's data to train it from), the
    Inception-v3 weights (`inception`, else torch's hub cache, else downloaded there) and those of
    a chosen extractor (`feature_weights`, else the same)."""
    found = Preflight()
    splits: dict[tuple[str, str, int], set[str]] = {}
    classifiers: set[str] = set()
    wants_inception = False
    extractors: set[str] = set()
    for need in needs:
        splits.setdefault(need.dataset, set()).update(need.splits)
        classifiers |= need.classifiers
        wants_inception |= need.inception
        extractors |= need.features
    lacking: set[str] = set()  # datasets whose data are missing (their classifier's too, then)
    for (name, data_path, image_size), wanted in splits.items():
        try:
            check_data(dataset_for(name, data_path, image_size), data_root, wanted)
        except UserError as exc:
            found.add(str(exc))
            lacking.add(name)
    for dataset in sorted(classifiers):
        message = _classifier_missing(dataset, data_root, lacking)
        if message:
            found.add(message)
    if wants_inception:
        _check_inception(inception, found)
    if feature_weights and len(extractors) > 1:
        found.add(
            f"--feature-weights names one file, but the runs measure with {', '.join(sorted(extractors))}; "
            "evaluate them one extractor at a time (evaluate --features)"
        )
    else:
        for features in sorted(extractors):
            _check_extractor(features, feature_weights, found)
    return found


def _check_extractor(features: str, path: str | Path | None, found: Preflight) -> None:
    """`features`' weights file (found or downloaded, readable as its network) and, for DINOv2,
    timm; a warning where the weights are not the named model's published ones."""
    from gdpp_bench.metrics import feature_weights as chosen

    if features in DINOV2 and importlib.util.find_spec("timm") is None:
        found.add(f"{features} features need timm, which is not installed: pip install timm")
        return
    try:
        weights = chosen.weights_file(features, path)
        _, details = chosen.describe(features, weights, published.weights_sha256(weights))
    except UserError as exc:
        found.add(str(exc))
        return
    warning = chosen.warning(features, weights, details)
    if warning:
        found.warnings.append(warning)


def _classifier_missing(dataset: str, data_root: str | None, lacking: set[str]) -> str:
    """What is missing where the classifier of `dataset` is neither cached nor trainable from its
    data ("" otherwise). Said once: not where its data were already found missing (same files)."""
    from gdpp_bench.metrics.instruments import DEFAULT_CONFIGS, classifier_path

    path = classifier_path(dataset, DEFAULT_CONFIGS[dataset])
    if path.is_file() or any(name == dataset or classifier_of(name) == dataset for name in lacking):
        return ""
    try:
        check_data(DATASETS.get(dataset), data_root, {"train", "test"})
    except UserError as exc:
        return (
            f"the {dataset} classifier the metrics measure with is not in the cache ({path}) and "
            f"cannot be trained: {exc}; with the data there, `gdpp-bench instruments train "
            f"--dataset {dataset}` trains it (the first run would too)"
        )
    return ""


def _check_inception(path: str | Path | None, found: Preflight) -> None:
    from gdpp_bench.metrics.fidelity import inception_weights

    try:
        weights = inception_weights(path)
    except UserError as exc:
        found.add(str(exc))
        return
    digest = published.weights_sha256(weights)
    if not published.is_published(digest):
        found.warnings.append(published.warning(weights, digest))


def check_runs(
    specs: Iterable[RunSpec], results: Path, data_root: str | None, options: EvalOptions | None
) -> tuple[Preflight, list[str]]:
    """The check for training `specs`: what their unfinished runs need (a finished run is skipped
    without its data); returns it and those runs' keys."""
    unfinished = [spec for spec in specs if not RunDir.for_spec(results, spec).is_done()]
    inception = options.inception_weights if options else None
    weights = options.feature_weights if options else None
    needs = [needs_of(spec, features=options.features if options else None) for spec in unfinished]
    return check(needs, data_root, inception, weights), [spec.key for spec in unfinished]


def check_evaluations(
    suite_dir: Path, data_root: str | None, options: EvalOptions, force: bool = False
) -> tuple[Preflight, int]:
    """The check for `evaluate`: what the metrics each finished run still lacks (all of them with
    `force`) need; returns it and how many runs have metrics to measure. A folder that cannot be
    read is left to the evaluation, which reports it."""
    needs = []
    for run_dir in find_run_dirs(suite_dir):
        try:
            pending = pending_metrics(run_dir, options, force)
        except (UserError, UnreadableFile, KeyError, TypeError, ValueError):
            continue
        if pending is not None and pending.missing:
            needs.append(needs_of(pending.spec, pending.missing, training=False, features=options.features))
    return check(needs, data_root, options.inception_weights, options.feature_weights), len(needs)


def runs_word(count: int) -> str:
    return f"{count} run{'s' * (count != 1)}"


__all__ = ["Needs", "Preflight", "check", "check_evaluations", "check_runs", "needs_of"]
