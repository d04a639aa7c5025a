"""The GDPP paper's synthetic 2D networks (official synthetic script)."""

from __future__ import annotations

from torch import Tensor, nn

from gdpp_bench.errors import UserError
from gdpp_bench.models.base import DOut

Z_DIM = 256
HIDDEN = 128
INIT_GAIN = 1.4


class Generator2D(nn.Module):
    """z (256-d, N(0,1)) -> FC128 tanh -> FC128 tanh -> linear 2."""

    z_dim = Z_DIM

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(Z_DIM, HIDDEN), nn.Tanh(),
            nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
            nn.Linear(HIDDEN, 2),
        )

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class Discriminator2D(nn.Module):
    """FC128 tanh -> FC128 -> tanh (the 128 GDPP features) -> linear logit."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(2, HIDDEN), nn.Tanh(),
            nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
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


def build_mlp2d(data_shape: tuple[int, ...] = (2,)) -> tuple[nn.Module, nn.Module]:
    if tuple(data_shape) != (2,):
        raise UserError(f"model mlp2d needs 2D points, the dataset has samples of shape {data_shape}")
    generator, discriminator = Generator2D(), Discriminator2D()
    init_orthogonal(generator)
    init_orthogonal(discriminator)
    return generator, discriminator
