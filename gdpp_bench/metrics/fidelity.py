"""FID, IS, KID and precision/recall through torch-fidelity, and density/coverage on the same features.

Generated samples and the real reference set both go through torch-fidelity's extractor and feature
extraction as datasets of uint8 3 x H x W images (grayscale replicated), one pass a set for every layer
the values need. The real set's features and FID statistics are cached by torch-fidelity under
`$GDPP_BENCH_CACHE/fidelity/`, named by dataset, split, resolution, subset size and seed, and the
extractor's weights (sha256), so a second evaluation against the same reference only extracts the
generated samples. IS is torch-fidelity's function on the generated logits; FID is its formula on its
statistics, with the trace of the matrix square root taken from a symmetric eigenproblem and the real
covariance's square root cached (`frechet_distance`). Precision/recall use torch-fidelity's
own distance and k-th neighbour functions (`metric_prc`), the same numbers as its `prc=True`, but
with the real set's k-NN radii
cached beside its statistics (torch-fidelity recomputes that N x N pass on every call) and the
features on the evaluation device; density/coverage's real radii are cached the same way.

Extractors: torch-fidelity's `inception-v3-compat` (the standard; its weights come from
`--inception-weights PATH` or torch's hub cache, which torch-fidelity fills by downloading) for colour
datasets, and the project's classifiers for the MNIST family (offline; trained on first use).
Either is identified in the protocol by its weights' sha256; Inception weights other than the
published file are marked not comparable to published FID (gdpp_bench.metrics.inception_weights).
`eval.features` (`evaluate --features`) chooses DINOv2 or CLIP instead, for every image dataset:
their values carry the extractor's short name (`fd_dinov2`, `kid_dinov2`; no IS), their real
statistics are cached under a name that holds it (gdpp_bench.metrics.features, feature_weights).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

import gdpp_bench.metrics.torch_fidelity_api as tf
from gdpp_bench.data import classifier_of
from gdpp_bench.data.images import ImageDataset, Split
from gdpp_bench.errors import UserError
from gdpp_bench.metrics.feature_weights import describe, download_weights, weights_file
from gdpp_bench.metrics.features import DEFAULT_FEATURES, is_default, value_key
from gdpp_bench.metrics.fidelity_extractor import extractor_name
from gdpp_bench.metrics.inception_weights import (
    INCEPTION,
    NON_STANDARD_INCEPTION,
    is_published,
    weights_sha256,
)
from gdpp_bench.metrics.instruments import load_or_train_classifier
from gdpp_bench.metrics.prdc import density_coverage, knn_radii
from gdpp_bench.progress import say
from gdpp_bench.rundir import write_atomic
from gdpp_bench.user_paths import cache_root

INCEPTION_FILE = tf.URL_INCEPTION_V3.rsplit("/", 1)[-1]
PRC_NEIGHBOURS = 3  # Kynkaanniemi et al. 2019
PRC_BATCH = tf.DEFAULTS["prc_batch_size"]  # rows per distance block, as torch-fidelity
DC_NEIGHBOURS = 5  # Naeem et al. 2020
KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
KID_FULL_KERNEL_ENTRIES = 150_000_000  # the largest whole kernel matrices computed at once (600 MB)
IS_SPLITS = 10
SUBSET_SEED = 0  # which real images form the reference subset when it is smaller than the split


class UInt8Images(torch.utils.data.Dataset):
    """What torch-fidelity reads: uint8 [N, C, H, W] served as 3 x H x W (one channel replicated)."""

    def __init__(self, images: Tensor) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"expected uint8 [N, 1|3, H, W], got {images.dtype} {tuple(images.shape)}")
        self.images = images.expand(-1, 3, -1, -1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> Tensor:
        return self.images[index]


def fidelity_cache_dir() -> Path:
    return cache_root() / "fidelity"


def inception_weights(path: str | Path | None) -> Path:
    """The Inception-v3 weights file: `path`, else torch's hub cache, else downloaded there.

    Any failure is one UserError naming the file to get and where to put it.
    """
    if path:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise UserError(
                f"--inception-weights {weights} not found; download {tf.URL_INCEPTION_V3} and pass its path"
            )
        return weights
    cached = Path(torch.hub.get_dir()) / "checkpoints" / INCEPTION_FILE
    if cached.is_file():
        return cached
    return download_weights(
        tf.URL_INCEPTION_V3, cached, "Inception-v3 weights for FID/IS/KID", "--inception-weights"
    )


@dataclass(frozen=True)
class Extractor:
    """The feature extractor a dataset is measured with, as torch-fidelity arguments + protocol."""

    name: str
    weights: Path
    weights_sha256: str
    details: dict[str, Any]
    features: str = DEFAULT_FEATURES  # what the user chose (eval.features): names the values' keys

    def kwargs(self) -> dict[str, Any]:
        return {"feature_extractor": self.name, "feature_extractor_weights_path": str(self.weights)}


def extractor_for(
    dataset: str,
    data_root: str | None,
    inception: str | Path | None,
    features: str = DEFAULT_FEATURES,
    feature_weights: str | Path | None = None,
) -> Extractor:
    """`features`' extractor (its weights: `feature_weights`, else torch's hub cache, else
    downloaded); by default, the project classifier for the MNIST family (trained on first use),
    Inception-v3 (`inception`) otherwise."""
    if not is_default(features):
        weights = weights_file(features, feature_weights)
        digest = weights_sha256(weights)
        name, described = describe(features, weights, digest)
        return Extractor(name, weights, digest, described, features)
    if classifier_of(dataset):
        _, info = load_or_train_classifier(dataset, data_root)
        if info.path is None or info.weights_sha256 is None:
            raise UserError(f"the {dataset} classifier has no saved weights file to extract features with")
        return Extractor(
            extractor_name(dataset), info.path, info.weights_sha256, {"classifier": info.protocol()}
        )
    weights = inception_weights(inception)
    digest = weights_sha256(weights)
    published = is_published(digest)
    details: dict[str, Any] = {"inception_weights_published": published}
    if not published:
        details["comparability"] = NON_STANDARD_INCEPTION
    return Extractor(INCEPTION, weights, digest, details)


def real_reference(dataset: ImageDataset, data_root: str | None, split: Split, count: int) -> Tensor:
    """uint8 images of `split`: all of them, or a fixed random subset of `count` (seed SUBSET_SEED).
    From a memory-mapped cache (CelebA, image folders) only the subset's rows are read: each
    periodic evaluation would otherwise copy the whole split (2 GB for CelebA 64 px) to keep 10,000."""
    images = dataset.split_images(data_root, split)
    if count < len(images):
        keep = torch.randperm(len(images), generator=torch.Generator().manual_seed(SUBSET_SEED))[:count]
        images = images[keep.sort().values.numpy()]  # an index array that tensors and maps both take
    return torch.from_numpy(np.array(images)) if isinstance(images, np.ndarray) else images


def fidelity_metrics(
    fake: Tensor,
    real: Tensor,
    real_name: str,
    extractor: Extractor,
    device: torch.device,
    batch_size: int = 256,
    generated: dict[str, Tensor] | None = None,
) -> dict[str, float]:
    """FID, IS, KID, precision/recall (torch-fidelity) and density/coverage of uint8 images.

    `real_name` names the real set in torch-fidelity's cache; it must change whenever the real images
    or the extractor's weights do (see `reference_name`). `generated`, when given, receives the
    generated images' precision/recall features under "features" (other metrics reuse them).
    """
    cache = fidelity_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if not any(cache.glob(f"{real_name}-*")):
        say(f"computing the features of {len(real)} real images {real_name} (once; cached in {cache})")
    kwargs = {
        "input1": UInt8Images(fake),
        "input2": UInt8Images(real),
        "input2_cache_name": real_name,
        "cache": True,
        "cache_root": str(cache),
        "cuda": device.type == "cuda",
        "batch_size": batch_size,
        "save_cpu_ram": True,
        "verbose": False,
        **extractor.kwargs(),
    }
    scores = is_default(extractor.features)  # IS needs a classifier's logits: DINOv2 and CLIP have none
    metrics = ("isc", "fid", "prc") if scores else ("fid", "prc")
    layer = {metric: tf.resolve_feature_layer_for_metric(metric, **kwargs) for metric in metrics}
    # torch-fidelity's extraction (its extractor, batching and real-feature cache): one pass a set
    module = tf.create_feature_extractor(extractor.name, sorted(set(layer.values())), **kwargs)
    fake_dict = tf.extract_featuresdict_from_input_id(1, module, **kwargs)
    real_dict = tf.extract_featuresdict_from_input_id_cached(2, module, **kwargs)
    real_stats = tf.fid_featuresdict_to_statistics_cached(
        real_dict, real_name, module, layer["fid"], **kwargs
    )
    sigma = real_stats["sigma"]

    def real_root() -> np.ndarray:  # needed only for a set larger than the features' width
        path = cache / f"{real_name}-fid-sigma-root-{layer['fid']}.pt"
        root = _cached_real(path, sigma.shape, torch.device("cpu"), lambda: torch.from_numpy(psd_sqrt(sigma)))
        return root.numpy()

    fake_features, real_features = (features[layer["prc"]].to(device) for features in (fake_dict, real_dict))
    if generated is not None:
        generated["features"] = fake_features
    real_rows = (len(real_features),)
    prc_radii = _cached_real(
        cache / f"{real_name}-prc-radii-k{PRC_NEIGHBOURS}.pt",
        real_rows,
        device,
        lambda: kth_neighbour_distances(real_features, PRC_NEIGHBOURS),
    )
    precision, recall = precision_recall(fake_features, real_features, prc_radii)
    radii = _cached_real(
        cache / f"{real_name}-radii-k{DC_NEIGHBOURS}.pt",
        real_rows,
        device,
        lambda: knn_radii(real_features, DC_NEIGHBOURS),
    )
    coverage = density_coverage(real_features, fake_features, k=DC_NEIGHBOURS, radii=radii)
    kid, kid_std = kernel_inception_distance(
        fake_features, real_features, KID_SUBSETS, min(KID_SUBSET_SIZE, len(fake), len(real))
    )
    measured = {
        "fid": frechet_distance(fake_dict[layer["fid"]].numpy(), real_stats, real_root),
        **(inception_score(fake_dict[layer["isc"]]) if scores else {}),
        "kid": kid,
        "kid_std": kid_std,
        "precision": precision,
        "recall": recall,
        "density": coverage["density"],
        "coverage": coverage["coverage"],
    }
    return {value_key(key, extractor.features): value for key, value in measured.items()}


def kernel_inception_distance(fake: Tensor, real: Tensor, subsets: int, size: int) -> tuple[float, float]:
    """KID (mean, std over subsets) as torch-fidelity computes it: its cubic polynomial kernel and
    unbiased MMD estimator on `subsets` pairs of random subsets of `size`, drawn by its seeded
    RandomState in its order.

    torch-fidelity computes the three kernel matrices of every subset pair anew (3 x subsets x size^2
    dot products), although the subsets overlap: with as many samples as the subset size, every
    subset is all of them. Where the whole matrices cost fewer dot products and fit in memory, they
    are computed once (its own kernel function, float32) and every subset's sums are read from them
    through indicator matrices (float64); the values agree with torch-fidelity's to float32 rounding
    (tested). Otherwise its own loop runs."""
    n_fake, n_real = len(fake), len(real)
    whole = n_fake * n_fake + n_real * n_real + n_fake * n_real
    if whole > 3 * subsets * size * size or whole > KID_FULL_KERNEL_ENTRIES:
        values = tf.kid_features_to_metric(
            fake.cpu(), real.cpu(), kid_subsets=subsets, kid_subset_size=size, verbose=False
        )
        return float(values[tf.KEY_METRIC_KID_MEAN]), float(values[tf.KEY_METRIC_KID_STD])
    x, y = fake.cpu().numpy(), real.cpu().numpy()
    draw = np.random.RandomState(tf.DEFAULTS["rng_seed"])
    pick_x, pick_y = np.zeros((n_fake, subsets)), np.zeros((n_real, subsets))
    for index in range(subsets):  # the draws of torch-fidelity's loop, in its order
        pick_x[draw.choice(n_fake, size, replace=False), index] = 1.0
        pick_y[draw.choice(n_real, size, replace=False), index] = 1.0

    def pair_sums(kernel: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        return (left * (kernel.astype(np.float64) @ right)).sum(axis=0)

    k_xx, k_yy = tf.kernel_poly(x, x), tf.kernel_poly(y, y)
    # sums over the distinct pairs of each subset (the unbiased estimator leaves out i == j)
    within_x = pair_sums(k_xx, pick_x, pick_x) - pick_x.T @ np.diagonal(k_xx).astype(np.float64)
    within_y = pair_sums(k_yy, pick_y, pick_y) - pick_y.T @ np.diagonal(k_yy).astype(np.float64)
    across = pair_sums(tf.kernel_poly(x, y), pick_x, pick_y)
    mmds = (within_x + within_y) / (size * (size - 1)) - 2 * across / (size * size)
    return float(mmds.mean()), float(mmds.std())


def kth_neighbour_distances(features: Tensor, k: int) -> Tensor:
    """Each row's distance to its k-th nearest other row, as torch-fidelity's precision/recall
    computes it (its `tf.calc_cdist_part`, the (k+1)-th smallest with the self-distance); on the CPU.
    topk rather than torch-fidelity's kthvalue: the same value, ~8x faster on the CPU."""
    return torch.cat(
        [
            tf.calc_cdist_part(rows, features, PRC_BATCH).topk(k + 1, largest=False).values[:, -1]
            for rows in features.split(PRC_BATCH)
        ]
    )


