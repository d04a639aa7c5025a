"""DCGAN image models, one parameterised family: `dcgan32` (32x32 seed DCGAN), `dcgan64`, `dcgan28`, and
the GDPP paper's `dcgan28-gdpp` (Stacked-MNIST) and `dcgan32-gdpp` (CIFAR-10); `dcgan32-pixelshuffle`.

D: stride-2 convs (the first without BatchNorm) with LeakyReLU 0.2; its features are the last map
flattened, followed by a linear logit. G: z (100-d) -> linear -> small map (BatchNorm + ReLU) ->
stride-2 transposed convs (BatchNorm + ReLU, the last without) -> tanh. Every conv, transposed conv
and linear layer has a bias, as in the tflib layers the official GDPP code uses, even where a
BatchNorm follows. Init (DCGAN): weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0, drawn
from the global torch RNG.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor, nn

from gdpp_bench.errors import UserError
from gdpp_bench.models.base import DOut
from gdpp_bench.models.modifiers import PLAIN, DiscriminatorOptions, MinibatchStdDev, with_packing

Z_DIM = 100
LEAK = 0.2
INIT_STD = 0.02
SHUFFLE_FACTOR = 2  # PixelShuffle's upscale factor: each sub-pixel conv doubles the side
SHUFFLE_KERNEL = 3  # kernel of the conv before each PixelShuffle (padding 1: same size)


@dataclass(frozen=True)
class Arch:
    """One resolution of the family: everything that differs between dcgan32 and dcgan28."""

    name: str
    size: int  # image height = width
    channels: tuple[int, ...] | None  # accepted image channels; None accepts any
    kernel: int
    padding: int  # of every conv and transposed conv
    d_widths: tuple[int, ...]  # D's conv output channels
    g_widths: tuple[int, ...]  # G's map channels, from the linear layer's map on
    g_start: int  # spatial size of the linear layer's map
    output_padding: tuple[int, ...]  # one per transposed conv
    z_dim: int = 100
    d_batchnorm: bool = True  # BatchNorm after D's convs (all but the first)
    # G's BatchNorm after the linear layer: per "channel" of its map (BatchNorm2d), or per
    # "feature" of its output before the reshape (BatchNorm1d; tflib's Batchnorm over axis 0, as
    # the official GDPP CIFAR-10 generator)
    stem_norm: str = "channel"
    # G's upsampling: stride-2 "transposed" convs, or "pixelshuffle": a 3x3 conv to 4x the
    # channels then PixelShuffle(2) (sub-pixel convolution, Shi et al. 2016), same widths
    upsample: str = "transposed"

    def __post_init__(self) -> None:
        if len(self.output_padding) != len(self.g_widths):
            raise ValueError(f"{self.name}: one output_padding per transposed conv")
        size = self.g_start
        for extra in self.output_padding:
            if self.upsample == "pixelshuffle":
                size *= SHUFFLE_FACTOR
            else:
                size = (size - 1) * 2 - 2 * self.padding + self.kernel + extra
        if size != self.size:
            raise ValueError(f"{self.name}: generator makes {size}x{size} images, not {self.size}")

    @property
    def feature_size(self) -> int:
        """Spatial size of D's last map."""
        size = self.size
        for _ in self.d_widths:
            size = (size + 2 * self.padding - self.kernel) // 2 + 1
        return size

    @property
    def feature_dim(self) -> int:
        """Length of D's flattened features (the GDPP features)."""
        return self.d_widths[-1] * self.feature_size**2


