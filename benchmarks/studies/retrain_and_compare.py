"""Re-train recorded runs from their config.json with the code on PYTHONPATH and compare them with
the records bit for bit: metrics.json values, evals.csv, log.csv (less its speed column) and every
checkpoint tensor. A provenance check for a run whose recorded git revision cannot be rebuilt
(`REV+dirty`): if the clean code gives the same bits, the uncommitted changes did not touch it.

    PYTHONPATH=CODE python benchmarks/studies/retrain_and_compare.py SUITE_DIR OUT RUN [RUN ...]

RUN is a run folder relative to SUITE_DIR (e.g. bce/trial-003/seed-1000). The runs are trained on
one torch thread, as the CPU studies' are (a run's float sums depend on its thread count, which
its config.json records); exit code 1 if any differs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import torch

from gdpp_bench.checkpoint import flat_tensors, load_checkpoint
from gdpp_bench.config import RunSpec
from gdpp_bench.pipeline import run_one
from gdpp_bench.rundir import RunDir


def compare(recorded: RunDir, again: RunDir) -> dict[str, bool]:
    """Which of the two runs' records are equal."""
    logs = [pd.read_csv(run.log) for run in (recorded, again)]
    columns = [c for c in logs[0].columns if c != "imgs_per_s"]  # a speed, not a result
    weights = [flat_tensors(load_checkpoint(run.checkpoint)) for run in (recorded, again)]
    return {
        "metrics": json.loads(recorded.metrics.read_text())["values"]
        == json.loads(again.metrics.read_text())["values"],
        "evals": pd.read_csv(recorded.evals).equals(pd.read_csv(again.evals)),
        "log": logs[0][columns].equals(logs[1][columns]),
        "checkpoint": weights[0].keys() == weights[1].keys()
        and all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0]),
    }


def main(suite_dir: Path, out: Path, keys: list[str]) -> int:
    different = 0
    for key in keys:
        recorded = RunDir(suite_dir / key)
        config = json.loads(recorded.config.read_text())
        spec = RunSpec.from_dict(config["spec"])
        threads = torch.get_num_threads()
        torch.set_num_threads(int(config["environment"]["torch_threads"]))
        try:
            run_one(spec, out, None)
        finally:
            torch.set_num_threads(threads)
        equal = compare(recorded, RunDir.for_spec(out, spec))
        different += not all(equal.values())
        recorded_git = config["environment"]["git"]
        print(
            f"{key} (recorded at {recorded_git}): "
            + ", ".join(f"{k} {'equal' if v else 'DIFFERENT'}" for k, v in equal.items())
        )
    return 1 if different else 0


if __name__ == "__main__":
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]))
