"""COCO JSON annotations (``instances_*.json``) -> :class:`ImageRecord` list.

Layout of the ``coco`` dataset root::

    root/annotations/instances_train2017.json
    root/train2017/000000000009.jpg ...
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from yolozoo.data.base import DatasetError, DetectionDataset, ImageRecord
from yolozoo.data.registry import check_files_exist, register_dataset, require_root

log = logging.getLogger(__name__)


def _load_json(path: Path) -> dict:
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise DatasetError(f"{path}: cannot read annotation file ({e.strerror or e})") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        where = f" at line {e.lineno}, column {e.colno}" if isinstance(e, json.JSONDecodeError) else ""
        raise DatasetError(f"{path}: malformed JSON{where}: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a JSON object at the top level, got {type(data).__name__}")
    return data


def _field(path: Path, where: str, item: object, key: str) -> object:
    """``item[key]``; a clear error naming file, location and key when it is missing."""
    if not isinstance(item, dict):
        raise DatasetError(f"{path}: {where}: expected an object, got {type(item).__name__}")
    if key not in item:
        raise DatasetError(f"{path}: {where}: missing key {key!r}")
    return item[key]


def _list(path: Path, data: dict, key: str) -> list:
    value = _field(path, "top level", data, key)
    if not isinstance(value, list):
        raise DatasetError(f"{path}: {key!r} must be a list, got {type(value).__name__}")
    return value


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id(value: object) -> bool:
    """An image or category id: an integer or a string (hashable, comparable with its kind)."""
    return _is_int(value) or isinstance(value, str)


def _is_number(value: object) -> bool:
    """A finite int or float that fits float32 pixel coordinates (|v| <= 1e9)."""
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value) and abs(value) <= 1e9


def parse_coco(ann_file: Path, image_dir: Path) -> tuple[list[ImageRecord], list[str]]:
    """Parse a COCO detection file.

    Categories map to contiguous 0-based labels in ascending category-id order; ``bbox``
    ``[x, y, w, h]`` becomes xyxy pixels; ``iscrowd=1`` becomes ``difficult=True`` (ignored
    by evaluation). Image ids are kept when all are ``>= 1``; otherwise every record gets
    id 0 so :class:`DetectionDataset` numbers them 1..N in file order.

    Returns:
        (records in the file's image order, class names indexed by label).
    """
    ann_file, image_dir = Path(ann_file), Path(image_dir)
    data = _load_json(ann_file)
    images, categories, annotations = (
        _list(ann_file, data, key) for key in ("images", "categories", "annotations")
    )

    cat_ids, names = [], {}
    for i, cat in enumerate(categories):
        cid, name = (_field(ann_file, f"categories[{i}]", cat, k) for k in ("id", "name"))
        if not _is_id(cid):
            raise DatasetError(f"{ann_file}: categories[{i}]: id must be an integer or a string, got {cid!r}")
        if cid in names:
            raise DatasetError(f"{ann_file}: categories[{i}]: duplicate category id {cid}")
        cat_ids.append(cid)
        names[cid] = str(name)
    cat_ids.sort(key=lambda c: (isinstance(c, str), c))  # numbers first, then string ids
    label_of = {cid: k for k, cid in enumerate(cat_ids)}

    per_image: dict[object, tuple[list, list, list, list]] = {}  # boxes, labels, crowd, annotation index
    image_info = []
    for i, img in enumerate(images):
        iid, file_name, width, height = (
            _field(ann_file, f"images[{i}]", img, k) for k in ("id", "file_name", "width", "height")
        )
        if not _is_id(iid):
            raise DatasetError(f"{ann_file}: images[{i}]: id must be an integer or a string, got {iid!r}")
        if iid in per_image:
            raise DatasetError(f"{ann_file}: images[{i}]: duplicate image id {iid}")
        if not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            raise DatasetError(f"{ann_file}: images[{i}]: width/height must be positive integers, "
                               f"got {width!r}x{height!r}")
        per_image[iid] = ([], [], [], [])
        image_info.append((iid, image_dir / str(file_name), width, height))

    for i, ann in enumerate(annotations):
        where = f"annotations[{i}]"
        iid, cid, bbox = (_field(ann_file, where, ann, k) for k in ("image_id", "category_id", "bbox"))
        if not _is_id(cid) or cid not in label_of:
            raise DatasetError(f"{ann_file}: {where}: unknown category_id {cid}")
        if not _is_id(iid) or iid not in per_image:
            raise DatasetError(f"{ann_file}: {where}: unknown image_id {iid}")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
                and bbox[2] >= 0 and bbox[3] >= 0):
            raise DatasetError(f"{ann_file}: {where}: bbox must be 4 finite numbers [x, y, w, h] (|v| <= 1e9), "
                               f"w, h >= 0, got {bbox!r}")
        boxes, labels, crowd, index = per_image[iid]
        boxes.append(bbox)
        labels.append(label_of[cid])
        crowd.append(bool(ann.get("iscrowd", 0)))
        index.append(i)

    check_files_exist((file for _, file, _, _ in image_info), ann_file)

    keep_ids = all(isinstance(iid, int) and iid >= 1 for iid, *_ in image_info)
    if not keep_ids:
        log.info("%s: image ids are not all integers >= 1; numbering images 1..N", ann_file)
    records = []
    for iid, file, width, height in image_info:
        boxes, labels, crowd, index = per_image[iid]
        xyxy = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        xyxy[:, 2:] += xyxy[:, :2]  # xywh -> xyxy
        records.append(ImageRecord(file=file, width=width, height=height, boxes=xyxy, labels=labels,
                                   difficult=crowd, image_id=iid if keep_ids else 0, annotation=ann_file,
                                   box_ids=index, box_ref="annotations[{}]"))
    return records, [names[cid] for cid in cat_ids]


@register_dataset("coco")
def build_coco(
    split: str, root: str | Path | None, train_set: str = "train2017", val_set: str = "val2017"
) -> DetectionDataset:
    """COCO from ``root/annotations/instances_<set>.json`` and images in ``root/<set>/``
    (the official layout) or ``root/images/<set>/`` (the layout ``export_dataset`` writes)."""
    root = require_root("coco", root)
    image_set = train_set if split == "train" else val_set
    image_dir = root / image_set if (root / image_set).is_dir() else root / "images" / image_set
    records, classes = parse_coco(root / "annotations" / f"instances_{image_set}.json", image_dir)
    return DetectionDataset(records, classes, name=f"coco/{image_set}")