DCGAN32 = Arch(
    name="dcgan32",
    size=32,
    channels=(1, 3),
    kernel=4,
    padding=1,
    d_widths=(64, 128, 256),
    g_widths=(512, 256, 128, 64),
    g_start=2,
    output_padding=(0, 0, 0, 0),
)
# the standard 64x64 DCGAN (Radford et al.): one more stride-2 block on each side; 8192 features
DCGAN64 = Arch(
    name="dcgan64",
    size=64,
    channels=(1, 3),
    kernel=4,
    padding=1,
    d_widths=(64, 128, 256, 512),
    g_widths=(512, 256, 128, 64),
    g_start=4,
    output_padding=(0, 0, 0, 0),
)
# With kernel 5, stride 2, padding 2 a transposed conv maps n -> 2n - 1 + output_padding, so
# 4 -> 7 needs 0 and 7 -> 14 -> 28 need 1: the inverse of D's 28 -> 14 -> 7 -> 4.
DCGAN28 = Arch(
    name="dcgan28",
    size=28,
    channels=None,
    kernel=5,
    padding=2,
    d_widths=(64, 128, 256),
    g_widths=(256, 128, 64),
    g_start=4,
    output_padding=(0, 1, 1),
)
# the GDPP paper's Stacked-MNIST model: dcgan28 with a 128-d z and no BatchNorm in D (the official
# code's D: three 5x5 stride-2 convs with LeakyReLU 0.2, 4096 features)
DCGAN28_GDPP = dataclasses.replace(DCGAN28, name="dcgan28-gdpp", z_dim=128, d_batchnorm=False)
# the GDPP paper's CIFAR-10 model (official gdppgan_cifar.py, DIM = 128): G linear 128 -> 4x4x512
# with BatchNorm per feature, 5x5 stride-2 transposed convs 512 -> 256 -> 128 -> 3 ("SAME": 4 -> 8
# -> 16 -> 32); D 5x5 stride-2 convs 3 -> 128 -> 256 -> 512 (BatchNorm after the last two), the
# 8192-d flattened map as GDPP's features, a linear logit
DCGAN32_GDPP = Arch(
    name="dcgan32-gdpp",
    size=32,
    channels=(1, 3),
    kernel=5,
    padding=2,
    d_widths=(128, 256, 512),
    g_widths=(512, 256, 128),
    g_start=4,
    output_padding=(1, 1, 1),
    z_dim=128,
    stem_norm="feature",
)
# dcgan32 with sub-pixel convolutions in G instead of transposed convs (the seed face write-ups'
# remedy for checkerboard artefacts); D unchanged
DCGAN32_PIXELSHUFFLE = dataclasses.replace(DCGAN32, name="dcgan32-pixelshuffle", upsample="pixelshuffle")


class Generator(nn.Module):
    """z [B, z_dim] -> images [B, C, size, size] in [-1, 1]."""

    def __init__(self, arch: Arch, channels: int) -> None:
        super().__init__()
        self.z_dim = arch.z_dim
        width, start = arch.g_widths[0], arch.g_start
        unflatten = nn.Unflatten(1, (width, start, start))
        stem: list[nn.Module] = [nn.Linear(arch.z_dim, width * start * start)]
        if arch.stem_norm == "feature":
            stem += [nn.BatchNorm1d(width * start * start), nn.ReLU(), unflatten]
        else:
            stem += [unflatten, nn.BatchNorm2d(width), nn.ReLU()]
        self.stem = nn.Sequential(*stem)
        outputs = (*arch.g_widths[1:], channels)
        layers: list[nn.Module] = []
        steps = zip(arch.g_widths, outputs, arch.output_padding, strict=True)
        for index, (c_in, c_out, extra) in enumerate(steps):
            if arch.upsample == "pixelshuffle":
                factor = SHUFFLE_FACTOR**2
                layers += [
                    nn.Conv2d(c_in, c_out * factor, SHUFFLE_KERNEL, 1, SHUFFLE_KERNEL // 2),
                    nn.PixelShuffle(SHUFFLE_FACTOR),
                ]
            else:
                layers.append(nn.ConvTranspose2d(c_in, c_out, arch.kernel, 2, arch.padding, extra))
            if index < len(outputs) - 1:
                layers += [nn.BatchNorm2d(c_out), nn.ReLU()]
        layers.append(nn.Tanh())
        self.body = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.body(self.stem(z))


class Discriminator(nn.Module):
    """Images [B, C, size, size] -> DOut(logits [B], flattened last conv map [B, feature_dim]).

    With `mbstd_group` > 0 a minibatch-stddev channel is appended before the last conv (as
    ProGAN's last block), which then takes one more input channel.
    """

    def __init__(self, arch: Arch, channels: int, mbstd_group: int = 0) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        inputs = (channels, *arch.d_widths[:-1])
        last = len(arch.d_widths) - 1
        for index, (c_in, c_out) in enumerate(zip(inputs, arch.d_widths, strict=True)):
            if index == last and mbstd_group:
                layers.append(MinibatchStdDev(mbstd_group))
                c_in += 1
            layers.append(nn.Conv2d(c_in, c_out, arch.kernel, 2, arch.padding))
            if index > 0 and arch.d_batchnorm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(LEAK))
        # flatten (a reshape) reads the logical C, H, W order, so features do not depend on
        # whether the map is channels_last
        layers.append(nn.Flatten())
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(arch.feature_dim, 1)

    def forward(self, x: Tensor) -> DOut:
        features = self.body(x)
        return DOut(self.head(features).squeeze(1), features)


