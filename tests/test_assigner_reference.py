"""TAL (CIoU) against the widely used reference: ``ultralytics.utils.tal.TaskAlignedAssigner``.

How the two outputs correspond (reference -> ours):

- ``fg_mask`` -> ``fg_mask``; ``target_gt_idx`` -> ``gt_index``;
  ``target_labels`` / ``target_bboxes`` -> ``labels`` / ``boxes`` on foreground priors (on
  background the reference points at GT 0, we set label 0: not compared there).
- ``target_scores[b, a] = onehot(label) * max_g(t_ga * [g final positive of a] * max_u_g / (max_t_g + eps))``
  with ``t = s^alpha * CIoU^beta`` -- exactly our ``scores`` (alignment normalised so each
  GT's largest equals its best overlap), so they are compared as they are, to 1e-5.
- The reference widens GT sides below ``stride[1]`` (16 px) for the centre-inside test;
  ours does the same with ``min_gt_side=16`` (``stride=[0.0]`` turns it off there, 0 here).

Where they differ by design: a prior claimed by several GT. The reference gives it to the
GT it overlaps most among *all* GT containing its centre; ours among the GT that claimed
it (TOOD). Those priors, and the scores of every GT involved in such a claim (its
normalisation depends on the winner), are compared separately: wherever the reference's
winner is itself a claimant, both must agree.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from assigner_helpers import make_priors

from yolozoo.assigners import create_assigner

IMG, STRIDES, C = 160, (8, 16, 32), 7


@pytest.fixture(scope="module")
def reference_cls(tmp_path_factory):
    """Import ultralytics offline, with its settings file in a temp dir; undo its print options."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("YOLO_OFFLINE", "1")
        mp.setenv("YOLO_CONFIG_DIR", str(tmp_path_factory.mktemp("ultralytics")))
        mp.setenv("YOLO_VERBOSE", "false")
        np_print = np.get_printoptions()
        try:
            from ultralytics.utils.tal import TaskAlignedAssigner
        except ImportError as e:  # a dev dependency: a missing one is a broken setup, not a skip
            pytest.fail(f"the TAL reference test needs ultralytics: pip install -e '.[dev]' ({e})")
        np.set_printoptions(**np_print)
        torch.set_printoptions(profile="default")
        os.environ.pop("NUMEXPR_MAX_THREADS", None)
    return TaskAlignedAssigner


def random_inputs(seed: int, B: int = 4, M: int = 12):
    """Batched inputs with padding GT, tiny and large GT, and predictions near the priors."""
    g = torch.Generator().manual_seed(seed)
    priors = make_priors(strides=STRIDES, img=IMG)
    A = len(priors)
    wh = torch.empty(B, M, 2).uniform_(np.log(3.0), np.log(140.0), generator=g).exp()
    xy = torch.rand(B, M, 2, generator=g) * (IMG - wh)
    gt_boxes = torch.cat([xy, xy + wh], -1)
    gt_labels = torch.randint(0, C, (B, M), generator=g)
    gt_mask = torch.rand(B, M, generator=g) > 0.3
    gt_mask[-1] = False  # one image without GT
    pred_scores = torch.rand(B, A, C, generator=g)
    centre = priors.centers + torch.randn(B, A, 2, generator=g) * priors.strides[:, None]
    side = priors.strides[:, None] * torch.empty(B, A, 2).uniform_(0.5, 6, generator=g)
    pred_boxes = torch.cat([centre - side / 2, centre + side / 2], -1)
    return pred_scores, pred_boxes, priors, gt_labels, gt_boxes, gt_mask


