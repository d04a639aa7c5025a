"""Variant names such as "bce+gdpp@0.5" or "wgan-gp+pacgan2+gdpp@1+ms@0.5": parsed, validated,
and written back canonically (adversarial loss, then discriminator modifiers, then terms)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gdpp_bench.errors import UserError
from gdpp_bench.losses.adversarial import ADVERSARIAL
from gdpp_bench.losses.terms import TERMS
from gdpp_bench.models.modifiers import MODIFIERS, canonical_modifier, parse_modifier

# the adversarial loss of a variant that names only discriminator modifiers ("pacgan2", "mbstd"),
# as PacGAN and ProGAN's minibatch stddev were published with the standard GAN loss
DEFAULT_ADVERSARIAL = "bce"


@dataclass(frozen=True)
class Variant:
    """An adversarial loss, weighted diversity terms and discriminator modifiers (canonical tokens
    such as "pacgan2", applied by the model builder); `str()` is the canonical run-folder name."""

    adversarial: str
    terms: tuple[tuple[str, float], ...] = ()
    discriminator: tuple[str, ...] = ()

    def __str__(self) -> str:
        terms = [f"{n}@{format_weight(w)}" for n, w in self.terms]
        return "+".join([self.adversarial, *self.discriminator, *terms])


def format_weight(weight: float) -> str:
    """Shortest text that reads back as the same float: 1.0 -> "1", 0.1 -> "0.1"."""
    text = repr(float(weight))
    return text[:-2] if text.endswith(".0") else text


def parse_variant(text: str) -> Variant:
    """Parse `[ADV+]PART...` where a part is `TERM[@WEIGHT]` or a discriminator modifier
    (`pacganN`/`pacN`, `mbstd[N]`); ADV may be left out (bce) only before a modifier.
    Unknown names, repeats or bad weights raise UserError."""
    parts = text.strip().split("+")
    adversarial = parts[0]
    if adversarial not in ADVERSARIAL:
        if "@" in adversarial or parse_modifier(adversarial) is None:
            raise UserError(
                f"unknown adversarial loss {adversarial!r} in variant {text!r}; "
                f"known: {', '.join(ADVERSARIAL.names())}"
            )
        adversarial, parts = DEFAULT_ADVERSARIAL, [DEFAULT_ADVERSARIAL, *parts]
    terms: list[tuple[str, float]] = []
    modifiers: dict[str, str] = {}  # registered name -> canonical token
    for part in parts[1:]:
        name, at, weight_text = part.partition("@")
        modifier = None if at or name in TERMS else parse_modifier(name)
        if modifier is not None:
            if modifier[0] in modifiers:
                raise UserError(f"discriminator modifier {modifier[0]!r} appears twice in variant {text!r}")
            modifiers[modifier[0]] = canonical_modifier(*modifier)
            continue
        if name not in TERMS:
            raise UserError(
                f"unknown diversity term or discriminator modifier {name!r} in variant {text!r}; "
                f"terms: {', '.join(TERMS.names())}; modifiers: {', '.join(MODIFIERS.names())}"
            )
        if any(name == seen for seen, _ in terms):
            raise UserError(f"diversity term {name!r} appears twice in variant {text!r}")
        terms.append((name, _parse_weight(weight_text, text) if at else 1.0))
    # modifiers in registry order, so "mbstd+pacgan2" and "pacgan2+mbstd" are one run folder
    ordered = tuple(modifiers[name] for name in MODIFIERS.names() if name in modifiers)
    return Variant(adversarial, tuple(terms), ordered)


def _parse_weight(weight_text: str, variant_text: str) -> float:
    try:
        weight = float(weight_text)
    except ValueError:
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise UserError(
            f"malformed weight {weight_text!r} in variant {variant_text!r}; "
            "write a positive number, e.g. bce+gdpp@0.5"
        )
    return weight
