"""What a user installing the wheel gets: the suites ship inside the package, a user's suite folders
are searched first, and the installed command runs a suite from a folder outside the clone."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

from gdpp_bench.suites import load_suite, suite_names

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed_wheel(tmp_path_factory) -> Path:
    """A venv holding only the project's wheel (installed with --no-deps); the packages it needs
    come from this interpreter's site-packages through a .pth file, so no second torch is
    installed. Returns the venv's bin folder."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"  # built from a copy: the build writes build/ and egg-info beside it
    shutil.copytree(ROOT / "gdpp_bench", source / "gdpp_bench", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    wheels = work / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(source)], check=True
    )
    (wheel,) = wheels.glob("gdpp_bench-*.whl")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own_site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # plain path lines: this interpreter's packages (its editable gdpp_bench is not activated,
    # since .pth files in a folder added this way are not run)
    Path(own_site, "outer.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    subprocess.run(
        [str(python), "-m", "pip", "--disable-pip-version-check", "--quiet", "install"]
        + ["--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        check=True,
    )
    return venv / "bin"


def _in(folder: Path, *command: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "GDPP_BENCH_SUITES")}
    return subprocess.run(
        command, cwd=folder, env={**environment, **(env or {})}, capture_output=True, text=True, timeout=300
    )


def test_the_installed_wheel_lists_its_suites_and_runs_one_outside_the_clone(installed_wheel, tmp_path):
    where = _in(
        tmp_path, str(installed_wheel / "python"), "-c", "import gdpp_bench; print(gdpp_bench.__file__)"
    )
    assert where.stdout.startswith(str(installed_wheel.parent)), where  # the wheel, not the checkout
    listing = _in(tmp_path, str(installed_wheel / "gdpp-bench"), "list")
    assert listing.returncode == 0, listing.stderr
    suites = listing.stdout[listing.stdout.index("suites:") :]
    for name in suite_names():
        assert f"\n  {name} " in suites
    run = _in(
        tmp_path,
        str(installed_wheel / "gdpp-bench"),
        *("run", "--suite", "ring8", "--variants", "bce", "--seeds", "0", "--steps", "20"),
        *("--device", "cpu", "--results", "runs"),
    )
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "runs" / "ring8" / "bce" / "seed-0" / "metrics.json").is_file()


def test_gdpp_bench_suites_folders_are_searched_first(tmp_path, monkeypatch):
    mine, theirs = tmp_path / "mine", tmp_path / "theirs"
    mine.mkdir()
    theirs.mkdir()
    smoke = load_suite("smoke")
    (mine / "smoke.toml").write_text(
        'name = "smoke"\ndescription = "my smoke"\ndataset = "ring8"\nvariants = ["bce"]\n'
    )
    (theirs / "smoke.toml").write_text(
        'name = "smoke"\ndescription = "their smoke"\ndataset = "grid25"\nvariants = ["bce"]\n'
    )
    (theirs / "extra.toml").write_text('name = "extra"\ndataset = "grid25"\nvariants = ["bce"]\n')
    monkeypatch.setenv("GDPP_BENCH_SUITES", os.pathsep.join([str(mine), str(theirs)]))
    assert load_suite("smoke").datasets == ("ring8",)  # the first folder shadows the rest
    assert load_suite("extra").datasets == ("grid25",)
    assert {"extra", "ring8", "grid25"} <= set(suite_names())  # the built-in suites stay
    monkeypatch.delenv("GDPP_BENCH_SUITES")
    assert load_suite("smoke") == smoke
