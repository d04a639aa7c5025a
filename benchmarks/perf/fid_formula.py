"""CPU time of one FID from two sets' statistics: torch-fidelity's formula (the general eigenvalues
of S1 S2) against the evaluation path's (`frechet_from_statistics`: the symmetric eigenvalues of
R S1 R with R = sqrt(S2), the real set's square root cached with its statistics).

"warm" is a periodic evaluation after the first (the root read from the cache), "cold" the first
one (the root computed too). Random full-rank covariances of the feature extractors' widths
(1,024: the MNIST classifier; 2,048: Inception-v3; 3,072: Stacked-MNIST's three channels).
Process time with numpy's BLAS on one thread (run with OMP_NUM_THREADS=1), median of the rounds.

    OMP_NUM_THREADS=1 python benchmarks/perf/fid_formula.py [--dims 1024,2048,3072] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
from torch_fidelity.metric_fid import fid_statistics_to_metric

from gdpp_bench.metrics.fidelity import frechet_from_statistics, psd_sqrt


def _statistics(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {"mu": rows.mean(axis=0), "sigma": np.cov(rows, rowvar=False)}


def _median_cpu(work, rounds: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(rounds):
        started = time.process_time()
        value = work()
        times.append(time.process_time() - started)
    return statistics.median(times), value


def _row(dim: int, rounds: int) -> str:
    draw = np.random.default_rng(dim)
    fake, real = (_statistics(draw.standard_normal((dim + extra, dim))) for extra in (500, 900))
    root = psd_sqrt(real["sigma"])
    theirs, expected = _median_cpu(
        lambda: fid_statistics_to_metric(fake, real, False)["frechet_inception_distance"], rounds
    )
    warm, ours = _median_cpu(lambda: frechet_from_statistics(fake, real, root), rounds)
    cold, _ = _median_cpu(lambda: frechet_from_statistics(fake, real, psd_sqrt(real["sigma"])), rounds)
    ratios = f"{theirs / warm:.1f} | {theirs / cold:.1f} | {abs(ours - expected) / expected:.1e}"
    return f"| {dim} | {theirs:.2f} CPU-s | {warm:.2f} | {cold:.2f} | {ratios} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="1024,2048,3072")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}, median of {args.rounds}")
    print(
        "| dim | torch-fidelity | ours, warm | ours, cold | warm ratio | cold ratio | relative difference |"
    )
    print("|---|---|---|---|---|---|---|")
    for dim in (int(d) for d in args.dims.split(",")):
        print(_row(dim, args.rounds))


if __name__ == "__main__":
    main()