def run_reference(ref, pred_scores, pred_boxes, priors, gt_labels, gt_boxes, gt_mask):
    """Reference outputs plus its positive mask before conflicts are resolved ``[B, M, A]``."""
    B, M = gt_labels.shape
    args = (pred_scores, pred_boxes, priors.centers, gt_labels[..., None], gt_boxes, gt_mask[..., None].float())
    labels, boxes, scores, fg, gt_idx = ref(*args)
    ref.bs, ref.n_max_boxes = B, M
    claims, _, _ = ref.get_pos_mask(args[0], args[1], args[3], args[4], args[2], args[5])
    return labels, boxes, scores.float(), fg, gt_idx, claims.bool()


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("min_side", [16.0, 0.0])
def test_tal_matches_ultralytics(reference_cls, seed, min_side):
    inputs = random_inputs(seed)
    stride = list(STRIDES) if min_side else [0.0]  # the reference's minimum GT side is stride[1]
    ref = reference_cls(topk=10, num_classes=C, alpha=0.5, beta=6.0, stride=stride)
    r_labels, r_boxes, r_scores, r_fg, r_idx, claims = run_reference(ref, *inputs)
    ours = create_assigner("tal", topk=10, alpha=0.5, beta=6.0, iou_type="ciou", min_gt_side=min_side)
    out = ours(*inputs)
    gt_mask = inputs[-1]

    multi = claims.sum(1) > 1  # [B, A] priors claimed by several GT
    single = ~multi
    assert multi.any() and (out.fg_mask & single).sum() > 100  # conflicts occur; plenty to compare
    assert torch.equal(out.fg_mask[single], r_fg[single])
    fg = out.fg_mask & single
    assert torch.equal(out.gt_index[fg], r_idx[fg])
    assert torch.equal(out.labels[fg], r_labels[fg])
    assert torch.equal(out.boxes[fg], r_boxes[fg])

    # Scores: everywhere except conflict priors and the priors of GT whose normalisation a conflict touched.
    B, M, A = claims.shape
    b_idx, a_idx = torch.arange(B)[:, None].expand(B, A), torch.arange(A).expand(B, A)
    touched = (claims & multi[:, None]).any(-1)  # [B, M] claimants of a conflict prior
    for idx, fgm in ((r_idx, r_fg), (out.gt_index, out.fg_mask)):
        wins = multi & fgm
        touched[b_idx[wins], idx[wins]] = True  # winners of a conflict prior, in either
    clean = single & ~(out.fg_mask & touched[b_idx, out.gt_index]) & ~(r_fg & touched[b_idx, r_idx])
    assert clean.sum() > 0.9 * clean.numel() and (out.fg_mask & clean).sum() > 50
    torch.testing.assert_close(out.scores[clean], r_scores[clean], atol=1e-5, rtol=0)

    # Conflicts: where the reference's winner claimed the prior, ours is the same GT.
    agree_rule = multi & r_fg & claims[b_idx, r_idx, a_idx]
    assert agree_rule.any()
    assert out.fg_mask[multi].all()
    assert torch.equal(out.gt_index[agree_rule], r_idx[agree_rule])
    # never a padding GT, and the last image (no real GT) is all background in both
    assert gt_mask[b_idx[out.fg_mask], out.gt_index[out.fg_mask]].all()
    assert not out.fg_mask[-1].any() and not r_fg[-1].any()


def test_min_gt_side_gives_tiny_gt_candidates():
    """A 2x2 GT between prior centres has none inside it; widened to 16 px it has six."""
    priors = make_priors(strides=STRIDES, img=IMG)
    A = len(priors)
    gt = torch.tensor([[[9.0, 9.0, 11.0, 11.0]]])  # centres: level 0 at 4 + 8i, level 1 at 8 + 16i, level 2 at 16
    args = (torch.full((1, A, C), 0.5), gt.expand(1, A, 4), priors, torch.zeros(1, 1, dtype=torch.long), gt,
            torch.ones(1, 1, dtype=torch.bool))
    assert not create_assigner("tal")(*args).fg_mask.any()
    widened = create_assigner("tal", min_gt_side=16.0)(*args)  # [2, 18]^2
    centres = sorted(priors.centers[widened.fg_mask[0]].tolist())
    assert centres == [[4.0, 4.0], [4.0, 12.0], [8.0, 8.0], [12.0, 4.0], [12.0, 12.0], [16.0, 16.0]]


def test_empty_gt_like_reference(reference_cls):
    pred_scores, pred_boxes, priors, *_ = random_inputs(0)
    B = pred_scores.shape[0]
    empty = (torch.zeros(B, 0, dtype=torch.long), torch.zeros(B, 0, 4), torch.zeros(B, 0, dtype=torch.bool))
    out = create_assigner("tal")(pred_scores, pred_boxes, priors, *empty)
    ref = reference_cls(topk=10, num_classes=C, alpha=0.5, beta=6.0)
    _, _, r_scores, r_fg, _ = ref(pred_scores, pred_boxes, priors.centers, empty[0][..., None], empty[1],
                                  empty[2][..., None].float())
    assert torch.equal(out.fg_mask, r_fg.bool()) and torch.equal(out.scores, r_scores.float())
