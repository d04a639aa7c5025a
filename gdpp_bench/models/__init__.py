"""Model families; each builder returns an initialised (generator, discriminator) pair.

A builder takes the shape of one data sample (e.g. (2,) or (3, 32, 32)) and DiscriminatorOptions
(packing, minibatch stddev). A generator has a `z_dim` attribute and maps z [B, z_dim] to samples of
that shape; a discriminator maps samples to `DOut(logits, features)` (one row per pack of samples
when it packs). `build_models` applies a variant's discriminator modifiers.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gdpp_bench.models.base import DOut
from gdpp_bench.models.dcgan import (
    build_dcgan28,
    build_dcgan28_gdpp,
    build_dcgan28_gdpp_small_d,
    build_dcgan32,
    build_dcgan32_gdpp,
    build_dcgan32_pixelshuffle,
    build_dcgan64,
)
from gdpp_bench.models.mlp2d import build_mlp2d
from gdpp_bench.models.modifiers import MODIFIERS, DiscriminatorOptions, discriminator_options
from gdpp_bench.registry import Registry

ModelBuilder = Callable[[tuple[int, ...], DiscriminatorOptions], tuple[nn.Module, nn.Module]]

MODELS: Registry[ModelBuilder] = Registry("model")
MODELS.register("mlp2d")(build_mlp2d)
MODELS.register("dcgan32")(build_dcgan32)
MODELS.register("dcgan32-gdpp")(build_dcgan32_gdpp)
MODELS.register("dcgan32-pixelshuffle")(build_dcgan32_pixelshuffle)
MODELS.register("dcgan28")(build_dcgan28)
MODELS.register("dcgan28-gdpp")(build_dcgan28_gdpp)
MODELS.register("dcgan28-gdpp-d2")(build_dcgan28_gdpp_small_d(2))
MODELS.register("dcgan28-gdpp-d4")(build_dcgan28_gdpp_small_d(4))
MODELS.register("dcgan64")(build_dcgan64)


def build_models(
    model: str, data_shape: tuple[int, ...], modifiers: tuple[str, ...] = ()
) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of family `model`, D changed as the modifier tokens ask."""
    return MODELS.get(model)(data_shape, discriminator_options(modifiers))


__all__ = ["MODELS", "MODIFIERS", "DOut", "DiscriminatorOptions", "ModelBuilder", "build_models"]
