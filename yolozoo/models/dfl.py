"""YOLOv8's decoupled head with Distribution Focal Loss (DFL) box regression, and the DFL term.

Box regression as a distribution (Generalized Focal Loss, Li et al. 2020; YOLOv8, Jocher et
al. 2023): each of the four distances ``(l, t, r, b)`` from the prior centre to the box sides,
in units of the level's stride, is predicted as ``reg_max`` logits over the bins
``0, 1, ..., reg_max - 1``; the distance is the expectation ``sum_i softmax(logits)_i * i``
("integral" decode), so a box side reaches at most ``reg_max - 1`` strides.

DFL trains the two bins around a target distance ``y`` (``y_i <= y < y_i + 1``) towards it:
``-((y_i + 1 - y) log p_i + (y - y_i) log p_{i+1})``, ``y`` clamped to ``[0, reg_max - 1.01]``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..assigners.base import AssignResult, Priors
from ..box_ops import box_to_distance, distance_to_box
from ..losses import DetectionLoss
from .detector import Detector, DetectorOutput, make_priors
from .head import flatten_levels
from .layers import ConvBNAct


class DFLHead(nn.Module):
    """Per level, a class branch and a box branch, each two 3x3 ConvBNAct then a 1x1 conv.

    Args:
        in_channels: neck channels per level.
        num_classes: C.
        reg_max: bins per box side (YOLOv8: 16).
        prior_prob: initial foreground probability of the class logits (RetinaNet init).
        prior_scale: side of each cell's square prior box, in strides (for prior-box assigners such as ATSS).

    Branch widths as YOLOv8: box ``max(16, in_channels[0] // 4, 4 * reg_max)``, class
    ``max(in_channels[0], min(C, 100))``. The box bias starts at 0: a uniform distribution.
    ``forward`` returns ``cls_logits [B, A, C]`` and bin logits ``box_dist [B, A, 4, reg_max]``.
    """

    def __init__(self, in_channels: list[int], num_classes: int, reg_max: int = 16, prior_prob: float = 0.01,
                 prior_scale: float = 4.0):
        super().__init__()
        if reg_max < 2:
            raise ValueError(f"reg_max must be >= 2 bins, got {reg_max}")
        self.num_classes, self.reg_max, self.prior_scale = num_classes, reg_max, prior_scale
        c_box = max(16, in_channels[0] // 4, 4 * reg_max)
        c_cls = max(in_channels[0], min(num_classes, 100))
        self.box_branch = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_box), ConvBNAct(c_box, c_box), nn.Conv2d(c_box, 4 * reg_max, 1))
            for c in in_channels)
        self.cls_branch = nn.ModuleList(
            nn.Sequential(ConvBNAct(c, c_cls), ConvBNAct(c_cls, c_cls), nn.Conv2d(c_cls, num_classes, 1))
            for c in in_channels)
        for b in self.cls_branch:
            nn.init.constant_(b[-1].bias, -math.log((1 - prior_prob) / prior_prob))
        for b in self.box_branch:
            nn.init.zeros_(b[-1].bias)
        self.register_buffer("bins", torch.arange(reg_max, dtype=torch.float), persistent=False)

    def forward(self, feats: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        cls_logits = flatten_levels([b(f) for b, f in zip(self.cls_branch, feats)], 1, self.num_classes)
        dist = flatten_levels([b(f) for b, f in zip(self.box_branch, feats)], 1, 4 * self.reg_max)
        return cls_logits, dist.unflatten(-1, (4, self.reg_max))  # [B, A, 4, reg_max], side-major channels

    def priors(self, shapes: list[tuple[int, int]], strides: list[int], device=None) -> Priors:
        return make_priors(shapes, strides, self.prior_scale, device=device)

    def decode(self, box_dist: torch.Tensor, priors: Priors) -> torch.Tensor:
        """Bin logits ``[B, A, 4, reg_max]`` -> expected ltrb in strides -> boxes ``[B, A, 4]`` xyxy px (fp32)."""
        ltrb = box_dist.float().softmax(-1) @ self.bins  # [B, A, 4]
        return distance_to_box(priors.centers, ltrb * priors.strides[:, None])


class DFLDetector(Detector):
    """:class:`Detector` with a :class:`DFLHead`; its output also carries what the DFL term needs.

    ``forward(images [B, 3, H, W] 0..255) -> DetectorOutput`` with
    ``extras = {"box_dist": [B, A, 4, reg_max] bin logits, "priors": Priors}``.
    """

    def forward(self, images: torch.Tensor) -> DetectorOutput:
        x = (images.float() - self.backbone.mean) / self.backbone.std
        feats = self.neck(self.backbone(x))
        cls_logits, box_dist = self.head(feats)
        priors = self.head.priors([tuple(f.shape[-2:]) for f in feats], self.strides, device=x.device)
        return DetectorOutput(cls_logits, self.head.decode(box_dist, priors), priors,
                            extras={"box_dist": box_dist, "priors": priors})


def dfl_loss(box_dist: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """DFL per prior: bin logits ``[N, 4, R]``, target ltrb ``[N, 4]`` in strides -> ``[N]`` (mean of the 4 sides)."""
    R = box_dist.shape[-1]
    y = target.float().clamp(0, R - 1 - 0.01)
    lo = y.floor().long()
    w_hi = y - lo
    logp = F.log_softmax(box_dist.float(), -1)
    nll = -(logp.gather(-1, lo[..., None]).squeeze(-1) * (1 - w_hi)
            + logp.gather(-1, (lo + 1)[..., None]).squeeze(-1) * w_hi)
    return nll.mean(-1)


class DFLDetectionLoss:
    """:class:`~yolozoo.losses.DetectionLoss` (``cls``, ``box``) plus ``dfl``: the YOLOv8 loss terms.

    ``loss(cls_logits [B, A, C], boxes [B, A, 4] xyxy px, assign, box_dist [B, A, 4, R], priors)``
    -> ``{"cls", "box", "dfl"}``, unweighted. ``dfl`` is :func:`dfl_loss` against the assigned
    GT's ltrb distances (strides) from the prior centre, on foreground priors, weighted by the
    prior's target score and divided by the total target score (as ``box``).
    """

    def __init__(self, iou_type: str = "ciou"):
        self.detection = DetectionLoss(iou_type)

    def __call__(self, cls_logits: torch.Tensor, boxes: torch.Tensor, assign: AssignResult, box_dist: torch.Tensor,
                 priors: Priors) -> dict:
        terms = self.detection(cls_logits, boxes, assign)
        # foreground priors as index tensors, as DetectionLoss (one wait for the device); none: 0, graph connected
        b, a = assign.fg_mask.nonzero(as_tuple=True)
        target = box_to_distance(priors.centers[a].float(), assign.boxes[b, a]) / priors.strides[a, None]
        weight = assign.scores[b, a].sum(-1)
        norm = assign.scores.sum().clamp(min=1.0)
        terms["dfl"] = (dfl_loss(box_dist[b, a], target) * weight).sum() / norm
        return terms
