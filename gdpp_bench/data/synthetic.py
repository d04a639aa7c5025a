"""2D Gaussian mixtures of the GDPP paper, sampled directly on the training device."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class Mixture2D:
    """Equal-weight isotropic Gaussians at `centers` ([K, 2] as nested tuples) with one `std`."""

    name: str
    centers: tuple[tuple[float, float], ...]
    std: float
    default_model: str = "mlp2d"
    shape: tuple[int, ...] = (2,)

    @property
    def modes(self) -> int:
        return len(self.centers)

    def centers_tensor(self, device: torch.device | str = "cpu") -> Tensor:
        return torch.tensor(self.centers, dtype=torch.float32, device=device)

    def sampler(self, device: torch.device, data_root: str | None = None) -> MixtureSampler:
        return MixtureSampler(self.centers_tensor(device), self.std)


class MixtureSampler:
    """Draws batches from a mixture with an explicit generator (no host round trip)."""

    device_only = True  # no host copies: a CUDA graph can capture sample()

    def __init__(self, centers: Tensor, std: float) -> None:
        self.centers, self.std = centers, std

    def sample(self, batch_size: int, generator: torch.Generator) -> Tensor:
        device = self.centers.device
        which = torch.randint(len(self.centers), (batch_size,), generator=generator, device=device)
        noise = torch.randn(batch_size, 2, generator=generator, device=device)
        return self.centers[which] + self.std * noise


def ring(modes: int, radius: float, std: float) -> Mixture2D:
    """`modes` distinct means at angles 2*pi*k/modes (the official script's linspace repeats 0)."""
    centers = tuple(
        (radius * math.cos(2 * math.pi * k / modes), radius * math.sin(2 * math.pi * k / modes))
        for k in range(modes)
    )
    return Mixture2D(f"ring{modes}", centers, std)


def grid(side: int, spacing: float, std: float) -> Mixture2D:
    """side x side means on a centred grid (5 x 5 at spacing 2 gives {-4,-2,0,2,4}^2)."""
    offset = (side - 1) / 2
    centers = tuple(
        ((i - offset) * spacing, (j - offset) * spacing) for i in range(side) for j in range(side)
    )
    return Mixture2D(f"grid{side * side}", centers, std)
