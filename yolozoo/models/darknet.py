"""Small configurable Darknet backbones, registered with timm's factory.

A Darknet (YOLOv3's Darknet-53 and smaller variants of it) is a 3x3 stem conv followed by
stages; each stage is a :class:`Downsample` (3x3 conv, stride 2) and ``depth``
:class:`ResidualBlock` s (1x1 conv to half width, 3x3 conv back, plus the input). With
widths ``(64, 128, 256, 512, 1024)`` and depths ``(1, 2, 8, 8, 4)`` it is Darknet-53.

Importing this module registers ``darknet_small`` and ``darknet_tiny`` so that
``timm.create_model("darknet_small", features_only=True)`` (and so ``model.backbone=darknet_small``)
works like any timm model: ``feature_info`` lists the stem (stride 1) and every stage's
output (strides 2 .. 32). There are no ImageNet weights for them: pretrain one with
``bench/pretrain.py`` and pass the file as ``model.pretrained=PATH``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import ClassifierHead
from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
from torch import nn

__all__ = ["ConvBnAct", "Darknet", "DarknetStage", "Downsample", "ResidualBlock"]


class ConvBnAct(nn.Module):
    """Conv (no bias) -> BatchNorm -> LeakyReLU(0.1), 'same' padding: [B, Cin, H, W] -> [B, Cout, H/s, W/s].

    A module rather than an ``nn.Sequential`` so that timm's ``flatten_sequential`` keeps the
    stem whole (``feature_info`` names it as one module).
    """

    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding=kernel_size // 2, bias=False)
        self.bn = nn.BatchNorm2d(out_chs)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


class Downsample(ConvBnAct):
    """3x3 stride-2 conv: [B, Cin, H, W] -> [B, Cout, ceil(H/2), ceil(W/2)]."""

    def __init__(self, in_chs: int, out_chs: int):
        super().__init__(in_chs, out_chs, kernel_size=3, stride=2)


class ResidualBlock(nn.Module):
    """x + conv3x3(conv1x1(x)), the 1x1 halving the width: [B, C, H, W] -> [B, C, H, W]."""

    def __init__(self, chs: int):
        super().__init__()
        self.conv1 = ConvBnAct(chs, chs // 2, kernel_size=1)
        self.conv2 = ConvBnAct(chs // 2, chs, kernel_size=3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.conv1(x))


class DarknetStage(nn.Sequential):
    """Downsample to ``out_chs`` then ``depth`` residual blocks: [B, Cin, H, W] -> [B, Cout, H/2, W/2]."""

    def __init__(self, in_chs: int, out_chs: int, depth: int):
        super().__init__(Downsample(in_chs, out_chs), *(ResidualBlock(out_chs) for _ in range(depth)))


class Darknet(nn.Module):
    """Stem conv, then one :class:`DarknetStage` per entry of ``widths``/``depths``, then a classifier.

    Args:
        widths: output channels of each stage; stage ``i`` has stride ``2 ** (i + 1)``.
        depths: residual blocks per stage (0 allowed: a plain strided conv).
        stem_chs: channels of the stride-1 stem conv.
        num_classes: classifier outputs (0: no classifier, ``forward`` returns pooled features).
        in_chans: input channels.
        global_pool: timm pool type for the classifier head.
        drop_rate: dropout before the classifier.

    ``forward(x)``: images [B, in_chans, H, W] -> logits [B, num_classes].
    ``forward_features(x)``: -> [B, widths[-1], H / 2**len(widths), W / 2**len(widths)].
    """

    def __init__(self, widths: Sequence[int] = (64, 128, 256, 512, 1024), depths: Sequence[int] = (1, 2, 8, 8, 4),
                 stem_chs: int = 32, num_classes: int = 1000, in_chans: int = 3, global_pool: str = "avg",
                 drop_rate: float = 0.0):
        super().__init__()
        if len(widths) != len(depths) or not widths:
            raise ValueError(f"Darknet: widths {tuple(widths)} and depths {tuple(depths)} must be non-empty and "
                             "of the same length (one entry per stage)")
        self.num_classes, self.drop_rate = num_classes, drop_rate
        self.stem = ConvBnAct(in_chans, stem_chs, kernel_size=3)
        self.feature_info = [dict(num_chs=stem_chs, reduction=1, module="stem")]
        stages, prev = [], stem_chs
        for i, (width, depth) in enumerate(zip(widths, depths)):
            stages.append(DarknetStage(prev, width, depth))
            self.feature_info.append(dict(num_chs=width, reduction=2 ** (i + 1), module=f"stages.{i}"))
            prev = width
        self.stages = nn.Sequential(*stages)
        self.num_features = self.head_hidden_size = prev
        self.head = ClassifierHead(prev, num_classes, pool_type=global_pool, drop_rate=drop_rate)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, a=0.1, mode="fan_out", nonlinearity="leaky_relu")

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head.fc

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        self.num_classes = num_classes
        self.head.reset(num_classes, global_pool)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(self.stem(x))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        return self.head(x, pre_logits=pre_logits)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


# name -> architecture; add a variant here and register it below.
DARKNET_CFGS = {
    "darknet_small": dict(stem_chs=16, widths=(32, 64, 128, 256, 512), depths=(1, 1, 2, 2, 1)),
    "darknet_tiny": dict(stem_chs=8, widths=(16, 32, 64, 128, 256), depths=(0, 1, 1, 1, 1)),
}


def _cfg(**kwargs) -> dict:
    return {"url": "", "num_classes": 1000, "input_size": (3, 224, 224), "pool_size": (7, 7), "crop_pct": 0.875,
            "interpolation": "bilinear", "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225),
            "first_conv": "stem.conv", "classifier": "head.fc", **kwargs}


default_cfgs = generate_default_cfgs({f"{name}.untrained": _cfg() for name in DARKNET_CFGS})


def _create_darknet(variant: str, pretrained: bool = False, **kwargs) -> Darknet:
    cfg = {**DARKNET_CFGS[variant], **{k: kwargs.pop(k) for k in ("stem_chs", "widths", "depths") if k in kwargs}}
    out_indices = kwargs.pop("out_indices", tuple(range(len(cfg["widths"]) + 1)))
    return build_model_with_cfg(Darknet, variant, pretrained, feature_cfg=dict(flatten_sequential=True,
                                out_indices=out_indices), **cfg, **kwargs)


@register_model
def darknet_small(pretrained: bool = False, **kwargs) -> Darknet:
    """Darknet with widths 32..512 and depths (1, 1, 2, 2, 1): 3.73 M parameters as a feature extractor."""
    return _create_darknet("darknet_small", pretrained, **kwargs)


@register_model
def darknet_tiny(pretrained: bool = False, **kwargs) -> Darknet:
    """Darknet with widths 16..256 and depths (0, 1, 1, 1, 1): 0.83 M parameters as a feature extractor."""
    return _create_darknet("darknet_tiny", pretrained, **kwargs)
