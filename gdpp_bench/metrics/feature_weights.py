"""The weights file of a fidelity extractor beyond Inception (DINOv2, CLIP), and its `Extractor`.

Every extractor reads a local file, as Inception-v3 does: `--feature-weights PATH`, else the file
torch's hub cache holds under the name torch.hub would give it, else that file downloaded there
(internet at first use; an offline machine gets one line naming the URL and the option). So the
weights' sha256 is known before anything is measured (it names the real statistics' cache and
goes into every value's protocol), and no code is fetched: DINOv2 is built by
`gdpp_bench.metrics.dinov2` (timm) rather than torch-fidelity's `torch.hub.load` of the
facebookresearch/dinov2 repository, with identical features (checked against that repository's
model); CLIP is torch-fidelity's own extractor, given the file.

Published weights: CLIP's files are named by their sha256 (torch-fidelity pins it), so a CLIP file
with another digest is marked not comparable; Meta publishes no digest for DINOv2's, so a DINOv2
file is marked only where its architecture is not the named model's (a stand-in).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import torch

from gdpp_bench.errors import UserError
from gdpp_bench.metrics.features import CLIP, DINOV2, check_features, is_default, short_name

DINOV2_URL = "https://dl.fbaipublicfiles.com/dinov2/{hub}/{hub}_pretrain.pth"
DOWNLOAD_TIMEOUT_S = 60  # seconds without an answer before a download fails


def hub_file(features: str) -> tuple[str, Path, str | None]:
    """(URL, the file in torch's hub cache, its pinned sha256 or None) of `features`' weights:
    where torch-fidelity (CLIP) and the DINOv2 repository's hub loader put them."""
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    if features in DINOV2:
        hub = DINOV2[features]
        return DINOV2_URL.format(hub=hub), checkpoints / f"{hub}_pretrain.pth", None
    from gdpp_bench.metrics.torch_fidelity_api import CLIP_METADATA, CLIP_URLS

    digest = CLIP_METADATA[features]["hash"]
    return CLIP_URLS[features], checkpoints / f"{features}-{digest}.pt", digest


def weights_file(features: str, path: str | Path | None) -> Path:
    """The weights of `features` (not the default): `path`, else torch's hub cache, else
    downloaded there; any failure is one UserError naming the file and the fix."""
    check_features(features, "--features")
    if is_default(features):
        raise ValueError("the default extractor's weights come from fidelity.extractor_for")
    url, cached, digest = hub_file(features)
    if path:
        weights = Path(path).expanduser()
        if not weights.is_file():
            raise UserError(f"--feature-weights {weights} not found; download {url} and pass its path")
        return weights
    if cached.is_file():
        return cached
    return download_weights(
        url, cached, f"{features} weights for the fidelity metrics", "--feature-weights", digest
    )


def download_weights(url: str, cached: Path, what: str, option: str, digest: str | None = None) -> Path:
    """`url` downloaded to `cached` (checked against the sha256 prefix `digest` when given); any
    failure removes the partial file and is one UserError naming `what`, the URL and `option`."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(DOWNLOAD_TIMEOUT_S)  # a network that drops packets would hang the check
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        torch.hub.download_url_to_file(url, str(cached), hash_prefix=digest, progress=False)
    except Exception as exc:  # offline, proxy, read-only home, wrong bytes: all need the same fix
        cached.unlink(missing_ok=True)
        first_line = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(
            f"{what} are missing: {cached} not found and downloading {url} failed "
            f"({type(exc).__name__}: {first_line}); download it where there is internet and pass "
            f"{option} PATH (or copy it to that path)"
        ) from exc
    finally:
        socket.setdefaulttimeout(previous)
    return cached


def not_comparable(features: str, why: str) -> str:
    """The comparability note of values measured with weights other than `features`' own."""
    return f"not comparable to published FD_{short_name(features)} ({why})"


def describe(features: str, weights: Path, digest: str) -> tuple[str, dict[str, Any]]:
    """(torch-fidelity's extractor name, the protocol's details) of `features` with `weights`."""
    details: dict[str, Any] = {
        "features": features,
        "inception_score": f"not measured: {features} has no classifier logits",
    }
    if features in DINOV2:
        import gdpp_bench.metrics.dinov2 as dinov2  # timm, imported only for DINOv2

        details.update(dinov2.describe(features, weights))
        if not details["official_architecture"]:
            details["comparability"] = not_comparable(features, f"not {features}'s architecture")
        return dinov2.extractor_name(features), details
    assert features in CLIP
    published = digest == hub_file(features)[2]
    details["weights_published"] = published
    if not published:
        details["comparability"] = not_comparable(features, "not OpenAI's published weights file")
    return features, details


def warning(features: str, weights: Path, details: dict[str, Any]) -> str:
    """The one warning line for weights whose values are not comparable ("" for the others)."""
    note = details.get("comparability")
    return f"{features} weights {weights}: the fidelity values they measure are {note}" if note else ""


__all__ = ["DINOV2_URL", "describe", "hub_file", "not_comparable", "warning", "weights_file"]
