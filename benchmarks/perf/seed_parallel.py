"""Seed-parallel training (K seeds as one batched model) against K sequential `train()` calls.

The ring8 suite's recipe (mlp2d, batch 512, simultaneous updates, its learning rates), K seeds,
S steps, no periodic evaluation, for each variant: wall time of K sequential `train()` calls and of
one `train_seed_parallel` call, in this one process, into fresh temporary result folders. It prints
the ratio (sequential / seed-parallel), the largest parameter difference between the two at the
end, and the machine (CPU count, torch threads, load average).

    python benchmarks/perf/seed_parallel.py [--seeds 8] [--steps 300] [--variants bce bce+gdpp-si]
        [--threads N]

On a CPU both sides are compute-bound at batch 512 (GEMMs, tanh, the noise RNG), so expect a ratio
near 1 on a quiet machine; with other processes on the cores, torch's OpenMP barriers stall the many
small sequential ops far more than the few large batched ones, and the ratio grows (see `uptime`).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import expand, load_suite
from gdpp_bench.training import train, train_seed_parallel


def max_param_diff(a: Path, b: Path) -> float:
    sa, sb = load_checkpoint(a), load_checkpoint(b)
    return max(
        float((sa[net][name] - sb[net][name]).abs().max())
        for net in ("generator", "discriminator")
        for name in sa[net]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--variants", nargs="+", default=["bce", "bce+gdpp-si"])
    parser.add_argument("--suite", default="ring8")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, help="torch threads [default: torch's]")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    suite = load_suite(args.suite)
    train_cfg = dataclasses.replace(suite.train, log_every=50, checkpoint_every=args.steps)
    suite = dataclasses.replace(suite, eval=dataclasses.replace(suite.eval, every=0), train=train_cfg)
    print(
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs, torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"load average {os.getloadavg()}"
    )
    print(
        f"suite {suite.name}: batch {suite.train.batch_size}, update {suite.train.update}, "
        f"{args.seeds} seeds, {args.steps} steps, device {device}"
    )
    for variant in args.variants:
        with tempfile.TemporaryDirectory() as tmp:  # warm-up (first-call costs), not timed
            warm = expand(suite, variants=[variant], seeds=list(range(args.seeds)), steps=5)
            train(warm[0], RunDir(Path(tmp) / "seq"), device)
            train_seed_parallel(warm, Path(tmp) / "par", device)
        specs = expand(suite, variants=[variant], seeds=list(range(args.seeds)), steps=args.steps)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            for spec in specs:
                train(spec, RunDir(root / "seq" / spec.suite / spec.key), device)
            sequential = time.perf_counter() - start
            start = time.perf_counter()
            statuses = train_seed_parallel(specs, root / "par", device)
            parallel = time.perf_counter() - start
            diff = max(
                max_param_diff(
                    root / "seq" / s.suite / s.key / "checkpoint.pt",
                    root / "par" / s.suite / s.key / "checkpoint.pt",
                )
                for s in specs
            )
        print(
            f"{variant:14s} sequential {sequential:7.2f} s  seed-parallel {parallel:7.2f} s  "
            f"speed-up {sequential / parallel:5.2f}x  status {sorted({s['status'] for s in statuses})}  "
            f"max |param diff| {diff:.2e}  load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
