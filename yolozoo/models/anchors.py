"""Anchor boxes for the anchor head: COCO defaults, IoU k-means fitting, config checks.

Anchors are ``(w, h)`` pixel sizes of the letterboxed input (``data.img_size``), ``K`` per
pyramid level, smallest level (stride 8) first. ``model.anchors`` is one of

- ``yolov5``: the anchors YOLOv3 and YOLOv5 ship for COCO at 640 px, times
  ``img_size / 640`` (COCO objects keep their size relative to the image);
- ``auto``: fitted to the training set's box sizes (letterboxed to ``img_size``) by k-means
  with the distance ``1 - IoU`` of boxes compared by shape (YOLOv2's "dimension clusters",
  Redmon & Farhadi 2017), split by area into the levels; printed, and cached on disk;
- a list ``[[[w, h], ...], ...]``: one list of K pairs per level, in pixels at ``img_size``,
  used as given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from ..assigners.grid import shape_iou

HEADS = ("free", "anchor")
BOX_PARAMS = ("v3", "v5")
NUM_LEVELS = 3  # the detector's pyramid: strides 8/16/32
# YOLOv3 / YOLOv5 COCO anchors (w, h) px at 640 px, per level P3/P4/P5
COCO_ANCHORS = (
    ((10, 13), (16, 30), (33, 23)),
    ((30, 61), (62, 45), (59, 119)),
    ((116, 90), (156, 198), (373, 326)),
)
COCO_SIZE = 640

Anchors = list[list[tuple[float, float]]]  # [level][k] -> (w, h) px


def default_anchors(img_size: int) -> Anchors:
    """:data:`COCO_ANCHORS` scaled from 640 px to ``img_size``."""
    scale = img_size / COCO_SIZE
    return [[(round(w * scale, 2), round(h * scale, 2)) for w, h in level] for level in COCO_ANCHORS]


def kmeans_anchors(wh: torch.Tensor, k: int, iters: int = 300, seed: int = 0, max_boxes: int = 200_000
                   ) -> torch.Tensor:
    """k-means of box shapes with distance ``1 - shape IoU`` -> centroids ``[k, 2]`` (w, h), by area.

    wh: float ``[N, 2]`` box (w, h), N >= k. k-means++ seeding, then Lloyd iterations with the
    per-cluster median (robust to a few huge boxes) until the assignment stops changing. An
    emptied cluster is re-seeded at the box farthest from its centroid. At most ``max_boxes``
    boxes (a seeded random subset) are used. Deterministic for a given ``seed``.
    """
    wh = wh.float().reshape(-1, 2)
    if len(wh) < k:
        raise ValueError(f"k-means needs at least k={k} boxes, got {len(wh)}")
    g = torch.Generator().manual_seed(seed)
    if len(wh) > max_boxes:
        wh = wh[torch.randperm(len(wh), generator=g)[:max_boxes]]
    centroids = wh[torch.randint(len(wh), (1,), generator=g)]
    for _ in range(1, k):  # k-means++: next centroid drawn with probability ~ distance^2
        d = 1 - shape_iou(wh[:, None], centroids[None]).amax(1)
        centroids = torch.cat([centroids, wh[torch.multinomial(d.square() + 1e-12, 1, generator=g)]])
    assign = None
    for _ in range(iters):
        iou = shape_iou(wh[:, None], centroids[None])  # [N, k]
        new = iou.argmax(1)
        if assign is not None and torch.equal(new, assign):
            break
        assign = new
        for j in range(k):
            members = wh[assign == j]
            if len(members):
                centroids[j] = members.median(0).values
            else:
                far = (1 - iou.amax(1)).argmax()
                centroids[j] = wh[far]
    return centroids[centroids.prod(1).argsort()]


def anchor_fit(wh: torch.Tensor, anchors: Anchors) -> dict:
    """How well ``anchors`` fit boxes ``wh [N, 2]``: mean best shape IoU, share with best IoU >= 0.5."""
    flat = torch.tensor([a for level in anchors for a in level], dtype=torch.float)
    best = shape_iou(wh.float()[:, None], flat[None]).amax(1)
    return {"mean_best_iou": best.mean().item(), "share_iou_ge_0.5": (best >= 0.5).float().mean().item()}


def fit_anchors(wh: torch.Tensor, num_anchors: int, num_levels: int = NUM_LEVELS, seed: int = 0) -> Anchors:
    """``num_levels * num_anchors`` k-means anchors of boxes ``wh [N, 2]``, by area, ``num_anchors`` per level."""
    centroids = kmeans_anchors(wh, num_levels * num_anchors, seed=seed)
    rows = [(round(w, 2), round(h, 2)) for w, h in centroids.tolist()]
    return [rows[i * num_anchors:(i + 1) * num_anchors] for i in range(num_levels)]


def box_sizes(records: Sequence, img_size: int) -> torch.Tensor:
    """(w, h) ``[N, 2]`` of the non-difficult boxes of ``records`` (``ImageRecord`` s), letterboxed to ``img_size``."""
    from ..data.transforms import letterbox_scale

    sizes = [(r.boxes[~r.difficult, 2:] - r.boxes[~r.difficult, :2]) * letterbox_scale(r.height, r.width, img_size)
             for r in records]
    return torch.from_numpy(np.concatenate(sizes) if sizes else np.zeros((0, 2), np.float32)).float()


def resolve_anchors(spec, num_anchors: int, img_size: int, train_box_sizes: Callable[[], torch.Tensor] | None = None,
                    cache_dir: Path | None = None, cache_key: dict | None = None, seed: int = 0,
                    num_levels: int = NUM_LEVELS) -> Anchors:
    """``model.anchors`` -> anchors per level (see the module docstring), ``num_levels`` levels.

    For ``auto``, ``train_box_sizes()`` is called only on a cache miss; the fitted anchors
    are printed and written to ``cache_dir/anchors-<hash of cache_key>.json``.
    """
    check_anchor_spec(spec, num_anchors, num_levels)
    if isinstance(spec, str) and spec == "yolov5":
        return default_anchors(img_size)
    if not isinstance(spec, str):
        return [[(float(w), float(h)) for w, h in level] for level in spec]
    key = dict(cache_key or {}, img_size=img_size, num_anchors=num_anchors, levels=num_levels, seed=seed)
    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"anchors-{digest}.json" if cache_dir else None
    if path and path.is_file():
        anchors = [[tuple(a) for a in level] for level in json.loads(path.read_text())["anchors"]]
        print(f"anchors (auto, cached in {path}): {anchors}", flush=True)
        return anchors
    if train_box_sizes is None:
        raise ValueError("model.anchors=auto needs the training set's box sizes")
    wh = train_box_sizes()
    anchors = fit_anchors(wh, num_anchors, num_levels, seed=seed)
    fit = anchor_fit(wh, anchors)
    print(f"anchors (auto: IoU k-means on {len(wh)} training boxes at {img_size} px): {anchors}; "
          f"mean best IoU {fit['mean_best_iou']:.3f}, {100 * fit['share_iou_ge_0.5']:.1f}% of boxes >= 0.5",
          flush=True)
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"anchors": anchors, "key": key, "fit": fit}, indent=1, default=str))
    return anchors


def check_anchor_spec(spec, num_anchors: int, num_levels: int = NUM_LEVELS) -> None:
    """Raise ValueError unless ``spec`` is ``yolov5`` (needs K = 3), ``auto`` or K positive (w, h) per level."""
    if num_anchors < 1:
        raise ValueError(f"model.num_anchors must be >= 1, got {num_anchors}")
    if isinstance(spec, str):
        if spec not in ("yolov5", "auto"):
            raise ValueError(f"model.anchors must be yolov5, auto or a list of [w, h] per level, got {spec!r}")
        if spec == "yolov5" and num_anchors != len(COCO_ANCHORS[0]):
            raise ValueError(f"model.anchors=yolov5 has 3 anchors per level, but model.num_anchors={num_anchors}; "
                             "use model.anchors=auto or give a list")
        if spec == "yolov5" and num_levels != len(COCO_ANCHORS):
            raise ValueError(f"model.anchors=yolov5 has 3 levels, but the model has {num_levels}; "
                             "use model.anchors=auto or give a list")
        return
    try:
        shape = np.asarray(spec, dtype=float).shape
        positive = bool((np.asarray(spec, dtype=float) > 0).all())
    except (TypeError, ValueError):
        shape, positive = None, False
    if shape != (num_levels, num_anchors, 2) or not positive:
        raise ValueError(
            f"model.anchors: expected {num_levels} levels of model.num_anchors={num_anchors} positive [w, h] pairs "
            f"(e.g. [[[10,13],[16,30],[33,23]],[[30,61],[62,45],[59,119]],[[116,90],[156,198],[373,326]]]), "
            f"got {spec!r}"
        )


def check_head_config(head: str, box_param: str, anchors, num_anchors: int, assigner_name: str) -> None:
    """Raise ValueError on a bad ``model.head`` setup, or an assigner the head cannot train.

    Assigners that match GT to prior boxes by shape declare ``requires_anchors = True``; they
    need ``model.head=anchor`` (several prior boxes per location).
    """
    from ..assigners.base import ASSIGNERS

    if head not in HEADS:
        raise ValueError(f"model.head must be one of {', '.join(HEADS)}, got {head!r}")
    if box_param not in BOX_PARAMS:
        raise ValueError(f"model.box_param must be one of {', '.join(BOX_PARAMS)}, got {box_param!r}")
    if head == "anchor":
        check_anchor_spec(anchors, num_anchors)
    if head == "free" and getattr(ASSIGNERS.get(assigner_name), "requires_anchors", False):
        raise ValueError(
            f"assigner.name={assigner_name} matches GT to anchor boxes and needs several priors per location, "
            f"but model.head=free has one anchor-free prior per cell; set model.head=anchor"
        )
