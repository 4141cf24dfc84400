"""Detector families (``model.family``): registry, every family x backbones, CSP / FPN / DFL / YOLOv1 parts.

Generated from the family registry where possible. All at 64 px on the CPU; the config and
training tests live in ``test_families_integration.py``.
"""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from yolozoo.assigners import create_assigner, list_assigners
from yolozoo.assigners.base import make_result
from yolozoo.config import ModelConfig, model_defaults
from yolozoo.models import count_params, make_priors
from yolozoo.models.backbone import TimmBackbone
from yolozoo.models.csp import C3, CSPPAN, SPPF, C2f, scaled_depth
from yolozoo.models.darknet_fpn import DarknetFPN, LevelsBackbone
from yolozoo.models.dfl import DFLDetectionLoss, DFLHead, dfl_loss
from yolozoo.models.families import (
    build_family,
    build_family_loss,
    check_family_config,
    config_keys,
    create_family,
    get_family,
    list_families,
    resolve_assigner,
)
from yolozoo.models.yolov1 import YOLOv1, YOLOv1Loss

FAMILIES = list_families()
BACKBONES = ["lcnet_075", "mobilenetv3_small_100", "darknet_tiny"]
ANCHORS = [[(s, s), (2 * s, s), (s, 2 * s)] for s in (8, 16, 32)]  # every GT below has one of IoU >= 0.5
CELLS = 8 * 8 + 4 * 4 + 2 * 2  # 64 px at strides 8 / 16 / 32
GT = torch.tensor([[[4.0, 6, 22, 20], [30, 12, 62, 50]], [[8, 16, 40, 34], [0, 0, 0, 0]]])
GT_LABELS = torch.tensor([[0, 1], [2, 0]])
GT_MASK = torch.tensor([[True, True], [True, False]])



def check_family(model_cfg, assigner, options=None):
    return check_family_config(model_cfg, assigner, options, defaults=model_defaults())

def images(n: int = 2, size: int = 64) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def small_cfg(family: str, **kw) -> dict:
    """A model config dict for ``family``: width 0.25, depth 0.33 where the family has one."""
    cfg = {"family": family, "width": 0.25, **kw}
    if "depth" in config_keys(family):
        cfg.setdefault("depth", 0.33)
    return cfg


def build(family: str, num_classes: int = 3, **kw):
    anchors = ANCHORS if get_family(family).priors == "anchor" else None
    return build_family(small_cfg(family, **kw), num_classes, anchors)


def expected_priors(family: str) -> int:
    return {"yolov1": 7 * 7 * 2, "yolov3": 3 * CELLS, "yolov5": 3 * CELLS}.get(family, CELLS)


def train_step(model, assigner_name: str, family: str, **assigner_kw) -> dict:
    """Forward 2 images, assign ``GT``, the family's loss, backward; return the terms."""
    out = model(images())
    assigner = create_assigner(assigner_name, **assigner_kw)
    assign = assigner(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors, GT_LABELS, GT, GT_MASK)
    terms = build_family_loss(family)(out.cls_logits, out.boxes, assign, **getattr(out, "extras", {}))
    sum(terms.values()).backward()
    assert assign.fg_mask[0].any() and assign.fg_mask[1].any(), assigner_name
    return terms


# ---------------------------------------------------------------- registry


def test_registry_has_every_family_and_rejects_unknown_names():
    assert set(FAMILIES) == {"yolo", "yolov1", "yolov3", "yolov5", "yolox", "yolov8"}
    with pytest.raises(KeyError, match="unknown model family 'yolov9'; valid: yolo, yolov1, yolov3"):
        get_family("yolov9")
    with pytest.raises(KeyError, match="'yolox' has no option 'reg_max'; valid: .*prior_scale"):
        create_family("yolox", 3, reg_max=8)


