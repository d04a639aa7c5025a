"""dcgan32 (batch 64) training step: the harness against a plain hand-written PyTorch loop.

Everything is measured in this one process, in interleaved rounds (median of rounds), on random
CIFAR-shaped uint8 data kept on the device as the harness keeps small datasets:
- `plain fp32`: the reference, an idiomatic DCGAN loop (alternating D then G step, default Adam,
  torch's default backend flags, no per-step host sync), written here without any harness code;
- the harness's own `train_step` for `bce` and `bce+gdpp@1` in fp32, and on CUDA also with bf16
  autocast, and bf16 + torch.compile (modes chosen with --compile-modes).
Ratios: harness / plain in steps per second (>= 1 means the harness is not slower), and the GDPP
overhead (bce+gdpp time / bce time - 1). On CUDA it also times the batched eigh of GDPP's two
B x B kernels on the GPU and through the host (--skip-eigh to leave it out).

    python benchmarks/perf/train_step.py [--device cpu|cuda] [--steps 20] [--rounds 5]
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
import time
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

from gdpp_bench import train as train_module
from gdpp_bench.data.images import TensorSampler
from gdpp_bench.models import MODELS
from gdpp_bench.suites import EvalConfig, RunSpec, TrainConfig
from gdpp_bench.train import build_step, train_step

BATCH = 64
IMAGES = 50_000


def random_images(device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (IMAGES, 3, 32, 32), generator=g, dtype=torch.uint8).to(device)


@contextlib.contextmanager
def backend_flags(tf32: bool, benchmark: bool) -> Iterator[None]:
    """The reference runs with torch's defaults, the harness with what build_step sets on CUDA."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark
    torch.backends.cuda.matmul.allow_tf32 = tf32  # cudnn.allow_tf32 is True in both (its default)
    torch.backends.cudnn.benchmark = benchmark
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.benchmark = saved


def plain_stepper(images: torch.Tensor, device: torch.device) -> Callable[[], None]:
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

    def run() -> None:
        with backend_flags(tf32=False, benchmark=False):
            step()

    return run


def harness_stepper(images: torch.Tensor, device: torch.device, variant: str, precision: str,
                    compile_mode: str | None) -> Callable[[], None]:
    train_module.COMPILE_MODE = compile_mode if compile_mode != "off" else None
    train = TrainConfig(steps=10**9, batch_size=BATCH, lr_g=2e-4, lr_d=2e-4, beta1=0.5,
                        precision=precision, compile=compile_mode not in (None, "off"))
    spec = RunSpec(suite="bench", dataset="cifar10", model="dcgan32", variant=variant, seed=0,
                   train=train, eval=EvalConfig(metrics=()), key="bench")
    step = build_step(spec, device, TensorSampler(images))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    cuda = device.type == "cuda"

    def run() -> None:
        with backend_flags(tf32=cuda, benchmark=cuda), autocast:
            train_step(step)

    return run


def steps_per_second(step: Callable[[], None], steps: int, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - started)


def eigh_timings(device: torch.device, repeats: int = 50) -> None:
    """ms per batched eigh of two n x n cosine kernels, on the GPU and through the host."""
    print(f"{'n':>5} {'eigh on GPU ms':>15} {'via host ms':>12}")
    for n in (64, 128, 256, 512):
        u = F.normalize(torch.randn(2, n, 128 if n > 128 else 4096, device=device), dim=2)
        kernels = u @ u.transpose(1, 2)
        timings = []
        for route in ("gpu", "host"):
            def once(route: str = route, kernels: torch.Tensor = kernels) -> None:
                if route == "gpu":
                    torch.linalg.eigh(kernels)
                else:
                    values, vectors = torch.linalg.eigh(kernels.cpu())
                    values.to(device), vectors.to(device)
            once()
            torch.cuda.synchronize()
            started = time.perf_counter()
            for _ in range(repeats):
                once()
            torch.cuda.synchronize()
            timings.append((time.perf_counter() - started) / repeats * 1000)
        print(f"{n:>5} {timings[0]:15.3f} {timings[1]:12.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--compile-modes", default="default,max-autotune-no-cudagraphs,reduce-overhead",
                        help="torch.compile modes to measure on CUDA (comma-separated)")
    parser.add_argument("--skip-eigh", action="store_true", help="skip the eigh timings")
    args = parser.parse_args()
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(f"dcgan32 batch {BATCH} on {device} ({where}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads; {args.rounds} rounds x {args.steps} steps, median")
    if device.type == "cuda" and not args.skip_eigh:
        eigh_timings(device)
    images = random_images(device)
    configs = [("fp32", "off")]  # (precision, compile mode)
    if device.type == "cuda":
        configs += [("bf16", "off")] + [("bf16", m) for m in args.compile_modes.split(",") if m]
    steppers: dict[str, Callable[[], None]] = {"plain fp32": plain_stepper(images, device)}
    for precision, mode in configs:
        for variant in ("bce", "bce+gdpp@1"):
            label = f"{variant} {precision} compile={mode}"
            try:
                steppers[label] = harness_stepper(images, device, variant, precision, mode)
                steps_per_second(steppers[label], args.warmup, device)  # warm-up (and compilation)
            except Exception as exc:  # one configuration failing must not lose the others' numbers
                first_line = (str(exc).strip().splitlines() or [""])[0][:200]
                print(f"{label}: failed: {type(exc).__name__}: {first_line}")
                steppers.pop(label, None)
    steps_per_second(steppers["plain fp32"], args.warmup, device)
    rates: dict[str, list[float]] = {name: [] for name in steppers}
    for _ in range(args.rounds):
        for name, step in steppers.items():
            rates[name].append(steps_per_second(step, args.steps, device))
    median = {name: statistics.median(values) for name, values in rates.items()}
    print(f"{'configuration':<58} {'it/s':>8} {'vs plain fp32':>14}")
    for name, rate in median.items():
        print(f"{name:<58} {rate:8.1f} {rate / median['plain fp32']:13.2f}x")
    for name in median:
        if name.startswith("bce+gdpp@1") and name.replace("bce+gdpp@1", "bce", 1) in median:
            base = median[name.replace("bce+gdpp@1", "bce", 1)]
            print(f"GDPP overhead ({name[11:]}): {100 * (base / median[name] - 1):+.1f}% step time")


if __name__ == "__main__":
    main()
