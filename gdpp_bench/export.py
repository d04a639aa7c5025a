"""Samples from a trained run for tools outside the harness: a PNG folder or an .npz (key
`images`, uint8 NHWC: what external FID tools read) of images, a CSV of points for the 2D models.

The noise depends only on the seed and the count (drawn at once, then generated in chunks), so the
same command gives the same samples, and another chunk size the same to float rounding (a
matmul's blocking depends on its batch size); what was sampled (run, checkpoint and
its step, seed, BatchNorm mode, count) is written beside the output as JSON."""

from __future__ import annotations

import copy
import csv
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from gdpp_bench.checkpoint import load_checkpoint
from gdpp_bench.config import RunSpec
from gdpp_bench.data import dataset_of
from gdpp_bench.environment import git_hash
from gdpp_bench.errors import UserError
from gdpp_bench.models import build_models
from gdpp_bench.plugins import load_recorded_plugins
from gdpp_bench.rundir import RunDir, write_atomic, write_json
from gdpp_bench.samples import to_uint8

EXPORT_FORMATS = ("png", "npz", "csv")
CHECKPOINT_CHOICES = ("auto", "best", "last")
BN_MODES = ("running", "batch")  # as eval.sample_bn: running statistics, or each chunk's own
CHUNK = 500


def export_format(out: Path, requested: str | None) -> str:
    """The format asked for, else the one `out`'s suffix names (.npz, .csv; anything else: PNGs)."""
    if requested:
        return requested
    return {".npz": "npz", ".csv": "csv"}.get(out.suffix, "png")


def _checkpoint(run_dir: RunDir, which: str) -> Path:
    if which == "best" and not run_dir.best.exists():
        raise UserError(
            f"{run_dir.path} has no best.pt (its suite selects no checkpoint); use --checkpoint last"
        )
    if which == "best" or (which == "auto" and run_dir.best.exists()):
        return run_dir.best
    if not run_dir.checkpoint.exists():
        raise UserError(f"{run_dir.path} has no checkpoint.pt yet: train the run first")
    return run_dir.checkpoint


def _chunks(generator: torch.nn.Module, z: Tensor, bn: str, chunk: int) -> Iterator[Tensor]:
    """G's output for `z`, chunk by chunk: BatchNorm with its running statistics, or (`bn` batch)
    with each chunk's own, on a copy of G so that its running statistics stay untouched."""
    model = copy.deepcopy(generator).train() if bn == "batch" else generator.eval()
    with torch.no_grad():
        for part in z.split(chunk):
            yield model(part)


def export_samples(
    run_path: Path,
    out: Path,
    count: int,
    *,
    fmt: str | None = None,
    seed: int = 0,
    checkpoint: str = "auto",
    bn: str = "running",
    chunk: int | None = None,
    device: torch.device | None = None,
) -> dict[str, Any]:
    """Write `count` samples of the run in `run_path` to `out`; returns the record written beside
    it (OUT.json for a file, OUT/samples.json for a PNG folder). `out` must not exist: nothing is
    overwritten. `chunk`: samples generated at once (default 500; with `bn` batch, the run's
    training batch size, the statistics the official GDPP sampling uses)."""
    run_dir = RunDir(run_path)
    if not run_dir.config.exists():
        raise UserError(f"{run_path} is not a run folder (no config.json); pass RESULTS/SUITE/VARIANT/seed-N")
    if count < 1:
        raise UserError(f"--count must be at least 1, got {count}")
    if out.exists():
        raise UserError(f"{out} exists; choose another --out (nothing is overwritten)")
    fmt = export_format(out, fmt)
    config = run_dir.read_config()
    load_recorded_plugins(run_dir, config)
    spec = RunSpec.from_dict(config["spec"])
    shape = dataset_of(spec).shape
    if (fmt == "csv") != (len(shape) == 1):
        wanted = "csv" if len(shape) == 1 else "png or npz"
        kind = "points" if len(shape) == 1 else "images"
        raise UserError(f"{spec.dataset} samples are {kind}: use --format {wanted}")
    device = device or torch.device("cpu")
    path = _checkpoint(run_dir, checkpoint)
    state = load_checkpoint(path, map_location=device)
    generator, _ = build_models(spec.model, shape)
    generator.load_state_dict(state["generator"])
    generator.to(device)
    chunk = chunk or (spec.train.batch_size if bn == "batch" else CHUNK)
    noise = torch.Generator(device).manual_seed(seed)
    z = torch.randn(count, cast(int, generator.z_dim), generator=noise, device=device)
    parts = _chunks(generator, z, bn, chunk)
    if fmt == "png":
        _write_png_folder(out, parts)
    elif fmt == "npz":
        images = np.concatenate([to_uint8(p).permute(0, 2, 3, 1).cpu().numpy() for p in parts])

        def write_images(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.savez(handle, images=images)

        write_atomic(out, write_images)
    else:
        points = torch.cat([p.float().cpu() for p in parts]).tolist()

        def write_points(tmp: Path) -> None:
            with tmp.open("w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["x", "y"])
                writer.writerows(points)

        write_atomic(out, write_points)
    record = {
        "run": str(run_dir.path),
        "key": spec.key,
        "checkpoint": path.name,
        "step": int(state["step"]),
        "count": count,
        "seed": seed,
        "sample_bn": bn,
        "chunk": chunk,
        "format": fmt,
        "git": git_hash(),
    }
    write_json(out / "samples.json" if fmt == "png" else out.with_name(out.name + ".json"), record)
    return record


def _write_png_folder(out: Path, parts: Iterator[Tensor]) -> None:
    """One PNG per sample (000000.png, ...), written into a temporary folder renamed at the end, so
    an interrupted export leaves no partial folder under the asked name."""
    from PIL import Image

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{secrets.token_hex(6)}.tmp")
    try:
        tmp.mkdir()  # inside the try, as write_atomic does: an interruption leaves nothing behind
        index = 0
        for part in parts:
            for image in to_uint8(part).permute(0, 2, 3, 1).cpu().numpy():
                pixels = image[:, :, 0] if image.shape[2] == 1 else image
                Image.fromarray(pixels).save(tmp / f"{index:06d}.png")
                index += 1
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
