"""Variant names and suite files: what parses, what is refused, and how suites expand."""

from __future__ import annotations

import pytest
from image_fixtures import write_celeba_small_fixture

from gdpp_bench.errors import UserError
from gdpp_bench.losses import ADVERSARIAL, TERMS, Variant, parse_variant
from gdpp_bench.suites import expand, load_suite, parse_suite, suite_names


@pytest.mark.parametrize(
    "text,expected,canonical",
    [
        ("bce", Variant("bce"), "bce"),
        ("bce+gdpp", Variant("bce", (("gdpp", 1.0),)), "bce+gdpp@1"),
        ("bce+gdpp@0.1", Variant("bce", (("gdpp", 0.1),)), "bce+gdpp@0.1"),
        ("hinge+gdpp@1", Variant("hinge", (("gdpp", 1.0),)), "hinge+gdpp@1"),
        ("wgan-gp+gdpp-si@10", Variant("wgan-gp", (("gdpp-si", 10.0),)), "wgan-gp+gdpp-si@10"),
        ("bce+gdpp@1e-3", Variant("bce", (("gdpp", 0.001),)), "bce+gdpp@0.001"),
    ],
)
def test_valid_variants_parse_to_canonical_names(text, expected, canonical):
    variant = parse_variant(text)
    assert variant == expected
    assert str(variant) == canonical
    assert parse_variant(canonical) == variant


@pytest.mark.parametrize(
    "text,message",
    [
        ("bce+gdp", "unknown diversity term or discriminator modifier 'gdp'"),
        ("bc+gdpp", "unknown adversarial loss 'bc'"),
        ("bce+gdpp@abc", "malformed weight 'abc'"),
        ("bce+gdpp@-1", "malformed weight '-1'"),
        ("bce+gdpp@0", "malformed weight '0'"),
        ("bce+gdpp@nan", "malformed weight 'nan'"),
        ("bce+gdpp@", "malformed weight ''"),
        ("bce+gdpp+gdpp@2", "appears twice"),
    ],
)
def test_invalid_variants_name_the_problem(text, message):
    with pytest.raises(UserError, match=message):
        parse_variant(text)


def test_unknown_term_error_lists_the_known_names():
    with pytest.raises(UserError) as info:
        parse_variant("bce+gdp")
    for name in TERMS.names():
        assert name in str(info.value)


@pytest.mark.parametrize("name", suite_names())
def test_every_shipped_suite_loads_and_expands(name, tmp_path):
    suite = load_suite(name)
    data_root = None
    if any(suite.settings(dataset).train.epochs for dataset in suite.datasets):
        write_celeba_small_fixture(tmp_path, n=10)  # epochs count the training images
        data_root = str(tmp_path)
    specs = expand(suite, data_root=data_root)
    assert len(specs) == len(suite.datasets) * sum(len(suite.seeds_of(v)) for v in suite.variants)
    assert len({s.key for s in specs}) == len(specs)
    for spec in specs:
        assert str(spec.variant) == str(parse_variant(str(spec.variant)))
        assert spec.to_dict()["variant"] == str(spec.variant)  # config.json holds the name


def test_shipped_suites_cover_the_issue():
    assert {"smoke", "ring8", "grid25", "synthetic"} <= set(suite_names())
    ring8 = load_suite("ring8")
    assert ring8.variants[:3] == ("bce", "bce+gdpp@1", "bce+gdpp-si@1")
    assert {"bce+gdpp-si@0.1", "bce+gdpp-si@10"} <= set(ring8.variants)  # issue 13's weight sweep
    assert ring8.train.steps == 25_000 and ring8.train.batch_size == 512
    assert (ring8.train.lr_g, ring8.train.lr_d, ring8.train.beta1) == (1e-3, 1e-4, 0.5)
    smoke = load_suite("smoke")
    assert set(smoke.datasets) == {"ring8", "grid25", "mnist"} and len(smoke.seeds) == 2
    assert smoke.settings("mnist").model == "" and smoke.settings("mnist").train.steps == 8


def test_expand_keys_and_overrides():
    suite = parse_suite({"name": "s", "dataset": "ring8", "variants": ["bce", "bce+gdpp"]})
    specs = expand(suite, variants=["hinge+gdpp@0.5"], seeds=[4], steps=7)
    assert [(s.key, s.train.steps, s.model) for s in specs] == [("hinge+gdpp@0.5/seed-4", 7, "mlp2d")]
    two = parse_suite({"name": "s", "datasets": ["ring8", "grid25"], "variants": ["bce"]})
    assert [s.key for s in expand(two, seeds=[0])] == ["ring8/bce/seed-0", "grid25/bce/seed-0"]


BASE = {"name": "s", "dataset": "ring8", "variants": ["bce"]}


