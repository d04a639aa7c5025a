"""Step time of bce+gdpp and bce+gdpp-si relative to bce on ring8 (B = 512, D = 128).

Every variant is measured in this one process, in interleaved rounds, through the harness's own
training step; a hand-written plain BCE loop is measured beside them as the reference.

    python benchmarks/perf/gdpp_overhead.py [--steps 200] [--rounds 5] [--batch-size 512]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import torch
import torch.nn.functional as F

from gdpp_bench.data import DATASETS
from gdpp_bench.models import MODELS
from gdpp_bench.suites import expand, load_suite
from gdpp_bench.training import build_step, train_step

VARIANTS = ["bce", "bce+gdpp@1", "bce+gdpp-si@1"]


def harness_stepper(variant: str, batch_size: int):
    suite = load_suite("ring8")
    (spec,) = expand(suite, variants=[variant], seeds=[0])
    spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, batch_size=batch_size))
    cpu = torch.device("cpu")
    step = build_step(spec, cpu, DATASETS.get("ring8").sampler(cpu, None))
    return lambda: train_step(step)


def plain_bce_stepper(batch_size: int):
    """The reference: a hand-written simultaneous BCE step, no harness code at all."""
    torch.manual_seed(0)
    generator, discriminator = MODELS.get("mlp2d")((2,))
    opt_g = torch.optim.Adam(generator.parameters(), lr=1e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.999))
    angles = torch.arange(8) * (2 * torch.pi / 8)
    centers = torch.stack([angles.cos(), angles.sin()], dim=1)

    def step():
        real = centers[torch.randint(8, (batch_size,))] + 0.01 * torch.randn(batch_size, 2)
        fake = generator(torch.randn(batch_size, 256))
        real_logits, fake_logits = discriminator(real).logits, discriminator(fake).logits
        d_loss = F.binary_cross_entropy_with_logits(
            real_logits, torch.ones_like(real_logits)
        ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
        g_loss = F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
        d_grads = torch.autograd.grad(d_loss, list(discriminator.parameters()), retain_graph=True)
        g_grads = torch.autograd.grad(g_loss, list(generator.parameters()))
        for p, g in zip(discriminator.parameters(), d_grads, strict=True):
            p.grad = g
        for p, g in zip(generator.parameters(), g_grads, strict=True):
            p.grad = g
        opt_d.step()
        opt_g.step()
        return d_loss.detach()

    return step


def time_steps(step, steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return (time.perf_counter() - started) / steps * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=512)
    args = parser.parse_args()
    steppers = {"plain bce loop": plain_bce_stepper(args.batch_size)}
    steppers |= {v: harness_stepper(v, args.batch_size) for v in VARIANTS}
    for step in steppers.values():  # warm-up
        time_steps(step, 20)
    timings: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            timings[name].append(time_steps(step, args.steps))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"batch {args.batch_size}, {args.steps} steps x {args.rounds} rounds (median)"
    )
    print(f"{'variant':<16} {'ms/step':>8} {'vs bce':>8} {'vs plain':>9}")
    for name, ms in medians.items():
        print(f"{name:<16} {ms:8.2f} {ms / medians['bce']:7.2f}x {ms / medians['plain bce loop']:8.2f}x")


if __name__ == "__main__":
    main()
