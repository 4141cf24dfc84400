"""Backbones from timm's factory, as feature extractors at strides 8/16/32."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch import nn

STRIDES = (8, 16, 32)


class TimmBackbone(nn.Module):
    """``timm.create_model(name, features_only=True)`` returning the stride 8/16/32 maps.

    Args:
        name: any timm model name that supports ``features_only``.
        pretrained: ``False``/``"false"`` (scratch), ``"imagenet"`` (timm's weights, from
            the local cache or the hub), or a path to a state dict saved from this backbone.

    ``channels`` and ``strides`` come from timm's ``feature_info``; ``mean``/``std`` from
    the model's pretrained config (used by the detector to normalise uint8 input).
    """

    def __init__(self, name: str, pretrained: str | bool = False):
        super().__init__()
        use_imagenet = str(pretrained).lower() == "imagenet"
        try:
            self.body = timm.create_model(name, features_only=True, pretrained=use_imagenet)
        except RuntimeError as e:
            if use_imagenet:
                raise RuntimeError(
                    f"could not load ImageNet weights for {name!r} ({e}); with no internet, put them in the "
                    "Hugging Face / torch hub cache, or pass model.pretrained=/path/to/weights.pth"
                ) from e
            raise
        reductions = self.body.feature_info.reduction()
        missing = [s for s in STRIDES if s not in reductions]
        if missing:
            raise ValueError(f"backbone {name!r} has no feature map at stride {missing} (it has {reductions})")
        # The last feature map of each wanted stride.
        self.indices = [max(i for i, r in enumerate(reductions) if r == s) for s in STRIDES]
        self.channels = [self.body.feature_info.channels()[i] for i in self.indices]
        self.strides = list(STRIDES)
        cfg = self.body.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1) * 255,
                             persistent=False)
        if str(pretrained).lower() not in ("false", "none", "", "imagenet", "0"):
            self.load_weights(Path(pretrained))

    def load_weights(self, path: Path) -> None:
        """Load a state dict (a backbone's own, or a checkpoint holding one) strictly."""
        if not path.is_file():
            raise FileNotFoundError(f"model.pretrained: no weights file at {path}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
        self.body.load_state_dict(state, strict=True)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images float [B, 3, H, W] normalised -> maps at strides 8, 16, 32."""
        feats = self.body(images)
        return [feats[i] for i in self.indices]
