"""Label assigners: invariants every registered assigner must satisfy (see assigner_helpers for priors)."""

from __future__ import annotations

import pytest
import torch
from assigner_helpers import (
    ANCHOR_BASED,
    ANCHORS,
    C,
    GT_16x12,
    call,
    gt_batch,
    make_priors,
    positives,
    predictions,
    prior_index,
    priors_for,
)

from yolozoo.assigners import Priors, create_assigner, list_assigners

# ---------------------------------------------------------------- registry


def test_every_assigner_registered():
    mine = {"tal", "single_grid", "nearby_grid", "all_grid", "yolov5", "fcos", "atss", "simota"}
    assert mine <= set(list_assigners())
    assert ANCHOR_BASED == {"single_grid", "nearby_grid", "all_grid", "yolov5"}  # their requires_anchors


def test_unknown_name_lists_valid_ones():
    with pytest.raises(KeyError, match="unknown assigner 'nope'.*valid: .*atss.*simota"):
        create_assigner("nope")


# ---------------------------------------------------------------- invariants, every assigner


@pytest.mark.parametrize("name", list_assigners())
def test_batched_equals_per_image(name):
    assigner, priors = create_assigner(name), priors_for(name)
    labels, gt, mask = gt_batch()
    scores, boxes = predictions(priors, 3)
    out = assigner(scores, boxes, priors, labels, gt, mask)
    for b in range(3):
        i = slice(b, b + 1)
        one = assigner(scores[i], boxes[i], priors, labels[i], gt[i], mask[i])
        assert torch.equal(out.fg_mask[b], one.fg_mask[0])
        fg = one.fg_mask[0]
        assert torch.equal(out.gt_index[b][fg], one.gt_index[0][fg])
        assert torch.equal(out.labels[b], one.labels[0])
        assert torch.allclose(out.boxes[b][fg], one.boxes[0][fg])
        assert torch.allclose(out.scores[b], one.scores[0])
    assert out.fg_mask[0].any() and out.fg_mask[1].any()
    assert not out.fg_mask[2].any() and not out.scores[2].any()  # all-padding image


@pytest.mark.parametrize("name", list_assigners())
def test_targets_come_from_real_gt(name):
    assigner, priors = create_assigner(name), priors_for(name)
    labels, gt, mask = gt_batch()
    scores, boxes = predictions(priors, 3)
    out = assigner(scores, boxes, priors, labels, gt, mask)
    B, A = out.fg_mask.shape
    assert out.gt_index.shape == out.labels.shape == (B, A) and out.scores.shape == (B, A, C)
    fg = out.fg_mask
    b = torch.arange(B)[:, None].expand(B, A)
    assert mask[b, out.gt_index][fg].all()  # never a padding GT
    assert torch.equal(out.boxes[fg], gt[b, out.gt_index][fg])
    assert torch.equal(out.labels[fg], labels[b, out.gt_index][fg])
    assert not out.scores[~fg].any()
    # classification target only on the assigned class
    other = out.scores.clone()
    other[fg, out.labels[fg]] = 0
    assert not other.any() and (out.scores[fg].amax(-1) > 0).all()
    # every real GT of image 0 (incl. a 6x5 px one) gets a positive, except where the method cannot
    if name not in ("all_grid", "fcos", "atss", "tal"):
        assert set(out.gt_index[0][fg[0]].tolist()) == {0, 1, 2}


@pytest.mark.parametrize("name", list_assigners())
def test_empty_gt(name):
    assigner, priors = create_assigner(name), priors_for(name)
    scores, boxes = predictions(priors, 2)
    out = assigner(scores, boxes, priors, torch.zeros(2, 0, dtype=torch.long), torch.zeros(2, 0, 4),
                   torch.zeros(2, 0, dtype=torch.bool))
    assert out.fg_mask.shape == (2, len(priors)) and not out.fg_mask.any()
    assert out.scores.shape == (2, len(priors), C) and not out.scores.any()


@pytest.mark.parametrize("name", list_assigners())
def test_gt_order_and_padding_position_do_not_matter(name):
    assigner, priors = create_assigner(name), priors_for(name)
    labels, gt, mask = gt_batch()
    scores, boxes = predictions(priors, 3)
    out = assigner(scores, boxes, priors, labels, gt, mask)
    perm = torch.tensor([3, 2, 4, 0, 1])  # new position i holds old GT perm[i]
    p = assigner(scores, boxes, priors, labels[:, perm], gt[:, perm], mask[:, perm])
    assert torch.equal(out.fg_mask, p.fg_mask)
    fg = out.fg_mask
    assert torch.equal(out.gt_index[fg], perm[p.gt_index][fg])
    assert torch.equal(out.labels, p.labels)
    assert torch.equal(out.boxes[fg], p.boxes[fg])
    assert torch.allclose(out.scores, p.scores)


