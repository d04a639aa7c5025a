"""Whole-step CUDA graphs: a training step replayed as one launch instead of hundreds.

A DCGAN step at batch 64 does well under a millisecond of arithmetic on a current GPU but issues a few
hundred kernels; launched one by one from Python it is bound by launch latency (~100 it/s measured on
an H200, see benchmarks/RESULTS.md). Captured once and replayed, the same kernels run back to back.

What a captured step may not do: synchronise with the host (GDPP's `eigh` checks its result on the
host), copy batches from the host (the streaming CelebA sampler), or draw random numbers from a
generator the graph does not know (the step's generator is registered before capture).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import Tensor

from gdpp_bench.losses.terms import host_syncing_terms

WARMUP_STEPS = 3  # eager steps on a side stream first: cuDNN autotuning, optimiser state, compilation


def graph_blocker(device: torch.device, term_names: Iterable[str], sampler: object) -> str | None:
    """Why a step on `device` with these terms and this sampler cannot be captured; None if it can."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, not {device.type}"
    syncing = sorted(set(term_names) & set(host_syncing_terms()))
    if syncing:
        return f"{', '.join(syncing)} synchronises with the host (eigh)"
    if not getattr(sampler, "device_only", False):
        return f"{type(sampler).__name__} copies batches from the host"
    return None


class GraphedStep:
    """Calls `step` eagerly for WARMUP_STEPS calls, then captures it and replays the capture.

    Every call is one real training step (warm-up calls included). The returned tensor is the graph's
    static output: it is overwritten by the next call, so consume it before calling again.
    """

    def __init__(self, step: Callable[[], Tensor], generators: Iterable[torch.Generator]) -> None:
        self.step = step
        self.generators = list(generators)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.output: Tensor | None = None
        self.warmed = 0

    def __call__(self) -> Tensor:
        if self.graph is not None:
            self.graph.replay()
            assert self.output is not None  # set when the graph was captured
            return self.output
        if self.warmed < WARMUP_STEPS:
            self.warmed += 1
            return self._on_side_stream()
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            self.output = self.step()
        self.graph = graph
        graph.replay()  # capturing records the kernels without running them
        return self.output

    def _on_side_stream(self) -> Tensor:
        # the capture runs on a side stream; warming up on one too is what torch's docs prescribe
        main = torch.cuda.current_stream()
        side = torch.cuda.Stream()
        side.wait_stream(main)
        with torch.cuda.stream(side), warnings.catch_warnings():
            # the optimisers are built capturable; running them uncaptured first is intended here
            warnings.filterwarnings("ignore", message=".*capturable=True.*")
            output = self.step()
        main.wait_stream(side)
        output.record_stream(main)
        return output
