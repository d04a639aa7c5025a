"""What every discriminator returns, so losses never need to know the model."""

from __future__ import annotations

from typing import NamedTuple

from torch import Tensor


class DOut(NamedTuple):
    """A discriminator's output: one logit per sample and its penultimate features [B, D]."""

    logits: Tensor
    features: Tensor
