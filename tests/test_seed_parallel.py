"""Seed-parallel training: K seeds as one batched model must train as K sequential runs do."""

from __future__ import annotations

import csv
import dataclasses
import math
from pathlib import Path

import pytest
import torch
from conftest import tiny_suite

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.data import DATASETS
from gdpp_bench.rundir import RunDir
from gdpp_bench.suites import EvalConfig, expand
from gdpp_bench.training import (
    SeedParallelSteps,
    build_step,
    check_seed_parallel,
    seed_groups,
    seed_parallel,
    train,
    train_seed_parallel,
)

CPU = torch.device("cpu")
SEEDS = (0, 1, 2)
# Batched matmuls (bmm under vmap) sum in another order than the per-seed mm/addmm, so results
# agree to float32 rounding, not bit for bit; 20 GAN steps amplify that to ~1e-5 for bce and
# wgan-gp. GDPP's eigendecomposition amplifies it much more (near-tied eigenvalues), see below.
ATOL = {"bce": 1e-4, "wgan-gp": 1e-4, "bce+gdpp-si@1": 5e-2, "bce+ms@1": 1e-4}


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def specs_for(variant: str = "bce", steps: int = 20, **train_overrides):
    suite = tiny_suite(
        variants=(variant,),
        seeds=SEEDS,
        eval=EvalConfig(every=0, samples=500),
        train={"steps": steps, **train_overrides},
    )
    return expand(suite)


def run_path(root: Path, spec) -> Path:
    return root / spec.suite / spec.key


def params_of(state: dict) -> dict[str, torch.Tensor]:
    return {
        f"{net}.{name}": value for net in ("generator", "discriminator") for name, value in state[net].items()
    }


def read_log(path: Path) -> list[list[str]]:
    with path.open(newline="") as handle:
        return list(csv.reader(handle))


def test_initial_weights_are_the_sequential_ones():
    specs = specs_for()
    sampler = DATASETS.get("ring8").sampler(CPU)
    steps = [build_step(spec, CPU, sampler) for spec in specs]
    batch = SeedParallelSteps(steps, CPU)
    for k, spec in enumerate(specs):
        fresh = build_step(spec, CPU, sampler)  # built again: what a sequential run starts from
        for stacked, own in zip(batch.g_params, fresh.generator.parameters(), strict=True):
            assert torch.equal(stacked[k], own)
        for stacked, own in zip(batch.d_params, fresh.discriminator.parameters(), strict=True):
            assert torch.equal(stacked[k], own)
    assert not torch.equal(batch.g_params[0][0], batch.g_params[0][1])  # seeds differ


@pytest.mark.parametrize(
    ("variant", "update"),
    [
        ("bce", "simultaneous"),
        ("bce", "alternating"),
        ("wgan-gp", "alternating"),
        ("bce+gdpp-si@1", "simultaneous"),
        ("bce+ms@1", "alternating"),
    ],
)
def test_matches_sequential_runs(tmp_path, variant, update):
    specs = specs_for(variant, update=update)
    statuses = train_seed_parallel(specs, tmp_path / "par", CPU)
    assert [s["status"] for s in statuses] == ["done"] * len(specs)
    for spec in specs:
        assert train(spec, RunDir(run_path(tmp_path / "seq", spec)), CPU)["status"] == "done"
        par = load_checkpoint(run_path(tmp_path / "par", spec) / "checkpoint.pt")
        seq = load_checkpoint(run_path(tmp_path / "seq", spec) / "checkpoint.pt")
        assert par["step"] == seq["step"] == 20
        # the same random draws in the same order: the generators end in the same state
        assert torch.equal(par["rng"]["generator"], seq["rng"]["generator"])
        for name, value in params_of(seq).items():
            torch.testing.assert_close(
                params_of(par)[name], value, atol=ATOL[variant], rtol=0, msg=f"{spec.key} {name}"
            )
        par_log = read_log(run_path(tmp_path / "par", spec) / "log.csv")
        seq_log = read_log(run_path(tmp_path / "seq", spec) / "log.csv")
        assert par_log[0] == seq_log[0]  # same columns
        assert [row[0] for row in par_log] == [row[0] for row in seq_log]
        for par_row, seq_row in zip(par_log[1:], seq_log[1:], strict=True):
            values = [float(v) for v in par_row[1:-1]]
            expected = [float(v) for v in seq_row[1:-1]]
            assert values == pytest.approx(expected, abs=10 * ATOL[variant])