@pytest.mark.parametrize(
    "table,message",
    [
        ({**BASE, "colour": "red"}, "unknown key.*colour"),
        ({**BASE, "train": {"step": 5}}, r"\[train\]: unknown key.*step"),
        ({**BASE, "train": {"steps": "many"}}, "steps must be of type int"),
        ({**BASE, "train": {"steps": 0}}, "train.steps must be > 0"),
        ({**BASE, "train": {"beta1": 1.5}}, r"beta1 must be in \[0, 1\)"),
        ({**BASE, "train": {"update": "sometimes"}}, "train.update must be one of"),
        ({**BASE, "train": {"d_real_target": 1.1}}, r"d_real_target must be in \[0, 1\]"),
        ({**BASE, "train": {"d_real_target": 0.4, "d_fake_target": 0.6}}, "d_fake_target must be below"),
        ({**BASE, "seeds": [0, "one"]}, "seeds must be of type"),
        ({**BASE, "dataset": "ring9"}, "unknown dataset 'ring9'"),
        ({**BASE, "model": "resnet"}, "unknown model 'resnet'"),
        ({**BASE, "variants": ["bce+gdpp@x"]}, "malformed weight 'x'"),
        ({**BASE, "eval": {"metrics": ["fid"]}}, "unknown metric 'fid'"),
        ({"name": "s", "variants": ["bce"]}, "missing required key.*datasets"),
        ({**BASE, "datasets": ["grid25"]}, "either 'dataset' or 'datasets'"),
    ],
)
def test_bad_suite_tables_are_user_errors(table, message):
    with pytest.raises(UserError, match=message):
        parse_suite(table)


def test_unknown_suite_lists_known_ones():
    with pytest.raises(UserError, match="unknown suite 'nope'.*ring8"):
        load_suite("nope")


def test_suite_from_a_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('name = "mine"\ndataset = "grid25"\nvariants = ["hinge"]\n[train]\nsteps = 3\n')
    suite = load_suite(str(path))
    assert (suite.name, suite.datasets, suite.train.steps) == ("mine", ("grid25",), 3)


def test_d_steps_default_comes_from_the_loss():
    suite = parse_suite(BASE)
    assert suite.train.resolved_d_steps("wgan-gp") == ADVERSARIAL.get("wgan-gp").d_steps == 5
    assert suite.train.resolved_d_steps("bce") == 1
    explicit = parse_suite({**BASE, "train": {"d_steps": 2}})
    assert explicit.train.resolved_d_steps("wgan-gp") == 2


def test_per_dataset_settings_replace_only_what_they_name():
    suite = parse_suite(
        {
            "name": "s",
            "datasets": ["ring8", "mnist"],
            "variants": ["bce"],
            "model": "mlp2d",
            "train": {"steps": 100, "batch_size": 256},
            "per_dataset": {"mnist": {"model": "dcgan28", "train": {"steps": 5}, "eval": {"metrics": []}}},
        }
    )
    ring, mnist = expand(suite, seeds=[0])
    assert (ring.model, ring.train.steps, ring.train.batch_size, ring.eval.metrics) == (
        "mlp2d",
        100,
        256,
        ("modes2d",),
    )
    assert (mnist.model, mnist.train.steps, mnist.train.batch_size, mnist.eval.metrics) == (
        "dcgan28",
        5,
        256,
        (),
    )


@pytest.mark.parametrize(
    "per_dataset,message",
    [
        ({"grid25": {}}, "'grid25' is not one of the suite's datasets"),
        ({"mnist": {"train": {"stepz": 5}}}, r"per_dataset.mnist\] train: unknown key.*stepz"),
        ({"mnist": {"colour": 1}}, "unknown key.*colour"),
        ({"mnist": {"train": {"steps": 0}}}, r"\[per_dataset.mnist\]: train.steps must be > 0"),
    ],
)
def test_bad_per_dataset_tables_are_user_errors(per_dataset, message):
    table = {"name": "s", "datasets": ["ring8", "mnist"], "variants": ["bce"], "per_dataset": per_dataset}
    with pytest.raises(UserError, match=message):
        parse_suite(table)


def test_variant_seeds_replace_the_suite_seeds_for_that_variant_only():
    suite = parse_suite(
        {
            **BASE,
            "variants": ["bce", "bce+gdpp"],
            "seeds": [0, 1, 2, 3],
            "variant_seeds": {"bce+gdpp@1": [0, 1]},
        }
    )
    keys = [spec.key for spec in expand(suite)]
    assert keys == [f"bce/seed-{s}" for s in range(4)] + ["bce+gdpp@1/seed-0", "bce+gdpp@1/seed-1"]
    # --seeds on the command line replaces both
    assert [spec.seed for spec in expand(suite, seeds=[7])] == [7, 7]
    ring8 = load_suite("ring8")
    assert ring8.seeds_of("bce") == tuple(range(10)) and ring8.seeds_of("bce+gdpp@1") == tuple(range(5))


@pytest.mark.parametrize(
    "variant_seeds, message",
    [
        ({"hinge": [0]}, "'hinge' is not one of the suite's variants"),
        ({"bce": []}, "bce needs at least one seed"),
        ({"bce": ["a"]}, "must be of type tuple"),
        ([1], "expected a table"),
    ],
)
def test_bad_variant_seeds_are_user_errors(variant_seeds, message):
    with pytest.raises(UserError, match=message):
        parse_suite({**BASE, "variant_seeds": variant_seeds})
