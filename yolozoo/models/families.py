"""Detector families selectable by ``model.family``: a registry of builders with their paper defaults.

Each family is a builder ``f(num_classes, *, backbone, pretrained, width, depth, ...) -> nn.Module``
registered with :func:`register_family`, together with its paper's label assigner (and that
assigner's settings), whether its priors are anchor boxes, and its loss. Every model returns a
:class:`~yolozoo.models.detector.DetectorOutput` (cls_logits ``[B, A, C]``, boxes ``[B, A, 4]``
xyxy px, priors), so any assigner the priors suit can be swapped in.

======  =============================================  =============================  =====================
family  model                                          paper assigner                 loss terms
======  =============================================  =============================  =====================
yolo    this harness's PAN + decoupled or anchor head  tal                            cls, box
yolov1  S x S x (B * 5 + C) grid after two FC layers   yolov1 (centre cell, IoU)      box, obj, noobj, cls
yolov3  Darknet FPN (1 to 3 levels) + anchor head v3   single_grid (one best anchor)  cls, box
yolov5  CSP-PAN (C3) + anchor head v5                  yolov5                         cls, box
yolox   CSP-PAN (C3) + anchor-free decoupled head      simota                         cls, box
yolov8  CSP-PAN (C2f) + decoupled head with DFL        tal                            cls, box, dfl
======  =============================================  =============================  =====================

Anchor-based families (``priors="anchor"``) take resolved ``anchors`` (per level, K (w, h) px;
see :func:`~yolozoo.models.anchors.resolve_anchors`). An assigner that matches GT to anchor
shapes (``requires_anchors``) with an anchor-free family is rejected by :func:`check_family_config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

from torch import nn

from ..assigners import yolov1 as _yolov1_assigner  # noqa: F401  (registers the "yolov1" assigner)
from ..losses import DetectionLoss
from ..registry import Registry, UnknownNameError
from .anchor_head import AnchorHead
from .backbone import STRIDES, TimmBackbone
from .csp import CSPPAN
from .darknet_fpn import DarknetFPN, LevelsBackbone
from .detector import Detector
from .dfl import DFLDetectionLoss, DFLDetector, DFLHead
from .head import DecoupledHead
from .yolov1 import YOLOv1, YOLOv1Loss

FAMILIES = Registry("model family")
DETECTION_TERMS = ("cls", "box")


@dataclass(frozen=True)
class Family:
    """What a family brings besides its builder.

    assigner / assigner_options: the paper's label assigner and settings (``assigner.name=auto``).
    priors: ``anchor`` (K anchor boxes per cell, needs ``anchors``) or ``free``; the ``yolo``
    family's depends on ``model.head``.
    make_loss: ``iou_type -> loss(cls_logits, boxes, assign, **extras) -> dict``; loss_terms its keys.
    levels: pyramid levels of the model (a family reading ``num_levels`` has that many instead).
    check: ``(model config as a dict, assigner name) -> None``, raising ValueError naming the key: the family's
    own checks of its ``model.*`` keys and of the assigner its priors can train with.
    """

    name: str
    assigner: str
    assigner_options: dict = field(default_factory=dict)
    priors: str = "free"
    make_loss: Callable[[str], Callable] = DetectionLoss
    loss_terms: tuple[str, ...] = DETECTION_TERMS
    levels: int = 3
    check: Callable[[dict, str], None] | None = None


_SPECS: dict[str, Family] = {}


def register_family(name: str, **spec):
    """Decorator: register a builder as ``model.family=name``; ``spec`` are :class:`Family` fields."""

    def wrap(fn):
        FAMILIES.register(name)(fn)
        _SPECS[name] = Family(name, **spec)
        return fn

    return wrap


def list_families() -> list[str]:
    return FAMILIES.names()


def get_family(name: str) -> Family:
    """The :class:`Family` registered as ``name``; unknown names raise, listing the valid ones."""
    FAMILIES.get(name)
    return _SPECS[name]


def create_family(name: str, num_classes: int, **options) -> nn.Module:
    """Build family ``name`` with its builder's keyword options (unknown ones raise, listing the valid ones)."""
    return FAMILIES.create(name, num_classes, **options)