def test_paper_assigners_are_the_family_defaults():
    assert {f: resolve_assigner(f, {"name": "auto"})["name"] for f in FAMILIES} == {
        "yolo": "tal", "yolov1": "yolov1", "yolov3": "single_grid", "yolov5": "yolov5", "yolox": "simota",
        "yolov8": "tal"}
    assert resolve_assigner("yolov3", {}) == {"name": "single_grid", "match_iou_thres": 1.0}  # one anchor per GT
    assert resolve_assigner("yolox", {"name": "auto", "center_radius": 1.5}) == {"name": "simota",
                                                                                  "center_radius": 1.5}
    assert resolve_assigner("yolov8", {"name": "atss", "topk": 5}) == {"name": "atss", "topk": 5}  # explicit wins


# ---------------------------------------------------------------- every family x backbones


@pytest.mark.parametrize("backbone", BACKBONES)
@pytest.mark.parametrize("family", FAMILIES)
def test_forward_backward_64px(family, backbone):
    torch.manual_seed(0)
    model = build(family, backbone=backbone)
    out = model(images())
    A = expected_priors(family)
    assert out.cls_logits.shape == (2, A, 3) and out.boxes.shape == (2, A, 4) and len(out.priors) == A
    assert torch.isfinite(out.cls_logits).all() and torch.isfinite(out.boxes).all()
    assert (out.boxes[..., 2:] >= out.boxes[..., :2]).all()
    model.zero_grad()
    paper = resolve_assigner(family, {})  # the family's own assigner and settings
    terms = train_step(model, paper.pop("name"), family, **paper)
    assert tuple(terms) == get_family(family).loss_terms and all(torch.isfinite(v) for v in terms.values())
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    stem = next(p for p in model.backbone.parameters() if p.ndim == 4)  # the gradient reaches the input layer
    assert stem.grad.abs().sum() > 0


@pytest.mark.parametrize("family", [f for f in FAMILIES if f != "yolo"])
def test_width_and_depth_multipliers_scale_the_model(family):
    kw = {"grid_size": 3} if family == "yolov1" else {}  # keeps YOLOv1's FC layers small
    base = count_params(build(family, width=0.25, depth=0.33, **kw))
    assert count_params(build(family, width=0.5, depth=0.33, **kw)) > base
    assert count_params(build(family, width=0.25, depth=1.0, **kw)) > base