def precision_recall(fake: Tensor, real: Tensor, real_radii: Tensor) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al., 2019) exactly as torch-fidelity's
    `calculate_precision_recall_part`, with the real set's radii given (they depend on it alone)."""
    fake_radii = kth_neighbour_distances(fake, PRC_NEIGHBOURS)
    real_radii = real_radii.cpu()
    # recall: is each real sample inside some generated sample's ball; precision the other way round
    recall = (
        torch.cat(
            [
                (tf.calc_cdist_part(rows, fake, PRC_BATCH) <= fake_radii).any(dim=1)
                for rows in real.split(PRC_BATCH)
            ]
        )
        .float()
        .mean()
        .item()
    )
    precision = (
        torch.cat(
            [
                (tf.calc_cdist_part(rows, real, PRC_BATCH) <= real_radii).any(dim=1)
                for rows in fake.split(PRC_BATCH)
            ]
        )
        .float()
        .mean()
        .item()
    )
    return precision, recall


def psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    """The symmetric square root of a covariance matrix (its negative rounding eigenvalues as 0)."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(values.clip(min=0))) @ vectors.T


def frechet_distance(
    features: np.ndarray, real_stats: dict[str, np.ndarray], real_root: Callable[[], np.ndarray]
) -> float:
    """torch-fidelity's FID of a set's features [n, d] against the real set's statistics (mu, sigma),
    |mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), with tr sqrt(S1 S2) from a symmetric
    eigenproblem holding the same nonzero eigenvalues as S1 S2: X S2 X^T / (n - 1) (n x n; X the
    centred features) where n <= d, else R S1 R with R = sqrt(S2) (`real_root()`, cached with the
    real set). Equal to torch-fidelity's general eigenproblem to about 1e-6 relative where the
    covariances are rank-deficient, 1e-15 where not (tests/test_fidelity.py), for a twelfth to a
    thirty-seventh of its CPU where n <= d and half once the root is cached
    (benchmarks/perf/fid_formula.py)."""
    rows = np.asarray(features, dtype=np.float64)  # no copy of rows that are float64 already
    count, dim = rows.shape
    mu = rows.mean(axis=0)
    centred = rows - mu
    if count <= dim:
        inner = centred @ real_stats["sigma"] @ centred.T / (count - 1)
    else:
        root = real_root()
        inner = root @ (centred.T @ centred / (count - 1)) @ root
    tr_covmean = np.sqrt(np.linalg.eigvalsh((inner + inner.T) / 2).clip(min=0)).sum()
    diff = mu - real_stats["mu"]
    trace = float((centred * centred).sum()) / (count - 1)
    return float(diff.dot(diff) + trace + np.trace(real_stats["sigma"]) - 2 * tr_covmean)


def inception_score(logits: Tensor) -> dict[str, float]:
    """IS (mean, std over IS_SPLITS splits) of the generated set's logits, as torch-fidelity's."""
    values = tf.isc_features_to_metric(
        logits, IS_SPLITS, tf.DEFAULTS["samples_shuffle"], tf.DEFAULTS["rng_seed"]
    )
    return {"is": float(values[tf.KEY_METRIC_ISC_MEAN]), "is_std": float(values[tf.KEY_METRIC_ISC_STD])}


def _cached_real(
    path: Path, shape: tuple[int, ...], device: torch.device, compute: Callable[[], Tensor]
) -> Tensor:
    """A tensor computed from the real set alone (its k-NN radii, its covariance's square root),
    cached beside its torch-fidelity statistics."""
    if path.is_file():
        cached = torch.load(path, map_location=device, weights_only=True)
        if torch.is_tensor(cached) and cached.shape == shape:
            return cached
    value = compute()
    write_atomic(path, lambda tmp: torch.save(value.cpu(), tmp))
    return value


def reference_name(
    dataset: ImageDataset, data_root: str | None, split: Split, images: Tensor, extractor: Extractor
) -> str:
    """Cache name of a real reference set: what it holds (the dataset's reference id: its name, or
    a folder's identity) and what measures it (a chosen extractor's name, and its weights' sha256;
    the default's name is left out, so that the caches written before the choice stay valid)."""
    size = images.shape[-1]
    held = f"{dataset.reference_id(data_root, split)}-{split}-{size}px-n{len(images)}-s{SUBSET_SEED}"
    measured_by = "" if is_default(extractor.features) else f"{extractor.features}-"
    return f"{held}-{measured_by}{extractor.weights_sha256[:16]}"


def protocol(
    extractor: Extractor, fake: int, real: int, split: str, batch_size: int, reference: str
) -> dict[str, Any]:
    """What metrics.json records with the values (`reference`: the real set's cache name)."""
    return {
        "generated_samples": fake,
        "real_samples": real,
        "reference_split": split,
        "reference": reference,
        "real_subset_seed": SUBSET_SEED,
        "extractor": extractor.name,
        "extractor_weights_sha256": extractor.weights_sha256,
        **extractor.details,
        "torch_fidelity": tf.version,
        "batch_size": batch_size,
        "is_splits": IS_SPLITS,
        "kid_subsets": KID_SUBSETS,
        "kid_subset_size": min(KID_SUBSET_SIZE, fake, real),
        "prc_neighbours": PRC_NEIGHBOURS,
        "density_coverage_neighbours": DC_NEIGHBOURS,
    }
