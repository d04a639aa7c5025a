"""CPU time of a 2D run's per-evaluation sample picture (`samples.save_samples_2d`: fixed margins)
against the same picture laid out by matplotlib's tight_layout, as it was drawn before.

2,500 points over ring8's mode centres, written as PNG to a temporary folder. Process time on one
thread, median of the rounds (10 pictures a round).

    OMP_NUM_THREADS=1 python benchmarks/perf/sample_picture.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from gdpp_bench.data import DATASETS
from gdpp_bench.rundir import write_atomic
from gdpp_bench.samples import draw_samples_2d, pyplot, save_samples_2d

PICTURES = 10


def tight_layout_picture(path: Path, samples: torch.Tensor, centers: torch.Tensor, title: str) -> None:
    """The reference: save_samples_2d as it was, with tight_layout."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4, 4))
    draw_samples_2d(ax, samples, centers, title)
    ax.legend(loc="upper right", fontsize=7)
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png", dpi=120))
    plt.close(fig)


def _per_picture(draw, folder: Path, samples: torch.Tensor, centers: torch.Tensor, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.process_time()
        for index in range(PICTURES):
            draw(folder / f"{index}.png", samples, centers, f"ring8: bce, seed 0, step {index}")
        times.append((time.process_time() - started) / PICTURES)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    centers = DATASETS.get("ring8").centers_tensor()
    draw = torch.Generator().manual_seed(0)
    samples = centers[torch.randint(0, len(centers), (2_500,), generator=draw)]
    samples = samples + 0.05 * torch.randn(samples.shape, generator=draw)
    with tempfile.TemporaryDirectory() as folder:
        save_samples_2d(Path(folder) / "warm.png", samples, centers, "warm-up")
        reference = _per_picture(tight_layout_picture, Path(folder), samples, centers, args.rounds)
        ours = _per_picture(save_samples_2d, Path(folder), samples, centers, args.rounds)
    print(f"tight_layout {reference:.3f} CPU-s a picture, fixed margins {ours:.3f}: {reference / ours:.2f}x")


if __name__ == "__main__":
    main()
