"""Variant names such as "bce+gdpp@0.5": parsed, validated, and written back canonically."""

from __future__ import annotations

import math
from dataclasses import dataclass

from gdpp_bench.errors import UserError
from gdpp_bench.losses.adversarial import ADVERSARIAL
from gdpp_bench.losses.terms import TERMS


@dataclass(frozen=True)
class Variant:
    """An adversarial loss plus weighted diversity terms; `str()` is the canonical run-folder name."""

    adversarial: str
    terms: tuple[tuple[str, float], ...] = ()

    def __str__(self) -> str:
        return "+".join([self.adversarial] + [f"{n}@{format_weight(w)}" for n, w in self.terms])


def format_weight(weight: float) -> str:
    """Shortest text that reads back as the same float: 1.0 -> "1", 0.1 -> "0.1"."""
    text = repr(float(weight))
    return text[:-2] if text.endswith(".0") else text


def parse_variant(text: str) -> Variant:
    """Parse `ADV[+TERM[@WEIGHT]]...`; unknown names or bad weights raise UserError."""
    parts = text.strip().split("+")
    adversarial = parts[0]
    if adversarial not in ADVERSARIAL:
        raise UserError(
            f"unknown adversarial loss {adversarial!r} in variant {text!r}; "
            f"known: {', '.join(ADVERSARIAL.names())}"
        )
    terms: list[tuple[str, float]] = []
    for part in parts[1:]:
        name, at, weight_text = part.partition("@")
        if name not in TERMS:
            raise UserError(
                f"unknown diversity term {name!r} in variant {text!r}; "
                f"known: {', '.join(TERMS.names())}"
            )
        if any(name == seen for seen, _ in terms):
            raise UserError(f"diversity term {name!r} appears twice in variant {text!r}")
        terms.append((name, _parse_weight(weight_text, text) if at else 1.0))
    return Variant(adversarial, tuple(terms))


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
