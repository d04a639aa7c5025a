"""DINOv2 as a torch-fidelity feature extractor that loads a local weights file.

torch-fidelity's own `dinov2-vit-*` extractors load through `torch.hub` (the facebookresearch/dinov2
repository's code, fetched from GitHub) and refuse a weights path. Importing this module registers
`gdpp-dinov2-vit-{s,b,l,g}-14`: the same network built from timm's VisionTransformer (the class of
timm's `vit_*_patch14_dinov2` models) and a local state dict, measured as torch-fidelity measures:
uint8 images resized to 224 x 224 by its TF1-compatible bilinear resize, ImageNet normalisation,
and the hub model's `model(x)`, the final-norm CLS token. The hub model interpolates its 37 x 37
position embeddings (518 px) to the 16 x 16 patches of 224 px on every call, bicubic with a 0.1
offset on the scale factor; here that is done once, the same way, when the weights are loaded.

Weights: the official `dinov2_vit?14_pretrain.pth` (Meta's key layout), timm's layout of the same
weights (`model.safetensors` of timm/vit_*_patch14_dinov2.lvd142m, or a .pth), either possibly
wrapped in {"model": ...} or {"state_dict": ...}; read with `weights_only=True`. The architecture
is read from the weights' shapes (width, depth, patch, MLP), heads of 64 channels as in every
DINOv2; `architecture_of` says whether it is the named model's (stand-in weights for tests are not).
Needs timm (`pip install timm`, or the package's `dinov2` extra).
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from gdpp_bench.errors import UserError
from gdpp_bench.metrics.features import DINOV2
from gdpp_bench.metrics.torch_fidelity_api import (
    FEATURE_EXTRACTORS_REGISTRY,
    FeatureExtractorBase,
    register_feature_extractor,
    vassert,
)

INPUT_SIZE = 224  # torch-fidelity's FeatureExtractorDinoV2.INPUT_IMAGE_SIZE
HEAD_DIM = 64  # channels per attention head in every DINOv2 model
HUB_INTERPOLATE_OFFSET = 0.1  # the DINOv2 repository's `interpolate_offset` (models without registers)
LAYER = "dinov2"  # torch-fidelity's feature name for the CLS embedding


@dataclass(frozen=True)
class Architecture:
    """A DINOv2 ViT as its weights' shapes give it."""

    embed_dim: int
    depth: int
    num_heads: int
    patch_size: int
    mlp_hidden: int  # the first MLP layer's outputs (SwiGLU: both halves)
    swiglu: bool
    grid: int  # the side of the position-embedding grid the weights were trained at


# the official models' (embed_dim, depth, patch_size): what `architecture_of` compares with
OFFICIAL = {
    "dinov2-vit-s-14": (384, 12, 14),
    "dinov2-vit-b-14": (768, 12, 14),
    "dinov2-vit-l-14": (1024, 24, 14),
    "dinov2-vit-g-14": (1536, 40, 14),
}


def extractor_name(features: str) -> str:
    """The torch-fidelity name this module registers for `features` ('dinov2-vit-l-14')."""
    return f"gdpp-{features}"