def _as_dict(cfg) -> dict:
    if dataclasses.is_dataclass(cfg):
        return dataclasses.asdict(cfg)
    if hasattr(cfg, "_metadata"):  # an OmegaConf node
        from omegaconf import OmegaConf

        return OmegaConf.to_container(cfg, resolve=True)
    return dict(cfg)


def config_keys(name: str) -> set[str]:
    """The ``model.*`` keys family ``name`` reads (``anchors`` / ``num_anchors`` where it has anchors)."""
    keys = set(FAMILIES.options(name)) - {"num_classes"} | {"family"}
    return keys | {"num_anchors"} if "anchors" in keys else keys


def build_family(cfg: Mapping, num_classes: int, anchors=None) -> nn.Module:
    """Build ``cfg["family"]`` (default ``yolo``) from a model config (``ModelConfig``, DictConfig or dict).

    Reads the keys the family's builder takes; ``anchors`` are the resolved anchors (per level,
    K (w, h) px), not the ``model.anchors`` spec.
    """
    cfg = _as_dict(cfg)
    name = cfg.get("family", "yolo")
    options = {k: cfg[k] for k in FAMILIES.options(name) if k in cfg and k not in ("num_classes", "anchors")}
    if "anchors" in FAMILIES.options(name):
        options["anchors"] = anchors
    return create_family(name, num_classes, **options)


def build_family_loss(name: str, iou_type: str = "ciou"):
    """The loss of family ``name``: ``loss(cls_logits, boxes, assign, **output.extras) -> dict``."""
    return get_family(name).make_loss(iou_type)


def resolve_assigner(family: str, assigner: Mapping) -> dict:
    """``assigner.name=auto`` (or no name) -> the family's paper assigner with its settings; user options win."""
    assigner = dict(assigner)
    if assigner.get("name", "auto") != "auto":
        return assigner
    spec = get_family(family)
    options = {k: v for k, v in assigner.items() if k != "name"}
    return {"name": spec.assigner, **spec.assigner_options, **options}


def family_priors(cfg: Mapping) -> str:
    """``anchor`` or ``free``: the kind of priors the model of ``cfg`` has."""
    cfg = _as_dict(cfg)
    name = cfg.get("family", "yolo")
    return cfg.get("head", "free") if name == "yolo" else get_family(name).priors


def family_levels(cfg: Mapping) -> int:
    """Pyramid levels of the model of ``cfg`` (``num_levels`` where the family reads it)."""
    cfg = _as_dict(cfg)
    name = cfg.get("family", "yolo")
    return cfg.get("num_levels", 3) if "num_levels" in config_keys(name) else get_family(name).levels


def check_family_config(model_cfg: Mapping, assigner_name: str, assigner_options: Mapping | None = None, *,
                        defaults: Mapping) -> None:
    """Raise ValueError (naming the key) on a model config the family cannot build or train with the assigner.

    ``defaults``: every ``model.*`` key's default (``yolozoo.config.model_defaults()``, with the preset's values
    over them), passed in so that this module never imports the config module.

    - unknown family; a ``model.*`` key the family does not read set away from its default or preset value
      (e.g. ``model.reg_max`` with ``yolov5``); the anchor spec is ignored without anchors,
      as with ``model.head=free``;
    - ``freeze`` without pretrained weights; ``depth`` outside (0, 4], ``num_levels`` / ``reg_max`` /
      ``grid_size`` / ``boxes_per_cell`` / ``head_convs`` out of range;
    - an assigner with a setting per pyramid level (FCOS's ``regress_ranges``) for another number of levels;
    - then the family's own check (:attr:`Family.check`): its strides, head and anchors, and whether its priors
      suit the assigner.
    """
    from ..assigners.base import ASSIGNERS
    from .pretrained import SCRATCH

    m = _as_dict(model_cfg)
    name = m.get("family", "yolo")
    try:
        get_family(name)
    except UnknownNameError as e:
        raise ValueError(f"model.family: {e}") from None
    read = config_keys(name)
    for key, value in m.items():
        if key in read or key not in defaults or key in ("anchors", "num_anchors") or value == defaults[key]:
            continue
        raise ValueError(f"model.{key}={value!r} is not used by model.family={name}; "
                         f"it reads model.{', model.'.join(sorted(read))}")
    if m.get("freeze", 0) and str(m.get("pretrained", "false")).strip().lower() in SCRATCH:
        raise ValueError(f"model.freeze={m['freeze']} freezes randomly initialised layers, which would never learn; "
                         "use it with model.pretrained=imagenet (or a weights file), or set model.freeze=0")
    if "depth" in read and not 0 < m.get("depth", 1.0) <= 4:
        raise ValueError(f"model.depth must be in (0, 4], got {m['depth']}")
    limits = {"num_levels": (1, 3), "reg_max": (2, 64), "grid_size": (1, 64), "boxes_per_cell": (1, 16),
              "head_convs": (0, 4)}
    for key, (lo, hi) in limits.items():
        if key in read and key in m and not lo <= m[key] <= hi:
            raise ValueError(f"model.{key} must be in {lo}..{hi} for model.family={name}, got {m[key]}")
    ranges = getattr(ASSIGNERS.create(assigner_name, **dict(assigner_options or {})), "regress_ranges", None)
    if ranges is not None and len(ranges) != family_levels(m):
        raise ValueError(f"assigner.name={assigner_name} has {len(ranges)} assigner.regress_ranges (one per level), "
                         f"but model.family={name} has {family_levels(m)} pyramid level(s); set one [lo, hi] per "
                         "level, e.g. assigner.regress_ranges=[[0,inf]] for one")
    spec = get_family(name)  # a plug-in family without its own check gets the one its priors need
    check = spec.check or (_check_anchor_priors if spec.priors == "anchor" else _check_free_priors)
    check(m, assigner_name)


