"""The GDPP diversity loss (Elfeki et al., ICML 2019) and its sign-invariant variant.

`gdpp_loss` follows the published definition with the official code's conventions: cosine kernel
over the batch, eigenpairs in ascending order matched by index, magnitude term weighted 1e-4,
structure term a signed dot product summed over eigenpairs and weighted by the min-max normalised
real eigenvalues. Only the fake side carries a gradient (the official code updates only G with it).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

MAGNITUDE_WEIGHT = 1e-4
SAFE_RECIPROCAL_EPS = 1e-20


def _eigh_forward(kernels: Tensor) -> tuple[Tensor, Tensor]:
    """Batched `eigh`; on a float32 convergence failure retry in float64 and cast back.

    Real cosine kernels are often near rank-2 with hundreds of near-zero eigenvalues, where
    float32 LAPACK/cuSOLVER can fail (error 510). A NaN/inf kernel yields NaN so that the
    training loop records a diverged run instead of crashing: on the CPU by a plain check, on
    an accelerator with tensor ops, which need no host sync.
    """
    on_host = kernels.device.type == "cpu"
    all_finite = torch.isfinite(kernels).all()
    if on_host:
        finite = bool(all_finite)
        safe = kernels if finite else torch.zeros_like(kernels)
    else:
        safe = torch.where(all_finite, kernels, torch.zeros_like(kernels))
    try:
        values, vectors = torch.linalg.eigh(safe)
    except torch.linalg.LinAlgError:
        if kernels.dtype == torch.float64:
            raise
        values, vectors = (t.to(kernels.dtype) for t in torch.linalg.eigh(safe.double()))
    if on_host:
        return (values, vectors) if finite else (values * math.nan, vectors * math.nan)
    poison = torch.where(all_finite, 0.0, math.nan).to(kernels.dtype)
    return values + poison, vectors + poison


def _safe_eigh_backward(values: Tensor, vectors: Tensor, grad_values: Tensor, grad_vectors: Tensor) -> Tensor:
    """Gradient of a symmetric matrix from those of its eigenpairs, with TensorFlow's safe
    reciprocal x / (x^2 + 1e-20) of the eigengaps.

    PyTorch's own eigh backward divides by lambda_j - lambda_i, which is exactly 0 for tied
    eigenvalues; a B x B kernel of D < B features has B - D (near-)zero eigenvalues, ties happen
    within a few dozen steps, and the generator's gradient turns NaN. The official GDPP code ran
    on TensorFlow, whose self_adjoint_eig gradient uses this safe reciprocal (0 for a tie).
    Where eigenvalues are distinct the two gradients agree.
    """
    gaps = values.unsqueeze(-2) - values.unsqueeze(-1)  # [i, j] = lambda_j - lambda_i
    inverse_gaps = gaps / (gaps * gaps + SAFE_RECIPROCAL_EPS)
    inverse_gaps.diagonal(dim1=-2, dim2=-1).zero_()
    inner = (vectors.transpose(-2, -1) @ grad_vectors) * inverse_gaps
    inner = inner + torch.diag_embed(grad_values)
    return vectors @ inner @ vectors.transpose(-2, -1)


class _PairedEigh(torch.autograd.Function):
    """Eigenpairs of the fake and the real kernel from one batched `eigh` call; only the fake
    kernel gets a (tie-safe) gradient, so no backward work is spent on the real side."""

    @staticmethod
    def forward(ctx, fake: Tensor, real: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # type: ignore[override]
        values, vectors = _eigh_forward(torch.stack([fake, real]))
        ctx.save_for_backward(values[0], vectors[0])
        ctx.mark_non_differentiable(values[1], vectors[1])
        return values[0], vectors[0], values[1], vectors[1]

    @staticmethod
    def backward(ctx, grad_values: Tensor, grad_vectors: Tensor, *_real: Tensor) -> tuple[Tensor, None]:  # type: ignore[override]
        values, vectors = ctx.saved_tensors
        return _safe_eigh_backward(values, vectors, grad_values, grad_vectors), None


def _paired_eigh(fake: Tensor, real: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """(fake values, fake vectors, real values, real vectors): ascending, vectors as columns."""
    return _PairedEigh.apply(fake, real.detach())


def _min_max_weights(values: Tensor, zero_in_spectrum: bool) -> Tensor:
    """(v - min) / (max - min); all zeros when every value is equal (batch size 1, say).
    `zero_in_spectrum`: the full spectrum also holds zeros that `values` leaves out."""
    low, high = values.min(), values.max()
    if zero_in_spectrum:
        low = torch.clamp(low, max=0.0)
    span = high - low
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (values - low) / safe_span, torch.zeros_like(values))


def _gdpp_from_eigen(
    fake_values: Tensor,
    fake_vectors: Tensor,
    real_values: Tensor,
    real_vectors: Tensor,
    batch_size: int,
    sign_invariant: bool,
) -> Tensor:
    """Combine matched (fake, real) eigenpairs into the loss; eigenvectors are columns."""
    dots = (fake_vectors * real_vectors).sum(dim=0)
    return _gdpp_from_values_and_dots(fake_values, real_values, dots, batch_size, sign_invariant)


class MatchedPairs(NamedTuple):
    """Per matched eigenpair i of one GDPP evaluation: <v_fake_i, v_real_i> and the real
    eigenvalue's min-max weight (detached): what the sign diagnostic reads."""

    dots: Tensor
    weights: Tensor


