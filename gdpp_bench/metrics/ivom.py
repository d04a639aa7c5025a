"""Inference via optimization (IvOM): how closely a generator can reproduce real images.

The GDPP paper's CIFAR-10 mode-coverage measure (Elfeki et al., ICML 2019, Table 3), taken from
VEEGAN (Srivastava et al., NeurIPS 2017): for each real target image x, search the latent space for
the z whose G(z) is closest to x, and report the mean over the images of the reconstruction MSE.
A generator that drops modes cannot reproduce the images of those modes, so its IvOM is higher.
Protocol (../shared/PROTOCOLS.md, CIFAR-10): 2,000 target test images, L-BFGS on z, 25 iterations,
3 restarts, the per-image best over restarts; published IvOM: DCGAN 0.0911, WGAN-GP 0.0891,
GDPP 0.0883. `ivom` returns the per-image values; their mean is the reported number.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

OPTIMIZERS = ("lbfgs", "adam")
DEFAULT_LR = {
    # L-BFGS: lr is the initial trial step of the strong-Wolfe line search (a unit quasi-Newton
    # step, torch's default); the line search picks the actual step length.
    "lbfgs": 1.0,
    # Adam moves each coordinate by at most about lr per step, and 25 steps is a small budget. A
    # sweep of lr in {0.05, 0.1, 0.2, 0.3, 0.5, 1.0} (25 steps, one restart, dcgan28 generators
    # with calibrated BatchNorm at two output scales; targets: exact samples, mirrored samples,
    # uniform noise) had its best at 0.3-0.5, with 0.2 within ~3% of the best on mirrored samples
    # and noise; 0.05 is too slow (2-7x the MSE on exact samples), 1.0 overshoots on the sharper
    # generator. We take 0.2, the smallest value near the best: a coordinate can still move up to
    # ~5 prior standard deviations in 25 steps, like L-BFGS's unconstrained search.
    "adam": 0.2,
}
# L-BFGS's early-stopping tolerances. torch's defaults (1e-7 on the gradient, 1e-9 on changes) are
# absolute, made for losses of order 1; our losses are sums of per-image MSEs that can be tiny (a
# near-exact reconstruction, a generator with flat outputs), where the defaults can stop the search
# before it starts. With 0 only the budget (max_iter, max_eval) or an exactly zero gradient or step
# stops it.
LBFGS_TOLERANCE = 0.0
RANGE_SLACK = 1e-3  # targets may stray this far outside [-1, 1] (rounding) before we refuse them


def _per_image_mse(generator: nn.Module, z: Tensor, x: Tensor) -> Tensor:
    """MSE between G(z) and x on the [0, 1] scale, per image: float32 [B]."""
    out = generator(z)
    if out.shape != x.shape:
        raise ValueError(
            f"generator makes images of shape {tuple(out.shape[1:])} from z {tuple(z.shape)}, "
            f"but the targets are {tuple(x.shape[1:])}"
        )
    # ((G + 1) / 2 - (x + 1) / 2)^2 = ((G - x) / 2)^2
    return ((out.float() - x) * 0.5).pow(2).flatten(1).mean(1)


def _search(generator: nn.Module, x: Tensor, z0: Tensor, optimizer: str, steps: int, lr: float) -> Tensor:
    """One restart for one batch: the best per-image MSE among every z evaluated, float32 [B]."""
    z = z0.clone().requires_grad_(True)
    best = torch.full((x.shape[0],), float("inf"), device=x.device)

    def evaluate() -> Tensor:
        """Per-image losses at the current z; sets z.grad (and no other tensor's) to their sum's
        gradient, and keeps each image's best MSE so far."""
        nonlocal best
        per_image = _per_image_mse(generator, z, x)
        best = torch.fmin(best, per_image.detach())  # fmin: a NaN trial point never wins
        total = per_image.sum()
        (z.grad,) = torch.autograd.grad(total, z)
        return total.detach()

    if optimizer == "lbfgs":
        lbfgs = torch.optim.LBFGS(
            [z],
            lr=lr,
            max_iter=steps,
            line_search_fn="strong_wolfe",
            tolerance_grad=LBFGS_TOLERANCE,
            tolerance_change=LBFGS_TOLERANCE,
        )
        lbfgs.step(evaluate)
    else:
        adam = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            evaluate()
            adam.step()
    with torch.no_grad():  # the final z (Adam's last update is not evaluated by the loop)
        best = torch.fmin(best, _per_image_mse(generator, z, x))
    return best


def ivom(
    generator: nn.Module,
    targets: Tensor,
    *,
    optimizer: str = "lbfgs",
    steps: int = 25,
    restarts: int = 3,
    lr: float | None = None,
    batch_size: int = 500,
    seed: int = 0,
) -> Tensor:
    """Per-image minimum MSE over restarts, float32 [N] on the targets' device.

    Inference via optimization (VEEGAN; the GDPP paper's CIFAR-10 protocol in
    ../shared/PROTOCOLS.md: 2,000 target test images, L-BFGS on z, 25 iterations, 3 restarts,
    report the mean). Report `ivom(...).mean()`; the published values are DCGAN 0.0911,
    WGAN-GP 0.0891, GDPP 0.0883.

    targets: float images in [-1, 1], [N, C, H, W] (the generator's output range). MSE measured on
    the [0, 1] scale: mean over C, H, W of ((G(z) + 1) / 2 - (x + 1) / 2)^2, i.e. a quarter of the
    MSE on the [-1, 1] scale. The scale is our choice (the protocol does not state one); it matches
    the magnitude of the published numbers (~0.09), which are of [0, 1] images: on this scale a
    generator that only makes mid-grey scores 1/12 ~ 0.083 on uniform-noise targets.

    generator: maps z [B, generator.z_dim] to [B, C, H, W] in [-1, 1]; z ~ N(0, I). It runs in
    eval mode (BatchNorm uses its running statistics, so each image's reconstruction depends only
    on its own z); every submodule's training flag is restored afterwards. Its parameters are
    frozen during the search (requires_grad set False, then restored) and gradients are taken
    with respect to z only, so no parameter's .grad and no buffer changes.

    optimizer: "lbfgs" (the protocol's) runs torch.optim.LBFGS over a batch's z with the sum of the
    per-image losses, max_iter=steps, line_search_fn="strong_wolfe" (max_eval, the cap on function
    evaluations, stays torch's default 1.25 * steps). Batching shares L-BFGS's curvature history,
    line-search step and stopping tests across the images of a batch: an approximation to running
    L-BFGS per image, so its result depends (slightly) on batch_size. "adam" runs `steps` Adam
    steps; Adam is element-wise and the images' losses are independent, so batching is exact and
    the result does not depend on batch_size (up to floating-point reassociation).

    lr: default 1.0 for L-BFGS (the line search's initial unit step, torch's default) and 0.2 for
    Adam (see DEFAULT_LR: the best of a sweep, for the 25-step budget).

    restarts: restart r starts from z drawn as the r-th `torch.randn(N, z_dim)` call on a
    torch.Generator seeded with `seed` on the targets' device, one row per image. So an image's
    starting points do not depend on batch_size, the first k restarts are the same whatever
    `restarts` is (more restarts never raise an image's minimum), and results are deterministic
    given the seed (up to nondeterministic GPU kernels). The result per restart is the lowest MSE
    among all the z the optimizer evaluated (line-search trial points included, plus the final
    z): every one is a real G(z), and this undoes part of the batched L-BFGS approximation (a
    shared step that helps the batch's sum but hurts one image). Returns the element-wise minimum
    over restarts.

    batch_size: images optimized together. No host synchronization per step except what
    torch's L-BFGS does itself (its loss and tolerance tests).
    """
    if not isinstance(targets, Tensor) or targets.ndim != 4 or not targets.is_floating_point():
        got = f"{targets.dtype} {tuple(targets.shape)}" if isinstance(targets, Tensor) else type(targets)
        raise ValueError(f"targets must be a 4-D float tensor [N, C, H, W], got {got}")
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}; known: {', '.join(OPTIMIZERS)}")
    for name, value in (("steps", steps), ("restarts", restarts), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if lr is not None and not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    z_dim = getattr(generator, "z_dim", None)
    if isinstance(z_dim, bool) or not isinstance(z_dim, int) or z_dim < 1:
        raise ValueError(f"generator must have an integer z_dim >= 1, got {z_dim!r}")
    n, device = targets.shape[0], targets.device
    if n == 0:
        return torch.empty(0, device=device)
    if not bool(torch.isfinite(targets).all()) or float(targets.abs().max()) > 1 + RANGE_SLACK:
        raise ValueError("targets must be finite images in [-1, 1] (the generator's output range)")
    lr = DEFAULT_LR[optimizer] if lr is None else float(lr)

    params = list(generator.parameters())
    z_dtype = params[0].dtype if params and params[0].is_floating_point() else torch.float32
    rng = torch.Generator(device=device).manual_seed(seed)
    starts = [torch.randn(n, z_dim, generator=rng, device=device).to(z_dtype) for _ in range(restarts)]

    training = [(module, module.training) for module in generator.modules()]
    requires_grad = [(p, p.requires_grad) for p in params]
    try:
        generator.eval()
        for p in params:
            p.requires_grad_(False)
        with torch.inference_mode(False), torch.enable_grad():
            best = torch.empty(n, device=device)
            for start in range(0, n, batch_size):
                # clone: a fresh normal tensor even when the targets are inference tensors
                x = targets[start : start + batch_size].detach().float().clone()
                searches = [
                    _search(generator, x, z_all[start : start + batch_size], optimizer, steps, lr)
                    for z_all in starts
                ]
                best[start : start + batch_size] = torch.stack(searches).amin(dim=0)
    finally:
        for p, flag in requires_grad:
            p.requires_grad_(flag)
        for module, flag in training:
            module.training = flag
    return best


__all__ = ["DEFAULT_LR", "OPTIMIZERS", "ivom"]