def init_dcgan(module: nn.Module) -> None:
    """DCGAN init in place: conv/linear weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases 0."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(layer.weight, 0.0, INIT_STD)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
        elif isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            nn.init.normal_(layer.weight, 1.0, INIT_STD)
            nn.init.zeros_(layer.bias)


def build_dcgan(
    arch: Arch, data_shape: tuple[int, ...], options: DiscriminatorOptions = PLAIN
) -> tuple[nn.Module, nn.Module]:
    """An initialised (generator, discriminator) of `arch` for samples of `data_shape` (C, H, W);
    D packs `options.pack` samples along channels and may have a minibatch-stddev layer."""
    shape = tuple(data_shape)
    channels_ok = len(shape) == 3 and shape[0] >= 1 and (arch.channels is None or shape[0] in arch.channels)
    if not channels_ok or shape[1:] != (arch.size, arch.size):
        allowed = "" if arch.channels is None else f" with C in {arch.channels}"
        raise UserError(
            f"model {arch.name} needs images of shape (C, {arch.size}, {arch.size}){allowed}, "
            f"the dataset has samples of shape {shape}"
        )
    generator = Generator(arch, shape[0])
    discriminator = Discriminator(arch, shape[0] * options.pack, options.mbstd_group)
    init_dcgan(generator)
    init_dcgan(discriminator)
    return generator, with_packing(discriminator, options)


def build_dcgan32(
    data_shape: tuple[int, ...] = (3, 32, 32), options: DiscriminatorOptions = PLAIN
) -> tuple[nn.Module, nn.Module]:
    """The seed DCGAN for 32x32 images with 1 or 3 channels."""
    return build_dcgan(DCGAN32, data_shape, options)


def build_dcgan64(
    data_shape: tuple[int, ...] = (3, 64, 64), options: DiscriminatorOptions = PLAIN
) -> tuple[nn.Module, nn.Module]:
    """The standard DCGAN for 64x64 images (CelebA at 64 px)."""
    return build_dcgan(DCGAN64, data_shape, options)


def build_dcgan28_gdpp(
    data_shape: tuple[int, ...] = (3, 28, 28), options: DiscriminatorOptions = PLAIN
) -> tuple[nn.Module, nn.Module]:
    """The GDPP paper's Stacked-MNIST model: dcgan28 with z 128 and a D without BatchNorm."""
    return build_dcgan(DCGAN28_GDPP, data_shape, options)


def dcgan_builder(arch: Arch, doc: str) -> Callable[..., tuple[nn.Module, nn.Module]]:
    """The model builder of `arch` (for data of shape (3, size, size) unless told otherwise)."""

    def build(
        data_shape: tuple[int, ...] = (3, arch.size, arch.size), options: DiscriminatorOptions = PLAIN
    ) -> tuple[nn.Module, nn.Module]:
        return build_dcgan(arch, data_shape, options)

    build.__doc__ = doc
    return build


def build_dcgan28_gdpp_small_d(divisor: int) -> Callable[..., tuple[nn.Module, nn.Module]]:
    """dcgan28-gdpp with D's widths divided by `divisor`: the smaller-discriminator Stacked-MNIST
    setting of the Unrolled-GAN and VEEGAN experiments (D at 1/4 or 1/2 size), a harder test of
    mode coverage and a cheaper step on a CPU."""
    arch = dataclasses.replace(
        DCGAN28_GDPP,
        name=f"dcgan28-gdpp-d{divisor}",
        d_widths=tuple(width // divisor for width in DCGAN28_GDPP.d_widths),
    )
    return dcgan_builder(
        arch, f"dcgan28-gdpp with D at 1/{divisor} width ({arch.feature_dim}-d GDPP features)."
    )


build_dcgan32_gdpp = dcgan_builder(
    DCGAN32_GDPP, "The GDPP paper's CIFAR-10 networks (width 128, 5x5 kernels, z 128, 8192-d D features)."
)
build_dcgan32_pixelshuffle = dcgan_builder(
    DCGAN32_PIXELSHUFFLE, "dcgan32 whose G upsamples by sub-pixel convolution (3x3 conv + PixelShuffle(2))."
)


def build_dcgan28(
    data_shape: tuple[int, ...] = (1, 28, 28), options: DiscriminatorOptions = PLAIN
) -> tuple[nn.Module, nn.Module]:
    """The MNIST DCGAN for 28x28 images (any number of channels, e.g. Stacked-MNIST's 3)."""
    return build_dcgan(DCGAN28, data_shape, options)
