"""Anchor-based head (YOLOv3 / YOLOv5 box parametrisation) for the grid-family assigners.

K anchor boxes per cell and level. Per level, the same decoupled branches as the
anchor-free head end in 1x1 convs to ``K * C`` class logits and ``K * 4`` box offsets
``t``. With ``c`` the cell's centre, ``s`` the stride and ``(a_w, a_h)`` the anchor:

- ``v5`` (YOLOv5, Jocher et al. 2020): centre ``c + (2 sigmoid(t_xy) - 1) s``, i.e.
  ``(2 sigmoid(t_xy) - 0.5 + grid) s`` within (-0.5, 1.5) cells, so that the neighbour cells
  ``nearby_grid`` / ``yolov5`` assign can reach the GT centre; size
  ``(2 sigmoid(t_wh))^2 a`` within (0, 4) anchors.
- ``v3`` (YOLOv3, Redmon & Farhadi 2018): centre ``c + (sigmoid(t_xy) - 0.5) s``, i.e.
  ``(sigmoid(t_xy) + grid) s`` inside its own cell only; size ``exp(t_wh) a`` (``t_wh``
  clamped at ``log(1e4)``, which only guards against overflow).

Both give the anchor itself at ``t = 0`` (zero bias init), and both add ``MIN_SIZE`` px to
the size: without it a size of ~1e-5 px (a 1 px anchor times ``(2 sigmoid(-7))^2``) rounds
to ``x2 - x1 = 0`` in fp32, and a zero-size box makes the CIoU loss NaN (``atan(0 / 0)``).
There is no objectness branch:
the class scores are trained with the same quality-aware targets as the anchor-free head,
so loss, post-processing and evaluation are shared.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ..assigners.base import Priors
from .anchors import BOX_PARAMS
from .detector import make_priors
from .head import branch, flatten_levels

_MAX_LOG_SCALE = math.log(1e4)
MIN_SIZE = 0.01  # px; fp32 keeps x2 - x1 > 0 for coordinates up to ~10^4 px


def decode_anchor_boxes(t: torch.Tensor, priors: Priors, box_param: str = "v5") -> torch.Tensor:
    """Offsets ``t [B, A, 4]`` (x, y, w, h) -> boxes ``[B, A, 4]`` xyxy px, in fp32.

    priors: centres = cell centres, strides, sizes = the anchors (see the module docstring).
    """
    t = t.float()
    stride, anchor = priors.strides[:, None].float(), priors.sizes.float()
    if box_param == "v5":
        xy = priors.centers + (2 * t[..., :2].sigmoid() - 1) * stride
        wh = (2 * t[..., 2:].sigmoid()).square() * anchor + MIN_SIZE
    elif box_param == "v3":
        xy = priors.centers + (t[..., :2].sigmoid() - 0.5) * stride
        wh = t[..., 2:].clamp(max=_MAX_LOG_SCALE).exp() * anchor + MIN_SIZE
    else:
        raise ValueError(f"box_param must be one of {', '.join(BOX_PARAMS)}, got {box_param!r}")
    return torch.cat([xy - wh / 2, xy + wh / 2], dim=-1)


class AnchorHead(nn.Module):
    """Per level: class and box branches to K anchors per cell.

    Args:
        in_channels: neck channels per level.
        num_classes: C.
        anchors: per level, K ``(w, h)`` px at the input size (every level the same K).
        box_param: ``v5`` or ``v3`` (module docstring).
        prior_prob: initial foreground probability of the class logits (RetinaNet init).
        convs: 3x3 convs per branch (:func:`~yolozoo.models.head.branch`).

    ``anchors`` is kept as a buffer ``[L, K, 2]`` so a checkpoint carries the anchors it was
    trained with. ``forward`` returns ``cls_logits [B, A, C]`` and offsets ``t [B, A, 4]``,
    A = sum over levels of H * W * K.
    """

    def __init__(self, in_channels: list[int], num_classes: int, anchors, box_param: str = "v5",
                 prior_prob: float = 0.01, convs: int = 2):
        super().__init__()
        anchors = torch.as_tensor(anchors, dtype=torch.float)
        if anchors.ndim != 3 or anchors.shape[0] != len(in_channels) or anchors.shape[2] != 2:
            raise ValueError(f"anchors must be [levels={len(in_channels)}, K, 2], got shape {tuple(anchors.shape)}")
        if box_param not in BOX_PARAMS:
            raise ValueError(f"box_param must be one of {', '.join(BOX_PARAMS)}, got {box_param!r}")
        self.num_classes, self.box_param = num_classes, box_param
        self.num_anchors = anchors.shape[1]
        self.register_buffer("anchors", anchors)
        k = self.num_anchors
        self.cls_branch = nn.ModuleList(branch(c, k * num_classes, convs) for c in in_channels)
        self.box_branch = nn.ModuleList(branch(c, k * 4, convs) for c in in_channels)
        for b in self.cls_branch:
            nn.init.constant_(b[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        for b in self.box_branch:
            nn.init.zeros_(b[-1].bias)  # t = 0: the anchor box at the cell centre

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        k = self.num_anchors
        cls_logits = flatten_levels([b(f) for b, f in zip(self.cls_branch, feats)], k, self.num_classes)
        t = flatten_levels([b(f) for b, f in zip(self.box_branch, feats)], k, 4)
        return cls_logits, t

    def priors(self, shapes: list[tuple[int, int]], strides: list[int], device=None) -> Priors:
        return make_priors(shapes, strides, anchors=self.anchors.to(device), device=device)

    def decode(self, t: torch.Tensor, priors: Priors) -> torch.Tensor:
        return decode_anchor_boxes(t, priors, self.box_param)
