"""The detector: backbone -> neck -> head, plus the priors and box decoding they imply."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..assigners.base import Priors
from ..box_ops import distance_to_box


@dataclass
class DetectorOutput:
    """cls_logits [B, A, C]; boxes [B, A, 4] xyxy input px; priors (A of them)."""

    cls_logits: torch.Tensor
    boxes: torch.Tensor
    priors: Priors


def make_priors(shapes: list[tuple[int, int]], strides: list[int], prior_scale: float = 4.0,
                anchors: list[list[tuple[float, float]]] | None = None, device=None) -> Priors:
    """Priors at the cell centres of each level, ordered level by level, row-major.

    shapes: (H, W) of each level's map. Without ``anchors``: one square prior box of side
    ``prior_scale * stride`` per cell. With ``anchors`` (per level, K (w, h) px each): K prior
    boxes per cell, the K of one cell adjacent.
    """
    centers, sizes, stride_list, level = [], [], [], []
    for i, ((h, w), s) in enumerate(zip(shapes, strides)):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        cell = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * s
        wh = torch.tensor(anchors[i] if anchors else [[prior_scale * s] * 2], dtype=torch.float, device=device)
        n = h * w * len(wh)
        centers.append(cell.repeat_interleave(len(wh), 0))
        sizes.append(wh.repeat(h * w, 1))
        stride_list.append(torch.full((n,), float(s), device=device))
        level.append(torch.full((n,), i, dtype=torch.long, device=device))
    return Priors(torch.cat(centers), torch.cat(stride_list), torch.cat(sizes), torch.cat(level))


class Detector(nn.Module):
    """Anchor-free one-stage detector.

    ``forward(images)`` takes uint8 or float images ``[B, 3, H, W]`` in 0..255 (normalised
    inside with the backbone's mean/std) and always returns a :class:`DetectorOutput`;
    loss and post-processing live elsewhere.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module, prior_scale: float = 4.0):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.prior_scale = prior_scale
        self.strides = backbone.strides
        self.num_classes = head.num_classes

    def forward(self, images: torch.Tensor) -> DetectorOutput:
        x = (images.float() - self.backbone.mean) / self.backbone.std
        feats = self.neck(self.backbone(x))
        cls_logits, ltrb = self.head(feats)
        priors = make_priors([tuple(f.shape[-2:]) for f in feats], self.strides, self.prior_scale, device=x.device)
        boxes = distance_to_box(priors.centers, ltrb * priors.strides[:, None])
        return DetectorOutput(cls_logits, boxes, priors)
