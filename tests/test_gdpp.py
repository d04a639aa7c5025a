"""GDPP: the published definition, its defining properties, and the sign-invariant variant."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from gdpp_bench.losses import gdpp as gdpp_module
from gdpp_bench.losses import gdpp_loss, gdpp_si_loss


def reference_gdpp(phi_fake: torch.Tensor, phi_real: torch.Tensor, sign_invariant=False, eigh_dtype=None):
    """The issue's six steps, written out one matrix at a time."""

    def eig(phi):
        u = phi / phi.norm(dim=1, keepdim=True).clamp_min(1e-12)
        kernel = u @ u.T
        values, vectors = torch.linalg.eigh(kernel.to(eigh_dtype or kernel.dtype))
        return values.to(kernel.dtype), vectors.to(kernel.dtype)

    lf, vf = eig(phi_fake)
    lr, vr = eig(phi_real)
    magnitude = 1e-4 * ((lf - lr) ** 2).mean()
    weights = (lr - lr.min()) / (lr.max() - lr.min())
    dots = torch.stack([vf[:, i] @ vr[:, i] for i in range(len(lr))])
    if sign_invariant:
        dots = dots.abs()
    return magnitude - (weights * dots).sum()


def features(batch, dim, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, dim, generator=g, dtype=dtype)


