"""Discriminator modifiers named in variant strings (`bce+pacgan2`, `bce+mbstd`), applied by the
model builder so the training loop never knows about them.

A modifier token is a registered name with an optional integer suffix: `pacgan2` packs 2 samples,
`mbstd` uses groups of 4 (`mbstd8`: 8). Each registered entry turns that integer into fields of the
`DiscriminatorOptions` a model family builds its discriminator from.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from gdpp_bench.errors import UserError
from gdpp_bench.models.base import DOut
from gdpp_bench.registry import Registry

MBSTD_EPS = 1e-8


@dataclass(frozen=True)
class DiscriminatorOptions:
    """How a family builds its discriminator beyond its architecture."""

    pack: int = 1  # samples packed along channels into one D input (PacGAN); 1 = none
    mbstd_group: int = 0  # minibatch-stddev group size; 0 = no such layer


PLAIN = DiscriminatorOptions()  # the family's discriminator as published


@dataclass(frozen=True)
class Modifier:
    """`apply(options, n)` sets what the token asks for; `default` is n when the token has no suffix,
    `minimum` the smallest n allowed; `canonical(n)` writes the token back."""

    apply: Callable[[DiscriminatorOptions, int], DiscriminatorOptions]
    default: int
    minimum: int
    canonical: Callable[[int], str]


MODIFIERS: Registry[Modifier] = Registry("discriminator modifier")
# other spellings users type for a registered modifier
ALIASES = {"pac": "pacgan"}

# PacGAN: Lin, Khetan, Fanti, Oh, "PacGAN: The power of two samples in generative adversarial
# networks", NeurIPS 2018. D judges N samples at once (concatenated along channels), so a generator
# that repeats itself is easier to tell apart; works with any adversarial loss.
MODIFIERS.register("pacgan")(
    Modifier(
        apply=lambda options, n: replace(options, pack=n),
        default=2,
        minimum=2,
        canonical=lambda n: f"pacgan{n}",
    )
)
# Minibatch standard deviation: Karras, Aila, Laine, Lehtinen, "Progressive Growing of GANs for
# Improved Quality, Stability, and Variation", ICLR 2018, section 3. One extra feature map holding
# the mean standard deviation of the features over a group of samples, inserted before D's last
# layer, lets D see the batch's variety; group size 4 as in the paper.
MODIFIERS.register("mbstd")(
    Modifier(
        apply=lambda options, n: replace(options, mbstd_group=n),
        default=4,
        minimum=2,
        canonical=lambda n: "mbstd" if n == 4 else f"mbstd{n}",
    )
)

_TOKEN = re.compile(r"([a-z][a-z-]*?)(\d*)")


def parse_modifier(token: str) -> tuple[str, int] | None:
    """`pacgan2` -> ("pacgan", 2); None when `token` names no registered modifier."""
    match = _TOKEN.fullmatch(token)
    if not match:
        return None
    name = ALIASES.get(match.group(1), match.group(1))
    if name not in MODIFIERS:
        return None
    modifier = MODIFIERS.get(name)
    number = int(match.group(2)) if match.group(2) else modifier.default
    if number < modifier.minimum:
        raise UserError(
            f"discriminator modifier {token!r} needs a number >= {modifier.minimum}, "
            f"e.g. {modifier.canonical(modifier.default)}"
        )
    return name, number


def canonical_modifier(name: str, number: int) -> str:
    return MODIFIERS.get(name).canonical(number)


def discriminator_options(tokens: tuple[str, ...]) -> DiscriminatorOptions:
    """The options that a variant's canonical modifier tokens ask for."""
    options = PLAIN
    for token in tokens:
        parsed = parse_modifier(token)
        if parsed is None:
            raise UserError(
                f"unknown discriminator modifier {token!r}; known: {', '.join(MODIFIERS.names())}"
            )
        options = MODIFIERS.get(parsed[0]).apply(options, parsed[1])
    return options


def check_batch_size(options: DiscriminatorOptions, batch_size: int) -> None:
    """Packing and minibatch-stddev groups must divide the batch D sees; UserError if not."""
    if batch_size % options.pack:
        raise UserError(
            f"batch size {batch_size} is not a multiple of the packing degree "
            f"{options.pack}; pick a batch size divisible by it"
        )
    packed = batch_size // options.pack
    if options.mbstd_group and packed % min(options.mbstd_group, packed):
        raise UserError(
            f"discriminator batch {packed} is not a multiple of the minibatch-stddev "
            f"group {options.mbstd_group}; pick a batch size divisible by it"
        )


class MinibatchStdDev(nn.Module):
    """Appends one channel: the standard deviation of each feature over a group of samples, averaged
    over features (and positions), shared by the group's members.

    As in the paper's code, group g holds samples g, g + B/G, g + 2B/G, ... (G = min(group, B)).
    Works on [B, C, H, W] maps and on [B, F] vectors.
    """

    def __init__(self, group: int) -> None:
        super().__init__()
        self.group = group

    def forward(self, x: Tensor) -> Tensor:
        batch = x.shape[0]
        group = min(self.group, batch)
        grouped = x.float().reshape(group, batch // group, *x.shape[1:])
        std = (grouped.var(dim=0, unbiased=False) + MBSTD_EPS).sqrt()  # [B/G, C, ...]
        per_group = std.flatten(1).mean(dim=1)  # [B/G]
        channel = per_group.repeat(group).to(x.dtype)  # sample b belongs to group b % (B/G)
        channel = channel.reshape(batch, 1, *([1] * (x.ndim - 2))).expand(batch, 1, *x.shape[2:])
        return torch.cat([x, channel], dim=1)


class Packed(nn.Module):
    """PacGAN's packing: consecutive `pack` samples [B, C, ...] become one input [B/pack, pack*C, ...]
    of `inner`, a discriminator built for pack*C channels; one logit and one feature row per pack."""

    def __init__(self, inner: nn.Module, pack: int) -> None:
        super().__init__()
        self.inner = inner
        self.pack = pack

    def forward(self, x: Tensor) -> DOut:
        batch, channels = x.shape[:2]
        return self.inner(x.reshape(batch // self.pack, self.pack * channels, *x.shape[2:]))


def packing_degree(discriminator: nn.Module) -> int:
    """How many samples `discriminator` judges together (1 unless it is Packed)."""
    return discriminator.pack if isinstance(discriminator, Packed) else 1


def with_packing(discriminator: nn.Module, options: DiscriminatorOptions) -> nn.Module:
    return Packed(discriminator, options.pack) if options.pack > 1 else discriminator
