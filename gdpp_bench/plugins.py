"""Plug-ins: user modules that register losses, terms, modifiers, models, datasets or metrics
through the package's registries, without editing the package.

They come from `--plugin MODULE_OR_FILE.py` (repeatable) and from the entry-point group
`gdpp_bench.plugins` of installed distributions. Loaded plug-ins are listed in GDPP_BENCH_PLUGINS so
that worker processes and Slurm tasks, which inherit the environment, import the same ones before
they train; each run records every plug-in's module, file and sha256 in config.json."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import re
import sys
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

from gdpp_bench.errors import UserError
from gdpp_bench.registry import Registry

ENTRY_POINT_GROUP = "gdpp_bench.plugins"
ENVIRONMENT = "GDPP_BENCH_PLUGINS"  # os.pathsep-separated: what this process loaded
# a registered name becomes part of a variant (ADV+TERM@W) or a folder name: plain, no + or @
_PLAIN_ENTRY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._=-]*")

_loaded: dict[str, dict[str, Any]] = {}  # reference (module name or file path) -> its record
_entry_points_loaded = False  # the installed distributions' entry points are scanned once


def _registries() -> dict[str, Registry[Any]]:
    from gdpp_bench.data import DATASETS
    from gdpp_bench.losses import ADVERSARIAL, TERMS
    from gdpp_bench.metrics import METRICS
    from gdpp_bench.models import MODELS, MODIFIERS

    return {
        "adversarial loss": ADVERSARIAL,
        "term": TERMS,
        "modifier": MODIFIERS,
        "model": MODELS,
        "dataset": DATASETS,
        "metric": METRICS,
    }


def _import(reference: str) -> ModuleType:
    """A module by name (the working folder searched too, as `python -m` does) or a .py file."""
    if reference.endswith(".py") or os.sep in reference:
        path = Path(reference).expanduser().resolve()
        if not path.is_file():
            raise UserError(f"plug-in file {reference} does not exist; pass a .py file or a module name")
        name = f"gdpp_bench_plugin_{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    if os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())
    try:
        return importlib.import_module(reference)
    except ModuleNotFoundError as exc:
        if exc.name != reference.split(".")[0]:
            raise
        raise UserError(
            f"plug-in module {reference!r} cannot be imported; install it, put its folder on "
            "PYTHONPATH, or pass the path of its .py file"
        ) from None


def load_plugin(reference: str, source: str = "--plugin") -> dict[str, Any]:
    """Import one plug-in (once per process) and check the names it registered; returns its
    record: module, file, sha256 and the entries it added."""
    if reference in _loaded:
        return _loaded[reference]
    registries = _registries()
    before = {kind: set(registry) for kind, registry in registries.items()}
    try:
        module = _import(reference)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - the user's code: say whose it is, in one line
        raise UserError(
            f"plug-in {reference!r} ({source}) failed to import: {type(exc).__name__}: {exc}"
        ) from None
    added = {kind: sorted(set(registry) - before[kind]) for kind, registry in registries.items()}
    for kind, names in added.items():
        for name in names:
            if not _PLAIN_ENTRY.fullmatch(name) or ".." in name:
                registries[kind].unregister(name)
                raise UserError(
                    f"plug-in {reference!r} registers the {kind} {name!r}: names become variant and "
                    "folder names; use letters, digits and ._=- only (no + or @), starting with a "
                    "letter or digit"
                )
    file = getattr(module, "__file__", None)
    record = {
        "module": module.__name__,
        "reference": reference,
        "source": source,
        "file": file,
        "sha256": hashlib.sha256(Path(file).read_bytes()).hexdigest() if file else None,
        "registered": {kind: names for kind, names in added.items() if names},
    }
    _loaded[reference] = record
    os.environ[ENVIRONMENT] = os.pathsep.join(_loaded)
    return record


def load_plugins(references: list[str] | tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The entry-point plug-ins of installed distributions, then `references` (--plugin), then
    those a parent process loaded (GDPP_BENCH_PLUGINS)."""
    global _entry_points_loaded
    if not _entry_points_loaded:  # scanned once: run_one calls this for every run
        for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
            load_plugin(entry.value.split(":")[0], source=f"entry point {entry.name}")
        _entry_points_loaded = True
    for reference in references:
        load_plugin(reference)
    for reference in os.environ.get(ENVIRONMENT, "").split(os.pathsep):
        if reference:
            load_plugin(reference, source=ENVIRONMENT)
    return loaded_plugins()


def loaded_plugins() -> list[dict[str, Any]]:
    """The records of the plug-ins this process loaded (for config.json)."""
    return [
        {key: record[key] for key in ("module", "file", "sha256", "registered")}
        for record in _loaded.values()
    ]
