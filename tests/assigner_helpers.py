"""Shared fixtures for the assigner tests: a 64 px image, strides 8/16/32 (8x8, 4x4, 2x2 cells).

Anchor-based assigners get K = 3 anchors per cell (``ANCHORS``), the others one square prior per cell.
"""

from __future__ import annotations

import torch

from yolozoo.assigners import Priors, create_assigner, list_assigners
from yolozoo.models.detector import make_priors as detector_priors

IMG, STRIDES, C = 64, (8, 16, 32), 3
# assigners that declare they match GT to anchor boxes (model.head=anchor)
ANCHOR_BASED = {n for n in list_assigners() if getattr(create_assigner(n), "requires_anchors", False)}
# per level: (s, s), (2s, s), (s, 2s)
ANCHORS = [[(s, s), (2 * s, s), (s, 2 * s)] for s in STRIDES]


def make_priors(anchors=None, size_mult: float = 5.0, strides=STRIDES, img: int = IMG) -> Priors:
    """Priors level by level, row-major cells, the K anchors of a cell adjacent."""
    return detector_priors([(img // s, img // s) for s in strides], list(strides), size_mult, anchors)


def prior_index(level: int, cx: int, cy: int, k: int = 0, K: int = 3) -> int:
    """Index in ``make_priors`` of anchor ``k`` of cell (cx, cy) on ``level``."""
    offset = sum((IMG // s) ** 2 * K for s in STRIDES[:level])
    return offset + (cy * (IMG // STRIDES[level]) + cx) * K + k


def priors_for(name: str) -> Priors:
    return make_priors(ANCHORS) if name in ANCHOR_BASED else make_priors()


def predictions(priors: Priors, B: int, seed: int = 0):
    """Random class probabilities [B, A, C] and prior boxes jittered into predictions [B, A, 4]."""
    g = torch.Generator().manual_seed(seed)
    A = len(priors)
    scores = torch.rand(B, A, C, generator=g)
    boxes = priors.boxes()[None] + torch.randn(B, A, 4, generator=g) * 3
    return scores, boxes


def gt_batch():
    """3 images, M = 5: 3 real GT, 1 real GT, all padding. Padding boxes look real on purpose
    (difficult boxes are masked out the same way), so only ``gt_mask`` can tell them apart."""
    boxes = torch.tensor(
        [
            [[4, 6, 22, 20], [30, 12, 62, 50], [40, 44, 46, 49], [8, 8, 40, 40], [2, 2, 30, 30]],
            [[8, 16, 40, 34], [20, 20, 30, 30], [0, 0, 64, 64], [5, 5, 9, 9], [1, 1, 3, 3]],
            [[10, 10, 20, 20], [0, 0, 64, 64], [3, 3, 33, 33], [50, 50, 60, 60], [4, 4, 8, 8]],
        ],
        dtype=torch.float,
    )
    labels = torch.tensor([[0, 1, 2, 1, 0], [1, 0, 2, 2, 1], [0, 1, 2, 0, 1]])
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 0]], dtype=torch.bool)
    return labels, boxes, mask


def call(assigner, priors, gt_boxes, gt_labels=None, gt_mask=None, scores=None, boxes=None, seed=0):
    gt_boxes = torch.as_tensor(gt_boxes, dtype=torch.float).reshape(1, -1, 4)
    M = gt_boxes.shape[1]
    gt_labels = torch.zeros(1, M, dtype=torch.long) if gt_labels is None else torch.as_tensor(gt_labels)[None]
    gt_mask = torch.ones(1, M, dtype=torch.bool) if gt_mask is None else torch.as_tensor(gt_mask)[None]
    if scores is None:
        scores, boxes = predictions(priors, 1, seed)
    return assigner(scores, boxes, priors, gt_labels, gt_boxes, gt_mask)


def positives(result, gt: int = 0, b: int = 0) -> set[int]:
    return set((result.fg_mask[b] & (result.gt_index[b] == gt)).nonzero().flatten().tolist())


# A 16x12 GT centred at (20, 20); its shape IoUs with ANCHORS are listed in test_assigner_cases.py.
GT_16x12 = [[12, 14, 28, 26]]
