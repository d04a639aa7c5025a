"""Pictures of generated samples: a scatter over the mode centres (2D), an image grid otherwise."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import Tensor

from gdpp_bench.rundir import write_atomic

if TYPE_CHECKING:  # matplotlib and torchvision are imported where pictures are drawn: seconds saved
    import matplotlib.pyplot as plt


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


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_samples_2d(path: Path, samples: Tensor, centers: Tensor, title: str) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_samples_2d(ax, samples, centers, title)
    ax.legend(loc="upper right", fontsize=7)
    # fixed margins that fit the tick labels and title: tight_layout took a third of the picture's
    # time, and a 2D run draws one picture per evaluation
    fig.subplots_adjust(left=0.1, right=0.94, bottom=0.07, top=0.93)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def save_samples(path: Path, samples: Tensor, dataset: Any, title: str) -> None:
    """2D points [N, 2] over the dataset's mode centres, or images [N, C, H, W] in [-1, 1] as a grid."""
    if samples.ndim == 2:
        save_samples_2d(path, samples, dataset.centers_tensor(), title)
        return
    from torchvision.utils import save_image

    images = (samples.detach().float().cpu() + 1) / 2
    nrow = max(1, int(len(images) ** 0.5))
    write_atomic(path, lambda tmp: save_image(images.clamp(0, 1), tmp, nrow=nrow, format="png"))


GEN_CHUNK = 1_000


def to_uint8(samples: Tensor) -> Tensor:
    """Generator output in [-1, 1] -> uint8 0..255 (what a saved PNG would hold), on its device."""
    return ((samples.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


@torch.no_grad()
def fixed_noise_samples(
    generator: torch.nn.Module,
    count: int,
    seed: int,
    device: torch.device,
    batch_stats_chunk: int | None = None,
) -> Tensor:
    """G's samples for a noise batch that depends only on `seed`: comparable across runs and
    checkpoints. BatchNorm uses its running statistics (eval mode), or with `batch_stats_chunk`
    the statistics of each chunk of that many samples (the official GDPP code's sampling), on a
    copy of G so that its running statistics stay untouched."""
    noise_rng = torch.Generator(device).manual_seed(seed)
    z = torch.randn(count, cast(int, generator.z_dim), generator=noise_rng, device=device)
    if batch_stats_chunk:
        sampler = copy.deepcopy(generator).train()
        with torch.no_grad():
            return torch.cat([sampler(part) for part in z.split(batch_stats_chunk)])
    was_training = generator.training
    generator.eval()
    # in chunks: 26,000 Stacked-MNIST samples at once would hold gigabytes of activations
    samples = torch.cat([generator(part) for part in z.split(GEN_CHUNK)])
    generator.train(was_training)
    return samples
