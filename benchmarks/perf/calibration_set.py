"""CPU time of one calibration-ladder set's fidelity values: Gram blocks gathered from the pool's
(computed once, gdpp_bench.metrics.feature_fidelity.PoolGrams) against the plain path that multiplies
the set's features, and the k-NN radius by topk against torch's kthvalue.

Random non-negative features of MNIST's shape (1,024-d, a 50,000-sample pool, 10,000-sample sets
and reference); a clean set (distinct members) and a within-mode-collapse set (100 distinct members
repeated). Process time on one thread, median of the rounds; ratios are plain / gathered.

    python benchmarks/perf/calibration_set.py [--pool 50000] [--samples 10000] [--dim 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from gdpp_bench.metrics.feature_fidelity import PoolGrams, RealFeatures, fidelity_from_features


def _cpu_seconds(work, *args) -> float:
    started = time.process_time()
    work(*args)
    return time.process_time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--samples", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=1_024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(1)
    draw = torch.Generator().manual_seed(0)
    pool = torch.randn(args.pool, args.dim, generator=draw).relu()
    real = RealFeatures(torch.randn(args.samples, args.dim, generator=draw).relu())
    logits = torch.randn(args.samples, 10, generator=draw)
    real.kid_within(args.samples)  # the reference's own KID sums: once per ladder, not per set
    once = _cpu_seconds(lambda: PoolGrams(pool, [real.features]))
    grams = PoolGrams(pool, [real.features])
    sets = {
        "clean": torch.randperm(args.pool, generator=draw)[: args.samples],
        "collapsed": torch.randint(100, (args.samples,), generator=draw),
    }
    print(f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print(f"pool blocks, once per ladder: {once:.1f} CPU-s")
    for name, index in sets.items():
        fake = pool[index]
        plain = [_cpu_seconds(fidelity_from_features, fake, logits, real) for _ in range(args.rounds)]
        gathered = [
            _cpu_seconds(fidelity_from_features, fake, logits, real, grams.grams(index))
            for _ in range(args.rounds)
        ]
        a, b = statistics.median(plain), statistics.median(gathered)
        print(f"{name} set: plain {a:.2f} CPU-s, gathered {b:.2f} CPU-s, ratio {a / b:.2f}")
    distances = torch.rand(args.samples, args.samples, generator=draw)
    kth = [_cpu_seconds(lambda: distances.kthvalue(4, dim=1)) for _ in range(args.rounds)]
    top = [_cpu_seconds(lambda: distances.topk(4, dim=1, largest=False)) for _ in range(args.rounds)]
    a, b = statistics.median(kth), statistics.median(top)
    print(f"4th smallest of {args.samples}^2: kthvalue {a:.2f} CPU-s, topk {b:.2f} CPU-s, ratio {a / b:.1f}")


if __name__ == "__main__":
    main()
