"""YOLO txt layout (a ``data.yaml`` plus one label file per image) -> :class:`ImageRecord` list.

::

    data.yaml:  path: .            # dataset root, relative to the yaml's directory
                train: images/train  # a directory of images, a .txt list of images, or a list of either
                val: images/val
                names: [cat, dog]    # or {0: cat, 1: dog}
    images/train/a.jpg  ->  labels/train/a.txt   (last ``images`` path component -> ``labels``)

Each label line is ``cls cx cy w h`` with coordinates normalised to [0, 1]; a missing
label file means an image with no objects.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from yolozoo.data.base import DatasetError, DetectionDataset, ImageRecord, read_text
from yolozoo.data.registry import check_files_exist, register_dataset, require_root

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"})


def _load_yaml(data_yaml: Path) -> dict:
    try:
        data = yaml.safe_load(read_text(data_yaml, "data.yaml"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise DatasetError(f"{data_yaml}: malformed YAML{where}: {e}") from e
    if not isinstance(data, dict):
        raise DatasetError(f"{data_yaml}: expected a mapping at the top level")
    return data


def _class_names(data_yaml: Path, data: dict) -> list[str]:
    if "names" not in data:
        raise DatasetError(f"{data_yaml}: missing key 'names'")
    names = data["names"]
    if isinstance(names, dict):
        if set(names) != set(range(len(names))):
            raise DatasetError(f"{data_yaml}: 'names' keys must be 0..{len(names) - 1}, got {list(names)}")
        names = [names[k] for k in range(len(names))]
    if not isinstance(names, list) or not names:
        raise DatasetError(f"{data_yaml}: 'names' must be a non-empty list or {{id: name}} mapping")
    if "nc" in data and data["nc"] != len(names):
        raise DatasetError(f"{data_yaml}: 'nc' is {data['nc']} but 'names' has {len(names)} entries")
    return [str(n) for n in names]


def _image_files(data_yaml: Path, base: Path, entry: object) -> list[Path]:
    """Images named by one ``train``/``val`` entry: a directory, a .txt list, or a list of these."""
    if isinstance(entry, list):
        return [f for e in entry for f in _image_files(data_yaml, base, e)]
    path = base / str(entry)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if path.suffix == ".txt" and path.is_file():
        lines = (line.strip() for line in read_text(path, "image list").splitlines())
        return [base / line for line in lines if line]  # paths relative to the dataset root
    raise DatasetError(f"{data_yaml}: {entry!r} is neither an image directory nor a .txt list ({path})")


def label_file(image: Path) -> Path:
    """``.../images/x/a.jpg`` -> ``.../labels/x/a.txt`` (the last ``images`` component)."""
    parts = list(image.parts)
    if "images" not in parts[:-1]:
        raise DatasetError(f"{image}: no 'images' directory in the path, so no labels directory to pair with")
    k = len(parts) - 2 - parts[-2::-1].index("images")
    parts[k] = "labels"
    return Path(*parts).with_suffix(".txt")


def read_label_file(path: Path, width: int, height: int, num_classes: int,
                    lines: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse ``cls cx cy w h`` lines -> (boxes float32 [N, 4] xyxy px, labels int64 [N]).

    ``lines``: if given, each box's 1-based line number is appended to it.
    """
    if not path.is_file():
        return np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    rows, labels = [], []
    for n, line in enumerate(read_text(path, "label file").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise DatasetError(f"{path}:{n}: expected 5 fields 'cls cx cy w h', got {len(fields)}: {line!r}")
        try:
            cls, values = float(fields[0]), [float(v) for v in fields[1:]]
        except ValueError:
            raise DatasetError(f"{path}:{n}: non-numeric field in {line!r}") from None
        if not cls.is_integer() or not 0 <= cls < num_classes:
            raise DatasetError(f"{path}:{n}: class id {fields[0]} out of range [0, {num_classes})")
        if not all(abs(v) <= 1e3 for v in values) or values[2] < 0 or values[3] < 0:  # nan fails abs(v) <= 1e3
            raise DatasetError(f"{path}:{n}: box 'cx cy w h' must be finite normalised values with w, h >= 0, "
                               f"got {line!r}")
        rows.append(values)
        labels.append(int(cls))
        if lines is not None:
            lines.append(n)
    cxcywh = np.asarray(rows, dtype=np.float32).reshape(-1, 4) * np.float32([width, height, width, height])
    xyxy = np.concatenate([cxcywh[:, :2] - cxcywh[:, 2:] / 2, cxcywh[:, :2] + cxcywh[:, 2:] / 2], axis=1)
    return xyxy, np.asarray(labels, dtype=np.int64)


def _image_size(file: Path) -> tuple[int, int]:
    """(width, height) from the file header; PIL does not decode the pixels here."""
    try:
        with Image.open(file) as im:
            return im.size
    except OSError as e:
        raise DatasetError(f"{file}: unreadable image ({e})") from e


def parse_yolo(data_yaml: Path, split: str) -> tuple[list[ImageRecord], list[str]]:
    """Parse the ``split`` entry (e.g. ``train`` or ``val``) of a YOLO ``data.yaml``.

    Returns:
        (records sorted by image path within each entry, class names). ``image_id`` is left
        0, so :class:`DetectionDataset` numbers images 1..N in that order.
    """
    data_yaml = Path(data_yaml)
    data = _load_yaml(data_yaml)
    classes = _class_names(data_yaml, data)
    if split not in data or data[split] is None:
        raise DatasetError(f"{data_yaml}: missing key {split!r} (the {split} images)")
    base = data_yaml.parent / str(data.get("path") or ".")
    files = _image_files(data_yaml, base, data[split])
    if not files:
        raise DatasetError(f"{data_yaml}: no images found for {split!r} ({data[split]!r})")
    check_files_exist(files, data_yaml)
    records = []
    for file in files:
        width, height = _image_size(file)
        labels_path, lines = label_file(file), []
        boxes, labels = read_label_file(labels_path, width, height, len(classes), lines)
        records.append(ImageRecord(file=file, width=width, height=height, boxes=boxes, labels=labels,
                                   annotation=labels_path, box_ids=lines, box_ref="line {}"))
    return records, classes


def find_data_yaml(root: Path) -> Path:
    """``root`` itself if it is a file, else ``root/data.yaml`` or the only ``*.yaml`` in it."""
    if root.is_file():
        return root
    if (root / "data.yaml").is_file():
        return root / "data.yaml"
    candidates = sorted(root.glob("*.yaml"))
    if len(candidates) != 1:
        found = ", ".join(c.name for c in candidates) or "none"
        raise DatasetError(f"{root}: expected data.yaml (or exactly one *.yaml), found {found}")
    return candidates[0]


@register_dataset("yolo")
def build_yolo(split: str, root: str | Path | None) -> DetectionDataset:
    """A YOLO txt dataset; ``root`` is its data.yaml or the directory holding it."""
    data_yaml = find_data_yaml(require_root("yolo", root))
    records, classes = parse_yolo(data_yaml, split)
    return DetectionDataset(records, classes, name=f"yolo/{data_yaml.parent.name}/{split}")