def test_csp_blocks_and_neck_scale_with_width_and_depth():
    x = torch.randn(2, 16, 8, 8)
    assert C3(16, 32, n=2)(x).shape == C2f(16, 32, n=3)(x).shape == SPPF(16, 32)(x).shape == (2, 32, 8, 8)
    assert C2f(16, 32, n=3).cv2[0].in_channels == (2 + 3) * 16  # every bottleneck output is kept
    feats = [torch.randn(1, c, s, s) for c, s in ((24, 8), (40, 4), (96, 2))]
    for style in ("v5", "v8"):
        for depth, n in ((0.33, 1), (1.0, 3), (2.0, 6)):
            neck = CSPPAN([24, 40, 96], width=0.25, depth=depth, style=style)
            assert neck.out_channels == [64, 128, 256] and scaled_depth(3, depth) == n
            assert len(neck.td4.m) == len(neck.bu5.m) == n
            assert [tuple(o.shape) for o in neck(feats)] == [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    with pytest.raises(ValueError, match="style must be one of v5, v8"):
        CSPPAN([24, 40, 96], style="v7")


# ---------------------------------------------------------------- yolov3: Darknet FPN, smol


def test_darknet_fpn_levels_and_depth():
    feats = [torch.randn(1, c, s, s) for c, s in ((24, 8), (40, 4), (96, 2))]
    fpn = DarknetFPN([24, 40, 96], width=0.25)
    assert fpn.out_channels == [64, 128, 256] and len(fpn.sets[0]) == 1 + 2 * 2  # 1x1 + two (3x3, 1x1) pairs
    assert [tuple(o.shape) for o in fpn(feats)] == [(1, 64, 8, 8), (1, 128, 4, 4), (1, 256, 2, 2)]
    two = DarknetFPN([40, 96], width=0.25, depth=0.5)
    assert len(two.sets[0]) == 1 + 2 * 1 and [tuple(o.shape) for o in two(feats[1:])] == [(1, 128, 4, 4),
                                                                                           (1, 256, 2, 2)]


def test_yolov3_smol_two_heads_of_one_anchor():
    """The smol variant: darknet_tiny, strides 16 and 32, one anchor each."""
    anchors = [[(12.0, 16.0)], [(30.0, 36.0)]]
    model = build_family(small_cfg("yolov3", backbone="darknet_tiny", num_levels=2), 10, anchors)
    out = model(images())
    assert out.cls_logits.shape == (2, 4 * 4 + 2 * 2, 10) and set(out.priors.strides.tolist()) == {16.0, 32.0}
    assert out.priors.sizes[0].tolist() == [12.0, 16.0] and out.priors.sizes[-1].tolist() == [30.0, 36.0]
    assert model.head.box_param == "v3" and model.backbone.strides == [16, 32]
    with pytest.raises(ValueError, match="num_levels=3 needs anchors for 3 levels, got 2"):
        build_family(small_cfg("yolov3"), 10, anchors)
    with pytest.raises(ValueError, match="has an anchor head: pass the anchors"):
        build_family(small_cfg("yolov5"), 10)
    full = TimmBackbone("darknet_tiny")
    assert LevelsBackbone("darknet_tiny", num_levels=2).state_dict().keys() == full.state_dict().keys()


# ---------------------------------------------------------------- yolov8: DFL


def test_dfl_decode_is_the_expected_bin():
    head = DFLHead([8], num_classes=2, reg_max=4)
    pri = make_priors([(2, 2)], [8])
    uniform = torch.zeros(1, 4, 4, 4)
    sides = torch.tensor([-1.0, -1, 1, 1])
    assert torch.allclose(head.decode(uniform, pri)[0], pri.centers.repeat(1, 2) + 8 * 1.5 * sides)
    peaked = torch.full((1, 4, 4, 4), -50.0)
    peaked[..., 2] = 50.0  # all four sides at bin 2: 2 strides
    assert torch.allclose(head.decode(peaked, pri)[0], pri.centers.repeat(1, 2) + 16 * sides)


def test_dfl_loss_is_the_two_bin_cross_entropy_and_minimal_at_its_target():
    probs = torch.tensor([0.1, 0.5, 0.3, 0.1])
    logits = probs.log().expand(1, 4, 4)
    target = torch.full((1, 4), 1.3)  # between bins 1 and 2: weights 0.7 and 0.3
    assert torch.allclose(dfl_loss(logits, target), -(0.7 * probs[1].log() + 0.3 * probs[2].log()))
    best = torch.tensor([1e-9, 0.7, 0.3, 1e-9]).log().expand(1, 4, 4).clone().requires_grad_()
    dfl_loss(best, target).sum().backward()
    assert best.grad.abs().max() < 1e-6  # softmax cross-entropy is stationary at the soft target
    far = dfl_loss(torch.tensor([0.0, 0, 0, 9]).expand(1, 4, 4), target)
    assert far > dfl_loss(best.detach(), target)
    assert torch.allclose(dfl_loss(logits, torch.full((1, 4), 7.0)), -probs[3].log() * 0.99 - probs[2].log() * 0.01,
                          atol=1e-5)  # beyond the last bin: clamped to reg_max - 1.01


def test_dfl_detection_loss_terms_and_empty_foreground():
    model = build("yolov8", reg_max=8)
    out = model(images())
    assert out.extras["box_dist"].shape == (2, CELLS, 4, 8)
    loss = DFLDetectionLoss("ciou")
    empty = create_assigner("tal")(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                                   GT_LABELS[:, :0], GT[:, :0], GT_MASK[:, :0])
    terms = loss(out.cls_logits, out.boxes, empty, **out.extras)
    assert set(terms) == {"cls", "box", "dfl"} and terms["dfl"] == 0 and terms["box"] == 0
    sum(terms.values()).backward()  # the graph stays connected without positives


def test_dfl_term_over_index_tensors_equals_the_boolean_mask_form():
    """The dfl term indexes the foreground with ``nonzero()``'s index tensors (no wait at each boolean mask):
    the same elements in the same order as ``[fg_mask]``, so the same value and gradient."""
    from yolozoo.box_ops import box_to_distance

    torch.manual_seed(0)
    model = build("yolov8", reg_max=8)
    out = model(images())
    assign = create_assigner("tal")(out.cls_logits.detach().sigmoid(), out.boxes.detach(), out.priors,
                                    GT_LABELS, GT, GT_MASK)
    fg, box_dist, priors = assign.fg_mask, out.extras["box_dist"], out.priors
    assert fg.sum() > 3
    dfl = DFLDetectionLoss("ciou")(out.cls_logits, out.boxes, assign, **out.extras)["dfl"]
    a = fg.nonzero()[:, 1]
    target = box_to_distance(priors.centers[a].float(), assign.boxes[fg]) / priors.strides[a, None]
    oracle = (dfl_loss(box_dist[fg], target) * assign.scores.sum(-1)[fg]).sum() / assign.scores.sum().clamp(min=1.0)
    grads = [torch.autograd.grad(x, box_dist, retain_graph=True)[0] for x in (dfl, oracle)]
    assert torch.equal(dfl, oracle) and torch.equal(*grads)


# ---------------------------------------------------------------- yolov1


def fixed_yolov1(S: int = 2, B: int = 2, C: int = 3) -> tuple[YOLOv1, torch.Tensor]:
    """A YOLOv1 whose output ignores the image: last FC weight 0, bias = a known S x S x (5B + C) tensor."""
    model = YOLOv1(TimmBackbone("lcnet_075"), C, grid_size=S, boxes_per_cell=B, width=0.25, depth=0.25).eval()
    raw = torch.rand(S * S, 5 * B + C, generator=torch.Generator().manual_seed(1)) * 1.2 - 0.1
    with torch.no_grad():
        model.fc[-1].weight.zero_()
        model.fc[-1].bias.copy_(raw.flatten())
    return model, raw


def test_yolov1_output_layout_and_decode():
    model, raw = fixed_yolov1()
    out = model(images())
    S, B, C, stride = 2, 2, 3, 32.0
    assert out.cls_logits.shape == (2, S * S * B, C) and out.priors.strides.tolist() == [stride] * 8
    for cell in range(S * S):
        cy, cx = divmod(cell, S)
        for k in range(B):
            a = cell * B + k
            x, y, sw, sh, conf = raw[cell, 5 * k:5 * k + 5].tolist()
            centre = ((cx + x) * stride, (cy + y) * stride)
            w, h = sw * sw * 64, sh * sh * 64
            expect = torch.tensor([centre[0] - w / 2, centre[1] - h / 2, centre[0] + w / 2, centre[1] + h / 2])
            assert torch.allclose(out.boxes[0, a], expect, atol=1e-4)
            assert out.priors.centers[a].tolist() == [(cx + 0.5) * stride, (cy + 0.5) * stride]
            score = raw[cell, 5 * B:].clamp(0, 1) * min(max(conf, 0.0), 1.0)  # class-specific confidence
            assert torch.allclose(out.cls_logits[0, a].sigmoid(), score.clamp(1e-6, 1 - 1e-6), atol=1e-5)
    assert torch.equal(out.extras["cls_prob"][1], raw[:, 5 * B:]) and out.extras["image_size"] == (64, 64)
    with pytest.raises(ValueError, match="square"):
        model(torch.zeros(1, 3, 64, 96, dtype=torch.uint8))


def test_yolov1_loss_by_hand():
    """One GT, S = 2, B = 2, C = 2, 64 px: every term of eq. 3 written out."""
    pri = make_priors([(2, 2)], [32], anchors=[[(128.0, 128.0)] * 2])
    gt = torch.tensor([[[0.0, 0, 32, 16]]])  # centre (16, 8) in cell (0, 0): offsets (0.5, 0.25)
    fg = torch.zeros(1, 8, dtype=torch.bool)
    fg[0, 1] = True  # the cell's second predictor is responsible
    assign = make_result(fg, torch.zeros(1, 8, dtype=torch.long), torch.tensor([[1]]), gt, 2)
    coords = torch.zeros(1, 8, 4)
    coords[0, 1] = torch.tensor([0.4, 0.25, 0.7, 0.5])
    conf = torch.full((1, 8), 0.2)
    conf[0, 1] = 0.6
    cls_prob = torch.full((1, 4, 2), 0.9)  # cells without an object are not penalised
    cls_prob[0, 0] = torch.tensor([0.3, 0.6])
    boxes = torch.zeros(1, 8, 4)
    boxes[0, 1] = torch.tensor([0.0, 0, 32, 32])  # IoU with the GT: 0.5
    terms = YOLOv1Loss()(None, boxes, assign, coords, conf, cls_prob, pri, (64, 64))
    expect = {"box": 0.1 ** 2 + 0 + (0.7 - math.sqrt(0.5)) ** 2 + (0.5 - math.sqrt(0.25)) ** 2,
              "obj": (0.6 - 0.5) ** 2, "noobj": 7 * 0.2 ** 2, "cls": 0.3 ** 2 + 0.4 ** 2}
    assert {k: round(v.item(), 6) for k, v in terms.items()} == {k: round(v, 6) for k, v in expect.items()}
    twice = YOLOv1Loss()(None, boxes.repeat(2, 1, 1), make_result(fg.repeat(2, 1), torch.zeros(2, 8).long(),
                         torch.tensor([[1], [1]]), gt.repeat(2, 1, 1), 2), coords.repeat(2, 1, 1),
                         conf.repeat(2, 1), cls_prob.repeat(2, 1, 1), pri, (64, 64))
    assert all(torch.allclose(twice[k], terms[k]) for k in terms)  # summed per image, averaged over the batch


def test_yolov1_assigner_picks_the_best_iou_predictor_of_the_centre_cell():
    pri = make_priors([(2, 2)], [32], anchors=[[(128.0, 128.0)] * 2])
    pred = torch.zeros(1, 8, 4)
    pred[0, 0] = torch.tensor([40.0, 40, 60, 60])  # cell 0, predictor 0: off the GT
    pred[0, 1] = torch.tensor([2.0, 2, 24, 20])  # cell 0, predictor 1: on it
    pred[0, 6] = torch.tensor([36.0, 36, 60, 60])
    assigner = create_assigner("yolov1")
    gt = torch.tensor([[[0.0, 0, 24, 20], [34, 34, 62, 62]]])
    out = assigner(torch.rand(1, 8, 3), pred, pri, torch.tensor([[2, 1]]), gt, torch.ones(1, 2, dtype=torch.bool))
    assert out.fg_mask[0].nonzero().flatten().tolist() == [1, 6] and out.gt_index[0, [1, 6]].tolist() == [0, 1]
    assert out.scores[0, 1].tolist() == [0, 0, 1] and out.scores[0, 6].tolist() == [0, 1, 0]  # one-hot
    # Two GT in cell 0, both overlapping predictor 1 most: the better overlap keeps it, the other takes predictor 0.
    pair = torch.tensor([[[2.0, 2, 24, 20], [4.0, 4, 20, 14]]])
    for perm in ([0, 1], [1, 0]):
        res = assigner(torch.rand(1, 8, 3), pred, pri, torch.tensor([[0, 1]])[:, perm], pair[:, perm],
                       torch.ones(1, 2, dtype=torch.bool))
        winner, loser = perm.index(0), perm.index(1)
        assert res.fg_mask[0].nonzero().flatten().tolist() == [0, 1]
        assert res.gt_index[0, 1] == winner and res.gt_index[0, 0] == loser


def test_yolov1_assigner_batched_empty_and_padding():
    assigner = create_assigner("yolov1")
    pri = make_priors([(8, 8), (4, 4), (2, 2)], [8, 16, 32])
    g = torch.Generator().manual_seed(0)
    pred = pri.boxes()[None] + torch.randn(2, len(pri), 4, generator=g) * 3
    scores = torch.rand(2, len(pri), 3, generator=g)
    out = assigner(scores, pred, pri, GT_LABELS, GT, GT_MASK)
    for b in range(2):
        one = assigner(scores[b:b + 1], pred[b:b + 1], pri, GT_LABELS[b:b + 1], GT[b:b + 1], GT_MASK[b:b + 1])
        assert torch.equal(out.fg_mask[b], one.fg_mask[0]) and torch.equal(out.scores[b], one.scores[0])
    assert out.fg_mask.sum(1).tolist() == [2, 1]  # one positive per real GT, none for padding
    half = assigner(scores.half(), pred.half(), pri, GT_LABELS, GT.half(), GT_MASK)
    assert torch.equal(half.fg_mask, out.fg_mask)
    empty = assigner(scores, pred, pri, GT_LABELS[:, :0], GT[:, :0], GT_MASK[:, :0])
    assert not empty.fg_mask.any() and not empty.scores.any()


# ---------------------------------------------------------------- family x assigner pairing


def _pairs():
    return [(f, a) for f in FAMILIES for a in list_assigners()]


@pytest.fixture(scope="module")
def models() -> dict:
    torch.manual_seed(0)
    return {f: build(f) for f in FAMILIES}


def incompatibility(family: str, assigner: str) -> str | None:
    """Why ``assigner`` (default settings) cannot train ``family`` (small_cfg), as the config check words it."""
    if getattr(create_assigner(assigner), "requires_anchors", False) and get_family(family).priors == "free":
        return f"assigner.name={assigner} matches GT to anchor boxes"
    if assigner == "fcos" and family == "yolov1":  # one range per level; YOLOv1 has one level
        return "fcos has 3 assigner.regress_ranges .* model.family=yolov1 has 1 pyramid level"
    return None


@pytest.mark.parametrize("family, assigner", _pairs())
def test_every_compatible_assigner_trains_every_family(family, assigner, models):
    """Every (family, assigner) pair either takes a training step or fails the config check, saying why."""
    cfg = {**dataclasses.asdict(ModelConfig()), **small_cfg(family)}
    reason = incompatibility(family, assigner)
    if reason:
        with pytest.raises(ValueError, match=reason):
            check_family(cfg, assigner)
        return
    check_family(cfg, assigner)
    model = models[family]
    model.zero_grad()
    terms = train_step(model, assigner, family)
    assert all(torch.isfinite(v) for v in terms.values())
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_family_config_checks_name_keys_and_ranges():
    base = dataclasses.asdict(ModelConfig())
    with pytest.raises(ValueError, match="model.family: unknown model family 'yolov2'"):
        check_family({**base, "family": "yolov2"}, "tal")
    with pytest.raises(ValueError, match="model.head='anchor' is not used by model.family=yolov5; it reads model.anch"):
        check_family({**base, "family": "yolov5", "head": "anchor"}, "yolov5")
    with pytest.raises(ValueError, match="model.box_param='v3' is not used by model.family=yolov8"):
        check_family({**base, "family": "yolov8", "box_param": "v3"}, "tal")
    check_family({**base, "family": "yolox", "anchors": "auto"}, "simota")  # no anchors: the spec is unused
    with pytest.raises(ValueError, match=r"model.depth must be in \(0, 4\]"):
        check_family({**base, "family": "yolox", "depth": 0.0}, "simota")
    with pytest.raises(ValueError, match="model.num_levels must be in 1..3 for model.family=yolov3"):
        check_family({**base, "family": "yolov3", "num_levels": 4}, "single_grid")
    with pytest.raises(ValueError, match="expected 2 levels of model.num_anchors=1"):
        check_family({**base, "family": "yolov3", "num_levels": 2, "num_anchors": 1,
                             "anchors": [[[8, 8]], [[16, 16]], [[32, 32]]]}, "single_grid")
    check_family({**base, "family": "yolov3", "num_levels": 2, "num_anchors": 1,
                         "anchors": [[[16, 16]], [[32, 32]]]}, "single_grid")
    with pytest.raises(ValueError, match="needs several priors per location"):  # the yolo family's own rule
        check_family(base, "yolov5")
    check_family({**base, "family": "yolov3", "num_levels": 2, "num_anchors": 1,
                         "anchors": [[[16, 16]], [[32, 32]]]}, "fcos", {"regress_ranges": [[0, 48], [48, 1e9]]})
