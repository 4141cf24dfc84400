import pytest
import torch
import torchvision

from yolozoo import box_ops


def random_boxes(n, seed=0, scale=100.0):
    g = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=g) * scale
    wh = torch.rand(n, 2, generator=g) * scale / 2 + 1
    return torch.cat([xy, xy + wh], -1)


def test_format_round_trip():
    boxes = random_boxes(50)
    assert torch.allclose(box_ops.cxcywh_to_xyxy(box_ops.xyxy_to_cxcywh(boxes)), boxes, atol=1e-4)
    cxcywh = box_ops.xyxy_to_cxcywh(boxes)
    assert torch.allclose(cxcywh[:, 2:], boxes[:, 2:] - boxes[:, :2])


def test_distance_round_trip():
    boxes = random_boxes(30)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2 + 0.3
    assert torch.allclose(box_ops.distance_to_box(centers, box_ops.box_to_distance(centers, boxes)), boxes, atol=1e-4)


@pytest.mark.parametrize("kind,pairwise", [
    ("iou", torchvision.ops.box_iou),
    ("giou", torchvision.ops.generalized_box_iou),
    ("ciou", torchvision.ops.complete_box_iou),
])
def test_aligned_iou_matches_torchvision_pairwise(kind, pairwise):
    a, b = random_boxes(20, 1), random_boxes(30, 2)
    ours = box_ops.aligned_iou(a[:, None], b[None], kind)
    assert ours.shape == (20, 30)
    assert torch.allclose(ours, pairwise(a, b), atol=1e-5)


def test_aligned_iou_known_values_and_fp16():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[5.0, 0, 15, 10]])
    assert box_ops.aligned_iou(a, b).item() == pytest.approx(50 / 150, abs=1e-6)
    assert box_ops.aligned_iou(a, a, "ciou").item() == pytest.approx(1.0, abs=1e-6)
    half = box_ops.aligned_iou(a.half(), b.half())
    assert half.dtype == torch.float32 and half.item() == pytest.approx(1 / 3, abs=1e-4)
    with pytest.raises(ValueError, match="unknown IoU kind"):
        box_ops.aligned_iou(a, b, "diou2")


def test_points_in_boxes():
    points = torch.tensor([[5.0, 5.0], [10.0, 5.0], [20.0, 20.0]])
    boxes = torch.tensor([[[0.0, 0, 10, 10], [4, 4, 30, 30]]])  # [1, 2, 4]
    inside = box_ops.points_in_boxes(points, boxes)
    assert inside.shape == (1, 2, 3)
    assert inside.tolist() == [[[True, False, False], [True, True, True]]]


def test_box_area_matches_torchvision():
    boxes = random_boxes(10)
    assert torch.allclose(box_ops.box_area(boxes), torchvision.ops.box_area(boxes))


@pytest.mark.parametrize("kind,loss", [("giou", torchvision.ops.generalized_box_iou_loss),
                                       ("ciou", torchvision.ops.complete_box_iou_loss)])
def test_aligned_iou_is_one_minus_torchvisions_loss_with_its_gradients(kind, loss):
    """Overlapping, disjoint, touching, nested and identical pairs: values and both boxes' gradients."""
    a, b = random_boxes(200, 3), random_boxes(200, 4)
    b[:20] = a[:20]  # identical
    b[20:40, 0] = a[20:40, 2]  # touching edges (no overlap)
    b[20:40, 2] = b[20:40, 0] + 5
    b[40:60] = a[40:60] + torch.tensor([1.0, 1.0, -1.0, -1.0])  # nested
    pairs = []
    for fn in (lambda x, y: 1 - box_ops.aligned_iou(x, y, kind), lambda x, y: loss(x, y, eps=1e-7)):
        x, y = a.clone().requires_grad_(), b.clone().requires_grad_()
        out = fn(x, y)
        (out * torch.linspace(0.5, 1.5, len(out))).sum().backward()
        pairs.append((out.detach(), x.grad, y.grad))
    for ours, theirs in zip(*pairs):
        torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-6)
