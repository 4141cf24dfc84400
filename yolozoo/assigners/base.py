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
"""

from __future__ import annotations

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
