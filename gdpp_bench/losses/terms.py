"""Diversity terms: each maps D's outputs on real and fake samples, and the generated batch itself,
to a loss added to G's (weighted as the variant says)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from torch import Tensor

from gdpp_bench.losses.gdpp import gdpp_loss_and_pairs, gdpp_si_loss, sign_flip_fraction
from gdpp_bench.models.base import DOut
from gdpp_bench.registry import DeclaredView, Registry

MS_EPS = 1e-5  # the mode-seeking paper's code


class Generated(NamedTuple):
    """The generator's batch: its latent codes z [B, z_dim] and samples G(z) [B, ...]."""

    z: Tensor
    samples: Tensor


class TermOutput(NamedTuple):
    """A term's value and what its log diagnostic reads (detached; see TERM_DIAGNOSTICS)."""

    value: Tensor
    diagnostics: Any


DiversityTerm = Callable[[DOut, DOut, Generated], "Tensor | TermOutput"]

TERMS: Registry[DiversityTerm] = Registry("diversity term")


# term -> (log.csv column, f(diagnostics now, diagnostics at the previous log step) -> float) for
# every registered term that declared `diagnostic=`: a column the training log adds beside the
# term's value, computed at log steps only
TERM_DIAGNOSTICS: Mapping[str, tuple[str, Callable[[Any, Any], float]]] = DeclaredView(
    TERMS, lambda declared: {name: meta["diagnostic"] for name, meta in declared if meta.get("diagnostic")}
)


def host_syncing_terms() -> list[str]:
    """Registered terms that declared `host_sync=True` (e.g. eigh on CUDA): a step with one of them
    cannot be captured in a CUDA graph."""
    return [name for name, meta in TERMS.declared() if meta.get("host_sync")]


def split_term_output(output: Tensor | TermOutput) -> tuple[Tensor, Any]:
    """(value, diagnostics or None) of what a term returned."""
    return (output.value, output.diagnostics) if isinstance(output, TermOutput) else (output, None)


@TERMS.register("gdpp", host_sync=True, diagnostic=("gdpp_sign_flips", sign_flip_fraction))
def gdpp_term(real: DOut, fake: DOut, generated: Generated) -> TermOutput:
    """GDPP (Elfeki et al., ICML 2019) on D's penultimate features (published, sign-dependent)."""
    return TermOutput(*gdpp_loss_and_pairs(fake.features, real.features))


@TERMS.register("gdpp-si", host_sync=True)
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
    image_distance = (samples[:half] - samples[half : 2 * half]).abs().mean()
    latent_distance = (z[:half] - z[half : 2 * half]).abs().mean()
    return 1 / (image_distance / latent_distance + MS_EPS)
