"""DCGAN family (dcgan32, dcgan28): architecture sizes, init, shapes, memory formats, autocast, GDPP."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from gdpp_bench.errors import UserError
from gdpp_bench.losses import gdpp_loss
from gdpp_bench.models import MODELS
from gdpp_bench.models.dcgan import build_dcgan28, build_dcgan32

# every conv / transposed conv / linear layer has a bias; a BatchNorm adds 2 per channel
D32_PARAMS = {
    c: (64 * c * 4 * 4 + 64)
    + (128 * 64 * 4 * 4 + 128)
    + 2 * 128
    + (256 * 128 * 4 * 4 + 256)
    + 2 * 256
    + (256 * 4 * 4 * 1 + 1)
    for c in (1, 3)
}
G32_PARAMS = {
    c: (100 * 512 * 2 * 2 + 512 * 2 * 2)
    + 2 * 512
    + (512 * 256 * 4 * 4 + 256)
    + 2 * 256
    + (256 * 128 * 4 * 4 + 128)
    + 2 * 128
    + (128 * 64 * 4 * 4 + 64)
    + 2 * 64
    + (64 * c * 4 * 4 + c)
    for c in (1, 3)
}
D28_PARAMS = (
    (64 * 1 * 5 * 5 + 64)
    + (128 * 64 * 5 * 5 + 128)
    + 2 * 128
    + (256 * 128 * 5 * 5 + 256)
    + 2 * 256
    + (256 * 4 * 4 * 1 + 1)
)
G28_PARAMS = (
    (100 * 256 * 4 * 4 + 256 * 4 * 4)
    + 2 * 256
    + (256 * 128 * 5 * 5 + 128)
    + 2 * 128
    + (128 * 64 * 5 * 5 + 64)
    + 2 * 64
    + (64 * 1 * 5 * 5 + 1)
)
# the GDPP paper's Stacked-MNIST model: z 128, no BatchNorm in D, 3 channels
D28_GDPP_PARAMS = (
    (64 * 3 * 5 * 5 + 64) + (128 * 64 * 5 * 5 + 128) + (256 * 128 * 5 * 5 + 256) + (256 * 4 * 4 * 1 + 1)
)
G28_GDPP_PARAMS = (
    (128 * 256 * 4 * 4 + 256 * 4 * 4)
    + 2 * 256
    + (256 * 128 * 5 * 5 + 128)
    + 2 * 128
    + (128 * 64 * 5 * 5 + 64)
    + 2 * 64
    + (64 * 3 * 5 * 5 + 3)
)

CONFIGS = [("dcgan32", (3, 32, 32)), ("dcgan32", (1, 32, 32)), ("dcgan28", (1, 28, 28))]
WEIGHTED = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)


def build(name: str, shape: tuple[int, ...], seed: int = 0) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(seed)
    return MODELS.get(name)(shape)


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_registered():
    assert MODELS.get("dcgan32") is build_dcgan32
    assert MODELS.get("dcgan28") is build_dcgan28


@pytest.mark.parametrize(
    "name,shape,g_params,d_params",
    [
        ("dcgan32", (3, 32, 32), G32_PARAMS[3], D32_PARAMS[3]),
        ("dcgan32", (1, 32, 32), G32_PARAMS[1], D32_PARAMS[1]),
        ("dcgan28", (1, 28, 28), G28_PARAMS, D28_PARAMS),
        ("dcgan28-gdpp", (3, 28, 28), G28_GDPP_PARAMS, D28_GDPP_PARAMS),
    ],
)
def test_parameter_counts(name, shape, g_params, d_params):
    generator, discriminator = build(name, shape)
    assert (n_params(generator), n_params(discriminator)) == (g_params, d_params)
    # G: BN after the linear map and after every transposed conv but the last; D: none on the first
    # conv (none at all in the GDPP paper's Stacked-MNIST D)
    batchnorms = [
        sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) for net in (generator, discriminator)
    ]
    assert batchnorms == [4 if name == "dcgan32" else 3, 0 if name == "dcgan28-gdpp" else 2]
    assert generator.z_dim == (128 if name == "dcgan28-gdpp" else 100)
    assert discriminator(torch.zeros(2, *shape)).features.shape == (2, 4096)
    assert [m.negative_slope for m in discriminator.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 3
    assert sum(isinstance(m, nn.ReLU) for m in generator.modules()) == batchnorms[0]


@pytest.mark.parametrize("name,shape", [*CONFIGS, ("dcgan28", (3, 28, 28))])
def test_shapes_range_and_features(name, shape):
    generator, discriminator = build(name, shape)
    assert generator.z_dim == 100
    last = [m for m in generator.modules() if isinstance(m, nn.ConvTranspose2d)][-1]
    captured = []
    last.register_forward_hook(lambda _m, _i, out: captured.append(out))
    z = torch.randn(5, generator.z_dim) * 3  # wide z to push some outputs towards saturation
    x = generator(z)
    assert x.shape == (5, *shape)
    torch.testing.assert_close(x, torch.tanh(captured[0]))
    assert torch.equal(x, x.clamp(-1, 1))
    out = discriminator(x)
    assert out.logits.shape == (5,) and out.features.shape == (5, 256 * 4 * 4)
    torch.testing.assert_close(out.logits, discriminator.head(out.features).squeeze(1))


def _within(value: torch.Tensor, expected: float, tol: float) -> None:
    torch.testing.assert_close(value, torch.tensor(expected, dtype=value.dtype), atol=tol, rtol=0)


@pytest.mark.parametrize("name,shape", CONFIGS)
def test_dcgan_init(name, shape):
    # Sample mean and std of n N(mu, 0.02) draws have standard errors 0.02/sqrt(n) and
    # ~0.02/sqrt(2n); 5 standard errors makes a false failure ~1e-6 per check, while a wrong init
    # (PyTorch's default, BatchNorm scales of exactly 1, std 1) misses by far more. The smallest
    # conv has n = 1024 weights, the smallest BatchNorm 64.
    for net in build(name, shape):
        for layer in net.modules():
            if isinstance(layer, WEIGHTED + (nn.BatchNorm2d,)):
                w = layer.weight.detach().double()
                n = w.numel()
                mean = 1.0 if isinstance(layer, nn.BatchNorm2d) else 0.0
                _within(w.mean(), mean, 5 * 0.02 / math.sqrt(n))
                _within(w.std(), 0.02, 5 * 0.02 / math.sqrt(2 * n))
                assert torch.equal(layer.bias, torch.zeros_like(layer.bias))


def test_same_seed_same_weights_other_seed_different():
    first = [net.state_dict() for net in build("dcgan32", (3, 32, 32), seed=7)]
    again = [net.state_dict() for net in build("dcgan32", (3, 32, 32), seed=7)]
    other = [net.state_dict() for net in build("dcgan32", (3, 32, 32), seed=8)]
    for a, b, c in zip(first, again, other, strict=True):
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a)
        assert not torch.equal(
            a["head.weight" if "head.weight" in a else "stem.0.weight"],
            c["head.weight" if "head.weight" in c else "stem.0.weight"],
        )


@pytest.mark.parametrize(
    "name,shape",
    [
        ("dcgan32", (3, 28, 28)),
        ("dcgan32", (2, 32, 32)),
        ("dcgan32", (32, 32)),
        ("dcgan32", (2,)),
        ("dcgan28", (1, 32, 32)),
        ("dcgan28", (0, 28, 28)),
        ("dcgan28", (28, 28)),
        ("dcgan28", (1, 28, 28, 1)),
    ],
)
def test_wrong_data_shape_is_a_user_error(name, shape):
    size = name[-2:]
    with pytest.raises(UserError, match=rf"^model {name} needs images of shape \(C, {size}, {size}\)") as err:
        MODELS.get(name)(shape)
    message = str(err.value)
    assert "\n" not in message and message.endswith(str(tuple(shape)))


# 3 channels: a [B, 1, H, W] image is channels_last and contiguous at once, which hides the format
@pytest.mark.parametrize("name,shape", [("dcgan32", (3, 32, 32)), ("dcgan28", (3, 28, 28))])
def test_channels_last_matches_contiguous(name, shape):
    # float64: in float32 the two memory formats sum in different orders and gradients of size ~10
    # differ by ~1e-5, above assert_close's float32 tolerance; in float64 they agree to ~1e-13
    generator, discriminator = (net.double() for net in build(name, shape))
    z = torch.randn(6, 100, dtype=torch.float64)
    real = torch.rand(6, *shape, dtype=torch.float64) * 2 - 1

    def step(gen: nn.Module, disc: nn.Module, real: torch.Tensor):
        fake = gen(z)
        loss = disc(fake).logits.sum() + disc(real).features.square().mean()
        loss.backward()
        grads = [p.grad for net in (gen, disc) for p in net.parameters()]
        return fake, disc(real).features, grads

    cl = torch.channels_last
    gen_cl = copy.deepcopy(generator).to(memory_format=cl)
    disc_cl = copy.deepcopy(discriminator).to(memory_format=cl)
    fake, features, grads = step(generator, discriminator, real)
    fake_cl, features_cl, grads_cl = step(gen_cl, disc_cl, real.contiguous(memory_format=cl))
    assert fake_cl.is_contiguous(memory_format=cl) and not fake.is_contiguous(memory_format=cl)
    torch.testing.assert_close(fake_cl, fake)
    torch.testing.assert_close(features_cl, features)
    torch.testing.assert_close(grads_cl, grads)


@pytest.mark.parametrize("name,shape", [CONFIGS[0], CONFIGS[2]])
def test_eval_mode_is_deterministic_and_per_sample(name, shape):
    generator, discriminator = build(name, shape)
    generator.eval()
    discriminator.eval()
    buffers = [copy.deepcopy(dict(net.named_buffers())) for net in (generator, discriminator)]
    z = torch.randn(6, 100)
    with torch.no_grad():
        x, x_again, x_part = generator(z), generator(z), generator(z[:2])
        d, d_again, d_part = discriminator(x), discriminator(x), discriminator(x[:2])
    assert torch.equal(x, x_again)
    assert torch.equal(d.logits, d_again.logits) and torch.equal(d.features, d_again.features)
    # eval BatchNorm uses running statistics: a sample's output does not depend on its batch
    torch.testing.assert_close(x_part, x[:2])
    torch.testing.assert_close(d_part.features, d.features[:2])
    for net, before in zip((generator, discriminator), buffers, strict=True):
        after = dict(net.named_buffers())
        assert all(torch.equal(after[k], before[k]) for k in before)


@pytest.mark.parametrize("name,shape", [CONFIGS[0], CONFIGS[2]])
def test_autocast_runs_in_low_precision_and_matches_float32(name, shape):
    generator, discriminator = build(name, shape)
    z = torch.randn(8, 100)
    fake = generator(z)
    out = discriminator(fake)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake_bf = generator(z)
        out_bf = discriminator(fake_bf)
    assert fake_bf.dtype == out_bf.logits.dtype == out_bf.features.dtype == torch.bfloat16
    # bfloat16 keeps 8 significant bits (rounding 2^-9 ~ 0.2%); through the ~8 layers errors stay
    # within 5% of each tensor's scale, while a wrong layer or dtype would be off by ~100%
    for low, full in ((fake_bf, fake), (out_bf.features, out.features), (out_bf.logits, out.logits)):
        torch.testing.assert_close(low.float(), full, atol=0.05 * full.abs().max().item(), rtol=0)
    out_bf.logits.float().sum().backward()
    for p in generator.parameters():
        assert p.grad is not None and p.grad.dtype == torch.float32 and torch.isfinite(p.grad).all()


def test_gdpp_step_reaches_the_generator():
    generator, discriminator = build("dcgan32", (3, 32, 32))
    first = generator.stem[0]
    assert isinstance(first, nn.Linear) and first.in_features == 100
    before = first.weight.detach().clone()
    optimizer = torch.optim.SGD(generator.parameters(), lr=0.1)
    fake = generator(torch.randn(8, 100))
    real = torch.rand(8, 3, 32, 32) * 2 - 1
    loss = gdpp_loss(discriminator(fake).features, discriminator(real).features)
    assert loss.shape == () and torch.isfinite(loss)
    loss.backward()
    grad = first.weight.grad
    assert grad is not None and torch.isfinite(grad).all()
    assert not torch.equal(grad, torch.zeros_like(grad))
    optimizer.step()
    assert torch.isfinite(first.weight).all() and not torch.equal(first.weight.detach(), before)


def test_dcgan64_shapes_and_parameter_count():
    generator, discriminator = MODELS.get("dcgan64")((3, 64, 64))
    images = generator(torch.randn(2, 100))
    assert images.shape == (2, 3, 64, 64)
    out = discriminator(images)
    assert out.logits.shape == (2,) and out.features.shape == (2, 512 * 4 * 4)
    d_params = (
        (3 * 64 * 16 + 64)
        + (64 * 128 * 16 + 128 + 2 * 128)
        + (128 * 256 * 16 + 256 + 2 * 256)
        + (256 * 512 * 16 + 512 + 2 * 512)
        + (8192 + 1)
    )
    g_params = (
        (100 * 512 * 16 + 512 * 16)
        + 2 * 512
        + (512 * 256 * 16 + 256 + 2 * 256)
        + (256 * 128 * 16 + 128 + 2 * 128)
        + (128 * 64 * 16 + 64 + 2 * 64)
        + (64 * 3 * 16 + 3)
    )
    assert sum(p.numel() for p in discriminator.parameters()) == d_params
    assert sum(p.numel() for p in generator.parameters()) == g_params


@pytest.mark.parametrize("divisor", [2, 4])
def test_smaller_discriminator_option_divides_only_d_widths(divisor):
    """dcgan28-gdpp-d2 / -d4: the Unrolled-GAN / VEEGAN smaller-D Stacked-MNIST setting."""
    generator, discriminator = build(f"dcgan28-gdpp-d{divisor}", (3, 28, 28))
    widths = [64 // divisor, 128 // divisor, 256 // divisor]
    convs = [(m.in_channels, m.out_channels) for m in discriminator.modules() if isinstance(m, nn.Conv2d)]
    assert convs == list(zip([3, *widths[:-1]], widths, strict=True))
    expected_d = sum(c_in * c_out * 25 + c_out for c_in, c_out in convs) + widths[-1] * 16 + 1
    assert n_params(discriminator) == expected_d
    assert n_params(generator) == G28_GDPP_PARAMS  # G is the full model's
    assert discriminator(torch.zeros(2, 3, 28, 28)).features.shape == (2, widths[-1] * 16)


def _official_cifar_layers() -> tuple[list[tuple[str, tuple[int, ...]]], list[tuple[str, tuple[int, ...]]]]:
    """The layers of the official gdppgan_cifar.py (DIM = 128), as (tflib layer, arguments): Linear
    (in, out) and Conv2D / Deconv2D (in, out, kernel) have biases; Batchnorm(n) scales and offsets n
    values (axes [0] on the linear output: one per feature; [0, 2, 3] on maps: one per channel)."""
    dim = 128
    generator = [
        ("Linear", (128, 4 * 4 * 4 * dim)),
        ("Batchnorm", (4 * 4 * 4 * dim,)),
        ("Deconv2D", (4 * dim, 2 * dim, 5)),
        ("Batchnorm", (2 * dim,)),
        ("Deconv2D", (2 * dim, dim, 5)),
        ("Batchnorm", (dim,)),
        ("Deconv2D", (dim, 3, 5)),
    ]
    discriminator = [
        ("Conv2D", (3, dim, 5)),
        ("Conv2D", (dim, 2 * dim, 5)),
        ("Batchnorm", (2 * dim,)),
        ("Conv2D", (2 * dim, 4 * dim, 5)),
        ("Batchnorm", (4 * dim,)),
        ("Linear", (4 * 4 * 4 * dim, 1)),
    ]
    return generator, discriminator


def _tflib_params(layers: list[tuple[str, tuple[int, ...]]]) -> int:
    count = 0
    for kind, args in layers:
        if kind == "Linear":
            count += args[0] * args[1] + args[1]
        elif kind in ("Conv2D", "Deconv2D"):
            c_in, c_out, kernel = args
            count += c_in * c_out * kernel * kernel + c_out
        else:
            count += 2 * args[0]
    return count


def test_dcgan32_gdpp_is_the_official_cifar10_network():
    official_g, official_d = _official_cifar_layers()
    generator, discriminator = build("dcgan32-gdpp", (3, 32, 32))
    assert n_params(generator) == _tflib_params(official_g)
    assert n_params(discriminator) == _tflib_params(official_d)
    assert generator.z_dim == 128
    # the first BatchNorm normalises each of the linear layer's 8192 outputs, before the reshape
    stem_norm = [m for m in generator.stem if isinstance(m, nn.BatchNorm1d)]
    assert [m.num_features for m in stem_norm] == [8192]
    kernels = [
        m.kernel_size for m in (*generator.modules(), *discriminator.modules()) if hasattr(m, "kernel_size")
    ]
    assert set(kernels) == {(5, 5)}
    z = torch.randn(3, 128)
    images = generator(z)
    out = discriminator(images)
    assert images.shape == (3, 3, 32, 32) and out.features.shape == (3, 8192)
    maps = []
    for module in generator.body:
        if isinstance(module, nn.ConvTranspose2d):
            module.register_forward_hook(lambda _m, _i, result: maps.append(result.shape[-1]))
    generator(z)
    assert maps == [8, 16, 32]  # tflib's "SAME" transposed convs double the side: 4 -> 8 -> 16 -> 32


def test_dcgan32_pixelshuffle_upsamples_by_sub_pixel_convolution():
    generator, discriminator = build("dcgan32-pixelshuffle", (3, 32, 32))
    _, plain_d = build("dcgan32", (3, 32, 32))
    assert n_params(discriminator) == n_params(plain_d)  # D unchanged
    # dcgan32's stem, then per step a 3x3 conv to 4x the next width (+ bias) before PixelShuffle(2)
    widths = (512, 256, 128, 64, 3)
    expected = (100 * 512 * 2 * 2 + 512 * 2 * 2) + 2 * 512
    for c_in, c_out in zip(widths, widths[1:], strict=False):
        expected += c_in * 4 * c_out * 3 * 3 + 4 * c_out + (2 * c_out if c_out != 3 else 0)
    assert n_params(generator) == expected
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in generator.modules())
    shuffles = [m for m in generator.modules() if isinstance(m, nn.PixelShuffle)]
    assert [m.upscale_factor for m in shuffles] == [2, 2, 2, 2]
    sides = []
    for module in shuffles:
        module.register_forward_hook(lambda _m, _i, result: sides.append(tuple(result.shape[1:])))
    images = generator(torch.randn(5, 100) * 3)
    assert sides == [(256, 4, 4), (128, 8, 8), (64, 16, 16), (3, 32, 32)]
    assert images.shape == (5, 3, 32, 32) and torch.equal(images, images.clamp(-1, 1))
    assert discriminator(images).features.shape == (5, 4096)
