"""Diversity terms: each maps D's outputs on real and fake samples, and the generated batch itself,
to a loss added to G's (weighted as the variant says)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from torch import Tensor

from gdpp_bench.losses.gdpp import gdpp_loss, gdpp_si_loss
from gdpp_bench.models.base import DOut
from gdpp_bench.registry import Registry

MS_EPS = 1e-5  # the mode-seeking paper's code


class Generated(NamedTuple):
    """The generator's batch: its latent codes z [B, z_dim] and samples G(z) [B, ...]."""

    z: Tensor
    samples: Tensor


DiversityTerm = Callable[[DOut, DOut, Generated], Tensor]

TERMS: Registry[DiversityTerm] = Registry("diversity term")


@TERMS.register("gdpp")
def gdpp_term(real: DOut, fake: DOut, generated: Generated) -> Tensor:
    """GDPP (Elfeki et al., ICML 2019) on D's penultimate features (published, sign-dependent)."""
    return gdpp_loss(fake.features, real.features)


@TERMS.register("gdpp-si")
def gdpp_si_term(real: DOut, fake: DOut, generated: Generated) -> Tensor:
    """Sign-invariant GDPP: |<v_fake, v_real>| in the structure term."""
    return gdpp_si_loss(fake.features, real.features)


@TERMS.register("ms")
def mode_seeking_term(real: DOut, fake: DOut, generated: Generated) -> Tensor:
    """Mode seeking (Mao et al., "Mode Seeking Generative Adversarial Networks for Diverse Image
    Synthesis", CVPR 2019), unconditional form: the batch's first and second halves are the two
    latent codes per pair; G maximises mean|G(z1) - G(z2)| / mean|z1 - z2|, as a loss
    1 / (ratio + 1e-5) (the paper's code)."""
    half = generated.z.shape[0] // 2
    z, samples = generated.z.float(), generated.samples.float()
    image_distance = (samples[:half] - samples[half:2 * half]).abs().mean()
    latent_distance = (z[:half] - z[half:2 * half]).abs().mean()
    return 1 / (image_distance / latent_distance + MS_EPS)
