"""Training: every loss x term trains, resume is bit-identical on CPU, divergence is recorded."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import subprocess
import sys

import numpy
import pytest
import torch
from conftest import tiny_suite

from gdpp_bench import training as train_module
from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.cuda_graph import GraphedStep
from gdpp_bench.data import DATASETS
from gdpp_bench.errors import UserError
from gdpp_bench.losses import ADVERSARIAL, TERMS, Generated
from gdpp_bench.pipeline import run_specs
from gdpp_bench.rundir import RunDir, read_json
from gdpp_bench.suites import RunSpec, expand
from gdpp_bench.training import engine, train

CPU = torch.device("cpu")


def read_log(run_dir: RunDir) -> list[dict[str, str]]:
    with run_dir.log.open() as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("update", ["alternating", "simultaneous"])
@pytest.mark.parametrize("term", ["", *TERMS.names()])
@pytest.mark.parametrize("adversarial", ADVERSARIAL.names())
def test_every_loss_and_term_trains(tmp_path, adversarial, term, update):
    variant = adversarial + (f"+{term}@0.5" if term else "")
    suite = tiny_suite(variants=(variant,), train={"steps": 6, "log_every": 3, "update": update})
    (spec,) = expand(suite)
    torch.manual_seed(spec.seed)
    run_dir = RunDir(tmp_path / spec.key)
    status = train(spec, run_dir, CPU)
    assert (status["status"], status["step"]) == ("done", 6) and status["train_wall_s"] > 0
    rows = read_log(run_dir)
    assert [int(r["step"]) for r in rows] == [3, 6]
    for row in rows:
        for column in ["d_loss", "g_loss", *([term] if term else [])]:
            assert math.isfinite(float(row[column]))
    if adversarial == "wgan-gp":
        assert float(rows[-1]["gp"]) > 0
    state = load_checkpoint(run_dir.checkpoint)
    assert state["step"] == 6
    from gdpp_bench.models import MODELS

    torch.manual_seed(spec.seed)
    fresh_generator, _ = MODELS.get("mlp2d")((2,))
    changed = [not torch.equal(fresh_generator.state_dict()[k], v) for k, v in state["generator"].items()]
    assert all(changed)


def _states_equal(a: dict, b: dict) -> None:
    for key in ("generator", "discriminator"):
        assert a[key].keys() == b[key].keys()
        for name in a[key]:
            assert torch.equal(a[key][name], b[key][name]), (key, name)
    for key in ("opt_g", "opt_d"):
        for index, tensors in a[key]["state"].items():
            for name, value in tensors.items():
                assert torch.equal(value, b[key]["state"][index][name]), (key, index, name)
    assert torch.equal(a["rng"]["generator"], b["rng"]["generator"])


OFFICIAL_STACKED_MNIST = {"g_target": 0.9, "latent": "mixture", "term_real_features": "post-update"}


@pytest.mark.parametrize(
    "variant, options",
    [("bce+gdpp@1", {}), ("wgan-gp+gdpp-si@0.5", {}), ("bce+gdpp@1", OFFICIAL_STACKED_MNIST)],
)
def test_resume_after_interruption_is_bit_identical(tmp_path, monkeypatch, variant, options):
    suite = tiny_suite(
        variants=(variant,),
        train={"steps": 40, "log_every": 4, "checkpoint_every": 6, "update": "alternating", **options},
    )
    (spec,) = expand(suite)
    straight = RunDir(tmp_path / "straight")
    train(spec, straight, CPU)

    saves = []
    real_save = engine.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        saves.append(state["step"])
        if len(saves) == 3:
            raise KeyboardInterrupt  # killed mid-run, after the checkpoint at step 18

    interrupted = RunDir(tmp_path / "interrupted")
    monkeypatch.setattr(engine, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        train(spec, interrupted, CPU)
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    assert not interrupted.is_done() and load_checkpoint(interrupted.checkpoint)["step"] == 18

    assert train(spec, interrupted, CPU)["status"] == "done"
    _states_equal(load_checkpoint(straight.checkpoint), load_checkpoint(interrupted.checkpoint))
    drop_rate = [{k: v for k, v in r.items() if k != "imgs_per_s"} for r in read_log(straight)]
    resumed = [{k: v for k, v in r.items() if k != "imgs_per_s"} for r in read_log(interrupted)]
    assert resumed == drop_rate  # same rows, no duplicates from the re-run steps 19..20


def test_same_seed_same_run_and_other_seed_differs(tmp_path):
    suite = tiny_suite(variants=("bce+gdpp@1",), seeds=(0, 1), train={"steps": 10})
    spec0, spec1 = expand(suite)
    runs = [RunDir(tmp_path / name) for name in ("a", "b", "c")]
    for spec, run_dir in zip((spec0, spec0, spec1), runs, strict=True):
        train(spec, run_dir, CPU)
    a, b, c = (load_checkpoint(r.checkpoint)["generator"] for r in runs)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_nan_loss_fails_the_run_and_the_suite_goes_on(results, monkeypatch):
    def poisoned(real, fake, generated):
        return fake.features.sum() * float("nan")

    monkeypatch.setitem(TERMS._entries, "gdpp", poisoned)
    suite = tiny_suite(variants=("bce", "bce+gdpp@1"), train={"steps": 20, "log_every": 5})
    outcomes = run_specs(expand(suite), results, None, "cpu")
    by_key = {o["key"]: o for o in outcomes}
    assert by_key["bce/seed-0"]["status"] == "done"
    failed = by_key["bce+gdpp@1/seed-0"]
    assert failed["status"] == "failed"
    assert failed["reason"].startswith("diverged: non-finite ")
    assert failed["reason"].endswith("g_loss, d_real, d_fake, gdpp by step 5")
    run_dir = RunDir(results / "tiny" / "bce+gdpp@1" / "seed-0")
    assert read_json(run_dir.metrics)["status"] == "failed"
    # a rerun does not retrain a failed run
    again = {o["key"]: o for o in run_specs(expand(suite), results, None, "cpu")}
    assert again["bce+gdpp@1/seed-0"]["skipped"] and again["bce+gdpp@1/seed-0"]["status"] == "failed"


def test_changed_config_in_an_existing_run_dir_is_refused(tmp_path):
    (spec,) = expand(tiny_suite(variants=("bce",), train={"steps": 10, "checkpoint_every": 5}))
    run_dir = RunDir(tmp_path / "run")
    train(spec, run_dir, CPU)
    run_dir.done.unlink()
    (other,) = expand(tiny_suite(variants=("bce",), train={"steps": 10, "lr_g": 0.5}))
    with pytest.raises(UserError, match="trained with other settings: train.lr_g"):
        train(other, run_dir, CPU)


def test_periodic_evaluation_is_logged(results):
    suite = tiny_suite(variants=("bce",), train={"steps": 40}, eval=tiny_suite().eval)
    (outcome,) = run_specs(expand(suite), results, None, "cpu")
    run_dir = RunDir(results / "tiny" / "bce" / "seed-0")
    with run_dir.evals.open() as handle:
        rows = list(csv.DictReader(handle))
    assert [int(r["step"]) for r in rows] == [20, 40]
    assert set(rows[0]) == {"step", "modes", "hq_percent", "kl_uniform"}
    # the evaluation at step 40 used the same generator and noise as the final metrics.json
    assert float(rows[-1]["hq_percent"]) == pytest.approx(outcome["values"]["hq_percent"])


def test_best_checkpoint_and_early_stopping_follow_the_evaluations(results):
    evaluation = dataclasses.replace(
        tiny_suite().eval, every=5, select="kl_uniform", select_mode="min", patience=2
    )
    suite = tiny_suite(variants=("bce",), train={"steps": 200, "log_every": 5}, eval=evaluation)
    (outcome,) = run_specs(expand(suite), results, None, "cpu")
    run_dir = RunDir(results / "tiny" / "bce" / "seed-0")
    with run_dir.evals.open() as handle:
        rows = [(int(r["step"]), float(r["kl_uniform"] or "nan")) for r in csv.DictReader(handle)]
    finite = [(value, step) for step, value in rows if math.isfinite(value)]
    best_value, best_step = min(finite, key=lambda pair: (pair[0], pair[1]))
    best = load_checkpoint(run_dir.best)
    assert (best["step"], best["kl_uniform"]) == (best_step, pytest.approx(best_value))
    status = run_dir.status()
    if status.get("stopped_early"):
        # exactly `patience` evaluations after the best one, none better
        assert rows[-1][0] == status["step"] == best_step + 2 * 5
    else:
        assert status["step"] == 200
    record = read_json(run_dir.metrics)
    assert record["protocol"]["modes2d"]["checkpoint"] == "best.pt"
    assert record["protocol"]["modes2d"]["checkpoint_step"] == best_step
    assert (run_dir.path / "samples" / "step-0000005.png").is_file()
    assert outcome["status"] == "done"


def test_bf16_autocast_trains_with_gdpp(tmp_path):
    suite = tiny_suite(variants=("bce+gdpp@1",), train={"steps": 4, "log_every": 2, "precision": "bf16"})
    (spec,) = expand(suite)
    run_dir = RunDir(tmp_path / "run")
    assert train(spec, run_dir, CPU)["status"] == "done"
    assert all(math.isfinite(float(row["gdpp"])) for row in read_log(run_dir))


def test_label_smoothing_sets_the_bce_targets_and_label_free_losses_ignore_it():
    from gdpp_bench.models import DOut

    torch.manual_seed(0)
    real, fake = (DOut(torch.randn(16), torch.randn(16, 4)) for _ in range(2))
    smoothed = ADVERSARIAL.get("bce").d_loss(real, fake, (0.9, 0.1))

    def cross_entropy(logits: torch.Tensor, target: float) -> torch.Tensor:
        p = torch.sigmoid(logits.double())
        return -(target * p.log() + (1 - target) * (1 - p).log()).mean()

    expected = cross_entropy(real.logits, 0.9) + cross_entropy(fake.logits, 0.1)
    assert torch.allclose(smoothed.double(), expected, rtol=1e-5)
    assert not torch.allclose(smoothed, ADVERSARIAL.get("bce").d_loss(real, fake, (1.0, 0.0)))
    hinge = ADVERSARIAL.get("hinge").d_loss
    assert torch.equal(hinge(real, fake, (0.9, 0.1)), hinge(real, fake, (1.0, 0.0)))


def test_cli_overrides_reach_the_spec():
    (spec,) = expand(tiny_suite(variants=("bce",)), steps=3, precision="bf16", compile=True, cuda_graph=False)
    assert (spec.train.steps, spec.train.precision, spec.train.compile) == (3, "bf16", True)
    assert spec.train.cuda_graph is False


CUDA = torch.device("cuda")  # only compared against, never allocated on


@pytest.mark.parametrize(
    ("device", "terms", "sampler", "reason"),
    [
        (CUDA, ["gdpp"], "mixture", "gdpp synchronises with the host"),
        (CUDA, ["gdpp-si"], "mixture", "gdpp-si synchronises with the host"),
        (CUDA, [], "streaming", "MemmapSampler copies batches from the host"),
        (CPU, [], "mixture", "CUDA graphs need a CUDA device"),
        (CUDA, [], "mixture", None),
        (CUDA, [], "tensor", None),
    ],
)
def test_what_blocks_a_cuda_graph(device, terms, sampler, reason):
    from gdpp_bench.cuda_graph import graph_blocker
    from gdpp_bench.data.image_files import MemmapSampler
    from gdpp_bench.data.images import TensorSampler

    samplers = {
        "mixture": DATASETS.get("ring8").sampler(CPU, None),
        "tensor": TensorSampler(torch.zeros(4, 1, 2, 2, dtype=torch.uint8)),
        "streaming": MemmapSampler(numpy.zeros((4, 3, 2, 2), dtype=numpy.uint8), CPU),
    }
    blocker = graph_blocker(device, terms, samplers[sampler])
    assert blocker == reason if reason is None else blocker.startswith(reason)


def test_a_cpu_run_records_why_its_step_ran_eagerly(tmp_path):
    (spec,) = expand(tiny_suite(variants=("bce",), train={"steps": 2, "log_every": 1}))
    run_dir = RunDir(tmp_path / "run")
    status = train(spec, run_dir, CPU)
    assert status["step_execution"] == "eager: CUDA graphs need a CUDA device, not cpu"
    step = train_module.build_step(spec, CPU, DATASETS.get("ring8").sampler(CPU, None))
    assert not isinstance(train_module.make_stepper(step), GraphedStep)
    assert all(not group["capturable"] for group in step.opt_g.param_groups)


def test_a_run_started_before_new_config_fields_existed_still_resumes(tmp_path):
    (spec,) = expand(tiny_suite(variants=("bce",), train={"steps": 10, "checkpoint_every": 5}))
    run_dir = RunDir(tmp_path / "run")
    train(spec, run_dir, CPU)
    run_dir.done.unlink()
    config = read_json(run_dir.config)
    del config["spec"]["train"]["precision"]  # as written by a version without that field
    del config["spec"]["eval"]["patience"]
    run_dir.config.write_text(json.dumps(config))
    state = load_checkpoint(run_dir.checkpoint)
    del state["selection"]  # nor did its checkpoints hold the best.pt bookkeeping
    torch.save(state, run_dir.checkpoint)
    assert train(spec, run_dir, CPU)["status"] == "done"
    assert RunSpec.from_dict(spec.to_dict()) == spec


def test_a_run_dir_in_use_by_another_process_is_refused(tmp_path):
    (spec,) = expand(tiny_suite(variants=("bce",), train={"steps": 4}))
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir(parents=True)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys, time; h = open(sys.argv[1], 'w'); "
            "fcntl.flock(h, fcntl.LOCK_EX); print('locked', flush=True); time.sleep(60)",
            str(run_dir.path / ".lock"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(UserError, match="being trained by another process"):
            train(spec, run_dir, CPU)
        assert not run_dir.config.exists()  # nothing written while the other process owns it
    finally:
        holder.kill()
        holder.wait()
    assert train(spec, run_dir, CPU)["status"] == "done"


def test_gdpp_runs_log_the_sign_flip_diagnostic_and_it_survives_a_resume(tmp_path):
    suite = tiny_suite(variants=("bce+gdpp@1", "bce+gdpp-si@1"), train={"steps": 30, "log_every": 5})
    gdpp, gdpp_si = expand(suite)
    run = RunDir(tmp_path / "gdpp")
    assert train(gdpp, run, CPU)["status"] == "done"
    log = read_log(run)
    flips = [float(row["gdpp_sign_flips"]) for row in log]
    assert math.isnan(flips[0])  # no earlier log step to compare with
    assert all(0 <= value <= 1 for value in flips[1:])
    header = run.log.read_text().splitlines()[0].split(",")
    assert header[-2:] == ["imgs_per_s", "gdpp_sign_flips"]
    other = RunDir(tmp_path / "si")
    train(gdpp_si, other, CPU)
    assert "gdpp_sign_flips" not in other.log.read_text()  # |<v, v'>| has no sign to flip


def _one_step(options: dict, monkeypatch) -> tuple[torch.Tensor, torch.Tensor, train_module.TrainStep]:
    """One alternating step of bce+gdpp with `options`: (the real features GDPP compared with,
    the real batch, the step)."""
    (spec,) = expand(tiny_suite(variants=("bce+gdpp@1",), train={"update": "alternating", **options}))
    step = train_module.build_step(spec, CPU, DATASETS.get("ring8").sampler(CPU))
    seen = {}
    real_sampler, gdpp = step.sample_real, step.terms[0][1]

    def sample(count, rng):
        seen["real"] = real_sampler(count, rng)
        return seen["real"]

    def term(real, fake, generated):
        seen["features"] = real.features.detach().clone()
        return gdpp(real, fake, generated)

    step.sample_real = sample
    step.terms = [("gdpp", term, 1.0)]
    train_module.train_step(step)
    return seen["features"], seen["real"], step


@pytest.mark.parametrize("where", ["pre-update", "post-update"])
def test_gdpp_real_features_come_from_the_d_the_option_names(where, monkeypatch):
    features, real, step = _one_step({"term_real_features": where}, monkeypatch)
    with torch.no_grad():
        after = step.discriminator(real).features  # D after this step's update
    assert torch.allclose(features, after) == (where == "post-update")


def test_mixture_latent_is_fixed_centres_plus_small_noise():
    (spec,) = expand(tiny_suite(train={"latent": "mixture", "batch_size": 512}, variants=("bce",)))
    step = train_module.build_step(spec, CPU, DATASETS.get("ring8").sampler(CPU))
    centres = step.latent_centres
    assert centres.shape == (512, step.generator.z_dim)
    assert centres.min() >= -1 and centres.max() <= 1 and centres.std() > 0.5  # U(-1, 1)
    z = torch.stack([step.noise() for _ in range(200)])
    assert torch.allclose(z.mean(0), centres, atol=0.1)  # each batch position around its centre
    assert z.std(0).mean().item() == pytest.approx(0.2, rel=0.05)
    again = train_module.build_step(spec, CPU, DATASETS.get("ring8").sampler(CPU))
    assert torch.equal(again.latent_centres, centres)  # from the seed: a resumed run has the same
    (normal,) = expand(tiny_suite(variants=("bce",)))
    assert train_module.build_step(normal, CPU, DATASETS.get("ring8").sampler(CPU)).latent_centres is None


def test_generator_target_smooths_only_the_bce_generator_loss():
    from gdpp_bench.models.base import DOut

    logits = torch.tensor([[0.3], [-1.2], [2.0]])
    fake = DOut(logits, logits)
    bce = ADVERSARIAL.get("bce")
    expected = -(
        0.9 * torch.nn.functional.logsigmoid(logits) + 0.1 * torch.nn.functional.logsigmoid(-logits)
    ).mean()
    assert torch.allclose(bce.g_loss(fake, 0.9), expected)
    assert torch.allclose(bce.g_loss(fake, 1.0), -torch.nn.functional.logsigmoid(logits).mean())
    hinge = ADVERSARIAL.get("hinge")
    assert torch.equal(hinge.g_loss(fake, 0.9), hinge.g_loss(fake, 1.0))


def test_g_first_steps_g_against_the_current_d_then_d_on_the_same_real_batch():
    """update = "g-first" (the official CIFAR-10 order): G's update uses the D of the step's start
    (real features included), then D updates on the same real batch with a fresh fake batch from
    the updated G. Checked against the order done by hand on copies of the same models."""
    import copy

    (spec,) = expand(
        tiny_suite(variants=("bce+gdpp",), train={"steps": 1, "batch_size": 32, "update": "g-first"})
    )
    sampler = DATASETS.get("ring8").sampler(CPU, None)
    step = train_module.build_step(spec, CPU, sampler)
    generator, discriminator = copy.deepcopy(step.generator), copy.deepcopy(step.discriminator)
    rng = torch.Generator().set_state(step.rng.get_state())
    logged = train_module.train_step(step)

    cfg = spec.train
    opt_g = torch.optim.Adam(generator.parameters(), cfg.lr_g, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    opt_d = torch.optim.Adam(discriminator.parameters(), cfg.lr_d, betas=(cfg.beta1, cfg.beta2), eps=cfg.eps)
    bce, gdpp = ADVERSARIAL.get("bce"), TERMS.get("gdpp")
    real = sampler.sample(32, rng)
    z = torch.randn(32, generator.z_dim, generator=rng)
    fake = generator(z)
    out_real, out_fake = discriminator(real), discriminator(fake)
    g_loss = bce.g_loss(out_fake, 1.0) + gdpp(out_real, out_fake, Generated(z, fake)).value
    opt_g.zero_grad()
    g_loss.backward()
    opt_g.step()
    fresh = generator(torch.randn(32, generator.z_dim, generator=rng)).detach()
    d_loss = bce.d_loss(discriminator(real), discriminator(fresh), (1.0, 0.0))
    opt_d.zero_grad()
    d_loss.backward()
    opt_d.step()

    torch.testing.assert_close(logged[:2], torch.stack([d_loss, g_loss]).detach())
    for mine, theirs in ((step.generator, generator), (step.discriminator, discriminator)):
        for (name, a), b in zip(mine.state_dict().items(), theirs.state_dict().values(), strict=True):
            torch.testing.assert_close(a, b, msg=name)


def test_g_first_runs_are_not_batched_across_seeds():
    from gdpp_bench.training.seed_parallel import check_seed_parallel

    specs = expand(tiny_suite(variants=("bce",), seeds=(0, 1), train={"update": "g-first"}))
    with pytest.raises(ValueError, match='update = "g-first"'):
        check_seed_parallel(specs)
