"""The anchor head, its anchors (defaults, k-means, config) and the head/assigner pairing rules."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from yolozoo.assigners import create_assigner, list_assigners
from yolozoo.config import ConfigError, ModelConfig, load_config
from yolozoo.data.base import ImageRecord
from yolozoo.losses import DetectionLoss
from yolozoo.models import build_model, make_priors
from yolozoo.models.anchor_head import MIN_SIZE, AnchorHead, decode_anchor_boxes
from yolozoo.models.anchors import (
    COCO_ANCHORS,
    box_sizes,
    default_anchors,
    fit_anchors,
    kmeans_anchors,
    resolve_anchors,
)
from yolozoo.models.head import flatten_levels

ANCHORS = [[(8, 8), (16, 8), (8, 16)], [(16, 16), (32, 16), (16, 32)], [(32, 32), (64, 32), (32, 64)]]
ANCHOR_BASED = [n for n in list_assigners() if getattr(create_assigner(n), "requires_anchors", False)]
ANCHOR_FREE = [n for n in list_assigners() if n not in ANCHOR_BASED]


def anchor_model(box_param="v5", num_classes=5):
    cfg = OmegaConf.structured(ModelConfig(head="anchor", width=0.25, box_param=box_param, strides=[8, 16, 32]))
    return build_model(cfg, num_classes, ANCHORS)


# ---------------------------------------------------------------- head


@pytest.mark.parametrize("box_param", ["v5", "v3"])
def test_forward_backward_shapes_and_priors(box_param):
    model = anchor_model(box_param)
    out = model(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    A = 3 * (8 * 8 + 4 * 4 + 2 * 2)
    assert out.cls_logits.shape == (2, A, 5) and out.boxes.shape == (2, A, 4) and len(out.priors) == A
    assert torch.equal(out.priors.sizes[:3], torch.tensor(ANCHORS[0], dtype=torch.float))  # K of a cell adjacent
    assert torch.equal(out.priors.sizes[192:195], torch.tensor(ANCHORS[1], dtype=torch.float))
    assert (out.boxes[..., 2:] > out.boxes[..., :2]).all()
    (out.cls_logits.mean() + out.boxes.mean()).backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    assert torch.equal(model.state_dict()["head.anchors"], torch.tensor(ANCHORS, dtype=torch.float))


def test_flatten_levels_matches_prior_order():
    """Channel k * n + j of cell (y, x) becomes row (y * W + x) * k + k_idx, column j."""
    B, K, n, H, W = 2, 3, 4, 2, 3
    maps = torch.randn(B, K * n, H, W)
    flat = flatten_levels([maps], K, n)
    pri = make_priors([(H, W)], [8], anchors=[ANCHORS[0]])
    for row in range(H * W * K):
        cell, k = divmod(row, K)
        y, x = divmod(cell, W)
        assert torch.equal(flat[:, row], maps[:, k * n:(k + 1) * n, y, x])
        assert pri.centers[row].tolist() == [(x + 0.5) * 8, (y + 0.5) * 8]
        assert pri.sizes[row].tolist() == list(ANCHORS[0][k])


@pytest.mark.parametrize("box_param", ["v5", "v3"])
def test_decode_zero_offsets_is_the_anchor_and_ranges(box_param):
    pri = make_priors([(4, 4)], [16], anchors=[ANCHORS[1]])
    zero = decode_anchor_boxes(torch.zeros(1, len(pri), 4), pri, box_param)[0]
    expect = pri.boxes() + torch.tensor([-1, -1, 1, 1]) * MIN_SIZE / 2
    assert torch.allclose(zero, expect, atol=1e-5)
    t = torch.tensor([[[30.0, -30, 30, -30]]]).expand(1, len(pri), 4)
    box = decode_anchor_boxes(t, pri, box_param)[0]
    centre, wh = (box[:, :2] + box[:, 2:]) / 2, box[:, 2:] - box[:, :2]
    shift = (centre - pri.centers) / 16
    if box_param == "v5":  # centre within (-0.5, 1.5) cells of the cell's corner, size (0, 4) anchors
        assert torch.allclose(shift, torch.tensor([1.0, -1.0]).expand_as(shift), atol=1e-4)
        assert torch.allclose(wh, torch.stack([4 * pri.sizes[:, 0], torch.zeros(len(pri))], 1) + MIN_SIZE, atol=1e-4)
    else:  # centre inside its own cell, size exp(t) anchors
        assert torch.allclose(shift, torch.tensor([0.5, -0.5]).expand_as(shift), atol=1e-4)
        assert torch.allclose(wh[:, 0], 1e4 * pri.sizes[:, 0] + MIN_SIZE, rtol=1e-4)  # exp(t) clamped at 1e4
        assert torch.allclose(wh[:, 1], torch.full((len(pri),), MIN_SIZE), atol=1e-4)


def test_collapsed_box_sizes_keep_the_ciou_loss_finite():
    """Large negative size offsets: fp32 boxes keep x2 > x1, so CIoU (atan(w / h)) has a finite gradient."""
    pri = make_priors([(8, 8)], [8], anchors=[[(16.0, 24.0)]])
    t = torch.full((1, len(pri), 4), -60.0, requires_grad=True)
    boxes = decode_anchor_boxes(t, pri, "v5")
    assert (boxes[..., 2:] > boxes[..., :2]).all()
    gt = torch.tensor([[[10.0, 10, 30, 40]]])
    assign = create_assigner("yolov5")(torch.rand(1, len(pri), 3), boxes.detach(), pri, torch.zeros(1, 1).long(),
                                       gt, torch.ones(1, 1, dtype=torch.bool))
    terms = DetectionLoss("ciou")(torch.zeros(1, len(pri), 3, requires_grad=True), boxes, assign)
    terms["box"].backward()
    assert assign.fg_mask.any() and torch.isfinite(terms["box"]) and torch.isfinite(t.grad).all()


def test_head_rejects_bad_anchors():
    with pytest.raises(ValueError, match=r"anchors must be \[levels=3, K, 2\]"):
        AnchorHead([8, 8, 8], 3, ANCHORS[:2])
    with pytest.raises(ValueError, match="box_param must be one of v3, v5"):
        AnchorHead([8, 8, 8], 3, ANCHORS, box_param="v4")
    with pytest.raises(ValueError, match="pass the anchors"):
        build_model(OmegaConf.structured(ModelConfig(head="anchor")), 3)


# ---------------------------------------------------------------- anchors


def test_default_anchors_scale_with_image_size():
    assert default_anchors(640) == [[tuple(map(float, a)) for a in level] for level in COCO_ANCHORS]
    assert default_anchors(320)[2][2] == (186.5, 163.0)
    cfg64 = load_config(["preset=smoke", "model.head=anchor", "data.img_size=64"])
    cfg128 = load_config(["preset=smoke", "model.head=anchor", "data.img_size=128"])
    from yolozoo.train import build_anchors

    a64, a128 = np.array(build_anchors(cfg64)), np.array(build_anchors(cfg128))
    assert np.allclose(a128, 2 * a64, atol=0.02)


def test_kmeans_finds_shape_clusters():
    g = torch.Generator().manual_seed(0)
    centres = torch.tensor([[10.0, 20.0], [40.0, 30.0], [120.0, 90.0]])
    wh = (centres[:, None] * torch.empty(3, 300, 2).uniform_(0.9, 1.1, generator=g)).reshape(-1, 2)
    wh = wh[torch.randperm(len(wh), generator=g)]
    got = kmeans_anchors(wh, 3)
    assert torch.allclose(got, centres, rtol=0.05)
    assert torch.equal(got, kmeans_anchors(wh, 3))  # deterministic
    levels = fit_anchors(wh, num_anchors=1)
    assert [len(level) for level in levels] == [1, 1, 1] and levels[0][0][0] < levels[1][0][0] < levels[2][0][0]
    with pytest.raises(ValueError, match="at least k=9 boxes"):
        kmeans_anchors(wh[:5], 9)


def test_box_sizes_are_letterboxed_and_skip_difficult(tmp_path):
    recs = [ImageRecord(tmp_path / "a.png", 200, 100, [[0, 0, 20, 10], [5, 5, 45, 85]], [0, 1], [False, True]),
            ImageRecord(tmp_path / "b.png", 50, 50, [[0, 0, 10, 25]], [0])]
    assert box_sizes(recs, 100).tolist() == [[10.0, 5.0], [20.0, 50.0]]


def test_auto_anchors_are_fitted_once_then_cached(tmp_path, capsys):
    g = torch.Generator().manual_seed(1)
    wh = torch.empty(500, 2).uniform_(4, 60, generator=g)
    calls = []

    def sizes():
        calls.append(1)
        return wh

    key = {"data": "x"}
    first = resolve_anchors("auto", 3, 64, sizes, tmp_path, key)
    assert "IoU k-means on 500 training boxes" in capsys.readouterr().out
    again = resolve_anchors("auto", 3, 64, sizes, tmp_path, key)
    assert "cached" in capsys.readouterr().out and len(calls) == 1
    assert again == first and len(first) == 3 and all(len(level) == 3 for level in first)
    (path,) = tmp_path.glob("anchors-*.json")
    assert json.loads(path.read_text())["anchors"] == [[list(a) for a in level] for level in first]
    resolve_anchors("auto", 2, 64, sizes, tmp_path, key)  # another K: another cache entry
    assert len(calls) == 2
    assert resolve_anchors(ANCHORS, 3, 64) == [[(float(w), float(h)) for w, h in level] for level in ANCHORS]


# ---------------------------------------------------------------- config: head x assigner


@pytest.mark.parametrize("name", ANCHOR_BASED)
def test_anchor_assigner_with_free_head_fails_before_training(name, capsys, smoke_overrides):
    assert set(ANCHOR_BASED) == {"single_grid", "nearby_grid", "all_grid", "yolov5"}
    with pytest.raises(ConfigError, match=rf"assigner.name={name} .* model.head=free .* set model.head=anchor"):
        load_config([f"assigner.name={name}"])
    import yolozoo.run as run

    assert run.main([*smoke_overrides, f"assigner.name={name}"]) == 2
    assert "set model.head=anchor" in capsys.readouterr().err
    assert load_config([f"assigner.name={name}", "model.head=anchor"]).model.head == "anchor"


@pytest.mark.parametrize(
    "override, message",
    [
        ("model.head=anchors", "model.head must be one of free, anchor"),
        ("model.box_param=v4", "model.box_param must be one of v3, v5"),
        ("model.anchors=kmeans", "model.anchors must be yolov5, auto or a list"),
        ("model.num_anchors=2", "model.anchors=yolov5 has 3 anchors per level"),
        ("model.anchors=[[[10,13]],[[30,61]]]", "expected 3 levels of model.num_anchors=3"),
        ("model.anchors=[[[1,2],[3,4],[5,-6]],[[1,2],[3,4],[5,6]],[[1,2],[3,4],[5,6]]]", "positive"),
    ],
)
def test_bad_head_config_is_an_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(["model.head=anchor", override])


def test_explicit_anchor_list_and_auto_are_accepted():
    cfg = load_config(["model.head=anchor", "model.num_anchors=1", "model.anchors=[[[8,8]],[[16,16]],[[32,32]]]"])
    assert OmegaConf.to_container(cfg.model.anchors) == [[[8, 8]], [[16, 16]], [[32, 32]]]
    assert load_config(["model.head=anchor", "model.anchors=auto", "model.num_anchors=4"]).model.num_anchors == 4


@pytest.mark.parametrize("name", list_assigners())
def test_every_assigner_takes_an_anchor_head_training_step(name):
    """Anchor-free assigners use prior centres (ATSS: also the prior boxes): they run with K anchors per cell."""
    torch.manual_seed(0)
    model = anchor_model()
    out = model(torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8))
    gt = torch.tensor([[[4.0, 6, 22, 20], [30, 12, 62, 50]], [[8, 16, 40, 34], [0, 0, 0, 0]]])
    mask = torch.tensor([[True, True], [True, False]])
    assign = create_assigner(name)(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                                   torch.tensor([[0, 1], [2, 0]]), gt, mask)
    terms = DetectionLoss("ciou")(out.cls_logits, out.boxes, assign)
    (terms["cls"] + terms["box"]).backward()
    assert assign.fg_mask[0].any() and assign.fg_mask[1].any()
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
