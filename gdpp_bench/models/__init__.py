"""Model families; each builder returns an initialised (generator, discriminator) pair.

A generator has a `z_dim` attribute and maps z [B, z_dim] to samples; a discriminator maps
samples to `DOut(logits, features)`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gdpp_bench.models.base import DOut
from gdpp_bench.models.mlp2d import build_mlp2d
from gdpp_bench.registry import Registry

ModelBuilder = Callable[[], tuple[nn.Module, nn.Module]]

MODELS: Registry[ModelBuilder] = Registry("model")
MODELS.register("mlp2d")(build_mlp2d)

__all__ = ["DOut", "MODELS", "ModelBuilder"]
