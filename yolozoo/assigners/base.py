"""The label-assigner interface: priors in, per-prior training targets out.

An assigner is a no-grad callable that holds only its hyperparameters::

    assigner(pred_scores, pred_boxes, priors, gt_labels, gt_boxes, gt_mask) -> AssignResult

    pred_scores  float [B, A, C]  probabilities (after sigmoid), detached
    pred_boxes   float [B, A, 4]  xyxy, input pixels, detached
    priors       Priors: centers [A, 2] px, strides [A], sizes [A, 2] px (prior box w, h)
    gt_labels    long  [B, M]     0-based class
    gt_boxes     float [B, M, 4]  xyxy px
    gt_mask      bool  [B, M]     False for padding

Assigners are registered by name with :func:`register_assigner` and built with
:func:`create_assigner`, so swapping the assigner never means editing the head.
:func:`assigner_call` wraps an assigner's ``__call__`` with what they all share: no grad,
the all-background result for a batch without GT slots (M = 0), fp32 GT boxes.

An assigner class that matches GT to prior *boxes* by shape (the grid family, YOLOv5)
declares ``requires_anchors = True``: it needs several prior boxes (anchors) per location,
i.e. ``model.head=anchor``; the config check rejects it with ``model.head=free``. The
others use prior centres (and the prior box only as ATSS's IoU reference) and run with
either head.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..registry import Registry

ASSIGNERS = Registry("assigner")


@dataclass
class Priors:
    """Prior points/boxes of all pyramid levels, concatenated level by level.

    centers: float [A, 2] (x, y) px; strides: float [A]; sizes: float [A, 2] (w, h) px;
    level: long [A], the pyramid level index of each prior.
    """

    centers: torch.Tensor
    strides: torch.Tensor
    sizes: torch.Tensor
    level: torch.Tensor

    def __len__(self) -> int:
        return self.centers.shape[0]

    def boxes(self) -> torch.Tensor:
        """Prior boxes, xyxy px [A, 4]."""
        half = self.sizes / 2
        return torch.cat([self.centers - half, self.centers + half], dim=-1)

    def to(self, device) -> Priors:
        return Priors(*(t.to(device) for t in (self.centers, self.strides, self.sizes, self.level)))


@dataclass
class AssignResult:
    """Training targets per prior.

    fg_mask [B, A] bool; gt_index [B, A] long (into M, meaningful where fg);
    labels [B, A] long; boxes [B, A, 4] xyxy px; scores [B, A, C] float
    (classification targets: one-hot, or IoU/alignment weighted).
    """

    fg_mask: torch.Tensor
    gt_index: torch.Tensor
    labels: torch.Tensor
    boxes: torch.Tensor
    scores: torch.Tensor


def register_assigner(name: str):
    """Class decorator: make an assigner buildable by ``create_assigner(name)``."""

    def wrap(cls):
        cls.name = name
        return ASSIGNERS.register(name)(cls)

    return wrap


def list_assigners() -> list[str]:
    return ASSIGNERS.names()


def create_assigner(name: str, **kwargs):
    """Build the assigner registered as ``name`` with its keyword hyperparameters."""
    return ASSIGNERS.create(name, **kwargs)


def make_result(fg_mask, gt_index, gt_labels, gt_boxes, num_classes, score_weight=None) -> AssignResult:
    """Gather per-prior targets from ``gt_index`` and build the AssignResult.

    fg_mask [B, A] bool, gt_index [B, A] long, gt_labels [B, M], gt_boxes [B, M, 4];
    score_weight [B, A] float or None (one-hot scores). Background priors get label 0
    and all-zero scores; ``fg_mask`` tells them apart.
    """
    B, A = fg_mask.shape
    M = gt_labels.shape[1]
    if M == 0:
        labels = gt_labels.new_zeros(B, A)
        boxes = gt_boxes.new_zeros(B, A, 4)
    else:
        labels = gt_labels.gather(1, gt_index)
        boxes = gt_boxes.gather(1, gt_index[..., None].expand(B, A, 4))
    # Background priors may point at padding, whose label can be anything (-1, >= C): zero it first.
    labels = torch.where(fg_mask, labels, torch.zeros_like(labels))
    scores = torch.zeros(B, A, num_classes, dtype=torch.float32, device=gt_boxes.device)
    weight = fg_mask.float() if score_weight is None else score_weight.float() * fg_mask
    scores.scatter_(2, labels[..., None], weight[..., None])
    return AssignResult(fg_mask, gt_index, labels, boxes.float(), scores)


def empty_result(pred_scores: torch.Tensor, gt_labels: torch.Tensor, gt_boxes: torch.Tensor) -> AssignResult:
    """All-background result (used when M = 0)."""
    B, A, C = pred_scores.shape
    fg = torch.zeros(B, A, dtype=torch.bool, device=pred_scores.device)
    return make_result(fg, fg.long(), gt_labels.long(), gt_boxes.float(), C)


def assigner_call(call: Callable[..., AssignResult]) -> Callable[..., AssignResult]:
    """Decorate an assigner's ``__call__``: run it without grad, with ``gt_boxes`` as fp32 and only for M >= 1.

    A batch without GT slots (``gt_labels`` ``[B, 0]``) gets :func:`empty_result` without calling it.
    """

    @functools.wraps(call)
    def wrapped(self, pred_scores, pred_boxes, priors: Priors, gt_labels, gt_boxes, gt_mask) -> AssignResult:
        if gt_labels.shape[1] == 0:
            return empty_result(pred_scores, gt_labels, gt_boxes)
        return call(self, pred_scores, pred_boxes, priors, gt_labels, gt_boxes.float(), gt_mask)

    return torch.no_grad()(wrapped)


def centres_in_boxes(points: torch.Tensor, boxes: torch.Tensor, eps: float = 1e-9) -> torch.Tensor:
    """Whether each point lies strictly (by more than ``eps``) inside each box.

    points [A, 2] (x, y) px; boxes [B, M, 4] xyxy px -> bool [B, M, A]. Four broadcast
    comparisons against the box sides moved in by ``eps``; never materialises the
    ``[B, M, A, 4]`` distances. (``x > x1 + eps`` equals ``x - x1 > eps`` up to rounding,
    which can only matter for coordinates within ~0.02 px of 0.)
    """
    px, py = points[:, 0], points[:, 1]
    x1, y1 = (boxes[..., i, None] + eps for i in range(2))  # [B, M, 1]
    x2, y2 = (boxes[..., i, None] - eps for i in range(2, 4))
    inside = px > x1
    inside &= py > y1
    inside &= px < x2
    inside &= py < y2
    return inside


def batched_box_iou(boxes1: torch.Tensor, boxes2: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """IoU of every pair: boxes1 ``[B, M, 4]``, boxes2 ``[B, N, 4]`` xyxy -> ``[B, M, N]`` fp32.

    Same formula as ``box_ops.aligned_iou(..., "iou")`` (``inter / (area1 + area2 - inter + eps)``,
    inverted boxes have area 0), computed per coordinate so no ``[B, M, N, 4]`` is built.
    """
    a, b = boxes1.float()[:, :, None], boxes2.float()[:, None]  # [B, M, 1, 4], [B, 1, N, 4]
    iw = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0])).clamp_(min=0)
    ih = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1])).clamp_(min=0)
    inter = iw.mul_(ih)
    area1 = (a[..., 2] - a[..., 0]).clamp(min=0) * (a[..., 3] - a[..., 1]).clamp(min=0)
    area2 = (b[..., 2] - b[..., 0]).clamp(min=0) * (b[..., 3] - b[..., 1]).clamp(min=0)
    return inter / (area1 + area2 - inter + eps)
