"""The GDPP paper's synthetic 2D networks (official synthetic script)."""

from __future__ import annotations

from torch import Tensor, nn

from gdpp_bench.errors import UserError
from gdpp_bench.models.base import DOut
from gdpp_bench.models.modifiers import PLAIN, DiscriminatorOptions, MinibatchStdDev, with_packing

Z_DIM = 256
HIDDEN = 128
INIT_GAIN = 1.4


class Generator2D(nn.Module):
    """z (256-d, N(0,1)) -> FC128 tanh -> FC128 tanh -> linear 2."""

    z_dim = Z_DIM

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(Z_DIM, HIDDEN),
            nn.Tanh(),
            nn.Linear(HIDDEN, HIDDEN),
            nn.Tanh(),
            nn.Linear(HIDDEN, 2),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Discriminator2D(nn.Module):
    """FC128 tanh -> FC128 -> tanh (the 128 GDPP features) -> linear logit.

    `inputs`: 2, or 2 x the packing degree; `mbstd_group` > 0 appends a minibatch-stddev feature
    before the second layer.
    """

    def __init__(self, inputs: int = 2, mbstd_group: int = 0) -> None:
        super().__init__()
        mbstd = [MinibatchStdDev(mbstd_group)] if mbstd_group else []
        self.body = nn.Sequential(
            nn.Linear(inputs, HIDDEN),
            nn.Tanh(),
            *mbstd,
            nn.Linear(HIDDEN + len(mbstd), HIDDEN),
            nn.Tanh(),
        )
        self.head = nn.Linear(HIDDEN, 1)

    def forward(self, x: Tensor) -> DOut:
        features = self.body(x)
        return DOut(self.head(features).squeeze(1), features)


def init_orthogonal(module: nn.Module) -> None:
    """Orthogonal weights with gain 1.4 and zero biases, as in the official script."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            nn.init.orthogonal_(layer.weight, gain=INIT_GAIN)
            nn.init.zeros_(layer.bias)


def build_mlp2d(
    data_shape: tuple[int, ...] = (2,), options: DiscriminatorOptions = PLAIN
) -> tuple[nn.Module, nn.Module]:
    if tuple(data_shape) != (2,):
        raise UserError(f"model mlp2d needs 2D points, the dataset has samples of shape {data_shape}")
    generator = Generator2D()
    discriminator = Discriminator2D(2 * options.pack, options.mbstd_group)
    init_orthogonal(generator)
    init_orthogonal(discriminator)
    return generator, with_packing(discriminator, options)
