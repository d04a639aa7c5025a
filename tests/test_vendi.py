"""The Vendi score: a brute-force n x n computation, the `vendi-score` package, answers known in
advance, the 2D RBF kernel on the mixtures, and the registered metric on 2D points and classifier
features."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from conftest import DATA_ROOT, Replay, replay_context
from vendi_score import vendi as reference  # a dev dependency: these tests never skip

from gdpp_bench.data import DATASETS, load_split
from gdpp_bench.errors import UserError
from gdpp_bench.metrics import HIGHER_IS_BETTER, METRIC_BOUNDS, METRICS, EvalContext, fidelity_metric
from gdpp_bench.metrics import vendi as V
from gdpp_bench.metrics.vendi import rbf_bandwidth, score_from_eigenvalues, vendi_cosine, vendi_rbf

# vendi-score 0.0.3 names scipy.sparse.csr, which scipy deprecates
pytestmark = pytest.mark.filterwarnings("ignore:Please import `csr_matrix`:DeprecationWarning")


def gaussian(n: int, d: int, seed: int = 0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)) + shift


def brute_force(kernel: np.ndarray) -> float:
    """exp(Shannon entropy) of the eigenvalues of K / n, written out from the definition."""
    eigenvalues = np.linalg.eigvalsh(kernel / len(kernel))
    eigenvalues = eigenvalues[eigenvalues > 1e-15]
    return float(np.exp(-(eigenvalues * np.log(eigenvalues)).sum()))


def cosine_kernel(features: torch.Tensor) -> np.ndarray:
    x = features.double().numpy()
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    return x @ x.T


# d < n (the d x d route), d > n (the n x n one), and non-negative features (ReLU features'
# kernel has no negative entries), far from and near to one direction
FEATURES = {
    "d<n": gaussian(300, 16, seed=1),
    "d>n": gaussian(40, 64, seed=2),
    "relu": gaussian(250, 32, seed=3).relu(),
    "near-one-direction": gaussian(200, 8, seed=4) * 0.1 + 3.0,
}


@pytest.mark.parametrize("case", list(FEATURES))
def test_cosine_agrees_with_brute_force_and_the_vendi_package(case):
    features = FEATURES[case]
    value = vendi_cosine(features)
    expected = brute_force(cosine_kernel(features))
    assert value == pytest.approx(expected, rel=1e-9)
    assert value == pytest.approx(reference.score_dual(features.double().numpy()), rel=1e-9)
    assert value == pytest.approx(reference.score_X(features.double().numpy()), rel=1e-9)


@pytest.mark.parametrize("name", ["ring8", "grid25"])
def test_rbf_agrees_with_brute_force_and_the_vendi_package(name):
    mixture = DATASETS.get(name)
    points = mixture.sampler(torch.device("cpu")).sample(400, torch.Generator().manual_seed(0))
    bandwidth = rbf_bandwidth(mixture.centers_tensor())
    x = points.double().numpy()
    squared = ((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
    kernel = np.exp(-squared / (2 * bandwidth**2))
    value = vendi_rbf(points, bandwidth)
    assert value == pytest.approx(brute_force(kernel), rel=1e-9)
    assert value == pytest.approx(reference.score_K(kernel), rel=1e-9)


def test_known_answers():
    one_hot = torch.eye(5)
    assert vendi_cosine(one_hot) == pytest.approx(5.0)  # n unrelated samples: n
    assert vendi_cosine(one_hot.repeat(7, 1)) == pytest.approx(5.0)  # 5 equal groups: 5
    assert vendi_cosine(torch.tensor([[2.0, 1.0]]).repeat(50, 1)) == pytest.approx(1.0)  # all alike
    lengths = torch.rand(50, 1, generator=torch.Generator().manual_seed(0)) + 0.1
    assert vendi_cosine(torch.tensor([[3.0, 4.0]]) * lengths) == pytest.approx(1.0)  # cosine ignores length
    # unequal groups: the effective number is exp of their proportions' entropy
    groups = torch.cat([torch.eye(3)[[0]].repeat(6, 1), torch.eye(3)[[1]].repeat(3, 1), torch.eye(3)[[2]]])
    p = torch.tensor([0.6, 0.3, 0.1])
    assert vendi_cosine(groups) == pytest.approx(math.exp(-(p * p.log()).sum().item()))
    far_apart = torch.tensor([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0]])
    assert vendi_rbf(far_apart, 1.0) == pytest.approx(3.0)
    assert vendi_rbf(far_apart.repeat(4, 1), 1.0) == pytest.approx(3.0)
    assert score_from_eigenvalues(torch.tensor([0.5, 0.5, -1e-17])) == pytest.approx(2.0)


def test_zero_features_leave_the_score_of_the_other_samples():
    features = gaussian(30, 4, seed=5)
    with_zeros = torch.cat([features, torch.zeros(3, 4)])
    assert vendi_cosine(with_zeros) == pytest.approx(vendi_cosine(features), rel=1e-12)


@pytest.mark.parametrize(
    "name,modes,full,one",
    # measured with 1,000 points: a mode's own spread adds a few per cent (ring8 std 0.01 at bandwidth
    # 0.255; grid25 std 0.05 at 0.667), a sample's imbalance between modes takes a little away
    [("ring8", 8, 8.148, 1.024), ("grid25", 25, 26.428, 1.075)],
)
def test_rbf_bandwidth_counts_the_mixtures_modes(name, modes, full, one):
    mixture = DATASETS.get(name)
    centers = mixture.centers_tensor()
    bandwidth = rbf_bandwidth(centers)
    perfect = mixture.sampler(torch.device("cpu")).sample(V.POINT_SAMPLES, torch.Generator().manual_seed(0))
    one_mode = centers[3] + mixture.std * torch.randn(
        V.POINT_SAMPLES, 2, generator=torch.Generator().manual_seed(1)
    )
    perfect_score, one_score = vendi_rbf(perfect, bandwidth), vendi_rbf(one_mode, bandwidth)
    assert (perfect_score, one_score) == (pytest.approx(full, abs=0.002), pytest.approx(one, abs=0.001))
    assert (perfect_score, one_score) == (pytest.approx(modes, rel=0.06), pytest.approx(1.0, abs=0.08))
    # the cosine (normalised linear) kernel on 2D points scores between 1 and 2, whatever the modes
    assert 1.0 <= reference.score_dual(perfect.double().numpy()) <= 2.0


def test_rbf_of_non_finite_points_is_nan_and_bad_inputs_are_named():
    assert math.isnan(vendi_rbf(torch.tensor([[0.0, 1.0], [float("nan"), 0.0]]), 1.0))
    with pytest.raises(ValueError, match="bandwidth must be positive"):
        vendi_rbf(torch.zeros(3, 2), 0.0)
    with pytest.raises(ValueError, match="points must be 2-D"):
        vendi_rbf(torch.zeros(3), 1.0)
    with pytest.raises(ValueError, match="features must be 2-D .* at least one sample"):
        vendi_cosine(torch.zeros(0, 4))
    with pytest.raises(ValueError, match="features must be a torch.Tensor"):
        vendi_cosine(np.zeros((3, 2)))


def test_the_metric_is_declared_higher_is_better_from_one():
    assert "vendi" in METRICS
    assert HIGHER_IS_BETTER["vendi"] is True
    assert METRIC_BOUNDS["vendi"] == (1, None)


def _points_context(points: torch.Tensor, dataset) -> EvalContext:
    return EvalContext(Replay(points), dataset, torch.device("cpu"), n_samples=500, seed=0)


def test_metric_on_2d_points_records_its_protocol():
    mixture = DATASETS.get("ring8")
    points = mixture.sampler(torch.device("cpu")).sample(V.POINT_SAMPLES, torch.Generator().manual_seed(0))
    ctx = _points_context(points, mixture)
    values = METRICS.get("vendi")(ctx)
    assert values == {"vendi": pytest.approx(vendi_rbf(points, rbf_bandwidth(mixture.centers_tensor())))}
    assert ctx.notes["vendi"] == {
        "generated_samples": V.POINT_SAMPLES,
        "features": "coordinates",
        "kernel": "rbf",
        "bandwidth": pytest.approx(2 * math.sin(math.pi / 8) / 3),
    }


def test_metric_on_2d_data_without_centres_is_a_user_error():
    class Plain:
        name, shape = "plain2d", (2,)

    with pytest.raises(UserError, match="vendi on 2D dataset 'plain2d' needs its mode centres"):
        METRICS.get("vendi")(_points_context(torch.zeros(V.POINT_SAMPLES, 2), Plain()))


N = 500


def _context(images, **fields):
    return replay_context(
        images, "mnist", fidelity_samples=len(images), real_samples=N, reference_split="test", **fields
    )


def test_metric_on_mnist_reuses_the_fidelity_features(mnist_classifier, monkeypatch):
    """After the fidelity metric, Vendi reads the features it extracted (no second extraction), and
    the number is the one it computes alone; real digits score far above one repeated digit."""
    _, info = mnist_classifier
    monkeypatch.setattr(V, "IMAGE_SAMPLES", N)
    train, _ = load_split("mnist", DATA_ROOT, "train")
    alone = _context(train[:N])
    value = METRICS.get("vendi")(alone)["vendi"]
    assert alone.notes["vendi"]["generated_samples"] == N
    assert alone.notes["vendi"]["extractor_weights_sha256"] == info.weights_sha256
    assert alone.notes["vendi"]["features"] == "gdpp-mnist-classifier 1024"
    assert alone.notes["vendi"]["kernel"] == "cosine"

    def no_extraction(*args, **kwargs):
        raise AssertionError("extracted the features a second time")

    collapsed = METRICS.get("vendi")(_context(train[:1].repeat(N, 1, 1, 1)))["vendi"]
    after = _context(train[:N])
    fidelity_metric(after)
    monkeypatch.setattr(V, "extract_features", no_extraction)
    assert METRICS.get("vendi")(after)["vendi"] == pytest.approx(value, rel=1e-6)
    print(f"vendi: {N} real digits {value:.2f}, one digit repeated {collapsed:.4f}")
    assert collapsed == pytest.approx(1.0, abs=1e-9)
    assert value > 5.0
