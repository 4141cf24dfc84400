"""Label assigners: tiny hand-computed cases per method, with known answers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from assigner_helpers import (
    ANCHORS,
    C,
    GT_16x12,
    call,
    make_priors,
    positives,
    prior_index,
)
from torchvision.ops import box_iou

from yolozoo.assigners import create_assigner

# ---------------------------------------------------------------- hand-computed cases

# GT 16x12 centred at (20, 20): shape IoUs with ANCHORS are, per level,
# L0 (8,8) .333, (16,8) .667, (8,16) .429; L1 (16,16) .75, (32,16) .375, (16,32) .375; L2 all < .2


def test_single_grid_hand_case():
    priors = make_priors(ANCHORS)
    out = call(create_assigner("single_grid"), priors, GT_16x12)
    assert positives(out) == {prior_index(0, 2, 2, 1), prior_index(1, 1, 1, 0)}
    # nothing passes 0.9: only the best prior over levels
    out = call(create_assigner("single_grid", match_iou_thres=0.9), priors, GT_16x12)
    assert positives(out) == {prior_index(1, 1, 1, 0)}


def test_nearby_grid_hand_case():
    priors = make_priors(ANCHORS)
    near0 = [(x, y) for x in (1, 2, 3) for y in (1, 2, 3)]
    near1 = [(x, y) for x in (0, 1, 2) for y in (0, 1, 2)]
    out = call(create_assigner("nearby_grid"), priors, GT_16x12)
    expect = {prior_index(0, x, y, 1) for x, y in near0} | {prior_index(1, x, y, 0) for x, y in near1}
    assert positives(out) == expect
    # at 0.4 anchor (8,16) of level 0 passes as well; filter_by_max_iou keeps one per cell
    out = call(create_assigner("nearby_grid", match_iou_thres=0.4), priors, GT_16x12)
    assert positives(out) == expect | {prior_index(0, x, y, 2) for x, y in near0}
    out = call(create_assigner("nearby_grid", match_iou_thres=0.4, filter_by_max_iou=True), priors, GT_16x12)
    assert positives(out) == expect
    # transposed GT (12x16): now anchor (8,16) is the best of the level-0 cells
    filtered = create_assigner("nearby_grid", match_iou_thres=0.4, filter_by_max_iou=True)
    out = call(filtered, priors, [[14, 12, 26, 28]])
    assert {i for i in positives(out) if priors.level[i] == 0} == {prior_index(0, x, y, 2) for x, y in near0}
    # two identical anchors per cell: exactly one of them is kept
    dup = make_priors([[(8, 8), (16, 8), (16, 8)], ANCHORS[1], ANCHORS[2]])
    out = call(create_assigner("nearby_grid", filter_by_max_iou=True), dup, GT_16x12)
    assert {i for i in positives(out) if dup.level[i] == 0} == {prior_index(0, x, y, 1) for x, y in near0}


def test_single_grid_fallback_claim_beats_threshold_claim():
    priors = make_priors(ANCHORS)
    p = prior_index(1, 1, 1, 0)  # anchor (16,16) of cell (1,1) on level 1
    # A (12x12): best is p (IoU .56), nothing passes .6. B (16x11): best is (16,8) on level 0 (.73),
    # and p passes (.69). p goes to A, its only positive, rather than to the higher IoU of B.
    a, b = [22, 22, 34, 34], [12, 14.5, 28, 25.5]
    out = call(create_assigner("single_grid", match_iou_thres=0.6), priors, [a, b])
    assert positives(out, 0) == {p}
    assert positives(out, 1) == {prior_index(0, 2, 2, 1)}


def test_nearby_grid_conflicts():
    priors = make_priors(ANCHORS)
    # 14x12 and 16x12, same centre: both claim the same 18 priors, the 16x12 one always with higher IoU
    two = [[13, 14, 27, 26], [12, 14, 28, 26]]
    out = call(create_assigner("nearby_grid", filter_by_max_iou=True), priors, two)
    assert not positives(out, 0)
    assert positives(out, 1) == positives(call(create_assigner("nearby_grid"), priors, two[1:]))
    rand = create_assigner("nearby_grid", seed=3)
    a, b = call(rand, priors, two), call(rand, priors, two)
    assert torch.equal(a.gt_index, b.gt_index)  # reproducible
    assert len(positives(a, 0)) > 2 and len(positives(a, 1)) > 2  # a random split, not "first GT wins"
    assert positives(a, 0) | positives(a, 1) == positives(call(rand, priors, two[:1]))
    other = call(create_assigner("nearby_grid", seed=4), priors, two)
    assert not torch.equal(a.gt_index[a.fg_mask], other.gt_index[a.fg_mask])
    # the random draw follows the GT, not their order or the padding's position
    swapped = call(rand, priors, [two[1], [0, 0, 64, 64], two[0]], gt_mask=[True, False, True])
    assert positives(swapped, 0) == positives(a, 1) and positives(swapped, 2) == positives(a, 0)


def test_all_grid_hand_case():
    priors = make_priors(ANCHORS)
    gt = [[16, 16, 32, 32]]  # exactly anchor (16,16) of cell (1,1) on level 1; (32,16)/(16,32) there: IoU .5
    out = call(create_assigner("all_grid", match_iou_thres=0.6), priors, gt)
    assert positives(out) == {prior_index(1, 1, 1, 0)}
    out = call(create_assigner("all_grid", match_iou_thres=0.45), priors, gt)
    assert positives(out) == {prior_index(1, 1, 1, k) for k in range(3)}
    assert not positives(call(create_assigner("all_grid"), priors, [[1, 1, 5, 5]]))


def _all_grid_reference(priors, gt, mask, thres, ensure_one):
    """Dense box_iou over every (GT, prior) pair; conflicts to the highest priority, then the lowest GT."""
    iou = box_iou(gt, priors.boxes())  # [M, A]
    pos = (iou >= thres) & mask[:, None]
    priority = iou.clone()
    if ensure_one:
        for g in mask.nonzero().flatten().tolist():
            best = int(iou[g].argmax())  # the first (lowest-index) maximum
            if iou[g, best] > 0:
                pos[g, best] = True
                priority[g, best] += 2
    key = priority.masked_fill(~pos, float("-inf"))
    return pos.any(0), key.argmax(0)


@pytest.mark.parametrize("ensure_one", [False, True])
@pytest.mark.parametrize("thres", [0.3, 0.5])
@pytest.mark.parametrize("regular", [True, False])
def test_all_grid_matches_dense_iou(ensure_one, thres, regular):
    """The per-level grid IoU (and its shape pre-filter) gives what dense box_iou matching gives."""
    priors = make_priors(ANCHORS)
    if not regular:  # per-prior sizes: no grid of same-shaped anchors, the dense fallback runs
        g = torch.Generator().manual_seed(1)
        priors.sizes = priors.sizes * torch.empty(len(priors), 2).uniform_(0.8, 1.25, generator=g)
    g = torch.Generator().manual_seed(2)
    wh = torch.empty(12, 2).uniform_(3, 40, generator=g)
    xy = torch.rand(12, 2, generator=g) * (64 - wh)
    gt = torch.cat([xy, xy + wh], -1)
    gt[0] = torch.tensor([16.0, 16, 32, 32])  # exactly a prior box: IoU 1, ties at .5 in its cell
    gt[1] = gt[0]  # a duplicate GT: every claim a tie
    mask = torch.ones(12, dtype=torch.bool)
    mask[5] = False
    out = call(create_assigner("all_grid", match_iou_thres=thres, ensure_one=ensure_one), priors, gt, gt_mask=mask)
    fg, gt_index = _all_grid_reference(priors, gt, mask, thres, ensure_one)
    assert fg.sum() > 5 and torch.equal(out.fg_mask[0], fg)
    assert torch.equal(out.gt_index[0][fg], gt_index[fg])


def test_yolov5_hand_case():
    priors = make_priors(ANCHORS)
    # 16x12 centred at (18, 22): grid coords L0 (2.25, 2.75), L1 (1.125, 1.375), L2 (.5625, .6875)
    out = call(create_assigner("yolov5"), priors, [[10, 16, 26, 28]])
    cells = {0: [(2, 2), (1, 2), (2, 3)], 1: [(1, 1), (0, 1), (1, 0)], 2: [(0, 0), (1, 0), (0, 1)]}
    anchors = {0: (0, 1, 2), 1: (0, 1, 2), 2: (0,)}  # L2: (64,32) has ratio 4, (32,64) 5.3: not < 4
    expect = {prior_index(lv, x, y, k) for lv in cells for x, y in cells[lv] for k in anchors[lv]}
    assert positives(out) == expect
    # centre in the last column, right of its cell centre: no right neighbour exists
    out = call(create_assigner("yolov5"), priors, [[58, 26, 64, 34]])  # centre (61, 30): L0 (7.625, 3.75)
    level0 = {tuple((priors.centers[i] // 8).int().tolist()) for i in positives(out) if priors.level[i] == 0}
    assert level0 == {(7, 3), (7, 4)}
    # g_x exactly 1.0: YOLOv5's "g > 1" leaves out the left cell although frac < 0.5
    out = call(create_assigner("yolov5"), priors, [[4, 15, 12, 27]])  # centre (8, 21): L0 (1.0, 2.625)
    level0 = {tuple((priors.centers[i] // 8).int().tolist()) for i in positives(out) if priors.level[i] == 0}
    assert level0 == {(1, 2), (1, 3)}


def test_fcos_hand_case():
    priors = make_priors()  # one prior per cell, A = 64 + 16 + 4
    lv0 = [prior_index(0, x, y, K=1) for y in range(8) for x in range(8)]
    # 16x16 GT: level-0 points (12|20, 12|20) inside, max ltrb 12 in [0, 64]; level-1 points on its edge
    out = call(create_assigner("fcos"), priors, [[8, 8, 24, 24]])
    assert positives(out) == {prior_index(0, x, y, K=1) for x in (1, 2) for y in (1, 2)}
    # whole image: every level-0 point (max ltrb 36..60); level 1/2 points have max ltrb < 64
    big = call(create_assigner("fcos"), priors, [[0, 0, 64, 64]])
    assert positives(big) == set(lv0)
    sampled = call(create_assigner("fcos", center_sampling=True), priors, [[0, 0, 64, 64]])
    assert positives(sampled) == {prior_index(0, x, y, K=1) for x in (3, 4) for y in (3, 4)}  # |d| < 12 px
    # ambiguity: the smaller GT wins its 4 points
    both = call(create_assigner("fcos"), priors, [[0, 0, 64, 64], [8, 8, 24, 24]])
    assert positives(both, 1) == positives(out) and positives(both, 0) == set(lv0) - positives(out)


def test_fcos_ranges_must_match_levels():
    two_levels = make_priors(strides=(8, 16))
    with pytest.raises(ValueError, match="2 levels but regress_ranges has 3"):
        call(create_assigner("fcos"), two_levels, [[8, 8, 24, 24]])
    out = call(create_assigner("fcos", regress_ranges=((0, 32), (32, 1e8))), two_levels, [[0, 0, 64, 64]])
    assert positives(out) and all(two_levels.level[i] == 1 for i in positives(out))
    with pytest.raises(ValueError, match="lo <= hi"):
        create_assigner("fcos", regress_ranges=((64, 0),))


def test_atss_hand_case():
    priors = make_priors(size_mult=1.0)  # prior box = one cell
    # GT = the level-0 prior box at (20, 20). Candidate IoUs: 1 (itself), .25 (level 1), .0625 (level 2),
    # 19 zeros -> threshold mean + std = .277: only the prior itself.
    out = call(create_assigner("atss"), priors, [[16, 16, 24, 24]])
    assert positives(out) == {prior_index(0, 2, 2, K=1)}


def _atss_reference(priors, gt_boxes, topk=9):
    """Plain per-GT loops over Alg. 1 of the ATSS paper."""
    pos = torch.zeros(len(gt_boxes), len(priors), dtype=torch.bool)
    iou_all = box_iou(gt_boxes, priors.boxes())
    for g, box in enumerate(gt_boxes):
        centre = (box[:2] + box[2:]) / 2
        cand = []
        for lv in priors.level.unique():
            idx = (priors.level == lv).nonzero().flatten()
            d = (priors.centers[idx] - centre).norm(dim=-1)
            cand += idx[d.argsort(stable=True)[:topk]].tolist()
        ious = iou_all[g, cand]
        thr = ious.mean() + ious.std()
        for a, iou in zip(cand, ious):
            c = priors.centers[a]
            inside = min(c[0] - box[0], c[1] - box[1], box[2] - c[0], box[3] - c[1]) > 0.01
            pos[g, a] = bool(iou >= thr) and bool(inside)
    return pos, iou_all


# Overlapping GT, so that several GT select one prior. On the second set, std with and without
# Bessel's correction give different positives.
ATSS_GT = [
    [[33.2, 1.8, 47.9, 19.1], [1.0, 10.4, 5.6, 22.2], [37.6, 16.7, 64.7, 32.0], [28.6, 10.7, 62.5, 41.7],
     [39.6, 11.5, 57.9, 20.5], [35.0, 20.2, 63.1, 43.9], [9.5, 30.3, 18.8, 59.0], [9.4, 25.9, 37.5, 58.2]],
    [[22.3, 15.5, 48.7, 39.2], [27.4, 13.3, 42.9, 46.8], [34.7, 24.6, 56.7, 39.7], [13.9, 37.8, 32.6, 71.6],
     [25.1, 6.4, 54.2, 24.3], [8.9, 32.5, 42.6, 58.1], [29.1, 35.6, 40.1, 41.0], [18.5, 34.0, 46.2, 67.1]],
]


@pytest.mark.parametrize("gt", ATSS_GT)
def test_atss_matches_reference_loops(gt):
    priors = make_priors()
    gt = torch.tensor(gt)
    out = call(create_assigner("atss"), priors, gt)
    pos, iou = _atss_reference(priors, gt)
    assert (pos.sum(0) > 1).any()
    fg = pos.any(0)
    assert torch.equal(out.fg_mask[0], fg)
    best = iou.masked_fill(~pos, -1).argmax(0)
    assert torch.equal(out.gt_index[0][fg], best[fg])


def test_simota_hand_case():
    priors = make_priors()
    gt = torch.tensor([[16.0, 16.0, 48.0, 48.0]])
    A = len(priors)
    scores = torch.full((1, A, C), 0.5)
    boxes = torch.tensor([100.0, 100.0, 110.0, 110.0]).repeat(1, A, 1)  # IoU 0 everywhere ...
    near = [prior_index(0, 3, 3, K=1), prior_index(0, 4, 3, K=1), prior_index(0, 3, 4, K=1)]
    boxes[0, near] = torch.tensor([[17.0, 16, 49, 48], [20, 16, 52, 48], [24, 16, 56, 48]])  # ... but here
    ious = box_iou(boxes[0, near], gt)[:, 0]  # .94, .78, .6: sum 2.3 -> dynamic k = 2
    out = call(create_assigner("simota"), priors, gt, [2], scores=scores, boxes=boxes)
    assert positives(out) == set(near[:2])
    assert torch.allclose(out.scores[0, near[:2], 2], ious[:2]) and out.scores[0, near[:2], :2].eq(0).all()


def test_simota_class_cost_is_summed_bce():
    g = torch.Generator().manual_seed(0)
    scores = torch.rand(2, 7, 4, generator=g)
    scores[0, 0, 1], scores[1, 2, 3] = 0.0, 1.0  # log clamping at the ends
    labels = torch.tensor([[1, 3], [0, 3]])
    for sqrt in (True, False):
        s = scores.sqrt() if sqrt else scores
        onehot = F.one_hot(labels, 4).float()[:, :, None].expand(2, 2, 7, 4)
        ref = F.binary_cross_entropy(s[:, None].expand(2, 2, 7, 4), onehot, reduction="none").sum(-1)
        got = create_assigner("simota", sqrt_scores=sqrt)._cls_cost(scores, labels)
        assert torch.allclose(got, ref, atol=1e-4)


def test_simota_candidate_variant():
    for variant in ("box_or_center", "box_and_center"):
        assert create_assigner("simota", candidate=variant).candidate == variant
    with pytest.raises(ValueError, match="valid: box_or_center, box_and_center"):
        create_assigner("simota", candidate="box")
    # A 4x4 GT holds one prior centre (12, 12); every prediction matches it exactly, so dynamic k is
    # 10 over box_or_center candidates (the centre region), 1 over box_and_center ones (that prior).
    priors = make_priors()
    A = len(priors)
    gt = torch.tensor([[10.0, 10, 14, 14]])
    scores, boxes = torch.full((1, A, C), 0.5), gt.repeat(1, A, 1)
    loose = call(create_assigner("simota"), priors, gt, scores=scores, boxes=boxes)
    strict = create_assigner("simota", candidate="box_and_center")
    strict = call(strict, priors, gt, scores=scores, boxes=boxes)
    assert positives(strict) == {prior_index(0, 1, 1, K=1)}
    assert len(positives(loose)) == 10 and prior_index(0, 1, 1, K=1) in positives(loose)


def test_simota_conflict_goes_to_cheaper_gt():
    priors = make_priors()
    A = len(priors)
    two = torch.tensor([[16.0, 16, 48, 48], [18.0, 16, 50, 48]])
    scores, boxes = torch.full((1, A, C), 0.5), priors.boxes()[None].clone()
    at = prior_index(0, 3, 3, K=1)
    boxes[0, at] = two[1]  # IoU 1 with GT 1, .88 with GT 0 (its best prediction too)
    out = call(create_assigner("simota"), priors, two, scores=scores, boxes=boxes)
    assert at in positives(out, 1) and at not in positives(out, 0)
    assert at in positives(call(create_assigner("simota"), priors, two[:1], scores=scores, boxes=boxes))
