"""Pictures of generated samples: a scatter over the true mode centres for 2D data."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from torch import Tensor  # noqa: E402

from gdpp_bench.rundir import write_atomic  # noqa: E402


def draw_samples_2d(ax: plt.Axes, samples: Tensor, centers: Tensor, title: str = "") -> None:
    points = samples.detach().cpu().numpy()
    modes = centers.detach().cpu().numpy()
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.4, color="tab:blue", label="generated")
    ax.scatter(modes[:, 0], modes[:, 1], s=30, marker="x", color="tab:red", label="mode centres")
    span = max(abs(modes).max() * 1.5, 1.5)
    ax.set_xlim(-span, span)
    ax.set_ylim(-span, span)
    ax.set_aspect("equal")
    ax.set_title(title, fontsize=9)


def save_samples_2d(path: Path, samples: Tensor, centers: Tensor, title: str) -> None:
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_samples_2d(ax, samples, centers, title)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)
