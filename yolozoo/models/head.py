"""Anchor-free decoupled head (YOLOX / YOLOv8 style): separate class and box branches."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .layers import ConvBNAct


class DecoupledHead(nn.Module):
    """Per level: two 3x3 convs then a 1x1 to C class logits; likewise to 4 ltrb distances.

    Args:
        in_channels: neck channels per level.
        num_classes: C.
        prior_prob: initial foreground probability of the class logits (RetinaNet init).

    ``forward`` returns ``cls_logits [B, A, C]`` and ``ltrb [B, A, 4]`` distances in units of
    the level's stride (>= 0), levels concatenated stride 8 first, row-major in each level.
    """

    def __init__(self, in_channels: list[int], num_classes: int, prior_prob: float = 0.01):
        super().__init__()
        self.num_classes = num_classes
        self.cls_branch = nn.ModuleList()
        self.box_branch = nn.ModuleList()
        for c in in_channels:
            hc = max(c, 32)
            self.cls_branch.append(nn.Sequential(ConvBNAct(c, hc), ConvBNAct(hc, hc), nn.Conv2d(hc, num_classes, 1)))
            self.box_branch.append(nn.Sequential(ConvBNAct(c, hc), ConvBNAct(hc, hc), nn.Conv2d(hc, 4, 1)))
        for branch in self.cls_branch:
            nn.init.constant_(branch[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        for branch in self.box_branch:
            nn.init.constant_(branch[-1].bias, math.log(math.e - 1))  # softplus(b) = 1 stride

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cls = [b(f).flatten(2) for b, f in zip(self.cls_branch, feats)]  # [B, C, H*W] per level
        box = [b(f).flatten(2) for b, f in zip(self.box_branch, feats)]
        cls_logits = torch.cat(cls, 2).transpose(1, 2)  # [B, A, C]
        ltrb = F.softplus(torch.cat(box, 2).transpose(1, 2))  # [B, A, 4], stride units
        return cls_logits, ltrb