@pytest.mark.parametrize("batch,dim", [(16, 32), (64, 16), (8, 8)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gdpp_equals_published_definition(batch, dim, dtype):
    fake, real = features(batch, dim, 0, dtype), features(batch, dim, 1, dtype)
    value = gdpp_loss(fake, real)
    assert value.shape == () and value.dtype == dtype
    torch.testing.assert_close(value, reference_gdpp(fake, real))


def test_inputs_not_modified_and_only_fake_gets_gradient():
    fake = features(32, 8, 0).requires_grad_(True)
    real = features(32, 8, 1).requires_grad_(True)
    fake_copy, real_copy = fake.detach().clone(), real.detach().clone()
    gdpp_loss(fake, real).backward()
    assert torch.equal(fake.detach(), fake_copy) and torch.equal(real.detach(), real_copy)
    assert fake.grad is not None and torch.isfinite(fake.grad).all()
    assert fake.grad.abs().sum() > 0
    assert real.grad is None


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_identical_inputs_reach_the_minimum(loss):
    real = features(24, 40, 3)
    lam = torch.linalg.eigvalsh(F.normalize(real, dim=1) @ F.normalize(real, dim=1).T)
    minimum = -((lam - lam.min()) / (lam.max() - lam.min())).sum()
    torch.testing.assert_close(loss(real.clone(), real), minimum)
    assert minimum < -1.0  # not zero: the published loss has a negative minimum


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_lower_bound_is_minus_sum_of_weights(loss):
    real = features(24, 40, 3)
    lam = torch.linalg.eigvalsh(F.normalize(real, dim=1) @ F.normalize(real, dim=1).T)
    minimum = -((lam - lam.min()) / (lam.max() - lam.min())).sum()
    for seed in range(10):
        value = loss(features(24, 40, 100 + seed), real)
        # magnitude >= 0 and each |<v_f, v_r>| <= 1, so the bound holds; strictly above it here
        assert value >= minimum - 1e-12
        assert value > minimum + 1e-3


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_scale_invariant_in_each_row(loss):
    fake, real = features(20, 12, 0), features(20, 12, 1)
    row_scale = torch.linspace(0.1, 50.0, 20, dtype=torch.float64).unsqueeze(1)
    torch.testing.assert_close(loss(fake * row_scale, real * 3.0), loss(fake, real))


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_gradients_finite_on_rank_deficient_tanh_features(loss):
    # the synthetic setup: B = 512 > D = 128, so the kernel has ~384 zero eigenvalues
    g = torch.Generator().manual_seed(0)
    fake = torch.tanh(torch.randn(512, 128, generator=g)).requires_grad_(True)
    real = torch.tanh(torch.randn(512, 128, generator=g))
    value = loss(fake, real)
    value.backward()
    assert torch.isfinite(value) and torch.isfinite(fake.grad).all()


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_batch_size_one_is_zero_not_nan(loss):
    fake = features(1, 5, 0).requires_grad_(True)
    value = loss(fake, features(1, 5, 1))
    value.backward()
    # one eigenvalue (1) on each side: no magnitude gap, and all-equal real eigenvalues weigh 0
    torch.testing.assert_close(value, torch.zeros((), dtype=value.dtype), rtol=0, atol=1e-20)
    assert torch.isfinite(fake.grad).all()


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_all_equal_real_eigenvalues_leave_only_the_magnitude_term(loss):
    real = torch.eye(6, 10, dtype=torch.float64)  # orthonormal rows: kernel = I, eigenvalues all 1
    fake = features(6, 10, 0)
    lam_fake = torch.linalg.eigvalsh(F.normalize(fake, dim=1) @ F.normalize(fake, dim=1).T)
    expected = 1e-4 * ((lam_fake - 1.0) ** 2).mean()
    torch.testing.assert_close(loss(fake, real), expected)


def test_float32_eigh_failure_falls_back_to_float64(monkeypatch):
    fake, real = features(32, 8, 0, torch.float32), features(32, 8, 1, torch.float32)
    expected = reference_gdpp(fake, real, eigh_dtype=torch.float64)
    real_eigh = torch.linalg.eigh

    def failing_in_float32(a, *args, **kwargs):
        if a.dtype == torch.float32:
            raise torch.linalg.LinAlgError("linalg.eigh: The algorithm failed to converge (510)")
        return real_eigh(a, *args, **kwargs)

    monkeypatch.setattr(gdpp_module.torch.linalg, "eigh", failing_in_float32)
    value = gdpp_loss(fake, real)
    assert value.dtype == torch.float32
    torch.testing.assert_close(value, expected)


def test_non_finite_features_give_nan_not_a_crash():
    fake = features(16, 8, 0)
    fake[3, 2] = float("nan")
    assert torch.isnan(gdpp_loss(fake, features(16, 8, 1)))


@pytest.mark.parametrize("batch,dim", [(512, 128), (64, 16), (16, 64)])
def test_gdpp_si_equals_its_batch_by_batch_computation(batch, dim):
    fake, real = features(batch, dim, 5), features(batch, dim, 6)
    expected = reference_gdpp(fake, real, sign_invariant=True)
    torch.testing.assert_close(gdpp_si_loss(fake, real), expected, rtol=1e-6, atol=1e-9)


def test_gdpp_si_gradient_matches_batch_by_batch_route():
    fake = features(48, 12, 5).requires_grad_(True)
    real = features(48, 12, 6)
    (grad_small,) = torch.autograd.grad(gdpp_si_loss(fake, real), fake)
    (grad_big,) = torch.autograd.grad(reference_gdpp(fake, real, sign_invariant=True), fake)
    torch.testing.assert_close(grad_small, grad_big, rtol=1e-5, atol=1e-8)


def _ring_features(points: torch.Tensor) -> torch.Tensor:
    """Features as the ring8 discriminator makes them: tanh layers over 2D points, so the 512 x 512
    kernel has a few dozen eigenvalues above 1e-6 and hundreds that are float noise."""
    g = torch.Generator().manual_seed(3)
    w1, w2 = torch.randn(2, 128, generator=g), torch.randn(128, 128, generator=g) / 128**0.5
    return torch.tanh(torch.tanh(points @ w1.to(points.dtype)) @ w2.to(points.dtype))


@pytest.mark.parametrize("spread", [0.8, 0.05])  # spread-out and collapsed generator points
def test_gdpp_si_in_float32_matches_float64_on_near_low_rank_features(spread):
    """The D x D route of the sign-invariant loss on float32 features whose kernel is numerically
    rank deficient: loss and gradient as the float64 batch-by-batch definition gives them (a route
    dividing by sqrt of noise eigenvalues was off by 3x in value and 100x in gradient)."""
    g = torch.Generator().manual_seed(0)
    angles = torch.randint(0, 8, (512,), generator=g) * (2 * math.pi / 8)
    real_points = torch.stack([angles.cos(), angles.sin()], 1) + 0.01 * torch.randn(512, 2, generator=g)
    fake_points = (torch.randn(512, 2, generator=g) * spread).requires_grad_(True)
    value = gdpp_si_loss(_ring_features(fake_points), _ring_features(real_points))
    (grad,) = torch.autograd.grad(value, fake_points)
    fake64 = fake_points.detach().double().requires_grad_(True)
    expected = reference_gdpp(
        _ring_features(fake64), _ring_features(real_points.double()), sign_invariant=True
    )
    (expected_grad,) = torch.autograd.grad(expected, fake64)
    assert value.item() == pytest.approx(expected.item(), rel=1e-4)
    assert (grad.double() - expected_grad).norm() / expected_grad.norm() < 1e-2


def _sign_flipping_eigh(monkeypatch):
    real_eigh = torch.linalg.eigh
    g = torch.Generator().manual_seed(7)

    def flipped(a, *args, **kwargs):
        values, vectors = real_eigh(a, *args, **kwargs)
        signs = torch.randint(0, 2, vectors.shape[:-2] + vectors.shape[-1:], generator=g) * 2 - 1
        return values, vectors * signs.unsqueeze(-2).to(vectors.dtype)

    monkeypatch.setattr(gdpp_module.torch.linalg, "eigh", flipped)


@pytest.mark.parametrize("batch,dim", [(64, 16), (16, 64)])
def test_sign_flips_change_gdpp_but_not_gdpp_si(monkeypatch, batch, dim):
    fake, real = features(batch, dim, 8), features(batch, dim, 9)
    plain, invariant = gdpp_loss(fake, real), gdpp_si_loss(fake, real)
    _sign_flipping_eigh(monkeypatch)
    torch.testing.assert_close(gdpp_si_loss(fake, real), invariant)
    assert abs(gdpp_loss(fake, real).item() - plain.item()) > 1e-3


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        gdpp_loss(features(4, 3, 0), features(5, 3, 0))


def test_eigh_gradient_matches_torch_where_eigenvalues_are_distinct():
    g = torch.Generator().manual_seed(11)
    a = torch.randn(2, 12, 12, generator=g, dtype=torch.float64)
    kernels = a @ a.transpose(1, 2)
    fake = kernels[0].clone().requires_grad_(True)
    weights = torch.randn(12, 12, generator=g, dtype=torch.float64)

    def objective(values, vectors):
        # sign-invariant in each eigenvector, so both autograd paths see the same function
        return (values**2).sum() + ((vectors**2) * weights).sum()

    values, vectors, real_values, real_vectors = gdpp_module._paired_eigh(fake, kernels[1])
    (ours,) = torch.autograd.grad(objective(values, vectors), fake, retain_graph=True)
    (torchs,) = torch.autograd.grad(objective(*torch.linalg.eigh(fake)), fake)
    torch.testing.assert_close(ours + ours.T, torchs + torchs.T)
    torch.testing.assert_close(real_values, torch.linalg.eigvalsh(kernels[1]))
    # nothing flows from the real side's eigenpairs back into the fake kernel
    (through_real,) = torch.autograd.grad(real_values.sum() + real_vectors.sum(), fake, allow_unused=True)
    assert through_real is None or not through_real.any()


def test_tied_eigenvalues_keep_the_gradient_finite():
    # an exactly repeated spectrum: torch's own eigh backward divides by zero gaps here
    u = torch.eye(8, 4, dtype=torch.float64)
    u[4:] = torch.eye(4, dtype=torch.float64)  # kernel eigenvalues: 2 (x4) and 0 (x4), exact ties
    fake = (u + 0.0).requires_grad_(True)
    real = features(8, 4, 1)
    gdpp_loss(fake, real).backward()
    assert torch.isfinite(fake.grad).all()
    fake_torch = (u + 0.0).requires_grad_(True)
    kernel = F.normalize(fake_torch, dim=1) @ F.normalize(fake_torch, dim=1).T
    values, vectors = torch.linalg.eigh(kernel)
    (vectors[:, -1].sum() + values.sum()).backward()
    assert not torch.isfinite(fake_torch.grad).all()  # the failure the safe reciprocal avoids


@pytest.mark.parametrize("loss", [gdpp_loss, gdpp_si_loss])
def test_bfloat16_features_under_autocast_are_computed_in_float32(loss):
    fake, real = features(32, 16, 0, torch.float32), features(32, 16, 1, torch.float32)
    expected = loss(fake.bfloat16().float(), real.bfloat16().float())
    fake16 = fake.bfloat16().requires_grad_(True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = loss(fake16, real.bfloat16())
    assert value.dtype == torch.bfloat16
    torch.testing.assert_close(value, expected.bfloat16())
    value.backward()
    assert fake16.grad.dtype == torch.bfloat16 and torch.isfinite(fake16.grad.float()).all()


def test_sign_flip_fraction_counts_weighted_pairs_whose_dot_changed_sign():
    from gdpp_bench.losses.gdpp import MatchedPairs, sign_flip_fraction

    weights = torch.tensor([0.0, 0.005, 0.2, 0.6, 1.0])  # the first two are below 0.01
    before = MatchedPairs(torch.tensor([0.5, -0.5, 0.9, -0.3, 0.7]), weights)
    after = MatchedPairs(torch.tensor([-0.5, 0.5, -0.9, -0.2, 0.7]), weights)
    # weighted pairs: indices 2, 3, 4; only index 2 flipped (0 and 1 flipped but do not count)
    assert sign_flip_fraction(after, before) == pytest.approx(1 / 3)
    assert math.isnan(sign_flip_fraction(after, None))
    assert math.isnan(sign_flip_fraction(MatchedPairs(after.dots, torch.zeros(5)), before))


def test_gdpp_loss_and_pairs_is_gdpp_loss_with_the_matched_dot_products():
    from gdpp_bench.losses.gdpp import gdpp_loss_and_pairs

    fake, real = features(16, 8, 0), features(16, 8, 1)
    loss, pairs = gdpp_loss_and_pairs(fake, real)
    assert torch.equal(loss, gdpp_loss(fake, real))
    _, fake_vectors = torch.linalg.eigh(F.normalize(fake, dim=1) @ F.normalize(fake, dim=1).T)
    _, real_vectors = torch.linalg.eigh(F.normalize(real, dim=1) @ F.normalize(real, dim=1).T)
    assert torch.allclose(pairs.dots, (fake_vectors * real_vectors).sum(0), atol=1e-8)
    assert pairs.weights.max() == 1.0 and pairs.weights.min() == 0.0