def read_state_dict(path: Path, mmap: bool = False) -> dict[str, Tensor]:
    """The weights of `path` in timm's key layout (Meta's converted); a UserError where it is not a
    DINOv2 state dict. `mmap`: map instead of reading (a quick look at the shapes)."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state: Any = load_file(str(path))
        else:
            try:
                state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError:
                if not mmap:
                    raise
                # a file of torch's legacy (non-zip) format cannot be mapped: read it
                state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a file torch or safetensors reads, or not plain tensors
        raise UserError(f"cannot read DINOv2 weights {path}: {type(exc).__name__}: {exc}") from None
    for wrapper in ("model", "state_dict"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or "cls_token" not in state or "pos_embed" not in state:
        raise UserError(
            f"{path} is not a DINOv2 state dict (no cls_token / pos_embed); pass the official "
            "dinov2_vit?14_pretrain.pth or timm's vit_*_patch14_dinov2 weights"
        )
    if "register_tokens" in state:
        raise UserError(f"{path} holds a DINOv2 with registers; torch-fidelity's DINOv2 models have none")
    converted = {}
    for key, value in state.items():
        if key == "mask_token":  # Meta's layout: the masked-token embedding of pretraining
            continue
        # Meta's fused SwiGLU (ViT-g) -> timm's SwiGLUPacked
        key = re.sub(r"(blocks\.\d+\.mlp\.)w12\.", r"\1fc1.", key)
        converted[re.sub(r"(blocks\.\d+\.mlp\.)w3\.", r"\1fc2.", key)] = value
    return converted


def architecture_of(state: dict[str, Tensor]) -> Architecture:
    """The network `state` holds, read from its shapes."""
    embed_dim = state["cls_token"].shape[-1]
    depth = 1 + max(int(m.group(1)) for k in state if (m := re.match(r"blocks\.(\d+)\.", k)))
    swiglu = (
        "blocks.0.mlp.fc2.weight" in state
        and state["blocks.0.mlp.fc1.weight"].shape[0] == 2 * (state["blocks.0.mlp.fc2.weight"].shape[1])
    )
    positions = state["pos_embed"].shape[1] - 1
    return Architecture(
        embed_dim=embed_dim,
        depth=depth,
        num_heads=max(1, embed_dim // HEAD_DIM),
        patch_size=state["patch_embed.proj.weight"].shape[-1],
        mlp_hidden=state["blocks.0.mlp.fc1.weight"].shape[0],
        swiglu=swiglu,
        grid=math.isqrt(positions),
    )


def is_official(features: str, architecture: Architecture) -> bool:
    """Whether `architecture` is that of the model `features` names (stand-in weights are not)."""
    shape = (architecture.embed_dim, architecture.depth, architecture.patch_size)
    return shape == OFFICIAL[features]


def hub_position_embedding(pos_embed: Tensor, patch_size: int) -> Tensor:
    """The position embeddings at INPUT_SIZE as the DINOv2 repository's `interpolate_pos_encoding`
    makes them (bicubic, no antialiasing, scale factor (side + 0.1) / grid)."""
    grid = math.isqrt(pos_embed.shape[1] - 1)
    side = INPUT_SIZE // patch_size
    if grid == side:
        return pos_embed
    cls, patches = pos_embed[:, :1].float(), pos_embed[:, 1:].float()
    dim = pos_embed.shape[-1]
    scale = (side + HUB_INTERPOLATE_OFFSET) / grid
    resized = nn.functional.interpolate(
        patches.reshape(1, grid, grid, dim).permute(0, 3, 1, 2),
        scale_factor=(scale, scale),
        mode="bicubic",
        antialias=False,
    )
    if resized.shape[-2:] != (side, side):
        raise UserError(
            f"DINOv2 position embeddings of a {grid} x {grid} grid do not resize to {side} x {side}"
        )
    resized = resized.permute(0, 2, 3, 1).reshape(1, side * side, dim)
    return torch.cat([cls, resized], dim=1).to(pos_embed.dtype)


def build_model(state: dict[str, Tensor]) -> nn.Module:
    """A timm VisionTransformer at INPUT_SIZE holding `state` (timm layout), in eval mode; its
    output is the final-norm CLS token (no head), as the hub model's `model(x)`."""
    try:
        from timm.layers import SwiGLUPacked
        from timm.models.vision_transformer import VisionTransformer
    except ImportError:
        raise UserError(
            "DINOv2 features from a local weights file need timm: pip install timm (or gdpp-bench[dinov2])"
        ) from None
    arch = architecture_of(state)
    mlp: dict[str, Any] = {"mlp_layer": SwiGLUPacked, "act_layer": nn.SiLU} if arch.swiglu else {}
    ratio = arch.mlp_hidden / arch.embed_dim
    if int(arch.embed_dim * ratio) != arch.mlp_hidden:  # timm takes a ratio and truncates
        ratio = math.nextafter(ratio, math.inf)
    model = VisionTransformer(
        img_size=INPUT_SIZE,
        patch_size=arch.patch_size,
        num_classes=0,
        embed_dim=arch.embed_dim,
        depth=arch.depth,
        num_heads=arch.num_heads,
        mlp_ratio=ratio,
        init_values=1.0 if "blocks.0.ls1.gamma" in state else None,
        weight_init="skip",
        **mlp,
    )
    state = {**state, "pos_embed": hub_position_embedding(state["pos_embed"], arch.patch_size)}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise UserError(f"DINOv2 weights do not fit the architecture their shapes give: {first}") from None
    return model.eval().requires_grad_(False)


