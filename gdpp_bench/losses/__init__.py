"""Adversarial losses, diversity terms and the variant names that combine them."""

from gdpp_bench.losses.adversarial import ADVERSARIAL, AdversarialLoss, gradient_penalty
from gdpp_bench.losses.gdpp import gdpp_loss, gdpp_si_loss
from gdpp_bench.losses.terms import TERM_DIAGNOSTICS, TERMS, Generated, TermOutput, split_term_output
from gdpp_bench.losses.variants import Variant, format_weight, parse_variant

__all__ = [
    "ADVERSARIAL",
    "TERMS",
    "TERM_DIAGNOSTICS",
    "TermOutput",
    "AdversarialLoss",
    "Generated",
    "Variant",
    "format_weight",
    "gdpp_loss",
    "gdpp_si_loss",
    "gradient_penalty",
    "parse_variant",
    "split_term_output",
]
