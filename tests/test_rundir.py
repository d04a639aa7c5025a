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


def _interrupt_at_line(number: int):
    """A tracer that raises KeyboardInterrupt at the `number`-th line executed in the standard
    library's or this package's file code (as a signal handler raising between bytecodes does)."""
    seen = 0

    def local(frame, event, arg):
        nonlocal seen
        if event == "line":
            seen += 1
            if seen == number:
                raise KeyboardInterrupt
        return local

    def global_(frame, event, arg):
        name = frame.f_code.co_filename
        return local if name.endswith(("rundir.py", "tempfile.py")) else None

    return global_


def test_an_interruption_at_any_line_leaves_no_temp_file(tmp_path):
    """A Ctrl-C (or a pool worker's SIGTERM) can land between any two bytecodes of the write:
    wherever it lands the old file stays whole and no half-written temp file is left."""
    import sys

    target = tmp_path / "checkpoint.pt"
    write_json(target, {"step": 1})
    interrupted_at = []
    for line in range(1, 200):
        sys.settrace(_interrupt_at_line(line))
        try:
            write_json(target, {"step": 2})
        except KeyboardInterrupt:
            interrupted_at.append(line)
        finally:
            sys.settrace(None)
        assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"], f"interrupted at line {line}"
        if interrupted_at[-1:] != [line]:  # the write ran to its end before this line: all covered
            break
        write_json(target, {"step": 1})
    assert len(interrupted_at) > 3 and read_json(target) == {"step": 2}
