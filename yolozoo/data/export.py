"""Write datasets to disk in a standard layout, so other tools (or our own parsers) can read them.

``yolo``::

    out/data.yaml                  path: <out, absolute>, train: images/train, val: ..., names: {0: ...}
    out/images/<split>/a.png       the untransformed image (copied byte for byte)
    out/labels/<split>/a.txt       one "cls cx cy w h" line per box, normalised to [0, 1]

``coco``::

    out/images/<split>/a.png
    out/annotations/instances_<split>.json   (DetectionDataset.coco_gt(), file names relative
                                              to images/<split>/)

Images are copied when their suffix is a common image format, else re-encoded as PNG. VOC
``difficult`` boxes become ``iscrowd=1`` in ``coco``; the YOLO format cannot mark them, so
``yolo`` leaves them out (as the ultralytics VOC conversion does) and logs how many.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
from pathlib import Path

import yaml
from PIL import Image
from tqdm import tqdm

from yolozoo.data.base import DetectionDataset, ImageRecord, read_image
from yolozoo.data.yolo import IMAGE_SUFFIXES

log = logging.getLogger(__name__)

EXPORT_FORMATS = ("coco", "yolo")
_SPLIT_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def _export_names(records: list[ImageRecord]) -> list[str]:
    """A unique file name per record, keeping the original name (stem made unique if needed).

    Uniqueness is on the lower-cased stem, as the YOLO label file is ``<stem>.txt``.
    """
    used, names = set(), []
    for rec in records:
        suffix = rec.file.suffix if rec.file.suffix.lower() in IMAGE_SUFFIXES else ".png"
        stem, n = rec.file.stem, 1
        while stem.lower() in used:
            stem, n = f"{rec.file.stem}_{n}", n + 1
        used.add(stem.lower())
        names.append(stem + suffix)
    return names


def _write_image(rec: ImageRecord, dest: Path) -> None:
    if dest.suffix == rec.file.suffix:
        shutil.copyfile(rec.file, dest)
    else:  # an unusual format: decode (clear error on failure) and store as PNG
        Image.fromarray(read_image(rec.file).permute(1, 2, 0).numpy()).save(dest, format="PNG")


def _yolo_lines(rec: ImageRecord) -> list[str]:
    """``cls cx cy w h`` (normalised) per non-difficult box of ``rec``."""
    lines = []
    for (x0, y0, x1, y1), label, difficult in zip(rec.boxes.tolist(), rec.labels.tolist(),
                                                  rec.difficult.tolist()):
        if not difficult:
            cx, cy = (x0 + x1) / 2 / rec.width, (y0 + y1) / 2 / rec.height
            w, h = (x1 - x0) / rec.width, (y1 - y0) / rec.height
            lines.append(f"{label} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
    return lines


def _check_splits(splits: dict[str, DetectionDataset]) -> list[str]:
    """Validate split names and that all splits share one class list; return that list."""
    if not splits:
        raise ValueError("export_dataset: no splits given")
    for split in splits:
        if not _SPLIT_NAME.match(split):
            raise ValueError(f"export_dataset: split name {split!r} is not a plain folder name")
    (first, ds0), *rest = splits.items()
    for split, ds in rest:
        if ds.classes != ds0.classes:
            raise ValueError(f"export_dataset: splits {first!r} and {split!r} have different classes: "
                             f"{ds0.classes} vs {ds.classes}")
    return ds0.classes


def export_dataset(splits: dict[str, DetectionDataset], fmt: str, out: Path) -> Path:
    """Write ``splits`` (e.g. ``{"train": ds, "val": ds}``) to ``out`` in layout ``fmt``.

    Args:
        splits: split name -> dataset; images are written untransformed (``ds.records``).
        fmt: ``yolo`` or ``coco`` (see the module docstring for each layout).
        out: the new dataset root; it must not exist yet (or be an empty folder). It is
            written into a temporary sibling and renamed when complete, so a failed export
            leaves nothing behind.

    Returns:
        ``out``. For ``yolo`` read it back with ``parse_yolo(out / "data.yaml", split)``; for
        ``coco`` with ``parse_coco(out / "annotations/instances_<split>.json", out / "images/<split>")``.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    classes = _check_splits(splits)
    out = Path(out).expanduser().absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: already exists and is not an empty folder; choose another output")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for split, ds in splits.items():
            _export_split(tmp, split, ds, fmt)
        if fmt == "yolo":
            data = {"path": str(out), **{split: f"images/{split}" for split in splits},
                    "names": dict(enumerate(classes))}
            (tmp / "data.yaml").write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        os.chmod(tmp, 0o755)
        if out.exists():
            out.rmdir()  # empty, checked above
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _export_split(root: Path, split: str, ds: DetectionDataset, fmt: str) -> None:
    image_dir = root / "images" / split
    image_dir.mkdir(parents=True)
    names = _export_names(ds.records)
    for rec, name in tqdm(zip(ds.records, names), total=len(names), desc=f"export {fmt} {split}", unit="img"):
        _write_image(rec, image_dir / name)
    if fmt == "yolo":
        label_dir = root / "labels" / split
        label_dir.mkdir(parents=True)
        for rec, name in zip(ds.records, names):
            lines = _yolo_lines(rec)
            (label_dir / f"{Path(name).stem}.txt").write_text("".join(line + "\n" for line in lines))
        skipped = sum(int(rec.difficult.sum()) for rec in ds.records)
        if skipped:
            log.warning("%s: %d 'difficult' boxes left out of the YOLO labels of %r", ds.name, skipped, split)
    else:
        gt = ds.coco_gt()
        for image, name in zip(gt["images"], names):  # coco_gt lists images in record order
            image["file_name"] = name
        (root / "annotations").mkdir(exist_ok=True)
        (root / "annotations" / f"instances_{split}.json").write_text(json.dumps(gt, separators=(",", ":")))
