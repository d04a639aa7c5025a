"""Model families; each builder returns an initialised (generator, discriminator) pair.

A builder takes the shape of one data sample (e.g. (2,) or (3, 32, 32)). A generator has a
`z_dim` attribute and maps z [B, z_dim] to samples of that shape; a discriminator maps samples to
`DOut(logits, features)`.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from gdpp_bench.models.base import DOut
from gdpp_bench.models.dcgan import build_dcgan28, build_dcgan28_gdpp, build_dcgan32, build_dcgan64
from gdpp_bench.models.mlp2d import build_mlp2d
from gdpp_bench.registry import Registry

ModelBuilder = Callable[[tuple[int, ...]], tuple[nn.Module, nn.Module]]

MODELS: Registry[ModelBuilder] = Registry("model")
MODELS.register("mlp2d")(build_mlp2d)
MODELS.register("dcgan32")(build_dcgan32)
MODELS.register("dcgan28")(build_dcgan28)
MODELS.register("dcgan28-gdpp")(build_dcgan28_gdpp)
MODELS.register("dcgan64")(build_dcgan64)

__all__ = ["DOut", "MODELS", "ModelBuilder"]
