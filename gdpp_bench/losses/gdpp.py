"""The GDPP diversity loss (Elfeki et al., ICML 2019) and its sign-invariant variant.

`gdpp_loss` follows the published definition with the official code's conventions: cosine kernel
over the batch, eigenpairs in ascending order matched by index, magnitude term weighted 1e-4,
structure term a signed dot product summed over eigenpairs and weighted by the min-max normalised
real eigenvalues. Only the fake side carries a gradient (the official code updates only G with it).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

MAGNITUDE_WEIGHT = 1e-4
SAFE_RECIPROCAL_EPS = 1e-20


def _eigh_forward(kernels: Tensor) -> tuple[Tensor, Tensor]:
    """Batched `eigh`; on a float32 convergence failure retry in float64 and cast back.

    Real cosine kernels are often near rank-2 with hundreds of near-zero eigenvalues, where
    float32 LAPACK/cuSOLVER can fail (error 510). A NaN/inf kernel yields NaN so that the
    training loop records a diverged run instead of crashing; that is done with tensor ops,
    not a Python branch, to avoid a host sync on the GPU.
    """
    finite = torch.isfinite(kernels).all()
    safe = torch.where(finite, kernels, torch.zeros_like(kernels))
    try:
        values, vectors = torch.linalg.eigh(safe)
    except torch.linalg.LinAlgError:
        if kernels.dtype == torch.float64:
            raise
        values, vectors = (t.to(kernels.dtype) for t in torch.linalg.eigh(safe.double()))
    poison = torch.where(finite, 0.0, float("nan")).to(kernels.dtype)
    return values + poison, vectors + poison


class _EighSafeGrad(torch.autograd.Function):
    """`eigh` whose backward uses TensorFlow's safe reciprocal x / (x^2 + 1e-20) of eigengaps.

    PyTorch's own eigh backward divides by lambda_j - lambda_i, which is exactly 0 for tied
    eigenvalues; a B x B kernel of D < B features has B - D (near-)zero eigenvalues, ties happen
    within a few dozen steps, and the generator's gradient turns NaN. The official GDPP code
    ran on TensorFlow, whose self_adjoint_eig gradient uses this safe reciprocal (0 for a tie).
    Elsewhere the two gradients agree.
    """

    @staticmethod
    def forward(ctx, kernels: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        values, vectors = _eigh_forward(kernels)
        ctx.save_for_backward(values, vectors)
        return values, vectors

    @staticmethod
    def backward(ctx, grad_values: Tensor, grad_vectors: Tensor) -> Tensor:  # type: ignore[override]
        values, vectors = ctx.saved_tensors
        gaps = values.unsqueeze(-2) - values.unsqueeze(-1)  # [i, j] = lambda_j - lambda_i
        inverse_gaps = gaps / (gaps * gaps + SAFE_RECIPROCAL_EPS)
        inverse_gaps.diagonal(dim1=-2, dim2=-1).zero_()
        inner = (vectors.transpose(-2, -1) @ grad_vectors) * inverse_gaps
        inner = inner + torch.diag_embed(grad_values)
        return vectors @ inner @ vectors.transpose(-2, -1)


def _eigh(kernels: Tensor) -> tuple[Tensor, Tensor]:
    """Ascending eigenvalues and column eigenvectors, with a tie-safe gradient."""
    if not kernels.requires_grad:
        return _eigh_forward(kernels)
    return _EighSafeGrad.apply(kernels)


def _min_max_weights(values: Tensor) -> Tensor:
    """(v - min) / (max - min); all zeros when every value is equal (batch size 1, say)."""
    low, high = values.min(), values.max()
    span = high - low
    safe_span = torch.where(span > 0, span, torch.ones_like(span))
    return torch.where(span > 0, (values - low) / safe_span, torch.zeros_like(values))


def _gdpp_from_eigen(
    values: Tensor, vectors: Tensor, batch_size: int, sign_invariant: bool
) -> Tensor:
    """Combine stacked (fake, real) eigenpairs into the loss; eigenvectors are columns."""
    fake_values, real_values = values[0], values[1]
    squared_gap = (fake_values - real_values).pow(2)
    # the mean runs over the B eigenvalues of the B x B kernel; missing ones (D x D route) are 0
    magnitude = MAGNITUDE_WEIGHT * squared_gap.sum() / batch_size
    dots = (vectors[0] * vectors[1]).sum(dim=0)
    if sign_invariant:
        dots = dots.abs()
    structure = -(_min_max_weights(real_values) * dots).sum()
    return magnitude + structure


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


@_full_precision
def gdpp_loss(phi_fake: Tensor, phi_real: Tensor) -> Tensor:
    """GDPP loss of fake features [B, D] against real features [B, D], as published.

    Not zero for identical inputs: its minimum, -sum of the real weights, is reached when the
    fake kernel equals the real one. Depends on the eigensolver's eigenvector signs.
    """
    _check_features(phi_fake, phi_real)
    kernels = torch.stack([_cosine_kernel(phi_fake), _cosine_kernel(phi_real.detach())])
    values, vectors = _eigh(kernels)
    return _gdpp_from_eigen(values, vectors, phi_fake.shape[0], sign_invariant=False)


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
        kernels = torch.stack([_cosine_kernel(phi_fake), _cosine_kernel(phi_real.detach())])
        values, vectors = _eigh(kernels)
        return _gdpp_from_eigen(values, vectors, batch_size, sign_invariant=True)
    units = torch.stack([F.normalize(phi_fake, dim=1), F.normalize(phi_real.detach(), dim=1)])
    values, small_vectors = _eigh(units.transpose(1, 2) @ units)
    vectors = F.normalize(units @ small_vectors, dim=1)
    # the B x B spectrum also holds B - D zeros, which set the real minimum to 0
    zeros = values.new_zeros(2, 1)
    values = torch.cat([zeros, values], dim=1)
    vectors = torch.cat([vectors.new_zeros(2, batch_size, 1), vectors], dim=2)
    return _gdpp_from_eigen(values, vectors, batch_size, sign_invariant=True)


def _cosine_kernel(phi: Tensor) -> Tensor:
    units = F.normalize(phi, dim=1)
    return units @ units.T


def _check_features(phi_fake: Tensor, phi_real: Tensor) -> None:
    if phi_fake.ndim != 2 or phi_fake.shape != phi_real.shape:
        raise ValueError(
            f"GDPP needs fake and real features of the same shape [B, D]; "
            f"got {tuple(phi_fake.shape)} and {tuple(phi_real.shape)}"
        )
