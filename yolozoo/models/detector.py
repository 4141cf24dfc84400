"""The detector: backbone -> neck -> head; the head defines its priors and box decoding."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ..assigners.base import Priors


@dataclass
class DetectorOutput:
    """cls_logits [B, A, C]; boxes [B, A, 4] xyxy input px; priors (A of them).

    extras: what a family's own loss needs besides (cls_logits, boxes), passed to it as
    keyword arguments (e.g. YOLOv8's DFL bin logits); empty for this harness's heads.
    """

    cls_logits: torch.Tensor
    boxes: torch.Tensor
    priors: Priors
    extras: dict = field(default_factory=dict)


def make_priors(shapes: list[tuple[int, int]], strides: list[int], prior_scale: float = 4.0,
                anchors=None, device=None) -> Priors:
    """Priors at the cell centres of each level, ordered level by level, row-major.

    shapes: (H, W) of each level's map. Without ``anchors``: one square prior box of side
    ``prior_scale * stride`` per cell. With ``anchors`` (per level, K (w, h) px each; nested
    lists or a ``[L, K, 2]`` tensor): K prior boxes per cell, the K of one cell adjacent.
    """
    centers, sizes, stride_list, level = [], [], [], []
    for i, ((h, w), s) in enumerate(zip(shapes, strides)):
        ys, xs = torch.meshgrid(torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij")
        cell = (torch.stack([xs, ys], -1).reshape(-1, 2).float() + 0.5) * s
        if anchors is None:  # made on the device: a copy from a Python list would wait for it
            wh = torch.full((1, 2), float(prior_scale * s), device=device)
        else:
            wh = torch.as_tensor(anchors[i], dtype=torch.float, device=device).reshape(-1, 2)
        n = h * w * len(wh)
        centers.append(cell.repeat_interleave(len(wh), 0))
        sizes.append(wh.repeat(h * w, 1))
        stride_list.append(torch.full((n,), float(s), device=device))
        level.append(torch.full((n,), i, dtype=torch.long, device=device))
    return Priors(torch.cat(centers), torch.cat(stride_list), torch.cat(sizes), torch.cat(level))


class Detector(nn.Module):
    """One-stage detector, anchor-free or anchor-based depending on its head.

    ``forward(images)`` takes uint8 or float images ``[B, 3, H, W]`` in 0..255 (normalised
    inside with the backbone's mean/std) and always returns a :class:`DetectorOutput`;
    loss and post-processing live elsewhere. The head follows the protocol described in
    :mod:`yolozoo.models.head` (``forward``, ``priors``, ``decode``).
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.neck, self.head = backbone, neck, head
        self.strides = backbone.strides
        self.num_classes = head.num_classes

    def forward(self, images: torch.Tensor) -> DetectorOutput:
        x = (images.float() - self.backbone.mean) / self.backbone.std
        feats = self.neck(self.backbone(x))
        cls_logits, box_raw = self.head(feats)
        priors = self.head.priors([tuple(f.shape[-2:]) for f in feats], self.strides, device=x.device)
        return DetectorOutput(cls_logits, self.head.decode(box_raw, priors), priors)