@pytest.mark.parametrize("name", list_assigners())
def test_fp16_inputs_and_autocast_compute_in_fp32(name):
    assigner, priors = create_assigner(name), priors_for(name)
    labels, gt, mask = gt_batch()
    scores, boxes = predictions(priors, 3)
    scores, boxes = scores.half(), boxes.half()
    ref = assigner(scores.float(), boxes.float(), priors, labels, gt, mask)
    for out in (
        assigner(scores, boxes, priors, labels, gt.half(), mask),
        _under_autocast(assigner, scores.float(), boxes.float(), priors, labels, gt, mask),
    ):
        assert torch.equal(out.fg_mask, ref.fg_mask)
        assert torch.equal(out.gt_index[ref.fg_mask], ref.gt_index[ref.fg_mask])
        assert torch.allclose(out.scores.float(), ref.scores, atol=1e-3)
        assert torch.isfinite(out.scores).all()


def _under_autocast(assigner, *args):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        return assigner(*args)


@pytest.mark.parametrize("name", list_assigners())
def test_small_gt_on_a_prior_and_gt_at_the_border(name):
    """A 4x4 GT around a stride-8 prior centre, and an 8x8 GT in the image corner."""
    assigner, priors = create_assigner(name), priors_for(name)
    out = call(assigner, priors, [[10, 10, 14, 14], [56, 56, 64, 64]])
    if name != "all_grid":  # all_grid needs IoU >= 0.5 with some prior: a 4x4 GT has none
        assert positives(out, 0)
    assert positives(out, 1)
    if name == "all_grid":
        assert positives(call(create_assigner(name, ensure_one=True), priors, [[10, 10, 14, 14]]), 0)


@pytest.mark.parametrize("name", ["single_grid", "nearby_grid", "yolov5", "simota"])
def test_small_gt_between_prior_centres_still_gets_a_positive(name):
    assigner, priors = create_assigner(name), priors_for(name)
    assert positives(call(assigner, priors, [[1, 1, 5, 5]]))


@pytest.mark.parametrize("name", ["single_grid", "nearby_grid", "yolov5"])
def test_gt_centre_on_the_image_edge_uses_the_last_cell(name):
    """Centre (64, 64) is past the last cell of every level: it is clamped into the grid."""
    priors = priors_for(name)
    pos = positives(call(create_assigner(name), priors, [[56, 56, 72, 72]]))
    assert prior_index(0, 7, 7, 0) in pos or prior_index(1, 3, 3, 0) in pos


@pytest.mark.parametrize("name", ["single_grid", "nearby_grid", "yolov5"])
def test_bad_prior_layout_is_an_error(name):
    priors = make_priors(ANCHORS)
    shuffled = Priors(*(t.flip(0) for t in (priors.centers, priors.strides, priors.sizes, priors.level)))
    with pytest.raises(ValueError, match="level by level"):
        call(create_assigner(name), shuffled, GT_16x12)
    ragged = Priors(*(t[1:] for t in (priors.centers, priors.strides, priors.sizes, priors.level)))
    with pytest.raises(ValueError, match="level 0 do not hold the same number of priors in every cell"):
        call(create_assigner(name), ragged, GT_16x12)


@pytest.mark.parametrize("name", list_assigners())
def test_nothing_is_stored_on_the_assigner(name):
    assigner, priors = create_assigner(name), priors_for(name)
    before = dict(vars(assigner))
    labels, gt, mask = gt_batch()
    assigner(*predictions(priors, 3), priors, labels, gt, mask)
    assert vars(assigner) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", list_assigners())
def test_cuda_matches_cpu(name):
    assigner, priors = create_assigner(name), priors_for(name)
    labels, gt, mask = gt_batch()
    scores, boxes = predictions(priors, 3)
    ref = assigner(scores, boxes, priors, labels, gt, mask)
    dev = torch.device("cuda")
    out = assigner(scores.to(dev), boxes.to(dev), priors.to(dev), labels.to(dev), gt.to(dev), mask.to(dev))
    assert out.fg_mask.device.type == "cuda"
    assert torch.equal(out.fg_mask.cpu(), ref.fg_mask)
    assert torch.equal(out.gt_index.cpu()[ref.fg_mask], ref.gt_index[ref.fg_mask])
    assert torch.allclose(out.scores.cpu(), ref.scores, atol=1e-4)