def anchor_families() -> list[str]:
    return [n for n in list_families() if _SPECS[n].priors == "anchor"]


def _check_anchor_priors(m: dict, assigner_name: str) -> None:
    """An anchor family: a valid anchor spec (``model.anchors``, ``model.num_anchors``) for its levels."""
    from .anchors import check_anchor_spec

    check_anchor_spec(m["anchors"], m["num_anchors"], family_levels(m))


def _check_free_priors(m: dict, assigner_name: str) -> None:
    """An anchor-free family: no assigner that matches GT to anchor boxes."""
    from ..assigners.base import ASSIGNERS

    if getattr(ASSIGNERS.get(assigner_name), "requires_anchors", False):
        families = ", ".join(anchor_families())
        raise ValueError(f"assigner.name={assigner_name} matches GT to anchor boxes, but "
                         f"model.family={m.get('family')} has anchor-free priors; use an anchor family ({families}) "
                         "or another assigner")


def _check_yolo(m: dict, assigner_name: str) -> None:
    """A known neck; 3 increasing backbone strides; the free or anchor head with an assigner it can train."""
    from .anchors import check_head_config
    from .neck import NECKS

    try:
        NECKS.get(m.get("neck", "pan"))
    except UnknownNameError as e:
        raise ValueError(f"model.neck: {e}") from None

    strides = list(m.get("strides", STRIDES))
    if len(strides) != 3 or strides != sorted(set(strides)):
        raise ValueError(f"model.strides must be 3 increasing backbone strides (e.g. [8,16,32] or [4,8,16]), "
                         f"got {strides}")
    check_head_config(m["head"], m["box_param"], m["anchors"], m["num_anchors"], assigner_name)


def _require_anchors(family: str, anchors) -> None:
    if anchors is None:
        raise ValueError(f"model.family={family} has an anchor head: pass the anchors "
                         "(see yolozoo.models.anchors.resolve_anchors)")


# ---------------------------------------------------------------- the families

Pretrained = str | bool | Path


@register_family("yolo", assigner="tal", check=_check_yolo)
def yolo(num_classes: int, *, backbone: str = "lcnet_075", pretrained: Pretrained = False, width: float = 1.0,
         strides: Sequence[int] = STRIDES, prior_scale: float = 4.0, head: str = "free", anchors=None,
         box_param: str = "v5", freeze: int = 0, head_convs: int = 2, neck: str = "pan") -> Detector:
    """This harness's detector: a PAN neck (``neck``: :data:`~yolozoo.models.neck.NECKS`) + anchor-free decoupled
    head, or the anchor head (``head=anchor``), with ``head_convs`` 3x3 convs per head branch."""
    from . import build_model

    cfg = SimpleNamespace(family="yolo", backbone=backbone, pretrained=pretrained, width=width, strides=strides,
                          prior_scale=prior_scale, head=head, box_param=box_param, freeze=freeze, head_convs=head_convs,
                          neck=neck)
    return build_model(cfg, num_classes, anchors)


