"""Inference via optimization (IvOM): reconstruction quality, restarts, determinism, batching,
the generator left as it was, and input validation. Tiny dcgan28 generators on the CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from gdpp_bench.metrics.ivom import ivom
from gdpp_bench.models import MODELS

N_IMAGES = 8


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: a second intra-op thread gains nothing, and when another process
    shares the 2 cores, OpenMP's waiting makes 2 threads ~40x slower than 1."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def calibrated_generator(seed: int = 0) -> nn.Module:
    """A dcgan28 generator whose BatchNorm running statistics are those of its own activations
    (as after training), so its eval-mode outputs vary across z instead of being ~constant.
    Left in training mode, as after a training step."""
    torch.manual_seed(seed)
    generator, _ = MODELS.get("dcgan28")((1, 28, 28))
    with torch.no_grad():
        for module in generator.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = None  # one pass sets the running stats to the batch's
        generator(torch.randn(256, generator.z_dim))
    return generator


@pytest.fixture(scope="module")
def generator() -> nn.Module:
    return calibrated_generator()


def exact_targets(generator: nn.Module, n: int = N_IMAGES) -> torch.Tensor:
    """Images the generator makes exactly (eval mode), from z the search does not start from."""
    training = generator.training
    generator.eval()
    with torch.no_grad():
        images = generator(torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(123)))
    generator.train(training)
    return images


def noise_targets(n: int = N_IMAGES) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(7)) * 2 - 1


def snapshot(generator: nn.Module) -> dict:
    return {
        "state": {k: v.clone() for k, v in generator.state_dict().items()},  # params and BN buffers
        "requires_grad": [p.requires_grad for p in generator.parameters()],
        "grad": [p.grad for p in generator.parameters()],
        "training": [m.training for m in generator.modules()],
    }


def assert_unchanged(generator: nn.Module, before: dict) -> None:
    after = snapshot(generator)
    assert after["state"].keys() == before["state"].keys()
    for key, value in before["state"].items():
        assert torch.equal(after["state"][key], value), key
    assert after["requires_grad"] == before["requires_grad"]
    assert all(grad is None for grad in after["grad"])
    assert after["training"] == before["training"]


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_exact_images_reconstruct_far_better_than_noise(generator, optimizer):
    exact = ivom(generator, exact_targets(generator), optimizer=optimizer, restarts=1)
    noise = ivom(generator, noise_targets(), optimizer=optimizer, restarts=1)
    for values in (exact, noise):
        assert values.shape == (N_IMAGES,) and values.dtype == torch.float32
        assert torch.isfinite(values).all()
    # [0, 1]-scale MSE: uniform noise against anything is ~1/12 or more
    assert noise.min() > 0.05
    assert exact.max() < noise.min() / 10
    assert exact.mean() < noise.mean() / 50


def test_search_improves_on_the_starting_point(generator):
    """The search moves z: far below the MSE of the first restart's starting z (drawn as the docs
    say: the first torch.randn(N, z_dim) of a generator seeded with `seed`)."""
    targets = exact_targets(generator)
    generator.eval()
    with torch.no_grad():
        z0 = torch.randn(N_IMAGES, generator.z_dim, generator=torch.Generator().manual_seed(0))
        start = ((generator(z0) - targets) / 2).pow(2).flatten(1).mean(1)
    generator.train()
    for optimizer in ("lbfgs", "adam"):
        found = ivom(generator, targets, optimizer=optimizer, restarts=1, seed=0)
        assert (found <= start).all()
        assert found.mean() < start.mean() / 5


def test_mse_scale_is_zero_to_one(generator):
    """A generator that only makes mid-grey (0 on [-1, 1]) scores E[((x + 1) / 2 - 1/2)^2] = 1/12 on
    uniform [-1, 1] targets: the [0, 1] scale, a quarter of the [-1, 1] MSE."""

    class Grey(nn.Module):
        z_dim = 4

        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.zeros(4))

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return (z @ self.w).view(-1, 1, 1, 1).expand(-1, 1, 28, 28) * 0.0

    targets = torch.rand(64, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    values = ivom(Grey(), targets, optimizer="adam", steps=1, restarts=1)
    expected = ((targets + 1) / 2 - 0.5).pow(2).flatten(1).mean(1)
    torch.testing.assert_close(values, expected)
    assert abs(values.mean().item() - 1 / 12) < 0.005


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_more_restarts_never_raise_an_images_minimum(generator, optimizer):
    targets = torch.cat([noise_targets(4), exact_targets(generator, 4)])
    # 10 steps, not 25: the restarts' minima are compared, not how good any one search is
    one = ivom(generator, targets, optimizer=optimizer, steps=10, restarts=1, seed=3)
    three = ivom(generator, targets, optimizer=optimizer, steps=10, restarts=3, seed=3)
    assert (three <= one).all()  # the first restart is shared, so exactly <=
    assert (three < one).any()  # and the extra restarts do find better z for some images


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_deterministic_given_the_seed(generator, optimizer):
    targets = torch.cat([noise_targets(3), exact_targets(generator, 3)])
    first = ivom(generator, targets, optimizer=optimizer, steps=4, restarts=2, seed=11)
    again = ivom(generator, targets, optimizer=optimizer, steps=4, restarts=2, seed=11)
    other = ivom(generator, targets, optimizer=optimizer, steps=4, restarts=2, seed=12)
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_adam_result_does_not_depend_on_batch_size(generator):
    targets = torch.cat([noise_targets(5), exact_targets(generator, 5)])
    small = ivom(generator, targets, optimizer="adam", steps=10, restarts=1, batch_size=3)
    whole = ivom(generator, targets, optimizer="adam", steps=10, restarts=1, batch_size=10)
    torch.testing.assert_close(small, whole, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_generator_left_as_it_was(optimizer):
    generator = calibrated_generator(seed=1)
    targets = exact_targets(generator, 4)
    generator.stem[2].eval()  # mixed training flags must come back as they were, per module
    generator.body[0].bias.requires_grad_(False)  # and mixed requires_grad flags
    before = snapshot(generator)
    assert generator.training and not all(before["training"]) and not all(before["requires_grad"])
    ivom(generator, targets, optimizer=optimizer, steps=5, restarts=2, batch_size=3)
    assert_unchanged(generator, before)


def test_generator_restored_after_an_error():
    generator = calibrated_generator(seed=2)
    before = snapshot(generator)
    with pytest.raises(ValueError, match="shape"):
        ivom(generator, torch.zeros(2, 1, 32, 32), steps=2, restarts=1)  # G makes 28x28
    assert_unchanged(generator, before)


def test_works_inside_no_grad_and_inference_mode(generator):
    targets = exact_targets(generator, 4)
    expected = ivom(generator, targets, optimizer="adam", steps=5, restarts=1)
    with torch.no_grad():
        assert torch.equal(ivom(generator, targets, optimizer="adam", steps=5, restarts=1), expected)
    with torch.inference_mode():
        inference_targets = targets.clone()
        found = ivom(generator, inference_targets, optimizer="adam", steps=5, restarts=1)
    assert torch.equal(found, expected)


def test_float64_targets_and_empty_targets(generator):
    targets = exact_targets(generator, 3)
    as_double = ivom(generator, targets.double(), optimizer="adam", steps=3, restarts=1)
    assert as_double.dtype == torch.float32 and as_double.shape == (3,)
    torch.testing.assert_close(as_double, ivom(generator, targets, optimizer="adam", steps=3, restarts=1))
    empty = ivom(generator, torch.zeros(0, 1, 28, 28))
    assert empty.shape == (0,) and empty.dtype == torch.float32


class NoZDim(nn.Module):
    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z


@pytest.mark.parametrize(
    ("make_generator", "targets", "kwargs", "message"),
    [
        (None, torch.zeros(1, 28, 28), {}, "4-D"),
        (None, torch.zeros(2, 1, 28, 28, dtype=torch.uint8), {}, "float"),
        (None, [[0.0]], {}, "4-D"),
        (None, torch.zeros(2, 1, 28, 28), {"restarts": 0}, "restarts"),
        (None, torch.zeros(2, 1, 28, 28), {"steps": 0}, "steps"),
        (None, torch.zeros(2, 1, 28, 28), {"steps": 2.5}, "steps"),
        (None, torch.zeros(2, 1, 28, 28), {"batch_size": 0}, "batch_size"),
        (None, torch.zeros(2, 1, 28, 28), {"optimizer": "sgd"}, "optimizer"),
        (None, torch.zeros(2, 1, 28, 28), {"lr": 0.0}, "lr"),
        (None, torch.full((2, 1, 28, 28), 255.0), {}, r"\[-1, 1\]"),
        (None, torch.full((2, 1, 28, 28), float("nan")), {}, "finite"),
        (NoZDim, torch.zeros(2, 1, 28, 28), {}, "z_dim"),
    ],
)
def test_bad_inputs_raise_value_error(generator, make_generator, targets, kwargs, message):
    model = generator if make_generator is None else make_generator()
    with pytest.raises(ValueError, match=message):
        ivom(model, targets, **kwargs)
