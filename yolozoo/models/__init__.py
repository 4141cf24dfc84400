"""Detector construction from config: ``build_model(cfg.model, num_classes, anchors)``."""

from __future__ import annotations

import torch

from .anchor_head import AnchorHead
from .anchors import Anchors, resolve_anchors
from .backbone import STRIDES, TimmBackbone
from .detector import Detector, DetectorOutput, make_priors
from .head import DecoupledHead
from .neck import NECKS

__all__ = ["Detector", "DetectorOutput", "build_model", "count_params", "count_flops", "make_priors",
           "resolve_anchors"]


def build_model(cfg, num_classes: int, anchors: Anchors | None = None) -> Detector:
    """Build the detector described by ``cfg`` (a ``ModelConfig``).

    ``model.head=free``: the anchor-free :class:`DecoupledHead`. ``model.head=anchor``: the
    :class:`AnchorHead` with ``anchors`` (per level, K (w, h) px at the input size, as
    :func:`~yolozoo.models.anchors.resolve_anchors` returns them for ``cfg.anchors``).
    Any other ``model.family`` is built by :func:`~yolozoo.models.families.build_family`.
    """
    if getattr(cfg, "family", "yolo") != "yolo":
        from .families import build_family

        return build_family(cfg, num_classes, anchors)
    backbone = TimmBackbone(cfg.backbone, pretrained=cfg.pretrained, strides=getattr(cfg, "strides", STRIDES),
                            freeze=getattr(cfg, "freeze", 0))
    neck = NECKS.get(getattr(cfg, "neck", "pan"))(backbone.channels, width=cfg.width)
    convs = getattr(cfg, "head_convs", 2)
    if cfg.head == "free":
        head = DecoupledHead(neck.out_channels, num_classes, prior_scale=cfg.prior_scale, convs=convs)
    elif cfg.head == "anchor":
        if anchors is None:
            raise ValueError("model.head=anchor: pass the anchors (see yolozoo.models.anchors.resolve_anchors)")
        head = AnchorHead(neck.out_channels, num_classes, anchors, box_param=cfg.box_param, convs=convs)
    else:
        raise ValueError(f"model.head must be free or anchor, got {cfg.head!r}")
    return Detector(backbone, neck, head)


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