def describe(features: str, path: Path) -> dict[str, Any]:
    """What the protocol records of the weights `path` beyond their sha256: the architecture, and
    whether it is `features`' own (read from a memory map: no second copy of a ViT-g in memory)."""
    architecture = architecture_of(read_state_dict(path, mmap=True))
    return {
        "architecture": asdict(architecture),
        "implementation": "timm VisionTransformer, local weights (gdpp_bench.metrics.dinov2)",
        "official_architecture": is_official(features, architecture),
    }


class DinoV2FeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor `gdpp-dinov2-vit-?-14` over a local DINOv2 weights file."""

    def __init__(
        self,
        name: str,
        features_list: list[str] | tuple[str, ...],
        feature_extractor_weights_path: str | None = None,
        feature_extractor_internal_dtype: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, features_list)
        vassert(name in _FEATURES_OF_NAME, f"unknown project DINOv2 extractor {name!r}")
        vassert(
            feature_extractor_weights_path is not None,
            f"feature extractor {name!r} needs feature_extractor_weights_path (a DINOv2 state dict)",
        )
        vassert(feature_extractor_internal_dtype in ("float32", "float64", None), "float32 or float64 only")
        self.dtype = torch.float64 if feature_extractor_internal_dtype == "float64" else torch.float32
        self.model = build_model(read_state_dict(Path(str(feature_extractor_weights_path)))).to(self.dtype)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        from gdpp_bench.metrics.torch_fidelity_api import interpolate_bilinear_2d_like_tensorflow1x

        vassert(
            torch.is_tensor(x) and x.dtype == torch.uint8,
            "Expecting image as torch.Tensor with dtype=torch.uint8",
        )
        vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {x.shape}")
        x = interpolate_bilinear_2d_like_tensorflow1x(
            x.to(self.dtype), size=(INPUT_SIZE, INPUT_SIZE), align_corners=False
        )
        x = torchvision.transforms.functional.normalize(
            x,
            (255 * 0.485, 255 * 0.456, 255 * 0.406),
            (255 * 0.229, 255 * 0.224, 255 * 0.225),
            inplace=False,
        )
        out = {LAYER: self.model(x).to(torch.float32)}
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return (LAYER,)

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return LAYER

    @staticmethod
    def can_be_compiled() -> bool:
        return True

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 3, 4, 4, dtype=torch.uint8)


_FEATURES_OF_NAME = {extractor_name(features): features for features in DINOV2}


def register_extractors() -> None:
    """Register `gdpp-dinov2-vit-?-14` with torch-fidelity (idempotent)."""
    for name in _FEATURES_OF_NAME:
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            register_feature_extractor(name, DinoV2FeatureExtractor)


register_extractors()

__all__ = [
    "Architecture",
    "DinoV2FeatureExtractor",
    "architecture_of",
    "build_model",
    "describe",
    "extractor_name",
    "hub_position_embedding",
    "is_official",
    "read_state_dict",
    "register_extractors",
]
