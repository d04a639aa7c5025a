"""Evaluation wall time of the fidelity metric with and without the real set's cached statistics.

One untrained generator of the dataset's default model is evaluated with the registered `fidelity`
metric (FID/IS/KID/PR via torch-fidelity, density/coverage) exactly as `gdpp-bench evaluate` does:
- cold: the reference set's cache files (features, FID statistics, k-NN radii) are deleted first, so
  the real images are loaded, passed through the extractor and measured;
- warm: the same evaluation again with those files in place.
Rounds alternate cold and warm; the medians and their ratio are printed.

    python benchmarks/perf/eval_cache.py [--dataset mnist] [--samples 10000] [--rounds 3]
        [--device cpu|cuda] [--data-root ../shared/datasets] [--inception-weights PATH]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch

from gdpp_bench.data import DATASETS, dataset_for
from gdpp_bench.metrics import EvalContext, EvalOptions, compute_metrics
from gdpp_bench.metrics import fidelity as measure
from gdpp_bench.models import MODELS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--samples", type=int, default=10_000, help="generated and real samples")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--data-root", default="../shared/datasets")
    parser.add_argument("--inception-weights")
    args = parser.parse_args()
    device = torch.device(args.device)
    dataset = DATASETS.get(args.dataset)
    torch.manual_seed(0)
    generator, _ = MODELS.get(dataset.default_model)(dataset.shape)
    generator.to(device)
    options = EvalOptions(inception_weights=args.inception_weights)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    print(
        f"fidelity metric on {args.dataset}, {args.samples} generated vs {args.samples} real, {device} "
        f"({where}), torch {torch.__version__}, {torch.get_num_threads()} threads, {args.rounds} rounds"
    )

    def evaluate() -> float:
        ctx = EvalContext(
            generator,
            dataset,
            device,
            args.samples,
            seed=0,
            data_root=args.data_root,
            fidelity_samples=args.samples,
            real_samples=args.samples,
            options=options,
        )
        started = time.perf_counter()
        values = compute_metrics(["fidelity"], ctx)
        if device.type == "cuda":
            torch.cuda.synchronize()
        elapsed = time.perf_counter() - started
        print(f"  {elapsed:7.2f} s  fid {values['fid']:.4g}  coverage {values['coverage']:.3f}")
        return elapsed

    extractor = measure.extractor_for(args.dataset, args.data_root, args.inception_weights)
    dataset = dataset_for(args.dataset)
    real = measure.real_reference(dataset, args.data_root, "train", args.samples)
    prefix = measure.reference_name(dataset, args.data_root, "train", real, extractor)
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(args.rounds):
        for stale in measure.fidelity_cache_dir().glob(f"{prefix}-*"):
            stale.unlink()
        print("cold (real statistics computed):")
        timings["cold"].append(evaluate())
        print("warm (real statistics cached):")
        timings["warm"].append(evaluate())
    cold, warm = statistics.median(timings["cold"]), statistics.median(timings["warm"])
    print(
        f"median cold {cold:.2f} s, warm {warm:.2f} s: cached statistics make evaluation "
        f"{cold / warm:.2f}x faster"
    )


if __name__ == "__main__":
    main()