@register_family("yolov1", assigner="yolov1", make_loss=lambda iou_type: YOLOv1Loss(),
                 loss_terms=("box", "obj", "noobj", "cls"), levels=1, check=_check_free_priors)
def yolov1(num_classes: int, *, backbone: str = "lcnet_075", pretrained: Pretrained = False, width: float = 1.0,
           depth: float = 1.0, grid_size: int = 7, boxes_per_cell: int = 2, prior_scale: float = 4.0,
           freeze: int = 0) -> YOLOv1:
    """YOLOv1 (Redmon et al. 2016): see :mod:`yolozoo.models.yolov1` (train it with ``optim.lr=0.001``)."""
    body = TimmBackbone(backbone, pretrained, freeze=freeze)
    return YOLOv1(body, num_classes, grid_size, boxes_per_cell, width, depth, prior_scale)


# YOLOv3 assigns each GT the one anchor of best shape IoU over all levels: single_grid's
# fallback; a threshold of 1.0 adds no other (a second anchor would need the exact GT shape).
@register_family("yolov3", assigner="single_grid", assigner_options={"match_iou_thres": 1.0}, priors="anchor",
                 check=_check_anchor_priors)
def yolov3(num_classes: int, *, backbone: str = "lcnet_075", pretrained: Pretrained = False, width: float = 1.0,
           depth: float = 1.0, anchors=None, num_levels: int = 3, freeze: int = 0) -> Detector:
    """YOLOv3 (Redmon & Farhadi 2018): Darknet FPN over the last ``num_levels`` levels + anchor head (v3 boxes)."""
    _require_anchors("yolov3", anchors)
    if len(anchors) != num_levels:
        raise ValueError(f"model.family=yolov3 with model.num_levels={num_levels} needs anchors for "
                         f"{num_levels} levels, got {len(anchors)}")
    body = LevelsBackbone(backbone, pretrained, num_levels, freeze)
    neck = DarknetFPN(body.channels, width, depth)
    return Detector(body, neck, AnchorHead(neck.out_channels, num_classes, anchors, box_param="v3"))


@register_family("yolov5", assigner="yolov5", priors="anchor", check=_check_anchor_priors)
def yolov5(num_classes: int, *, backbone: str = "lcnet_075", pretrained: Pretrained = False, width: float = 1.0,
           depth: float = 1.0, anchors=None, freeze: int = 0) -> Detector:
    """YOLOv5 (Jocher et al. 2020): CSP-PAN with C3 blocks + anchor head (v5 boxes)."""
    _require_anchors("yolov5", anchors)
    body = TimmBackbone(backbone, pretrained, freeze=freeze)
    neck = CSPPAN(body.channels, width, depth, style="v5")
    return Detector(body, neck, AnchorHead(neck.out_channels, num_classes, anchors, box_param="v5"))


@register_family("yolox", assigner="simota", check=_check_free_priors)
def yolox(num_classes: int, *, backbone: str = "lcnet_075", pretrained: Pretrained = False, width: float = 1.0,
          depth: float = 1.0, prior_scale: float = 4.0, freeze: int = 0) -> Detector:
    """YOLOX (Ge et al. 2021): CSP-PAN with C3 blocks + anchor-free decoupled head (no objectness branch here)."""
    body = TimmBackbone(backbone, pretrained, freeze=freeze)
    neck = CSPPAN(body.channels, width, depth, style="v5")
    return Detector(body, neck, DecoupledHead(neck.out_channels, num_classes, prior_scale=prior_scale))


@register_family("yolov8", assigner="tal", make_loss=DFLDetectionLoss, loss_terms=("cls", "box", "dfl"),
                 check=_check_free_priors)
def yolov8(num_classes: int, *, backbone: str = "lcnet_075", pretrained: Pretrained = False, width: float = 1.0,
           depth: float = 1.0, reg_max: int = 16, prior_scale: float = 4.0, freeze: int = 0) -> DFLDetector:
    """YOLOv8 (Jocher et al. 2023): CSP-PAN with C2f blocks + decoupled head with DFL box regression."""
    body = TimmBackbone(backbone, pretrained, freeze=freeze)
    neck = CSPPAN(body.channels, width, depth, style="v8")
    return DFLDetector(body, neck, DFLHead(neck.out_channels, num_classes, reg_max, prior_scale=prior_scale))
