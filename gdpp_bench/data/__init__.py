"""Datasets by name. Each has a `default_model` and `sampler(device, data_root)`."""

from __future__ import annotations

from gdpp_bench.data.synthetic import Mixture2D, grid, ring
from gdpp_bench.registry import Registry

DATASETS: Registry[Mixture2D] = Registry("dataset")
DATASETS.register("ring8")(ring(8, radius=1.0, std=0.01))
DATASETS.register("grid25")(grid(5, spacing=2.0, std=0.05))

__all__ = ["DATASETS", "Mixture2D"]
