"""CPU time of one FID of a generated set against the real set's statistics: torch-fidelity's formula
(the general eigenvalues of S1 S2) against the evaluation path's (`frechet_distance`: the symmetric
eigenvalues of X S2 X^T where the set has n <= d samples, else of R S1 R with R = sqrt(S2), the real
set's square root cached with its statistics).

"warm" is a periodic evaluation after the first (the root read from the cache), "cold" the first
one (the root computed too; the n <= d path needs none). Random features of the extractors' widths
(1,024: the MNIST classifier; 2,048: Inception-v3; 3,072: Stacked-MNIST's three channels), the real
set d + 900 samples, the generated set d + 500 (full rank) or 500.
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

from gdpp_bench.metrics.fidelity import frechet_distance, psd_sqrt


def _statistics(rows: np.ndarray) -> dict[str, np.ndarray]:
    return {"mu": rows.mean(axis=0), "sigma": np.cov(rows, rowvar=False)}


def _median_cpu(work, rounds: int) -> tuple[float, float]:
    times, value = [], 0.0
    for _ in range(rounds):
        started = time.process_time()
        value = work()
        times.append(time.process_time() - started)
    return statistics.median(times), value


def _row(dim: int, count: int, rounds: int) -> str:
    draw = np.random.default_rng(dim)
    fake_rows, real_rows = draw.standard_normal((count, dim)), draw.standard_normal((dim + 900, dim))
    fake, real = _statistics(fake_rows), _statistics(real_rows)
    root = psd_sqrt(real["sigma"])
    theirs, expected = _median_cpu(
        lambda: fid_statistics_to_metric(fake, real, False)["frechet_inception_distance"], rounds
    )
    warm, ours = _median_cpu(lambda: frechet_distance(fake_rows, real, lambda: root), rounds)
    cold, _ = _median_cpu(lambda: frechet_distance(fake_rows, real, lambda: psd_sqrt(real["sigma"])), rounds)
    ratios = f"{theirs / warm:.1f} | {theirs / cold:.1f} | {abs(ours - expected) / expected:.1e}"
    return f"| {dim} | {count} | {theirs:.2f} CPU-s | {warm:.2f} | {cold:.2f} | {ratios} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dims", default="1024,2048,3072")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{platform.processor() or platform.machine()}, numpy {np.__version__}, median of {args.rounds}")
    print(
        "| dim | n | torch-fidelity | ours, warm | ours, cold | warm ratio | cold ratio | rel. difference |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for dim in (int(d) for d in args.dims.split(",")):
        for count in (dim + 500, 500):
            print(_row(dim, count, args.rounds))


if __name__ == "__main__":
    main()
