"""COCO-style box evaluation on top of ``faster_coco_eval`` (AP is never re-implemented here).

Ground truth is the COCO dict from :meth:`yolozoo.data.base.DetectionDataset.coco_gt`:
1-based image and annotation ids, ``category_id = label + 1``, boxes ``[x, y, w, h]``
original-image pixels, VOC 'difficult' boxes marked ``iscrowd=1``.

Why ``iscrowd`` and not only ``ignore``: faster-coco-eval (like pycocotools) overwrites an
annotation's ``ignore`` with its ``iscrowd`` before matching, so ``iscrowd=1`` is what makes a
difficult box ignored. An ignored box is not counted as a miss when undetected, and a
detection matched to it is dropped from the precision count (neither TP nor FP). Matching a
crowd box uses intersection over the *detection's* area, so a detection lying inside a
difficult box is ignored too (VOC's devkit would use plain IoU there).

Metric names returned by :func:`evaluate_detections`::

    mAP    AP averaged over IoU 0.50:0.05:0.95 and over classes (the COCO headline number)
    mAP50  AP at IoU 0.50;   mAP75  AP at IoU 0.75
    APs, APm, APl   mAP restricted to GT of area < 32^2, 32^2..96^2, > 96^2 px (original image)
    AR100  recall with at most 100 detections per image and class, averaged like mAP
    per_class  {name: {"AP": .., "AP50": ..}}

A metric with nothing to measure (no GT of that size, a class with no GT) is ``nan``, never
COCO's ``-1`` sentinel, so it shows as missing instead of being averaged in.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from faster_coco_eval import COCO, COCOeval_faster

SUMMARY_KEYS = ("mAP50", "mAP", "mAP75", "APs", "APm", "APl", "AR100")

# faster-coco-eval's ``stats_as_dict`` labels for the default maxDets [1, 10, 100] and
# area ranges (its AR labels are positional: "AR_third" is AR at maxDets=100).
_COCO_LABELS = {
    "mAP": "AP_all",
    "mAP50": "AP_50",
    "mAP75": "AP_75",
    "APs": "AP_small",
    "APm": "AP_medium",
    "APl": "AP_large",
    "AR100": "AR_third",
}


def _silent(*args, **kwargs) -> None:
    """faster-coco-eval prints progress through a callable; this one drops it."""


def _nan_if_missing(value: float) -> float:
    """COCO marks "nothing to evaluate" with -1; report it as NaN."""
    return float("nan") if value < 0 else float(value)


def _as_numpy(value, what: str) -> np.ndarray:
    """A tensor (any device, with or without grad), ndarray or list as a numpy array."""
    if isinstance(value, torch.Tensor):
        value = value.detach().to("cpu", torch.float64 if value.is_floating_point() else value.dtype)
        return value.numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what}: cannot convert {type(value).__name__} to an array ({e})") from e


def _check_gt(coco_gt: dict, class_names: list[str]) -> None:
    """Ground truth must be a COCO dict whose categories are ``1..K`` named ``class_names``."""
    for key in ("images", "annotations", "categories"):
        if key not in coco_gt:
            raise ValueError(f"coco_gt: missing key {key!r} (expected a dict from DetectionDataset.coco_gt())")
    cats = {c["id"]: c.get("name") for c in coco_gt["categories"]}
    expected = {k + 1: name for k, name in enumerate(class_names)}
    if set(cats) != set(expected):
        raise ValueError(
            f"coco_gt: category ids {sorted(cats)} do not match class_names "
            f"(expected 1..{len(class_names)}, category_id = label + 1)"
        )
    for cid, name in cats.items():
        if name is not None and name != expected[cid]:
            raise ValueError(
                f"coco_gt: category id {cid} is named {name!r} but class_names[{cid - 1}] is {expected[cid]!r}"
            )


def _to_coco_results(detections: list[dict], image_ids: set[int], num_classes: int) -> list[dict]:
    """Per-image xyxy detections -> COCO result dicts (``bbox`` xywh, ``category_id = label + 1``)."""
    results: list[dict] = []
    seen: set[int] = set()
    for i, det in enumerate(detections):
        where = f"detections[{i}]"
        for key in ("image_id", "boxes", "scores", "labels"):
            if key not in det:
                raise ValueError(f"{where}: missing key {key!r}")
        image_id = det["image_id"]
        if isinstance(image_id, torch.Tensor):
            image_id = image_id.item()
        if isinstance(image_id, (bool, np.bool_)) or not isinstance(image_id, (int, np.integer)):
            raise TypeError(f"{where}: image_id must be an int, got {image_id!r}")
        image_id = int(image_id)
        where = f"{where} (image_id {image_id})"
        if image_id not in image_ids:
            raise ValueError(f"{where}: image_id not in coco_gt (ids are 1-based, as in coco_gt()['images'])")
        if image_id in seen:
            raise ValueError(f"{where}: image_id appears twice; give one entry per image")
        seen.add(image_id)

        boxes = _as_numpy(det["boxes"], f"{where} key 'boxes'").astype(np.float64)
        scores = _as_numpy(det["scores"], f"{where} key 'scores'").astype(np.float64).reshape(-1)
        labels = _as_numpy(det["labels"], f"{where} key 'labels'").reshape(-1)
        if boxes.size == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"{where} key 'boxes': expected shape [N, 4] xyxy, got {list(boxes.shape)}")
        if not len(boxes) == len(scores) == len(labels):
            raise ValueError(
                f"{where}: boxes, scores and labels disagree in length ({len(boxes)}, {len(scores)}, {len(labels)})"
            )
        if not len(boxes):
            continue
        if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
            raise ValueError(f"{where}: boxes or scores contain NaN/inf")
        if labels.dtype.kind not in "iu" and not np.array_equal(labels, np.round(labels)):
            raise ValueError(f"{where} key 'labels': expected integer class indices, got dtype {labels.dtype}")
        labels = labels.astype(np.int64)
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            raise ValueError(f"{where} key 'labels': class {int(labels[bad][0])} out of range [0, {num_classes})")

        xywh = boxes.copy()
        xywh[:, 2:] -= xywh[:, :2]  # [N, 4] xyxy -> xywh
        results.extend(
            {"image_id": image_id, "category_id": c + 1, "bbox": b, "score": s}
            for b, s, c in zip(xywh.tolist(), scores.tolist(), labels.tolist())
        )
    return results


def evaluate_detections(coco_gt: dict, detections: list[dict], class_names: list[str]) -> dict:
    """COCO box mAP of ``detections`` against ``coco_gt``.

    Args:
        coco_gt: COCO dict from ``DetectionDataset.coco_gt()`` (1-based ids,
            ``category_id = label + 1``, difficult boxes ``iscrowd=1``). Not modified.
        detections: one dict per image (images without one have no detections)::

                {"image_id": int (1-based, as in coco_gt),
                 "boxes":  float [N, 4] xyxy, original-image pixels (tensor or ndarray),
                 "scores": float [N],
                 "labels": int [N], 0-based class index}

        class_names: name of each label; must match ``coco_gt["categories"]``.

    Returns:
        ``{"mAP50", "mAP", "mAP75", "APs", "APm", "APl", "AR100": float,
        "per_class": {name: {"AP": float, "AP50": float}}}``; ``nan`` where there is no GT
        to measure against (see the module docstring). No detections give 0.0, not an error.

    Raises:
        ValueError: malformed ground truth or detections; the message names the entry and key.
        TypeError: an ``image_id`` that is not an int.
    """
    _check_gt(coco_gt, class_names)
    image_ids = {int(img["id"]) for img in coco_gt["images"]}
    results = _to_coco_results(detections, image_ids, len(class_names))

    # Shallow-copy the annotations: the evaluator writes an "ignore" flag into each GT dict.
    gt = COCO(
        {**coco_gt, "annotations": [dict(a) for a in coco_gt["annotations"]]},
        print_function=_silent,
    )
    dt = gt.loadRes(results)
    coco_eval = COCOeval_faster(gt, dt, iouType="bbox", print_function=_silent)
    coco_eval.run()

    stats = coco_eval.stats_as_dict
    metrics: dict = {name: _nan_if_missing(stats[label]) for name, label in _COCO_LABELS.items()}

    # precision: [T iou thresholds, R recall thresholds, K classes, A area ranges, M maxDets];
    # -1 where a class has no GT. K follows params.catIds (sorted 1..K), so index k is label k.
    precision = coco_eval.eval["precision"]
    per_class = {}
    for k, name in enumerate(class_names):
        p = precision[:, :, k, 0, -1]  # area "all", maxDets 100
        valid = p[p > -1]
        valid50 = p[0][p[0] > -1]  # iouThrs[0] == 0.50
        per_class[name] = {
            "AP": float(valid.mean()) if valid.size else float("nan"),
            "AP50": float(valid50.mean()) if valid50.size else float("nan"),
        }
    metrics["per_class"] = per_class
    return metrics


def format_metrics(metrics: dict) -> str:
    """A plain-text summary of :func:`evaluate_detections` output; NaN shows as ``-``.

    One row of the headline metrics, then (if present) one row per class with AP50 and AP.
    """
    summary = pd.DataFrame([{k: metrics.get(k, math.nan) for k in SUMMARY_KEYS}])
    text = summary.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3f}")
    per_class = metrics.get("per_class") or {}
    if per_class:
        table = pd.DataFrame(
            [{"class": name, "AP50": v["AP50"], "AP": v["AP"]} for name, v in per_class.items()]
        )
        text += "\n\n" + table.to_string(index=False, na_rep="-", float_format=lambda v: f"{v:.3f}")
    return text
