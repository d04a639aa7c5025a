"""Atomic writes: the old file survives a failed write, and new files get the usual permissions."""

from __future__ import annotations

import os

import pytest

from gdpp_bench.rundir import read_json, write_atomic, write_json


def test_failed_write_leaves_the_old_file_and_no_temp(tmp_path):
    target = tmp_path / "metrics.json"
    write_json(target, {"value": 1.0})

    def explode(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        write_atomic(target, explode)
    assert read_json(target) == {"value": 1.0}
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_written_files_follow_the_umask(tmp_path):
    mask = os.umask(0o022)
    try:
        write_json(tmp_path / "a.json", {"nan": float("nan")})
    finally:
        os.umask(mask)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert read_json(tmp_path / "a.json") == {"nan": None}  # strict JSON: NaN is written as null
