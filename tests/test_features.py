"""Fidelity metrics on features beyond Inception (eval.features, evaluate --features): DINOv2 from a
local weights file through timm, CLIP's path through torch-fidelity; offline, with tiny stand-in
weights of the real architectures (the numbers they give mean nothing)."""

from __future__ import annotations

import json
import math
import socket

import pytest
import torch
from conftest import gdpp_bench
from image_fixtures import write_folder_suite, write_image_folder

from gdpp_bench.config import CLIP_FEATURES, DINOV2_FEATURES, FEATURE_EXTRACTORS
from gdpp_bench.errors import UserError
from gdpp_bench.metrics import HIGHER_IS_BETTER, METRICS
from gdpp_bench.metrics import features as names
from gdpp_bench.metrics import fidelity as measure
from gdpp_bench.metrics.inception_weights import weights_sha256
from gdpp_bench.power import family_values
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import declared_values, parse_suite

timm = pytest.importorskip("timm")
DINO = "dinov2-vit-s-14"


@pytest.fixture
def offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise AssertionError("tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.fixture(scope="module")
def dinov2_weights(tmp_path_factory):
    """A one-block DINOv2-layout ViT (width 64, patch 14, a 7 x 7 position grid) saved in Meta's
    key layout (mask_token, ls1.gamma), as the official dinov2_vits14_pretrain.pth is."""
    from timm.models.vision_transformer import VisionTransformer

    torch.manual_seed(0)
    model = VisionTransformer(
        img_size=98, patch_size=14, num_classes=0, embed_dim=64, depth=1, num_heads=1, init_values=1.0
    )
    state = {**model.state_dict(), "mask_token": torch.zeros(1, 64)}
    path = tmp_path_factory.mktemp("dinov2") / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    return path


def test_names_are_torch_fidelitys_and_keys_carry_the_extractor():
    from gdpp_bench.metrics.torch_fidelity_api import FEATURE_EXTRACTORS_REGISTRY

    registered = {n for n in FEATURE_EXTRACTORS_REGISTRY if n.startswith(("clip-", "dinov2-"))}
    assert registered == {*DINOV2_FEATURES, *CLIP_FEATURES}
    assert FEATURE_EXTRACTORS[0] == names.DEFAULT_FEATURES == "inception-v3-compat"
    assert names.fidelity_keys("dinov2-vit-l-14") == (
        "fd_dinov2",
        "kid_dinov2",
        "kid_std_dinov2",
        "precision_dinov2",
        "recall_dinov2",
        "density_dinov2",
        "coverage_dinov2",
    )
    assert names.value_key("fid", "clip-vit-b-32") == "fd_clip"
    assert names.value_key("fid", DINO) == "fd_dinov2_s14"
    assert names.value_key("recall", "clip-rn50") == "recall_clip_rn50"
    keys = [k for f in FEATURE_EXTRACTORS for k in names.fidelity_keys(f)]
    assert len(keys) == len(set(keys))  # no two extractors share a column
    assert (HIGHER_IS_BETTER["fd_dinov2"], HIGHER_IS_BETTER["precision_dinov2"]) == (False, True)
    assert HIGHER_IS_BETTER["fd_clip"] is False and "is_dinov2" not in HIGHER_IS_BETTER
    # the Holm family and [decision] primary: the chosen extractor's values only
    assert declared_values(["fidelity"]) == ("fid", "is", "kid", "precision", "recall", "density", "coverage")
    dino = (
        "fd_dinov2",
        "kid_dinov2",
        "precision_dinov2",
        "recall_dinov2",
        "density_dinov2",
        "coverage_dinov2",
    )
    assert declared_values(["fidelity"], "dinov2-vit-l-14") == dino
    assert family_values(["fidelity", "vendi"], (), "dinov2-vit-l-14") == (*dino, "vendi")


def test_suite_field_per_dataset_and_bad_names():
    base = {"name": "s", "datasets": ["cifar10", "celeba"], "variants": ["bce"]}
    suite = parse_suite(
        {
            **base,
            "eval": {"metrics": ["fidelity"], "features": "dinov2-vit-l-14"},
            "per_dataset": {"celeba": {"eval": {"features": "clip-vit-b-32"}}},
        }
    )
    assert suite.settings("cifar10").eval.features == "dinov2-vit-l-14"
    assert suite.settings("celeba").eval.features == "clip-vit-b-32"
    assert parse_suite(base).eval.features == "inception-v3-compat"
    with pytest.raises(UserError, match=r"eval.features: unknown feature extractor 'dinov3'; choose one of "):
        parse_suite({**base, "eval": {"features": "dinov3"}})
    with pytest.raises(UserError, match=r"eval.select = 'fid' is not measured with eval.features"):
        parse_suite(
            {**base, "eval": {"metrics": ["fidelity"], "features": DINO, "select": "fid", "every": 2}}
        )
    with pytest.raises(UserError, match=r"primary value 'fid' is not a compared value"):
        parse_suite(
            {**base, "eval": {"metrics": ["fidelity"], "features": DINO}, "decision": {"primary": ["fid"]}}
        )


def test_dinov2_loads_local_weights_and_matches_the_hub_preprocessing(dinov2_weights, offline):
    from gdpp_bench.metrics import dinov2

    extractor = dinov2.DinoV2FeatureExtractor(dinov2.extractor_name(DINO), ["dinov2"], str(dinov2_weights))
    images = torch.randint(
        0, 256, (3, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(1)
    )
    (features,) = extractor(images)
    assert features.shape == (3, 64) and features.dtype == torch.float32
    # the same network by hand: TF1 bilinear resize to 224, ImageNet normalisation, CLS token after the
    # final norm, with the 7 x 7 position embeddings resized as the hub model does
    state = torch.load(dinov2_weights, weights_only=True)
    x = measure.tf.interpolate_bilinear_2d_like_tensorflow1x(
        images.float(), size=(224, 224), align_corners=False
    )
    mean = torch.tensor([0.485, 0.456, 0.406])[:, None, None] * 255
    std = torch.tensor([0.229, 0.224, 0.225])[:, None, None] * 255
    x = (x - mean) / std
    model = extractor.model
    tokens = model.patch_embed(x)
    tokens = torch.cat([state["cls_token"].expand(3, -1, -1), tokens], dim=1)
    tokens = tokens + dinov2.hub_position_embedding(state["pos_embed"], 14)
    expected = model.norm(model.blocks(tokens))[:, 0]
    torch.testing.assert_close(features, expected)
    described = dinov2.describe(DINO, dinov2_weights)
    assert described["architecture"]["embed_dim"] == 64 and not described["official_architecture"]


def test_dinov2_reads_timms_layout_and_safetensors_alike(dinov2_weights, tmp_path):
    from safetensors.torch import save_file

    from gdpp_bench.metrics import dinov2

    meta_layout = torch.load(dinov2_weights, weights_only=True)
    timm_layout = {k: v for k, v in meta_layout.items() if k != "mask_token"}
    converted = tmp_path / "model.safetensors"
    save_file(timm_layout, str(converted))
    images = torch.randint(0, 256, (2, 3, 28, 28), dtype=torch.uint8)
    name = dinov2.extractor_name(DINO)
    (meta,) = dinov2.DinoV2FeatureExtractor(name, ["dinov2"], str(dinov2_weights))(images)
    (from_timm,) = dinov2.DinoV2FeatureExtractor(name, ["dinov2"], str(converted))(images)
    torch.testing.assert_close(meta, from_timm)


def test_dinov2_weights_that_are_not_a_state_dict_are_one_line(tmp_path, offline):
    bad = tmp_path / "bad.pth"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(UserError, match="is not a DINOv2 state dict"):
        measure.extractor_for("cifar10", None, None, DINO, bad)
    with pytest.raises(UserError, match=r"--feature-weights .*nope.pth not found; download https://"):
        measure.extractor_for("cifar10", None, None, DINO, tmp_path / "nope.pth")


def test_missing_weights_without_a_network_name_the_url_and_the_option(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def offline_download(*args, **kwargs):
        raise OSError("no route to host")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline_download)
    with pytest.raises(UserError) as raised:
        measure.extractor_for("cifar10", None, None, "dinov2-vit-l-14")
    message = str(raised.value)
    assert "dinov2_vitl14_pretrain.pth" in message and "--feature-weights PATH" in message
    assert "\n" not in message


def _suite(tmp_path, extra: str = "") -> str:
    return str(write_folder_suite(tmp_path / "mine.toml", extra=f'reference_split = "test"\n{extra}'))


def test_a_suite_measures_with_dinov2_and_evaluate_switches_extractor(
    tmp_path, monkeypatch, dinov2_weights, offline
):
    """run with eval.features = dinov2: fd_dinov2 and no fid/IS, the extractor and its sha256 in the
    protocol, a reference cache of its own; evaluate --features re-measures; bad names: one line."""
    monkeypatch.setenv("GDPP_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))
    write_image_folder(tmp_path / "root" / "mine" / "train", 12, ".png")
    write_image_folder(tmp_path / "root" / "mine" / "test", 12, ".png", first_color=60)
    results = tmp_path / "results"
    common = ("--data-root", str(tmp_path / "root"), "--results", str(results))
    suite = _suite(tmp_path, f'features = "{DINO}"')
    done = gdpp_bench("run", "--suite", suite, *common, "--feature-weights", str(dinov2_weights))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "not comparable to published FD_dinov2_s14" in done.stderr  # stand-in weights: warned
    run = RunDir(results / "mine" / "bce" / "seed-0")
    record = json.loads(run.metrics.read_text())
    values, protocol = record["values"], record["protocol"]["fidelity"]
    assert set(values) == set(names.fidelity_keys(DINO))
    assert all(math.isfinite(v) for v in values.values()) and values["fd_dinov2_s14"] > 0
    assert protocol["features"] == DINO and protocol["extractor"] == "gdpp-dinov2-vit-s-14"
    assert protocol["extractor_weights_sha256"] == weights_sha256(dinov2_weights)
    assert protocol["inception_score"].startswith("not measured")
    assert "comparability" in protocol and protocol["architecture"]["depth"] == 1
    reference = protocol["reference"]
    assert f"-{DINO}-{weights_sha256(dinov2_weights)[:16]}" in reference
    cached = {p.name for p in (tmp_path / "cache" / "fidelity").iterdir()}
    assert cached and all(name.startswith(reference) for name in cached)
    # Inception's reference of the same images is another cache name, even with the same digest
    digest = protocol["extractor_weights_sha256"]
    inception = measure.Extractor("inception-v3-compat", dinov2_weights, digest, {})
    dino = measure.Extractor("gdpp-dinov2-vit-s-14", dinov2_weights, digest, {}, DINO)
    dataset, images = _reference(tmp_path)
    root = str(tmp_path / "root")
    assert measure.reference_name(dataset, root, "test", images, dino) == reference
    by_inception = measure.reference_name(dataset, root, "test", images, inception)
    assert by_inception != reference and not any(name.startswith(f"{by_inception}-") for name in cached)

    # evaluate: the same extractor keeps the record; another one re-measures under its own keys
    again = gdpp_bench("evaluate", "--suite", "mine", *common, "--feature-weights", str(dinov2_weights))
    assert again.returncode == 0, again.stderr
    assert json.loads(run.metrics.read_text())["values"] == values
    switched = gdpp_bench(
        "evaluate",
        "--suite",
        "mine",
        *common,
        "--features",
        "dinov2-vit-b-14",
        "--feature-weights",
        str(dinov2_weights),
    )
    assert switched.returncode == 0, switched.stderr
    record = json.loads(run.metrics.read_text())
    assert set(record["values"]) == set(names.fidelity_keys("dinov2-vit-b-14"))
    assert record["protocol"]["fidelity"]["features"] == "dinov2-vit-b-14"
    report = gdpp_bench("report", "--suite", "mine", "--results", str(results), "--no-figures")
    assert report.returncode == 0, report.stdout + report.stderr
    runs = (results / "mine" / "report" / "runs.csv").read_text().splitlines()
    columns = runs[0].split(",")
    assert "fd_dinov2_b14" in columns and "fid" not in columns and "is" not in columns
    assert "not comparable to published FD_dinov2_b14" in runs[1]  # feature_note
    summary = (results / "mine" / "report" / "summary.md").read_text()
    assert "fidelity values not comparable to published FD_dinov2_b14" in summary

    bad = gdpp_bench("evaluate", "--suite", "mine", *common, "--features", "dinov3")
    assert bad.returncode == 2 and bad.stdout == ""
    (line,) = bad.stderr.strip().splitlines()
    assert line.startswith("error: ") and "dinov2-vit-l-14" in line and "clip-vit-b-32" in line
    typo = _suite(tmp_path, 'features = "dino"')
    refused = gdpp_bench("run", "--suite", typo, *common)
    assert refused.returncode == 2
    (line,) = refused.stderr.strip().splitlines()
    assert line.startswith("error: ") and "unknown feature extractor 'dino'" in line


def _reference(tmp_path):
    from gdpp_bench.data import dataset_for

    dataset = dataset_for("folder", "mine", 32)
    images = measure.real_reference(dataset, str(tmp_path / "root"), "test", 16)
    return dataset, images


def test_api_evaluate_refuses_an_unknown_extractor(tmp_path):
    import gdpp_bench

    with pytest.raises(UserError, match="unknown feature extractor 'inception'"):
        gdpp_bench.evaluate(tmp_path, features="inception")


@pytest.mark.filterwarnings("ignore::FutureWarning", "ignore::torch.jit.TracerWarning")
def test_clip_takes_a_local_file(tmp_path, offline, monkeypatch):
    """torch-fidelity's CLIP extractor reads a TorchScript file: a one-layer ViT of CLIP's layout,
    traced; its digest is not OpenAI's, so the protocol marks it."""
    from torch import nn
    from torch_fidelity.feature_extractor_clip import VisionTransformer

    class Clip(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.visual = VisionTransformer(32, 16, 64, 1, 1, 8)
            self.text_projection = nn.Parameter(torch.zeros(4, 8))

        def forward(self, x):
            return self.visual(x)

    path = tmp_path / "clip.pt"
    torch.jit.trace(Clip().eval(), torch.zeros(1, 3, 32, 32)).save(str(path))
    extractor = measure.extractor_for("cifar10", None, None, "clip-vit-b-32", path)
    assert extractor.name == "clip-vit-b-32" and extractor.weights == path
    assert extractor.details["weights_published"] is False and "FD_clip" in extractor.details["comparability"]
    fake, real = (torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8) for _ in range(2))
    monkeypatch.setattr(measure, "fidelity_cache_dir", lambda: tmp_path / "fidelity")  # not the user's
    values = measure.fidelity_metrics(fake, real, "test-clip", extractor, torch.device("cpu"), batch_size=5)
    assert set(values) == set(names.fidelity_keys("clip-vit-b-32")) and "fid" not in values
    assert math.isfinite(values["fd_clip"])


def test_extractor_of_every_dinov2_size_is_registered():
    from gdpp_bench.metrics import dinov2

    for features in DINOV2_FEATURES:
        assert dinov2.extractor_name(features) in measure.tf.FEATURE_EXTRACTORS_REGISTRY
    assert METRICS.meta("fidelity")["features"] is True
