"""Training: a run's state (`state`), the step functions (`sequential`, `seed_parallel`), the engine
that drives them (`engine`, with Ctrl-C and SIGTERM held to a step's end: `interrupts`) and the run
folder's reconciliation with the request (`reconcile`)."""

from gdpp_bench.training.engine import EvalHook, Run, Steps, drive, train
from gdpp_bench.training.reconcile import POLICIES, reconcile, refusal, training_differences
from gdpp_bench.training.seed_parallel import (
    SeedParallelSteps,
    check_seed_parallel,
    seed_groups,
    supports_seed_parallel,
    train_seed_parallel,
)
from gdpp_bench.training.sequential import SequentialSteps, make_stepper, step_autocast, train_step
from gdpp_bench.training.state import TrainStep, build_step, set_grads

__all__ = [
    "POLICIES",
    "EvalHook",
    "Run",
    "SeedParallelSteps",
    "SequentialSteps",
    "Steps",
    "TrainStep",
    "build_step",
    "check_seed_parallel",
    "drive",
    "make_stepper",
    "reconcile",
    "refusal",
    "seed_groups",
    "set_grads",
    "step_autocast",
    "supports_seed_parallel",
    "train",
    "train_seed_parallel",
    "train_step",
    "training_differences",
]
