"""TAL, the loss and post-processing on small hand-made inputs."""

import dataclasses

import torch

from yolozoo.assigners import Priors, create_assigner
from yolozoo.losses import DetectionLoss, weighted_sum
from yolozoo.models import make_priors
from yolozoo.postprocess import postprocess


def priors_64() -> Priors:
    return make_priors([(8, 8), (4, 4), (2, 2)], [8, 16, 32], prior_scale=4.0)


def test_tal_positives_inside_gt_and_topk():
    pri = priors_64()
    A = len(pri)
    gt_boxes = torch.tensor([[[8.0, 8, 40, 40], [0, 0, 0, 0]]])
    gt_labels = torch.tensor([[2, 0]])
    gt_mask = torch.tensor([[True, False]])
    pred_boxes = gt_boxes[:, :1].expand(1, A, 4).clone()  # every prior predicts the GT exactly
    scores = torch.full((1, A, 3), 0.5)
    res = create_assigner("tal", topk=5)(scores, pred_boxes, pri, gt_labels, gt_boxes, gt_mask)
    assert res.fg_mask.sum() == 5
    centers = pri.centers[res.fg_mask[0]]
    assert ((centers > 8) & (centers < 40)).all()
    assert (res.labels[res.fg_mask] == 2).all() and (res.gt_index[res.fg_mask] == 0).all()
    # normalised alignment: the best positive's target equals its IoU (1.0 here)
    assert torch.allclose(res.scores[0][res.fg_mask[0]][:, 2], torch.ones(5))
    assert res.scores[..., [0, 1]].sum() == 0


def test_tal_empty_and_padding():
    pri = priors_64()
    A = len(pri)
    tal = create_assigner("tal")
    res = tal(torch.rand(2, A, 3), torch.rand(2, A, 4), pri, torch.zeros(2, 0, dtype=torch.long),
              torch.zeros(2, 0, 4), torch.zeros(2, 0, dtype=torch.bool))
    assert not res.fg_mask.any() and res.scores.shape == (2, A, 3)
    res = tal(torch.rand(1, A, 3), torch.rand(1, A, 4), pri, torch.zeros(1, 2, dtype=torch.long),
              torch.tensor([[[0.0, 0, 64, 64], [0, 0, 64, 64]]]), torch.zeros(1, 2, dtype=torch.bool))
    assert not res.fg_mask.any()


def test_loss_terms_and_weights():
    pri = priors_64()
    A = len(pri)
    gt_boxes = torch.tensor([[[8.0, 8, 40, 40]]])
    pred = gt_boxes.expand(1, A, 4).clone().requires_grad_()
    logits = torch.zeros(1, A, 3, requires_grad=True)
    res = create_assigner("tal")(logits.sigmoid().detach(), pred.detach(), pri, torch.tensor([[1]]), gt_boxes,
                                 torch.tensor([[True]]))
    terms = DetectionLoss("ciou")(logits, pred, res)
    assert set(terms) == {"cls", "box"}
    assert terms["box"].item() < 1e-5  # perfect boxes
    total = weighted_sum(terms, {"cls": 1.0, "box": 5.0})
    total.backward()
    assert logits.grad.abs().sum() > 0
    worse = pred.detach() + torch.tensor([4.0, 4, 4, 4])
    assert DetectionLoss("giou")(logits, worse, res)["box"] > 0.05


def test_postprocess_nms_and_classes():
    boxes = torch.tensor([[[0.0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]]])
    logits = torch.full((1, 3, 2), -10.0)
    logits[0, 0, 0] = 3.0   # kept
    logits[0, 1, 0] = 2.0   # suppressed by box 0 (same class, IoU 0.68)
    logits[0, 1, 1] = 1.0   # other class: kept
    logits[0, 2, 1] = 0.0   # kept
    (det,) = postprocess(logits, boxes, score_thresh=0.01, iou_thresh=0.5)
    assert det["labels"].tolist() == [0, 1, 1]
    assert torch.allclose(det["scores"], torch.sigmoid(torch.tensor([3.0, 1.0, 0.0])))
    assert det["boxes"][0].tolist() == [0, 0, 10, 10]


def test_postprocess_batch_separates_images():
    boxes = torch.tensor([[[0.0, 0, 10, 10]], [[0.0, 0, 10, 10]]])
    logits = torch.tensor([[[2.0]], [[3.0]]])
    dets = postprocess(logits, boxes)
    assert [len(d["boxes"]) for d in dets] == [1, 1]


def test_box_loss_over_index_tensors_equals_the_boolean_mask_form():
    """The box term over ``fg_mask.nonzero()`` index tensors is the boolean-mask form's, value and gradient (same
    elements, same order); with no foreground prior it is 0 and still backpropagates (zero gradients)."""
    from yolozoo.box_ops import aligned_iou

    pri = priors_64()
    A = len(pri)
    g = torch.Generator().manual_seed(0)
    gt_boxes = torch.tensor([[[8.0, 8, 40, 40], [30, 20, 60, 50]], [[0, 0, 20, 30], [0, 0, 0, 0]]])
    gt_mask = torch.tensor([[True, True], [True, False]])
    xy = torch.rand(2, A, 2, generator=g) * 48
    pred = torch.cat([xy, xy + 4 + torch.rand(2, A, 2, generator=g) * 20], -1).requires_grad_()
    logits = torch.randn(2, A, 3, generator=g, requires_grad=True)
    res = create_assigner("tal")(logits.sigmoid().detach(), pred.detach(), pri, torch.tensor([[1, 2], [0, 0]]),
                                 gt_boxes, gt_mask)
    assert res.fg_mask.sum() > 5
    box = DetectionLoss("ciou")(logits, pred, res)["box"]
    (grad,) = torch.autograd.grad(box, pred)
    fg, norm = res.fg_mask, res.scores.sum().clamp(min=1.0)
    oracle = ((1.0 - aligned_iou(pred[fg], res.boxes[fg], "ciou")) * res.scores.sum(-1)[fg]).sum() / norm
    (oracle_grad,) = torch.autograd.grad(oracle, pred)
    assert torch.equal(box, oracle) and torch.equal(grad, oracle_grad)
    none = dataclasses.replace(res, fg_mask=torch.zeros_like(fg))  # AssignResult is a dataclass
    empty = DetectionLoss("ciou")(logits, pred, none)["box"]
    (empty_grad,) = torch.autograd.grad(empty, pred)
    assert empty.item() == 0 and not empty_grad.any()
