"""Anchor-free decoupled head (YOLOX / YOLOv8 style): separate class and box branches.

Every head follows one protocol, so the detector, the assigners, the loss and the
post-processing never depend on which head runs:

- ``forward(feats) -> (cls_logits [B, A, C], box_raw [B, A, 4])``, levels concatenated
  stride 8 first, row-major cells in each level (the K priors of a cell adjacent);
- ``priors(shapes, strides, device) -> Priors`` in that same order;
- ``decode(box_raw, priors) -> boxes [B, A, 4]`` xyxy input px.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..assigners.base import Priors
from ..box_ops import distance_to_box
from .detector import make_priors
from .layers import ConvBNAct


def branch(cin: int, cout: int, convs: int = 2) -> nn.Sequential:
    """``convs`` 3x3 ConvBNAct (``max(cin, 32)`` channels; YOLOX and YOLOv8 use two) then a 1x1 conv to ``cout``
    outputs; with ``convs=0`` the 1x1 conv alone, on the neck's map (a coupled head, as YOLOv3's and YOLOv5's)."""
    hc = max(cin, 32) if convs else cin
    return nn.Sequential(*(ConvBNAct(cin if i == 0 else hc, hc) for i in range(convs)), nn.Conv2d(hc, cout, 1))


def flatten_levels(maps: list[torch.Tensor], k: int, n: int) -> torch.Tensor:
    """Per-level maps ``[B, k * n, H, W]`` -> ``[B, sum(H * W * k), n]``: row-major cells, k per cell adjacent."""
    out = []
    for x in maps:
        B, _, H, W = x.shape
        out.append(x.view(B, k, n, H, W).permute(0, 3, 4, 1, 2).reshape(B, H * W * k, n))
    return torch.cat(out, 1)


class DecoupledHead(nn.Module):
    """Per level: ``convs`` 3x3 convs then a 1x1 to C class logits; likewise to 4 ltrb distances.

    Args:
        in_channels: neck channels per level.
        num_classes: C.
        prior_prob: initial foreground probability of the class logits (RetinaNet init).
        prior_scale: side of each cell's square prior box, in strides (what prior-box
            assigners such as ATSS compare GT with).
        convs: 3x3 convs per branch (:func:`branch`).

    ``forward`` returns ``cls_logits [B, A, C]`` and ``ltrb [B, A, 4]`` distances in units of
    the level's stride (>= 0), A = one prior per cell.
    """

    def __init__(self, in_channels: list[int], num_classes: int, prior_prob: float = 0.01, prior_scale: float = 4.0,
                 convs: int = 2):
        super().__init__()
        self.num_classes = num_classes
        self.prior_scale = prior_scale
        self.cls_branch = nn.ModuleList(branch(c, num_classes, convs) for c in in_channels)
        self.box_branch = nn.ModuleList(branch(c, 4, convs) for c in in_channels)
        for b in self.cls_branch:
            nn.init.constant_(b[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        for b in self.box_branch:
            nn.init.constant_(b[-1].bias, math.log(math.e - 1))  # softplus(b) = 1 stride

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cls_logits = flatten_levels([b(f) for b, f in zip(self.cls_branch, feats)], 1, self.num_classes)
        ltrb = F.softplus(flatten_levels([b(f) for b, f in zip(self.box_branch, feats)], 1, 4))  # stride units
        return cls_logits, ltrb

    def priors(self, shapes: list[tuple[int, int]], strides: list[int], device=None) -> Priors:
        return make_priors(shapes, strides, self.prior_scale, device=device)

    def decode(self, ltrb: torch.Tensor, priors: Priors) -> torch.Tensor:
        """ltrb ``[B, A, 4]`` in strides -> xyxy px around the prior centres."""
        return distance_to_box(priors.centers, ltrb * priors.strides[:, None])
