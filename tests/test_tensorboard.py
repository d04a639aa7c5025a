"""TensorBoard events (`--tensorboard`, eval.tensorboard): log.csv's values, periodic metrics and
sample pictures, read back from the event files; a resumed run leaves no duplicate steps."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from conftest import gdpp_bench

from gdpp_bench.training import engine

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

SUITE = """name = "board"
dataset = "ring8"
model = "mlp2d"
variants = ["bce+gdpp"]
seeds = [0]
[train]
steps = 40
batch_size = 64
log_every = 10
checkpoint_every = 10
update = "simultaneous"
[eval]
every = 20
samples = 300
"""


def _events(run: Path) -> EventAccumulator:
    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    return events


def _steps(events: EventAccumulator, tag: str) -> list[int]:
    return [event.step for event in events.Scalars(tag)]


def test_scalars_metrics_and_pictures_are_written_and_a_resume_duplicates_nothing(tmp_path, monkeypatch):
    suite = tmp_path / "board.toml"
    suite.write_text(SUITE)
    args = ("run", "--suite", str(suite), "--device", "cpu", "--results", str(tmp_path), "--tensorboard")
    real_save = engine.save_checkpoint

    def save_then_die(path, state):
        real_save(path, state)
        if state["step"] == 30:
            raise KeyboardInterrupt  # killed after the checkpoint at step 30, evaluation at 20

    monkeypatch.setattr(engine, "save_checkpoint", save_then_die)
    assert gdpp_bench(*args).returncode == 130
    monkeypatch.setattr(engine, "save_checkpoint", real_save)
    assert gdpp_bench(*args).returncode == 0

    run = tmp_path / "board" / "bce+gdpp@1" / "seed-0"
    events = _events(run)
    tags = events.Tags()
    with (run / "log.csv").open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert {f"train/{name}" for name in header[1:] if name != "gdpp_sign_flips"} <= set(tags["scalars"])
    for tag in ("train/d_loss", "train/gdpp", "train/imgs_per_s"):
        assert _steps(events, tag) == [10, 20, 30, 40], tag  # each step once, across the two sessions
    logged = {event.step: event.value for event in events.Scalars("train/d_loss")}
    for row in rows:
        assert logged[int(row[0])] == pytest.approx(float(row[1]), rel=1e-6)
    assert _steps(events, "eval/modes") == [20, 40] and _steps(events, "eval/hq_percent") == [20, 40]
    pictures = events.Images("samples")
    assert [p.step for p in pictures] == [20, 40] and all(p.width > 0 and p.height > 0 for p in pictures)


def test_without_the_flag_nothing_is_written(tmp_path):
    suite = tmp_path / "board.toml"
    suite.write_text(SUITE.replace("steps = 40", "steps = 20"))
    assert (
        gdpp_bench("run", "--suite", str(suite), "--device", "cpu", "--results", str(tmp_path)).returncode
        == 0
    )
    assert not (tmp_path / "board" / "bce+gdpp@1" / "seed-0" / "tensorboard").exists()
