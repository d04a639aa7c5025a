"""A run's training state: models, optimisers, RNG stream and the settings one step reads."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import Tensor, nn

from gdpp_bench.config import RunSpec
from gdpp_bench.cuda_graph import graph_blocker
from gdpp_bench.data import dataset_of
from gdpp_bench.losses import ADVERSARIAL, TERM_DIAGNOSTICS, TERMS, AdversarialLoss
from gdpp_bench.models import MODELS
from gdpp_bench.models.modifiers import check_batch_size, discriminator_options

MIXTURE_LATENT_STD = 0.2  # the official Stacked-MNIST script's zsig
MIXTURE_CENTRES_SEED_OFFSET = 7_919  # the centres' own stream, apart from training noise


@dataclass
class TrainStep:
    """What one training step needs; built once per run."""

    generator: nn.Module
    discriminator: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    adversarial: AdversarialLoss
    terms: list[tuple[str, Callable[..., Any], float]]
    sample_real: Callable[[int, torch.Generator], Tensor]
    rng: torch.Generator
    batch_size: int
    d_steps: int
    update: str  # the train.update scheme: alternating, simultaneous or g-first
    d_targets: tuple[float, float]  # D's labels for real and fake samples
    g_target: float  # the label G's loss gives its samples
    latent_centres: Tensor | None  # the "mixture" latent's fixed centre per batch position
    post_update_real: bool  # alternating: terms compare with the updated D's real features
    graph_blocker: str | None  # why the step runs eagerly; None = captured in a CUDA graph
    # the latest step's diagnostics of each term that has a log diagnostic (TERM_DIAGNOSTICS)
    term_diagnostics: dict[str, Any] = field(default_factory=dict)

    def noise(self) -> Tensor:
        z_dim = self.generator.z_dim
        z = torch.randn(self.batch_size, cast(int, z_dim), generator=self.rng, device=self.rng.device)
        if self.latent_centres is not None:
            return self.latent_centres + MIXTURE_LATENT_STD * z
        return z

    def log_columns(self) -> list[str]:
        return ["d_loss", "g_loss", "d_real", "d_fake", "gp"] + [name for name, _, _ in self.terms]

    def diagnostic_terms(self) -> list[str]:
        """Terms with a log diagnostic, whose columns follow imgs_per_s in log.csv."""
        return [name for name, _, _ in self.terms if name in TERM_DIAGNOSTICS]


def set_grads(params: Sequence[Tensor], loss: Tensor, retain_graph: bool = False) -> None:
    """params' .grad = d(loss)/d(params), computing no gradient for any other module."""
    grads = torch.autograd.grad(loss, params, retain_graph=retain_graph)
    for param, grad in zip(params, grads, strict=True):
        param.grad = grad


def build_step(
    spec: RunSpec, device: torch.device, sampler: Any, compile_mode: str | None = None
) -> TrainStep:
    """Models, optimisers and RNG of a fresh run, drawing real batches from `sampler`;
    `compile_mode` is torch.compile's mode where the run compiles (None: torch's default)."""
    variant = spec.variant
    torch.manual_seed(spec.seed)
    data_shape = dataset_of(spec).shape
    cfg = spec.train
    options = discriminator_options(variant.discriminator)
    check_batch_size(options, cfg.batch_size)
    generator, discriminator = MODELS.get(spec.model)(data_shape, options)
    fused = device.type == "cuda"
    term_names = [name for name, _ in variant.terms]
    blocker = graph_blocker(device, term_names, sampler) if cfg.cuda_graph else "cuda_graph = false"
    if cfg.compile:
        # D is called on real, detached-fake and fake (grad) inputs, and on interpolates for
        # WGAN-GP: each a guard variant; the default limit of 8 sent it back to eager mode
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    for module in (generator, discriminator):
        module.to(device)
        if fused and len(data_shape) == 3:
            module.to(memory_format=torch.channels_last)
        if cfg.compile:
            module.compile(mode=compile_mode)
    if fused:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True

    def adam(module: nn.Module, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(
            module.parameters(),
            lr=lr,
            betas=(cfg.beta1, cfg.beta2),
            eps=cfg.eps,
            fused=fused,
            capturable=blocker is None,
        )

    return TrainStep(
        generator=generator,
        discriminator=discriminator,
        opt_g=adam(generator, cfg.lr_g),
        opt_d=adam(discriminator, cfg.lr_d),
        adversarial=ADVERSARIAL.get(variant.adversarial),
        terms=[(name, TERMS.get(name), weight) for name, weight in variant.terms],
        sample_real=sampler.sample,
        rng=torch.Generator(device).manual_seed(spec.seed),
        batch_size=cfg.batch_size,
        d_steps=cfg.resolved_d_steps(variant.adversarial),
        update=cfg.update,
        d_targets=(cfg.d_real_target, cfg.d_fake_target),
        g_target=cfg.g_target,
        latent_centres=_latent_centres(cfg, spec.seed, cfg.batch_size, cast(int, generator.z_dim), device),
        post_update_real=cfg.term_real_features == "post-update",
        graph_blocker=blocker,
    )


def _latent_centres(cfg: Any, seed: int, batch_size: int, z_dim: int, device: torch.device) -> Tensor | None:
    """The "mixture" latent's centres: U(-1, 1) [batch, z_dim] from the run's seed, never trained."""
    if cfg.latent != "mixture":
        return None
    rng = torch.Generator(device).manual_seed(seed + MIXTURE_CENTRES_SEED_OFFSET)
    return torch.rand(batch_size, z_dim, generator=rng, device=device) * 2 - 1
