"""GDPP's rivals in the registry: PacGAN packing, minibatch stddev, mode seeking, and their use in
variants, training, seed-parallel refusal and the smoke path."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest
import torch
from conftest import gdpp_bench, tiny_suite

from gdpp_bench.errors import UserError
from gdpp_bench.losses import ADVERSARIAL, TERMS, Generated, gradient_penalty, parse_variant
from gdpp_bench.models import DOut, build_models
from gdpp_bench.models.modifiers import MinibatchStdDev, Packed, check_batch_size, discriminator_options
from gdpp_bench.report.tables import variant_order
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import expand, load_suite
from gdpp_bench.training import check_seed_parallel, train

CPU = torch.device("cpu")
SHAPES = {"mlp2d": (2,), "dcgan28": (1, 28, 28), "dcgan32": (3, 32, 32)}
DIVERSITY_VARIANTS = [
    "bce",
    "bce+gdpp@1",
    "bce+pacgan2",
    "bce+ms@1",
    "bce+mbstd",
    "wgan-gp",
    "wgan-gp+gdpp@1",
]


@pytest.mark.parametrize("model", sorted(SHAPES))
def test_pacgan_discriminator_judges_consecutive_samples_packed_along_channels(model):
    torch.manual_seed(0)
    _, packed = build_models(model, SHAPES[model], ("pacgan2",))
    assert isinstance(packed, Packed) and packed.pack == 2
    x = torch.randn(6, *SHAPES[model])
    out = packed(x)
    assert out.logits.shape == (3,) and out.features.shape[0] == 3
    by_hand = packed.inner(torch.cat([x[0::2], x[1::2]], dim=1))  # pairs (0, 1), (2, 3), (4, 5)
    torch.testing.assert_close(out.logits, by_hand.logits)
    torch.testing.assert_close(out.features, by_hand.features)
    # moving whole packs moves their logits; splitting a pair changes what D judges
    swapped_packs = packed(torch.cat([x[2:4], x[0:2], x[4:6]]))
    torch.testing.assert_close(swapped_packs.logits, out.logits[[1, 0, 2]])
    split_pairs = packed(x[[0, 2, 1, 3, 4, 5]])
    assert not torch.allclose(split_pairs.logits[:2], out.logits[:2])


@pytest.mark.parametrize("pack", [2, 3])
def test_pacgan_first_layer_takes_pack_times_the_channels(pack):
    torch.manual_seed(0)
    _, plain = build_models("dcgan32", (3, 32, 32))
    _, packed = build_models("dcgan32", (3, 32, 32), (f"pacgan{pack}",))
    assert plain.body[0].in_channels == 3 and packed.inner.body[0].in_channels == 3 * pack
    _, packed_2d = build_models("mlp2d", (2,), (f"pac{pack}",))
    assert packed_2d.inner.body[0].in_features == 2 * pack


def test_minibatch_stddev_channel_is_the_group_standard_deviation():
    torch.manual_seed(0)
    x = torch.randn(8, 3, 5, 5)
    out = MinibatchStdDev(4)(x)
    assert out.shape == (8, 4, 5, 5)
    torch.testing.assert_close(out[:, :3], x)
    # groups of 4 take samples b, b + 2, b + 4, b + 6 (stride B / G = 2)
    for first in (0, 1):
        members = x[first::2]
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        for b in range(first, 8, 2):
            assert torch.all(out[b, 3] == out[first, 3])
        torch.testing.assert_close(out[first, 3, 0, 0], expected)
    same = MinibatchStdDev(4)(x[:1].expand(8, 3, 5, 5))
    torch.testing.assert_close(same[:, 3], torch.full((8, 5, 5), 1e-4))  # sqrt(eps): no variety
    vectors = MinibatchStdDev(2)(torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 4.0], [1.0, 1.0]]))
    torch.testing.assert_close(
        vectors[:, 2],
        torch.tensor([1.5, 0.0, 1.5, 0.0]) + torch.tensor([0.0, 1e-4, 0.0, 1e-4]),
        atol=1e-6,
        rtol=0,
    )


@pytest.mark.parametrize("model", sorted(SHAPES))
def test_mbstd_discriminator_sees_the_other_samples_of_its_group(model):
    torch.manual_seed(0)
    _, discriminator = build_models(model, SHAPES[model], ("mbstd",))
    _, plain = build_models(model, SHAPES[model])
    assert any(isinstance(m, MinibatchStdDev) for m in discriminator.modules())
    discriminator.eval()
    plain.eval()
    x = torch.randn(8, *SHAPES[model])
    changed = x.clone()
    changed[2] = changed[2] + 3.0  # sample 2 is in the group of 0, 4, 6 (B / G = 2)
    before, after = discriminator(x).logits, discriminator(changed).logits
    assert not torch.allclose(before[0], after[0])  # same group: sees the change
    torch.testing.assert_close(before[1], after[1])  # other group: does not
    torch.testing.assert_close(plain(x).logits[0], plain(changed).logits[0])


def test_mode_seeking_term_is_the_inverse_image_to_latent_distance_ratio():
    ms = TERMS.get("ms")
    z = torch.tensor([[0.0, 0.0], [1.0, 1.0], [2.0, 0.0], [1.0, 3.0]])
    samples = torch.tensor([[0.0], [1.0], [4.0], [2.0]])
    # pairs (0, 2) and (1, 3): mean |dx| = (4 + 1) / 2, mean |dz| = (2 + 0 + 0 + 2) / 4
    unused = DOut(torch.zeros(4), torch.zeros(4, 1))
    value = ms(unused, unused, Generated(z, samples))
    torch.testing.assert_close(value, torch.tensor(1 / (2.5 / 1.0 + 1e-5)))
    collapsed = ms(unused, unused, Generated(z, torch.ones(4, 1)))
    torch.testing.assert_close(collapsed, torch.tensor(1e5))
    # its gradient pushes the pair apart: one descent step raises the image distance
    moving = samples.clone().requires_grad_(True)
    ms(unused, unused, Generated(z, moving)).backward()
    stepped = samples - 0.1 * moving.grad
    assert (stepped[:2] - stepped[2:]).abs().mean() > (samples[:2] - samples[2:]).abs().mean()


def test_gradient_penalty_of_a_packing_discriminator_is_per_pack():
    torch.manual_seed(0)
    _, discriminator = build_models("mlp2d", (2,), ("pacgan2",))
    real, fake = torch.randn(6, 2), torch.randn(6, 2)
    penalty = gradient_penalty(discriminator, real, fake, torch.Generator().manual_seed(3))
    alpha = torch.rand((3, 1), generator=torch.Generator().manual_seed(3))
    packed_real, packed_fake = real.reshape(3, 4), fake.reshape(3, 4)
    mixed = (alpha * packed_real + (1 - alpha) * packed_fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator.inner(mixed).logits.sum(), mixed)
    torch.testing.assert_close(penalty, (grad.norm(dim=1) - 1).pow(2).mean())


@pytest.mark.parametrize(
    "text,canonical",
    [
        ("pacgan2", "bce+pacgan2"),
        ("pac4", "bce+pacgan4"),
        ("mbstd", "bce+mbstd"),
        ("bce+mbstd8", "bce+mbstd8"),
        ("bce+gdpp@1+ms@0.5", "bce+gdpp@1+ms@0.5"),
        ("wgan-gp+pacgan2+gdpp", "wgan-gp+pacgan2+gdpp@1"),
        ("hinge+pacgan3+mbstd+gdpp@2", "hinge+mbstd+pacgan3+gdpp@2"),
    ],
)
def test_variants_combine_terms_and_discriminator_modifiers(text, canonical):
    variant = parse_variant(text)
    assert str(variant) == canonical and parse_variant(canonical) == variant
    assert discriminator_options(variant.discriminator).pack == (
        int(canonical.split("pacgan")[1][0]) if "pacgan" in canonical else 1
    )


@pytest.mark.parametrize(
    "text,message",
    [
        ("pacgan1", "needs a number >= 2"),
        ("bce+pacgan2+pac4", "'pacgan' appears twice"),
        ("bce+mbstd+mbstd", "'mbstd' appears twice"),
        ("bce+pacgan2@1", "unknown diversity term or discriminator modifier 'pacgan2'"),
        ("ms", "unknown adversarial loss 'ms'"),
    ],
)
def test_bad_modifier_variants_name_the_problem(text, message):
    with pytest.raises(UserError, match=message):
        parse_variant(text)


def test_batch_sizes_that_do_not_split_into_packs_or_groups_are_refused():
    check_batch_size(discriminator_options(("pacgan2", "mbstd")), 64)
    with pytest.raises(UserError, match="not a multiple of the packing degree 3"):
        expand(tiny_suite(variants=("bce+pacgan3",)))
    with pytest.raises(UserError, match="minibatch-stddev group 4"):
        check_batch_size(discriminator_options(("pacgan2", "mbstd")), 12)


@pytest.mark.parametrize("adversarial", ADVERSARIAL.names())
@pytest.mark.parametrize("modifiers", ["pacgan2", "mbstd", "pacgan2+mbstd+gdpp@1+ms@0.5"])
def test_every_adversarial_loss_trains_with_each_modifier(tmp_path, adversarial, modifiers):
    variant = str(parse_variant(f"{adversarial}+{modifiers}"))
    (spec,) = expand(tiny_suite(variants=(variant,), train={"steps": 4, "log_every": 2}))
    status = train(spec, RunDir(tmp_path / spec.key), CPU)
    assert (status["status"], status["step"]) == ("done", 4)
    row = (tmp_path / spec.key / "log.csv").read_text().splitlines()[-1]
    assert "nan" not in row.lower()


def test_seed_parallel_refuses_discriminator_modifiers():
    specs = expand(tiny_suite(variants=("bce+pacgan2",), seeds=(0, 1)))
    with pytest.raises(ValueError, match="does not support discriminator modifiers"):
        check_seed_parallel(specs)


def test_diversity_suite_runs_the_issue_variants_on_three_datasets():
    suite = load_suite("diversity")
    assert suite.datasets == ("ring8", "grid25", "stacked-mnist")
    assert list(suite.variants) == DIVERSITY_VARIANTS and len(suite.seeds) == 3
    assert suite.settings("stacked-mnist").model == "dcgan28-gdpp"


def test_every_method_trains_in_the_smoke_path_and_the_report_shows_them(tmp_path, mnist_classifier):
    results = tmp_path / "results"
    done = gdpp_bench(
        "run",
        "--suite",
        "smoke",
        "--results",
        str(results),
        "--device",
        "cpu",
        "--variants",
        ",".join(DIVERSITY_VARIANTS),
        "--seeds",
        "0",
        "--steps",
        "2",
        "--eval-samples",
        "64",
    )
    assert done.returncode == 0, done.stderr
    for dataset in ("ring8", "grid25", "mnist"):
        for variant in DIVERSITY_VARIANTS:
            run_dir = results / "smoke" / dataset / variant / "seed-0"
            assert json.loads((run_dir / "DONE").read_text())["status"] == "done", run_dir
            assert (run_dir / "metrics.json").exists()
    report = gdpp_bench("report", "--suite", "smoke", "--results", str(results), "--no-figures")
    assert report.returncode == 0, report.stderr
    assert not (results / "smoke" / "report" / "figures").exists()  # --no-figures: tables only
    summary = (results / "smoke" / "report" / "summary.csv").read_text()
    for variant in DIVERSITY_VARIANTS:
        assert f",{variant}," in summary
    runs = pd.read_csv(results / "smoke" / "report" / "runs.csv").set_index(["dataset", "variant"])
    # only the plain loss is GDPP's weight-0 reference; a changed D is not
    assert runs.loc[("ring8", "bce"), "term_weight"] == 0.0
    assert runs.loc[("ring8", "bce+gdpp@1"), ["term", "term_weight"]].tolist() == ["gdpp", 1.0]
    assert math.isnan(runs.loc[("ring8", "bce+pacgan2"), "term_weight"])
    assert runs.loc[("ring8", "bce+pacgan2"), "discriminator"] == "pacgan2"


def test_report_order_is_fixed_for_variants_that_differ_only_in_the_discriminator():
    variants = ["wgan-gp", "bce+pacgan2", "bce+gdpp@1", "bce+mbstd", "bce", "bce+mbstd+pacgan2"]
    expected = ["bce", "bce+mbstd", "bce+mbstd+pacgan2", "bce+pacgan2", "bce+gdpp@1", "wgan-gp"]
    assert variant_order(variants, "bce") == expected
    assert variant_order(reversed(variants), "bce") == expected
