"""Whole runs through `train()` with and without CUDA graphs: speed and that the results still hold.

For each variant, trains the ring8 suite's recipe (mlp2d, batch 512) for --steps steps twice from the
same seed, eagerly and with `cuda_graph` on, and prints it/s (from the run's recorded training wall
time), how the step ran (`step_execution` in DONE) and the suite's 2D mode metrics of the final generator.
Variants that cannot be captured (GDPP) run eagerly both times and show it.

    python benchmarks/perf/graph_train.py [--device cuda] [--steps 3000]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import tempfile
from pathlib import Path

import torch

from gdpp_bench.evaluation import evaluate_run
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import expand, load_suite
from gdpp_bench.training import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--variants", default="bce,wgan-gp,bce+gdpp-si")
    args = parser.parse_args()
    device = torch.device(args.device)
    suite = load_suite("ring8")
    print(f"{'variant':<14} {'graph':<6} {'it/s':>8} {'modes':>6} {'hq %':>6}  status / step execution")
    with tempfile.TemporaryDirectory() as tmp:
        for variant in args.variants.split(","):
            for graph in (False, True):
                (spec,) = expand(suite, [variant], [0], args.steps, cuda_graph=graph)
                spec = dataclasses.replace(spec, eval=dataclasses.replace(spec.eval, every=0))
                run_dir = RunDir(Path(tmp) / f"{variant}-{graph}")
                status = train(spec, run_dir, device)
                values = evaluate_run(run_dir, device)["values"]
                rate = status.get("step", 0) / status["train_wall_s"]
                modes, hq = values.get("modes", math.nan), values.get("hq_percent", math.nan)
                print(
                    f"{variant:<14} {graph!s:<6} {rate:8.1f} {modes:6.0f} {hq:6.1f}  "
                    f"{status['status']} / {status.get('step_execution')}"
                )


if __name__ == "__main__":
    main()
