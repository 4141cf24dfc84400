"""Detector construction from config: ``build_model(cfg.model, num_classes)``."""

from __future__ import annotations

import torch

from .backbone import TimmBackbone
from .detector import Detector, DetectorOutput, make_priors
from .head import DecoupledHead
from .neck import PANNeck

__all__ = ["Detector", "DetectorOutput", "build_model", "count_params", "count_flops", "make_priors"]


def build_model(cfg, num_classes: int) -> Detector:
    """Build the detector described by ``cfg`` (a ``ModelConfig``)."""
    backbone = TimmBackbone(cfg.backbone, pretrained=cfg.pretrained)
    neck = PANNeck(backbone.channels, width=cfg.width)
    head = DecoupledHead(neck.out_channels, num_classes)
    return Detector(backbone, neck, head, prior_scale=cfg.prior_scale)


def count_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: torch.nn.Module, img_size: int) -> int:
    """Forward FLOPs of one ``img_size`` x ``img_size`` image (multiply-add = 2 FLOPs)."""
    from torch.utils.flop_counter import FlopCounterMode

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, img_size, img_size, device=device))
    model.train(was_training)
    return counter.get_total_flops()
