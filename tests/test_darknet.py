"""Darknet backbones: our registered ones and timm's darknet53/cspdarknet53, through the same factory."""

from __future__ import annotations

import pytest
import timm
import torch
from omegaconf import OmegaConf

from yolozoo.config import ModelConfig
from yolozoo.models import build_model
from yolozoo.models.darknet import DARKNET_CFGS, Darknet

OURS = sorted(DARKNET_CFGS)
DARKNETS = [*OURS, "darknet53", "cspdarknet53"]


def test_ours_are_registered_with_timm():
    assert set(OURS) <= set(timm.list_models("darknet*"))
    assert OURS == ["darknet_small", "darknet_tiny"]


@pytest.mark.parametrize("name", DARKNETS)
def test_detector_forward_backward_64px(name):
    cfg = OmegaConf.structured(ModelConfig(backbone=name, width=0.25, strides=[8, 16, 32]))
    model = build_model(cfg, num_classes=5)
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    out = model(images)
    A = 8 * 8 + 4 * 4 + 2 * 2
    assert out.cls_logits.shape == (2, A, 5) and out.boxes.shape == (2, A, 4)
    assert torch.isfinite(out.cls_logits).all() and torch.isfinite(out.boxes).all()
    (out.cls_logits.mean() + out.boxes.mean()).backward()
    assert all(p.grad is not None for p in model.backbone.parameters())
    stem_conv = next(p for p in model.backbone.parameters() if p.ndim == 4)  # gradient reaches the input layer
    assert stem_conv.grad.abs().sum() > 0


@pytest.mark.parametrize("name", DARKNETS)
def test_features_only_strides_and_channels(name):
    body = timm.create_model(name, features_only=True)
    assert body.feature_info.reduction() == [1, 2, 4, 8, 16, 32]
    feats = body(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape[-2:]) for f in feats] == [(64 // r, 64 // r) for r in body.feature_info.reduction()]
    assert [f.shape[1] for f in feats] == body.feature_info.channels()
    if name in OURS:
        cfg = DARKNET_CFGS[name]
        assert body.feature_info.channels() == [cfg["stem_chs"], *cfg["widths"]]


def test_backbone_picks_strides_8_16_32_from_feature_info():
    model = build_model(OmegaConf.structured(ModelConfig(backbone="darknet_small", strides=[8, 16, 32])), 3)
    assert model.backbone.strides == [8, 16, 32] and model.backbone.indices == [3, 4, 5]
    assert model.backbone.channels == [128, 256, 512]
    assert model.neck is not None  # sized from those channels: building it would fail otherwise


def test_darknet53_layout_matches_timm():
    """Our blocks with YOLOv3's widths/depths are Darknet-53: same parameter count as timm's."""
    ours = Darknet(widths=(64, 128, 256, 512, 1024), depths=(1, 2, 8, 8, 4), stem_chs=32)
    theirs = timm.create_model("darknet53")
    n_ours = sum(p.numel() for p in ours.parameters())
    assert n_ours == sum(p.numel() for p in theirs.parameters()) == 41_609_928


def test_params_of_registered_variants():
    params = {n: sum(p.numel() for p in timm.create_model(n, features_only=True).parameters()) for n in OURS}
    assert params == {"darknet_small": 3_733_424, "darknet_tiny": 830_696}
    assert params["darknet_tiny"] < params["darknet_small"]


def test_classifier_api():
    model = timm.create_model("darknet_tiny", num_classes=7)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)
    assert model.get_classifier().out_features == 7
    model.reset_classifier(0)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 256)  # pooled features
    assert model.forward_features(torch.randn(1, 3, 64, 64)).shape == (1, 256, 2, 2)


def test_config_mistakes_are_clear():
    with pytest.raises(ValueError, match="same length"):
        Darknet(widths=(32, 64), depths=(1,))
    with pytest.raises(RuntimeError, match="No pretrained weights exist for darknet_small"):
        timm.create_model("darknet_small", pretrained=True)
    with pytest.raises(ValueError, match="'darknet_huge' is not a timm model"):
        build_model(OmegaConf.structured(ModelConfig(backbone="darknet_huge")), 3)
