"""Diversity terms: each maps (real, fake) discriminator outputs to a loss added to G's."""

from __future__ import annotations

from collections.abc import Callable

from torch import Tensor

from gdpp_bench.losses.gdpp import gdpp_loss, gdpp_si_loss
from gdpp_bench.models.base import DOut
from gdpp_bench.registry import Registry

DiversityTerm = Callable[[DOut, DOut], Tensor]

TERMS: Registry[DiversityTerm] = Registry("diversity term")


@TERMS.register("gdpp")
def gdpp_term(real: DOut, fake: DOut) -> Tensor:
    """GDPP on the discriminator's penultimate features (published, sign-dependent)."""
    return gdpp_loss(fake.features, real.features)


@TERMS.register("gdpp-si")
def gdpp_si_term(real: DOut, fake: DOut) -> Tensor:
    """Sign-invariant GDPP: |<v_fake, v_real>| in the structure term."""
    return gdpp_si_loss(fake.features, real.features)
