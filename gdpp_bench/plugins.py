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
from gdpp_bench.progress import notice, say
from gdpp_bench.registry import Registry
from gdpp_bench.rundir import RunDir, UnreadableFile

ENTRY_POINT_GROUP = "gdpp_bench.plugins"
ENVIRONMENT = "GDPP_BENCH_PLUGINS"  # os.pathsep-separated: what this process loaded
_FILE_MODULE = "gdpp_bench_plugin_"  # the module names of plug-ins imported from a file
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
        name = f"{_FILE_MODULE}{path.stem}_{hashlib.sha256(str(path).encode()).hexdigest()[:8]}"
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
        "sha256": _sha256(Path(file)) if file else None,
        "registered": {kind: names for kind, names in added.items() if names},
    }
    _loaded[reference] = record
    os.environ[ENVIRONMENT] = os.pathsep.join(_loaded)
    return record


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


# --- the plug-ins a run recorded -------------------------------------------------------------------

_unavailable: dict[str, str] = {}  # sha256 of a recorded plug-in that cannot be loaded -> why


def load_recorded_plugins(run_dir: RunDir, config: dict[str, Any] | None = None) -> None:
    """Import the plug-ins the run's config.json records (`environment.plugins`) and its settings
    use (a term of its variant, a metric, its dataset or model), unless this process has one with
    the same sha256 already: `report`, `evaluate`, `sample` and the API read a plug-in run with
    nothing more to pass. Each is imported from its recorded module or file once per process, saying
    so in one line. One whose file is gone or changed (another sha256) is one warning line naming it,
    and UnreadableFile for the run (config.json, with that reason). `config`: config.json as the
    caller read it; read here otherwise (one that cannot be read is left to the caller's reading)."""
    if config is None:
        try:
            config = run_dir.read_config()
        except UserError:
            return
    environment = config.get("environment")
    records = environment.get("plugins") if isinstance(environment, dict) else None
    used = _names_used(config.get("spec"))
    for record in records if isinstance(records, list) else []:
        registered = record.get("registered") if isinstance(record, dict) else None
        if isinstance(registered, dict) and any(used.intersection(names) for names in registered.values()):
            reason = _load_recorded(record)
            if reason:
                raise UnreadableFile(run_dir.config, reason)


def _names_used(spec: Any) -> set[str]:
    """The registered names a run's recorded settings may use: its dataset, model and metrics, and
    each part of its variant (a modifier also without its number: pacgan2, pacgan)."""
    if not isinstance(spec, dict):
        return set()
    evaluation = spec.get("eval")
    metrics = evaluation.get("metrics") if isinstance(evaluation, dict) else None
    words = [spec.get("dataset"), spec.get("model"), *(metrics if isinstance(metrics, list) else ())]
    for part in str(spec.get("variant", "")).split("+"):
        name = part.partition("@")[0]
        words += [name, name.rstrip("0123456789")]
    return {word for word in words if isinstance(word, str) and word}


def _load_recorded(record: dict[str, Any]) -> str | None:
    """Import one recorded plug-in (once per process); why it cannot be, or None."""
    sha = str(record.get("sha256"))
    if any(loaded["sha256"] == sha for loaded in _loaded.values()):
        return None
    if sha in _unavailable:
        return _unavailable[sha]
    file = str(record.get("file"))
    found = [(reference, _sha256(path)) for reference, path in _sources(record) if path.is_file()]
    matching = [reference for reference, digest in found if digest == sha]
    if matching:
        try:
            load_plugin(matching[0], source="config.json")
            say(f"loaded plug-in {file}, as the runs' config.json records it")
            return None
        except UserError as exc:
            reason = f"plug-in {file} failed to load: {exc}"
    elif found:
        now = found[-1][1][:12]
        reason = f"plug-in {file} changed since the run recorded it (sha256 {sha[:12]}... then, {now}... now)"
    else:
        reason = f"plug-in {file} is gone"
    notice(
        f"{reason}: the runs that use it are unreadable until it is back (that file, or "
        f"--plugin with a copy whose sha256 is {sha[:12]}...)"
    )
    _unavailable[sha] = reason
    return reason


def _sources(record: dict[str, Any]) -> list[tuple[str, Path]]:
    """Where a recorded plug-in may be imported from, as (load_plugin reference, its file): by its
    module name where that is importable (an installed package's, relative imports kept), then
    from its recorded file."""
    sources = []
    module = str(record.get("module") or "")
    if module and not module.startswith(_FILE_MODULE):
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        if spec is not None and spec.origin:
            sources.append((module, Path(spec.origin)))
    if record.get("file"):
        sources.append((str(record["file"]), Path(str(record["file"]))))
    return sources
