"""dcgan32 (batch 64) training step: the harness against a plain hand-written PyTorch loop.

Everything is measured in this one process, in interleaved rounds (median of rounds), on random
CIFAR-shaped uint8 data kept on the device as the harness keeps small datasets:
- `plain fp32`: the reference, an idiomatic DCGAN loop (alternating D then G step, default Adam,
  no per-step host sync), written here without any harness code;
- the harness's own `train_step` for `bce` and `bce+gdpp@1` in fp32, and on CUDA also with bf16
  autocast and with bf16 + torch.compile.
Ratios: harness / plain in steps per second (>= 1 means the harness is not slower), and the GDPP
overhead (bce+gdpp time / bce time - 1).

    python benchmarks/perf/train_step.py [--device cpu|cuda] [--steps 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from gdpp_bench.data.images import TensorSampler, to_signed_unit
from gdpp_bench.models import MODELS
from gdpp_bench.suites import EvalConfig, RunSpec, TrainConfig
from gdpp_bench.train import build_step, train_step

BATCH = 64
IMAGES = 50_000


def random_images(device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (IMAGES, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)


def plain_stepper(images: torch.Tensor, device: torch.device):
    """The reference loop: DCGAN as the PyTorch example writes it, fp32, data on the device."""
    torch.manual_seed(0)
    netG, netD = (m.to(device) for m in MODELS.get("dcgan32")((3, 32, 32)))
    opt_g = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones = torch.ones(BATCH, device=device)
    zeros = torch.zeros(BATCH, device=device)

    def step() -> None:
        index = torch.randint(0, len(images), (BATCH,), device=device)
        real = images[index].float().div(127.5).sub(1)
        fake = netG(torch.randn(BATCH, 100, device=device))
        opt_d.zero_grad(set_to_none=True)
        d_loss = F.binary_cross_entropy_with_logits(netD(real).logits, ones) \
            + F.binary_cross_entropy_with_logits(netD(fake.detach()).logits, zeros)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(netD(fake).logits, ones).backward()
        opt_g.step()

    return step


def harness_stepper(images: torch.Tensor, device: torch.device, variant: str, precision: str,
                    compiled: bool):
    train = TrainConfig(steps=10**9, batch_size=BATCH, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                        precision=precision, compile=compiled)
    spec = RunSpec(suite="bench", dataset="cifar10", model="dcgan32", variant=variant, seed=0,
                   train=train, eval=EvalConfig(metrics=()), key="bench")
    step = build_step(spec, device, TensorSampler(images))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")

    def run() -> None:
        with autocast:
            train_step(step)

    return run


def steps_per_second(step, steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False  # the plain reference is plain fp32
        torch.backends.cudnn.allow_tf32 = False
    images = random_images(device)
    assert to_signed_unit(images[:1]).min() >= -1  # same scaling as the harness's sampler
    configs = [("fp32", False)] + ([("bf16", False), ("bf16", True)] if device.type == "cuda" else [])
    steppers = {"plain fp32": plain_stepper(images, device)}
    for precision, compiled in configs:
        for variant in ("bce", "bce+gdpp@1"):
            label = f"{variant} {precision}{' compiled' if compiled else ''}"
            steppers[label] = harness_stepper(images, device, variant, precision, compiled)
    for step in steppers.values():
        steps_per_second(step, args.warmup, device)  # warm-up (and compilation)
    rates: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            rates[name].append(steps_per_second(step, args.steps, device))
    median = {name: statistics.median(values) for name, values in rates.items()}
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"dcgan32 batch {BATCH} on {device} ({where}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; {args.rounds} rounds x {args.steps} steps, median")
    print(f"{'configuration':<28} {'it/s':>8} {'vs plain fp32':>14}")
    for name, rate in median.items():
        print(f"{name:<28} {rate:8.1f} {rate / median['plain fp32']:13.2f}x")
    for precision, compiled in configs:
        suffix = f" {precision}{' compiled' if compiled else ''}"
        overhead = median[f"bce{suffix}"] / median[f"bce+gdpp@1{suffix}"] - 1
        print(f"GDPP overhead{suffix}: {100 * overhead:+.1f}% step time")


if __name__ == "__main__":
    main()
