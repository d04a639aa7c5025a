"""DCGAN (batch 64) training step: the harness against a plain hand-written PyTorch loop.

--model dcgan32 (CIFAR-10 shaped data, the default) or dcgan28 (MNIST shaped data).

Everything is measured in this one process, in interleaved rounds (median of rounds), on random
CIFAR-shaped uint8 data kept on the device as the harness keeps small datasets:
- `plain fp32`: the reference, an idiomatic DCGAN loop (alternating D then G step, default Adam,
  torch's default backend flags, no per-step host sync), written here without any harness code;
- the harness's own step (what the training loop calls) for `bce` and `bce+gdpp@1` in fp32, and on
  CUDA also eager vs replayed from a CUDA graph, with bf16 autocast, and bf16 + torch.compile (modes
  chosen with --compile-modes). GDPP variants cannot be captured (eigh syncs) and run eagerly.
Ratios: harness / plain in steps per second (>= 1 means the harness is not slower), and the GDPP
overhead (bce+gdpp time / bce time - 1). On CUDA it also checks that the graphed step trains like the
eager one (same seed, parameters after 30 steps), and times the batched eigh of GDPP's two B x B
kernels on the GPU and through the host (--skip-eigh to leave it out).

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

from gdpp_bench import training as train_module
from gdpp_bench.data.images import TensorSampler
from gdpp_bench.models import MODELS
from gdpp_bench.suites import EvalConfig, RunSpec, TrainConfig
from gdpp_bench.training import build_step, make_stepper, step_autocast

BATCH = 64
IMAGES = 50_000
# model -> (dataset whose shape and registry entry the harness uses, image shape)
MODEL_DATA = {"dcgan32": ("cifar10", (3, 32, 32)), "dcgan28": ("mnist", (1, 28, 28))}
MODEL = "dcgan32"  # set by --model


def random_images(device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    shape = MODEL_DATA[MODEL][1]
    return torch.randint(0, 256, (IMAGES, *shape), generator=g, dtype=torch.uint8).to(device)


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
    netG, netD = (m.to(device) for m in MODELS.get(MODEL)(MODEL_DATA[MODEL][1]))
    opt_g = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones = torch.ones(BATCH, device=device)
    zeros = torch.zeros(BATCH, device=device)

    def step() -> None:
        index = torch.randint(0, len(images), (BATCH,), device=device)
        real = images[index].float().div(127.5).sub(1)
        fake = netG(torch.randn(BATCH, netG.z_dim, device=device))
        opt_d.zero_grad(set_to_none=True)
        d_loss = F.binary_cross_entropy_with_logits(
            netD(real).logits, ones
        ) + F.binary_cross_entropy_with_logits(netD(fake.detach()).logits, zeros)
        d_loss.backward()
        opt_d.step()
        opt_g.zero_grad(set_to_none=True)
        F.binary_cross_entropy_with_logits(netD(fake).logits, ones).backward()
        opt_g.step()

    def run() -> None:
        with backend_flags(tf32=False, benchmark=False):
            step()

    return run


def harness_step(
    images: torch.Tensor,
    device: torch.device,
    variant: str,
    precision: str,
    compile_mode: str,
    cuda_graph: bool,
) -> train_module.TrainStep:
    train = TrainConfig(
        steps=10**9,
        batch_size=BATCH,
        lr_g=2e-4,
        lr_d=2e-4,
        beta1=0.5,
        precision=precision,
        compile=compile_mode != "off",
        cuda_graph=cuda_graph,
    )
    spec = RunSpec(
        suite="bench",
        dataset=MODEL_DATA[MODEL][0],
        model=MODEL,
        variant=variant,
        seed=0,
        train=train,
        eval=EvalConfig(metrics=()),
        key="bench",
    )
    mode = compile_mode if compile_mode != "off" else None
    return build_step(spec, device, TensorSampler(images), compile_mode=mode)


def harness_stepper(
    step: train_module.TrainStep, precision: str, deterministic: bool = False
) -> Callable[[], None]:
    """One harness training step, as the training loop runs it (graph replay where it can)."""
    run_step = make_stepper(step)
    autocast = step_autocast(step, precision)
    fast = step.rng.device.type == "cuda" and not deterministic

    def run() -> None:
        with backend_flags(tf32=fast, benchmark=fast), autocast:
            run_step()

    return run


def check_graph(images: torch.Tensor, device: torch.device, steps: int = 30) -> None:
    """The graphed bce step must train like the eager one: same seed, compare G's parameters.

    Two eager runs give the floor set by non-deterministic kernels; with cuDNN deterministic, no
    autotuning and no TF32, eager and graphed runs should agree to rounding.
    """
    for deterministic in (False, True):
        torch.backends.cudnn.deterministic = deterministic
        params = []
        for graph in (False, False, True):
            step = harness_step(images, device, "bce", "fp32", "off", graph)
            if not params:
                initial = torch.cat([p.detach().flatten().clone() for p in step.generator.parameters()])
            run = harness_stepper(step, "fp32", deterministic)
            for _ in range(steps):
                run()
            params.append(torch.cat([p.detach().flatten() for p in step.generator.parameters()]))
        moved = (params[0] - initial).norm().item()
        rerun, graphed = ((p - params[0]).norm().item() / moved for p in params[1:])
        print(
            f"graph check ({steps} bce steps, seed 0, deterministic={deterministic}): distance "
            f"trained {moved:.4g}; eager rerun differs by {rerun:.3%} of it, graphed run by {graphed:.3%}"
        )
    torch.backends.cudnn.deterministic = False


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
    parser.add_argument("--model", choices=sorted(MODEL_DATA), default="dcgan32")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument(
        "--compile-modes",
        default="default,max-autotune-no-cudagraphs,reduce-overhead",
        help="torch.compile modes to measure on CUDA (comma-separated)",
    )
    parser.add_argument("--skip-eigh", action="store_true", help="skip the eigh timings")
    parser.add_argument("--check-only", action="store_true", help="only the graph-vs-eager check")
    args = parser.parse_args()
    global MODEL
    MODEL = args.model
    device = torch.device(args.device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
    print(
        f"{MODEL} batch {BATCH} on {device} ({where}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} CPU threads; {args.rounds} rounds x {args.steps} steps, median"
    )
    if device.type == "cuda" and not args.skip_eigh:
        eigh_timings(device)
    images = random_images(device)
    configs = [("fp32", "off", False)]  # (precision, compile mode, CUDA graph)
    if device.type == "cuda":
        check_graph(images, device)
        if args.check_only:
            return
        configs += [("fp32", "off", True), ("bf16", "off", False), ("bf16", "off", True)]
        configs += [("bf16", m, g) for m in args.compile_modes.split(",") if m for g in (False, True)]
    steppers: dict[str, Callable[[], None]] = {"plain fp32": plain_stepper(images, device)}
    for precision, mode, graph in configs:
        for variant in ("bce", "bce+gdpp@1"):
            label = f"{variant} {precision} compile={mode}"
            try:
                step = harness_step(images, device, variant, precision, mode, graph)
                if graph and step.graph_blocker:  # measured already as the eager configuration
                    continue
                label += " graph" if graph else ""
                steppers[label] = harness_stepper(step, precision)
                steps_per_second(steppers[label], args.warmup, device)  # warm-up (and compilation)
            except Exception as exc:  # one configuration failing must not lose the others' numbers
                first_line = (str(exc).strip().splitlines() or [""])[0][:300]
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
    fastest = max((n for n in median if n.startswith("bce ")), key=median.get)
    print(
        f"fastest bce configuration: {fastest}: {median[fastest]:.1f} it/s, "
        f"{median[fastest] / median['plain fp32']:.2f}x the plain fp32 loop"
    )


if __name__ == "__main__":
    main()