def sign_flip_fraction(
    current: MatchedPairs, previous: tuple[Tensor, Tensor] | None, min_weight: float = 0.01
) -> float:
    """Of the matched pairs weighted above `min_weight` now, the fraction whose dot product changed
    sign since `previous` (NaN without a previous one or without such pairs). GDPP's structure
    term rewards +<v_fake, v_real>; an eigensolver's sign is arbitrary, so a flip turns the term's
    pull on that pair around."""
    if previous is None or previous[0].shape != current.dots.shape:
        return math.nan
    weighted = current.weights > min_weight
    count = int(weighted.sum())
    if count == 0:
        return math.nan
    flipped = (torch.sign(current.dots) != torch.sign(previous[0])) & weighted
    return int(flipped.sum()) / count


def _gdpp_from_values_and_dots(
    fake_values: Tensor,
    real_values: Tensor,
    dots: Tensor,
    batch_size: int,
    sign_invariant: bool,
    zero_in_spectrum: bool = False,
) -> Tensor:
    """The loss from matched eigenvalues and the dot products of matched eigenvectors."""
    # the mean runs over the B eigenvalues of the B x B kernel; missing ones (D x D route) are
    # zeros on both sides and add nothing to the sum
    magnitude = MAGNITUDE_WEIGHT * (fake_values - real_values).pow(2).sum() / batch_size
    if sign_invariant:
        dots = dots.abs()
    weights = _min_max_weights(real_values, zero_in_spectrum)
    return magnitude - (weights * dots).sum()


def _full_precision(loss: Callable[[Tensor, Tensor], Tensor]) -> Callable[[Tensor, Tensor], Tensor]:
    """Compute in at least float32 with autocast off (eigh has no bf16/fp16 kernels, and the
    spectrum needs the precision); return the input dtype."""

    @functools.wraps(loss)
    def wrapper(phi_fake: Tensor, phi_real: Tensor) -> Tensor:
        dtype = phi_fake.dtype
        with torch.autocast(phi_fake.device.type, enabled=False):
            if dtype in (torch.float16, torch.bfloat16):
                return loss(phi_fake.float(), phi_real.float()).to(dtype)
            return loss(phi_fake, phi_real)

    return wrapper


def gdpp_loss(phi_fake: Tensor, phi_real: Tensor) -> Tensor:
    """GDPP loss of fake features [B, D] against real features [B, D], as published.

    Not zero for identical inputs: its minimum, -sum of the real weights, is reached when the
    fake kernel equals the real one. Depends on the eigensolver's eigenvector signs.
    """
    return gdpp_loss_and_pairs(phi_fake, phi_real)[0]


def gdpp_loss_and_pairs(phi_fake: Tensor, phi_real: Tensor) -> tuple[Tensor, MatchedPairs]:
    """`gdpp_loss` and its matched pairs (for `sign_flip_fraction`)."""
    dtype = phi_fake.dtype
    with torch.autocast(phi_fake.device.type, enabled=False):
        fake, real = (
            (phi_fake.float(), phi_real.float())
            if dtype in (torch.float16, torch.bfloat16)
            else (phi_fake, phi_real)
        )
        _check_features(fake, real)
        fake_values, fake_vectors, real_values, real_vectors = _paired_eigh(
            _cosine_kernel(fake), _cosine_kernel(real.detach())
        )
        loss = _gdpp_from_eigen(
            fake_values, fake_vectors, real_values, real_vectors, fake.shape[0], sign_invariant=False
        )
        dots = (fake_vectors * real_vectors).sum(dim=0).detach()
        pairs = MatchedPairs(dots, _min_max_weights(real_values, False).detach())
    return loss.to(dtype), pairs


@_full_precision
def gdpp_si_loss(phi_fake: Tensor, phi_real: Tensor) -> Tensor:
    """Sign-invariant GDPP: the structure term uses |<v_fake_i, v_real_i>|.

    When B > D the kernel u u^T has rank <= D, and its nonzero eigenpairs come from the D x D
    matrix u^T u (eigenvector u w / ||u w||), so the loss is computed through that smaller matrix;
    the B - D zero eigenvalues add nothing (their real weights are 0, their gaps are 0).
    """
    _check_features(phi_fake, phi_real)
    batch_size, dim = phi_fake.shape
    if batch_size <= dim:
        eigen = _paired_eigh(_cosine_kernel(phi_fake), _cosine_kernel(phi_real.detach()))
        return _gdpp_from_eigen(*eigen, batch_size, sign_invariant=True)
    fake_units = F.normalize(phi_fake, dim=1)
    real_units = F.normalize(phi_real.detach(), dim=1)
    fake_values, fake_small, real_values, real_small = _paired_eigh(
        fake_units.T @ fake_units, real_units.T @ real_units
    )
    # the B x B eigenvectors are u w / ||u w||; the norm is taken of u w itself, not as sqrt(mu):
    # equal in exact arithmetic, but for the many near-zero eigenvalues a feature kernel has, mu is
    # float noise and <u_f w_f, u_r w_r> / sqrt(mu_f mu_r) is unbounded (a loss off by 3x and a
    # gradient 100x too large on ring8 features), while the normalised vectors keep |dot| <= 1
    fake_vectors = F.normalize(fake_units @ fake_small, dim=0)
    real_vectors = F.normalize(real_units @ real_small, dim=0)
    dots = (fake_vectors * real_vectors).sum(dim=0)
    return _gdpp_from_values_and_dots(
        fake_values, real_values, dots, batch_size, sign_invariant=True, zero_in_spectrum=True
    )


def _cosine_kernel(phi: Tensor) -> Tensor:
    units = F.normalize(phi, dim=1)
    return units @ units.T


def _check_features(phi_fake: Tensor, phi_real: Tensor) -> None:
    if phi_fake.ndim != 2 or phi_fake.shape != phi_real.shape:
        raise ValueError(
            f"GDPP needs fake and real features of the same shape [B, D]; "
            f"got {tuple(phi_fake.shape)} and {tuple(phi_real.shape)}"
        )
