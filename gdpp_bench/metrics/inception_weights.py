"""Which Inception-v3 weights measured a fidelity value, and whether they are the published ones.

FID, IS and KID are comparable with published numbers only when measured with the published
weights: a file with the right name and other contents (a truncated download, a stand-in) gives
numbers that mean nothing beside the literature's. Every weights file is identified by its sha256
(`weights_sha256`: computed once per file version, cached by path, size and mtime in memory and
under $GDPP_BENCH_CACHE), recorded in each fidelity value's protocol, and compared here with the
published file's. Light on purpose (no torch-fidelity import): the report reads it too.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdpp_bench.config import INCEPTION
from gdpp_bench.user_paths import cache_root

PUBLISHED_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"  # torch-fidelity's release file
# sha256 of that file (95,628,359 bytes; the Inception-v3 graph of 2015-12-05 that TF's FID code
# uses, converted to PyTorch). torch-fidelity downloads it without checking any hash, so it is
# pinned here: the digest several independent public projects pin for this very file (and for
# pytorch-fid's pt_inception-2015-12-05-6726825d.pth, the same bytes). Its first 8 hex digits
# are the file name's `6726825d`, as torch.hub's naming convention makes them (a test checks).
PUBLISHED_INCEPTION_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
# the words that mark values measured with other weights (runs.csv, summary.md, index.html)
NON_STANDARD_INCEPTION = "not comparable to published FID (non-standard Inception weights)"
SHA256_CACHE_FILE = "sha256-cache.json"  # under $GDPP_BENCH_CACHE: path -> size, mtime, sha256


def _cache_file() -> Path:
    return cache_root() / SHA256_CACHE_FILE


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_cache(cache: Path) -> dict[str, Any]:
    try:
        table = json.loads(cache.read_text())
    except (OSError, ValueError):  # absent, unreadable or half-written by an older version
        return {}
    return table if isinstance(table, dict) else {}


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int, cache: str) -> str:
    """The digest of one file version: from the cache file where it holds this version, else
    computed (a 100 MB file takes about a second) and written there for the next process."""
    table = _read_cache(Path(cache))
    entry = table.get(path)
    if isinstance(entry, dict) and entry.get("size") == size and entry.get("mtime_ns") == mtime_ns:
        digest = entry.get("sha256")
        if isinstance(digest, str) and len(digest) == 64:
            return digest
    digest = file_sha256(Path(path))
    table[path] = {"size": size, "mtime_ns": mtime_ns, "sha256": digest}
    try:
        from gdpp_bench.rundir import write_atomic

        Path(cache).parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(table, indent=1, sort_keys=True)
        write_atomic(Path(cache), lambda tmp: tmp.write_text(text))
    except OSError:  # a read-only cache: the digest is still right, only not kept
        pass
    return digest


def weights_sha256(path: str | Path) -> str:
    """sha256 of a weights file, computed once per file version (path, size, mtime): kept in this
    process and in $GDPP_BENCH_CACHE/sha256-cache.json for the others (workers, later commands)."""
    resolved = Path(path).expanduser().resolve()
    stat = resolved.stat()
    return _sha256(str(resolved), stat.st_size, stat.st_mtime_ns, str(_cache_file().resolve()))


def is_published(sha256: str | None) -> bool:
    return sha256 == PUBLISHED_INCEPTION_SHA256


def warning(path: str | Path, sha256: str) -> str:
    """The one warning line for Inception weights that are not the published file."""
    return (
        f"Inception-v3 weights {path} (sha256 {sha256[:16]}...) are not torch-fidelity's published "
        f"{PUBLISHED_INCEPTION_FILE} (sha256 {PUBLISHED_INCEPTION_SHA256[:16]}...): the FID, IS, KID, "
        f"precision/recall and density/coverage they measure are {NON_STANDARD_INCEPTION}; the "
        "report marks them"
    )


def inception_sha256(protocols: Mapping[str, Any]) -> str:
    """The sha256 of the Inception weights a run's metrics (metrics.json's `protocol`) were
    measured with; "" where none used Inception-v3 ("unknown" where the record lacks it)."""
    for entry in protocols.values():
        if isinstance(entry, dict) and entry.get("extractor") == INCEPTION:
            return str(entry.get("extractor_weights_sha256") or "unknown")
    return ""


def comparability(protocols: Mapping[str, Any]) -> str:
    """NON_STANDARD_INCEPTION where a run's metrics used Inception-v3 weights other than the
    published ones, else "" (runs.csv's `fidelity_note`)."""
    digest = inception_sha256(protocols)
    return NON_STANDARD_INCEPTION if digest and not is_published(digest) else ""


def feature_comparability(protocols: Mapping[str, Any]) -> str:
    """The note of a run's fidelity values measured with a chosen extractor (eval.features: DINOv2,
    CLIP) whose weights are not that model's published ones (a stand-in), else ""."""
    for entry in protocols.values():
        if isinstance(entry, dict) and entry.get("features") and entry.get("extractor") != INCEPTION:
            return str(entry.get("comparability") or "")
    return ""


__all__ = [
    "INCEPTION",
    "NON_STANDARD_INCEPTION",
    "PUBLISHED_INCEPTION_FILE",
    "PUBLISHED_INCEPTION_SHA256",
    "file_sha256",
    "comparability",
    "feature_comparability",
    "inception_sha256",
    "is_published",
    "warning",
    "weights_sha256",
]