def test_gdpp_first_steps_match_closely(tmp_path):
    """Over few steps, before GDPP's eigensolver amplifies rounding, the match is tight."""
    specs = specs_for("bce+gdpp-si@1", steps=3, log_every=1)
    train_seed_parallel(specs, tmp_path / "par", CPU)
    for spec in specs:
        train(spec, RunDir(run_path(tmp_path / "seq", spec)), CPU)
        par = params_of(load_checkpoint(run_path(tmp_path / "par", spec) / "checkpoint.pt"))
        seq = params_of(load_checkpoint(run_path(tmp_path / "seq", spec) / "checkpoint.pt"))
        for name, value in seq.items():
            torch.testing.assert_close(par[name], value, atol=1e-4, rtol=0)


def test_run_dirs_have_the_sequential_format_and_resume_sequentially(tmp_path, monkeypatch):
    specs = specs_for("bce", steps=20, checkpoint_every=10)
    # interrupt the seed-parallel session after step 10 (its checkpoint is written)
    calls = {"n": 0}
    original = SeedParallelSteps.__call__

    def interrupted(self):
        calls["n"] += 1
        if calls["n"] > 10:
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(SeedParallelSteps, "__call__", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_seed_parallel(specs, tmp_path / "par", CPU)
    monkeypatch.setattr(SeedParallelSteps, "__call__", original)
    for spec in specs:
        run_dir = RunDir(run_path(tmp_path / "par", spec))
        assert run_dir.config.exists() and not run_dir.is_done()
        assert load_checkpoint(run_dir.checkpoint)["step"] == 10
        # a sequential train() resumes the seed-parallel checkpoint and finishes the run
        assert train(spec, run_dir, CPU)["status"] == "done"
        assert run_dir.samples_png.exists()
        assert [row[0] for row in read_log(run_dir.log)] == ["step", "10", "20"]
        reference = RunDir(run_path(tmp_path / "seq", spec))
        train(spec, reference, CPU)
        resumed, expected = (params_of(load_checkpoint(d.checkpoint)) for d in (run_dir, reference))
        for name, value in expected.items():
            torch.testing.assert_close(resumed[name], value, atol=1e-4, rtol=0)


def test_writes_done_and_skips_finished_runs(tmp_path):
    specs = specs_for("bce", steps=10)
    first = train_seed_parallel(specs, tmp_path, CPU)
    for spec, status in zip(specs, first, strict=True):
        run_dir = RunDir(run_path(tmp_path, spec))
        assert status["status"] == "done" and status["step"] == 10
        assert "seed-parallel" in status["step_execution"]
        assert run_dir.samples_png.exists() and run_dir.log.exists() and run_dir.checkpoint.exists()
    stamps = [RunDir(run_path(tmp_path, spec)).done.stat().st_mtime_ns for spec in specs]
    assert train_seed_parallel(specs, tmp_path, CPU) == first
    assert [RunDir(run_path(tmp_path, spec)).done.stat().st_mtime_ns for spec in specs] == stamps


def test_a_diverged_seed_fails_and_the_others_finish(tmp_path, monkeypatch):
    specs = specs_for("bce", steps=20)
    original = SeedParallelSteps.__call__

    def poisoned(self):
        values = original(self)
        for k, step in enumerate(self.steps):
            if step.rng.initial_seed() == 1:  # each seed's stream starts at its seed
                values[k, 0] = math.nan
        return values

    monkeypatch.setattr(SeedParallelSteps, "__call__", poisoned)
    statuses = train_seed_parallel(specs, tmp_path, CPU)
    by_seed = {spec.seed: status for spec, status in zip(specs, statuses, strict=True)}
    assert by_seed[1]["status"] == "failed"
    assert by_seed[1]["reason"] == "diverged: non-finite d_loss by step 10"
    assert by_seed[0]["status"] == by_seed[2]["status"] == "done"
    assert by_seed[0]["step"] == by_seed[2]["step"] == 20
    monkeypatch.setattr(SeedParallelSteps, "__call__", original)
    # the survivors trained as they would have alone
    for spec in specs:
        if spec.seed == 1:
            continue
        train(spec, RunDir(run_path(tmp_path / "seq", spec)), CPU)
        par = params_of(load_checkpoint(run_path(tmp_path, spec) / "checkpoint.pt"))
        seq = params_of(load_checkpoint(run_path(tmp_path / "seq", spec) / "checkpoint.pt"))
        for name, value in seq.items():
            torch.testing.assert_close(par[name], value, atol=1e-4, rtol=0)


def test_periodic_evaluation_calls_each_seeds_hook(tmp_path):
    suite = tiny_suite(variants=("bce",), seeds=SEEDS, train={"steps": 20})  # eval.every = 20
    specs = expand(suite)
    calls = []

    def hook_for(seed):
        def hook(generator, step):
            calls.append((seed, step, next(generator.parameters()).detach().clone()))
            return {"score": float(seed)}

        return hook

    train_seed_parallel(specs, tmp_path, CPU, eval_hooks=[hook_for(s.seed) for s in specs])
    assert sorted((seed, step) for seed, step, _ in calls) == [(0, 20), (1, 20), (2, 20)]
    for spec in specs:
        run_dir = RunDir(run_path(tmp_path, spec))
        assert read_log(run_dir.evals) == [["step", "score"], ["20", str(float(spec.seed))]]
        final = load_checkpoint(run_dir.checkpoint)["generator"]
        seen = next(w for seed, _, w in calls if seed == spec.seed)
        assert torch.equal(seen, next(iter(final.values())))


def test_refuses_what_it_cannot_batch():
    specs = specs_for()
    dcgan = [dataclasses.replace(spec, model="dcgan32") for spec in specs]
    with pytest.raises(ValueError, match="BatchNorm-free.*dcgan32"):
        check_seed_parallel(dcgan)
    with pytest.raises(ValueError, match="more than the seed"):
        check_seed_parallel([specs[0], dataclasses.replace(specs[1], variant="hinge")])
    with pytest.raises(ValueError, match="seed twice"):
        check_seed_parallel([specs[0], specs[0]])
    bf16 = [dataclasses.replace(s, train=dataclasses.replace(s.train, precision="bf16")) for s in specs]
    with pytest.raises(ValueError, match="fp32"):
        check_seed_parallel(bf16)
    with pytest.raises(ValueError, match="at least one"):
        check_seed_parallel([])


def test_refuses_models_with_batchnorm(tmp_path, monkeypatch):
    """A model registered as mlp2d but holding BatchNorm is refused before any training."""
    real_build = build_step

    def with_batchnorm(spec, device, sampler):
        step = real_build(spec, device, sampler)
        step.discriminator.body.append(torch.nn.BatchNorm1d(128))
        return step

    monkeypatch.setattr(seed_parallel, "build_step", with_batchnorm)
    with pytest.raises(ValueError, match="BatchNorm"):
        train_seed_parallel(specs_for(), tmp_path, CPU)


def test_seed_groups():
    specs = expand(tiny_suite(seeds=SEEDS))  # two variants x three seeds
    groups = seed_groups(specs)
    assert [[s.seed for s in group] for group in groups] == [list(SEEDS), list(SEEDS)]
    assert [{str(s.variant) for s in group} for group in groups] == [{"bce"}, {"bce+gdpp@1"}]


def test_patience_stops_each_seed_as_a_sequential_run_stops(tmp_path):
    evaluation = EvalConfig(every=10, samples=500, select="score", patience=1)
    suite = tiny_suite(variants=("bce",), seeds=SEEDS, train={"steps": 40}, eval=evaluation)
    specs = expand(suite)

    def hook(generator, step):
        return {"score": 1.0}  # never better after the first evaluation

    statuses = train_seed_parallel(specs, tmp_path / "par", CPU, eval_hooks=[hook] * len(specs))
    for spec, status in zip(specs, statuses, strict=True):
        expected = train(spec, RunDir(run_path(tmp_path / "seq", spec)), CPU, eval_hook=hook)
        assert status["step"] == expected["step"] == 20
        assert status["stopped_early"] and expected["stopped_early"]
        par_dir = RunDir(run_path(tmp_path / "par", spec))
        assert load_checkpoint(par_dir.checkpoint)["step"] == 20
        assert load_checkpoint(par_dir.best)["step"] == 10


def test_seed_parallel_from_the_command_line_writes_every_run(tmp_path):
    from conftest import gdpp_bench, result_lines, small_ring8_suite

    suite = small_ring8_suite(tmp_path / "ring8.toml", ("bce", "bce+gdpp"), (0,))
    done = gdpp_bench(
        "run",
        "--suite",
        str(suite),
        "--device",
        "cpu",
        "--steps",
        "20",
        "--seeds",
        "0,1,2",
        "--variants",
        "bce,bce+gdpp-si",
        "--results",
        str(tmp_path / "results"),
        "--seed-parallel",
    )
    assert done.returncode == 0, done.stderr
    lines = result_lines(done.stdout)
    assert len(lines) == 6 and all(": done  " in line for line in lines)
    assert "bce/seed-0, bce/seed-1, bce/seed-2: training 3 seeds as one batched model" in done.stdout
    for run_dir in (tmp_path / "results" / "ring8").glob("*/seed-*"):
        status = RunDir(run_dir).status()
        assert status["status"] == "done" and status["step_execution"].startswith("seed-parallel")
        assert RunDir(run_dir).metrics.is_file()


def test_seed_parallel_is_cpu_only():
    from gdpp_bench.training import supports_seed_parallel

    specs = expand(tiny_suite(variants=("bce",), seeds=(0, 1)))
    assert supports_seed_parallel(specs[0], torch.device("cpu"))
    assert not supports_seed_parallel(specs[0], torch.device("cuda"))
    with pytest.raises(ValueError, match="CPU only"):
        train_seed_parallel(specs, Path("unused"), torch.device("cuda"))
