"""Pascal VOC (VOCdevkit layout, XML annotations) -> :class:`ImageRecord` list.

Layout of the ``voc`` dataset root (the VOCdevkit directory)::

    root/VOC2007/ImageSets/Main/test.txt     one image id per line
    root/VOC2007/Annotations/<id>.xml
    root/VOC2007/JPEGImages/<id>.jpg
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np

from yolozoo.data.base import DatasetError, DetectionDataset, ImageRecord, read_text
from yolozoo.data.registry import check_files_exist, register_dataset, require_root

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable",
    "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor",
)


def _text(xml_file: Path, node: ET.Element, path: str) -> str:
    """Text of the child at ``path`` (e.g. ``size/width``); an error naming file and element."""
    child = node.find(path)
    if child is None or child.text is None or not child.text.strip():
        raise DatasetError(f"{xml_file}: missing <{path}> in <{node.tag}>")
    return child.text.strip()


def _number(xml_file: Path, node: ET.Element, path: str) -> float:
    value = _text(xml_file, node, path)
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(f"{xml_file}: <{path}> in <{node.tag}> is not a number: {value!r}") from None
    if not (math.isfinite(number) and abs(number) <= 1e9):
        raise DatasetError(f"{xml_file}: <{path}> in <{node.tag}> is not a finite number (|v| <= 1e9): {value!r}")
    return number


def parse_voc_xml(xml_file: Path, class_index: dict[str, int]) -> tuple[int, int, np.ndarray, list, list]:
    """One annotation file -> (width, height, boxes float32 [N, 4] 0-based xyxy, labels, difficult).

    VOC pixel coordinates are 1-based and inclusive, so ``(xmin, ymin, xmax, ymax)`` becomes
    ``(xmin - 1, ymin - 1, xmax, ymax)`` in 0-based continuous xyxy.
    """
    try:
        root = ET.parse(xml_file).getroot()
    except OSError as e:
        raise DatasetError(f"{xml_file}: cannot read annotation ({e.strerror or e})") from e
    except ET.ParseError as e:
        line, col = e.position
        raise DatasetError(f"{xml_file}: malformed XML at line {line}, column {col}: {e.msg}") from e
    width, height = int(_number(xml_file, root, "size/width")), int(_number(xml_file, root, "size/height"))
    if width <= 0 or height <= 0:
        raise DatasetError(f"{xml_file}: <size> must be positive, got {width}x{height}")
    boxes, labels, difficult = [], [], []
    for k, obj in enumerate(root.iter("object")):
        name = _text(xml_file, obj, "name")
        if name not in class_index:
            raise DatasetError(f"{xml_file}: object {k}: unknown class {name!r}")
        bb = obj.find("bndbox")
        if bb is None:
            raise DatasetError(f"{xml_file}: object {k} ({name}): missing <bndbox>")
        x0, y0, x1, y1 = (_number(xml_file, bb, t) for t in ("xmin", "ymin", "xmax", "ymax"))
        boxes.append((x0 - 1, y0 - 1, x1, y1))
        labels.append(class_index[name])
        flag = obj.find("difficult")
        difficult.append(flag is not None and (flag.text or "0").strip() == "1")
    return width, height, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), labels, difficult


def _read_ids(set_file: Path) -> list[str]:
    lines = read_text(set_file, "image set").splitlines()
    ids = []
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        if len(line.split()) != 1:
            raise DatasetError(f"{set_file}:{n}: expected one image id per line, got {line!r}")
        ids.append(line)
    return ids


def parse_voc(
    root: Path, image_sets: list[tuple[str, str]], classes: tuple[str, ...] | list[str] = VOC_CLASSES
) -> tuple[list[ImageRecord], list[str]]:
    """Parse VOC image sets, e.g. ``[("2007", "trainval"), ("2012", "trainval")]``.

    The ``difficult`` flag is kept per box. Records are in set order then file order; their
    ``image_id`` is left 0, so :class:`DetectionDataset` numbers them 1..N in that order.
    """
    root = Path(root)
    class_index = {name: k for k, name in enumerate(classes)}
    records = []
    for year, image_set in image_sets:
        base = root / f"VOC{year}"
        set_file = base / "ImageSets" / "Main" / f"{image_set}.txt"
        ids = _read_ids(set_file)
        files = [base / "JPEGImages" / f"{i}.jpg" for i in ids]
        check_files_exist(files, set_file)
        for image_id, file in zip(ids, files):
            width, height, boxes, labels, difficult = parse_voc_xml(
                base / "Annotations" / f"{image_id}.xml", class_index
            )
            records.append(ImageRecord(file=file, width=width, height=height, boxes=boxes, labels=labels,
                                       difficult=difficult, annotation=base / "Annotations" / f"{image_id}.xml",
                                       box_ref="object {}"))
    return records, list(classes)


def parse_image_sets(spec: str) -> list[tuple[str, str]]:
    """``"2007_trainval,2012_trainval"`` -> ``[("2007", "trainval"), ("2012", "trainval")]``."""
    sets = []
    for item in spec.split(","):
        year, sep, name = item.strip().partition("_")
        if not (sep and year.isdigit() and name):
            raise ValueError(f"VOC image set {item!r} must look like '2007_trainval' (in {spec!r})")
        sets.append((year, name))
    return sets


@register_dataset("voc")
def build_voc(
    split: str,
    root: str | Path | None,
    train_sets: str = "2007_trainval,2012_trainval",
    val_sets: str = "2007_test",
) -> DetectionDataset:
    """Pascal VOC from the VOCdevkit directory ``root``; sets are ``<year>_<set>`` lists."""
    root = require_root("voc", root)
    spec = train_sets if split == "train" else val_sets
    records, classes = parse_voc(root, parse_image_sets(spec))
    return DetectionDataset(records, classes, name=f"voc/{spec}")
