"""Adversarial losses. Each maps discriminator outputs to the D loss and the G loss."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from gdpp_bench.models.base import DOut
from gdpp_bench.models.modifiers import packing_degree
from gdpp_bench.registry import Registry


@dataclass(frozen=True)
class AdversarialLoss:
    """`d_loss(real, fake, targets)` and `g_loss(fake, target)`; a gradient penalty on D when
    `gp_weight` > 0.

    `targets` are D's labels for real and fake samples, (1, 0) unless the suite smooths them (the
    official GDPP recipes use (0.9, 0.1)); `target` is the label G's loss gives its own samples (1;
    0.9 in the official Stacked-MNIST and CIFAR-10 scripts). Losses without labels (hinge,
    Wasserstein) ignore both.
    """

    d_loss: Callable[[DOut, DOut, tuple[float, float]], Tensor]
    g_loss: Callable[[DOut, float], Tensor]
    d_steps: int = 1
    gp_weight: float = 0.0


ADVERSARIAL: Registry[AdversarialLoss] = Registry("adversarial loss")


def _bce_d(real: DOut, fake: DOut, targets: tuple[float, float] = (1.0, 0.0)) -> Tensor:
    real_target = torch.full_like(real.logits, targets[0])
    fake_target = torch.full_like(fake.logits, targets[1])
    return F.binary_cross_entropy_with_logits(real.logits, real_target) + F.binary_cross_entropy_with_logits(
        fake.logits, fake_target
    )


def _bce_g(fake: DOut, target: float = 1.0) -> Tensor:
    # non-saturating: the generator labels its samples real
    return F.binary_cross_entropy_with_logits(fake.logits, torch.full_like(fake.logits, target))


def _hinge_d(real: DOut, fake: DOut, targets: tuple[float, float] = (1.0, 0.0)) -> Tensor:
    return F.relu(1.0 - real.logits).mean() + F.relu(1.0 + fake.logits).mean()


def _wasserstein_d(real: DOut, fake: DOut, targets: tuple[float, float] = (1.0, 0.0)) -> Tensor:
    return fake.logits.mean() - real.logits.mean()


def _mean_logit_g(fake: DOut, target: float = 1.0) -> Tensor:
    return -fake.logits.mean()


ADVERSARIAL.register("bce")(AdversarialLoss(_bce_d, _bce_g))
ADVERSARIAL.register("hinge")(AdversarialLoss(_hinge_d, _mean_logit_g))
ADVERSARIAL.register("wgan-gp")(AdversarialLoss(_wasserstein_d, _mean_logit_g, d_steps=5, gp_weight=10.0))


def gradient_penalty(
    discriminator: nn.Module, real: Tensor, fake: Tensor, generator: torch.Generator
) -> Tensor:
    """WGAN-GP: mean (||grad_x D(x_hat)|| - 1)^2 on random interpolates of real and fake.

    For a packing D the unit is a pack: one interpolation factor and one gradient norm per pack of
    samples, i.e. the penalty of the packed input D really sees.
    """
    pack = packing_degree(discriminator)
    shape = (real.shape[0] // pack,) + (1,) * (real.ndim - 1)
    alpha = torch.rand(shape, generator=generator, device=real.device, dtype=real.dtype)
    alpha = alpha.repeat_interleave(pack, dim=0) if pack > 1 else alpha
    return interpolation_penalty(lambda mixed: discriminator(mixed).logits, real, fake, alpha, pack)


def interpolation_penalty(
    critic: Callable[[Tensor], Tensor],
    real: Tensor,
    fake: Tensor,
    alpha: Tensor,
    pack: int = 1,
    leading: int = 0,
) -> Tensor:
    """The WGAN-GP penalty at the interpolates alpha * real + (1 - alpha) * fake: the mean over
    packs of `pack` samples of (||d critic / d x|| - 1)^2. With `leading` > 0 the inputs carry that
    many batch dimensions (seeds trained together) before the sample dimension, and so does the
    result."""
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    packs = grad.reshape(*grad.shape[:leading], grad.shape[leading] // pack, -1)
    return (packs.norm(dim=-1) - 1).pow(2).mean(dim=-1)
