"""The one sample format every dataset yields, and the base class that produces it.

A format parser (COCO JSON, VOC XML, YOLO txt, the built-in digits) only turns its files
into a list of :class:`ImageRecord` plus class names. Everything else -- reading the
image, sanitising boxes, transforms, the COCO ground truth used by evaluation -- lives
here once.

Sample format (``dataset[i]``)::

    image:  tv_tensors.Image uint8 [3, H, W]
    target: {
        "boxes":      tv_tensors.BoundingBoxes float32 [N, 4] XYXY, pixels of ``image``
        "labels":     int64 [N], 0-based class index
        "difficult":  bool [N] (VOC 'difficult'; ignored by evaluation, never trained on as
                      a miss)
        "image_id":   int, 1-based, equal to the image's id in ``coco_gt()``
        "orig_size":  (H0, W0) of the file on disk, before transforms
    }
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.io import ImageReadMode, decode_image

log = logging.getLogger(__name__)


class DatasetError(ValueError):
    """Bad input: the message names the file (and line or key where there is one)."""


@dataclass
class ImageRecord:
    """One image and its annotations, as parsed from disk. Boxes are XYXY pixels."""

    file: Path
    width: int
    height: int
    boxes: np.ndarray  # float32 [N, 4] xyxy px
    labels: np.ndarray  # int64 [N], 0-based
    difficult: np.ndarray = field(default=None)  # bool [N]
    image_id: int = 0  # 1-based; assigned by DetectionDataset when 0
    # where the boxes came from, for messages: the annotation file, and per box an index that
    # ``box_ref`` formats (``line {}`` of a label file, ``annotations[{}]``, ``object {}``)
    annotation: Path | None = None
    box_ids: np.ndarray = field(default=None)  # int64 [N]; default 0..N-1
    box_ref: str = "box {}"

    def __post_init__(self):
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.difficult is None:
            self.difficult = np.zeros(len(self.labels), dtype=bool)
        self.difficult = np.asarray(self.difficult, dtype=bool).reshape(-1)
        if self.box_ids is None:
            self.box_ids = np.arange(len(self.labels), dtype=np.int64)
        self.box_ids = np.asarray(self.box_ids, dtype=np.int64).reshape(-1)

    def box_source(self, k: int) -> str:
        """``labels/a.txt: line 3 (image images/a.jpg)``: where box ``k`` was annotated."""
        ref = self.box_ref.format(int(self.box_ids[k])) if k < len(self.box_ids) else f"box {k}"
        return f"{self.annotation or self.file}: {ref}" + (f" (image {self.file})" if self.annotation else "")


@dataclass
class SanitizeReport:
    """Counts of boxes changed while loading, and the first few of each, so a user can see what was fixed."""

    clipped: int = 0
    dropped: int = 0
    examples: list[str] = field(default_factory=list)  # "labels/a.txt:3 (image a.jpg): clipped [..] to [..]"

    def __bool__(self) -> bool:
        return bool(self.clipped or self.dropped)

    def message(self, name: str) -> str:
        more = self.clipped + self.dropped - len(self.examples)
        return (f"{name}: clipped {self.clipped} out-of-bounds box(es) to the image, dropped {self.dropped} "
                f"degenerate box(es): " + "; ".join(self.examples) + (f"; and {more} more" if more > 0 else ""))


# Messages already logged by this process: a dataset built again (train/val setup, anchors) warns once.
_WARNED: set[str] = set()


def sanitize_records(records: list[ImageRecord], num_classes: int, min_size: float = 1.0) -> SanitizeReport:
    """Clip boxes to the image and drop degenerate ones (in place); raise on bad class ids.

    A class id outside ``[0, num_classes)`` is an error (it means the annotation and the
    class list disagree), not something to silently drop.
    """
    report = SanitizeReport()
    for rec in records:
        bad = (rec.labels < 0) | (rec.labels >= num_classes)
        if bad.any():
            raise DatasetError(
                f"{rec.file}: class id {int(rec.labels[bad][0])} out of range [0, {num_classes})"
            )
        if not len(rec.boxes):
            continue
        clipped = rec.boxes.copy()
        np.clip(clipped[:, 0::2], 0, rec.width, out=clipped[:, 0::2])
        np.clip(clipped[:, 1::2], 0, rec.height, out=clipped[:, 1::2])
        keep = ((clipped[:, 2] - clipped[:, 0]) >= min_size) & ((clipped[:, 3] - clipped[:, 1]) >= min_size)
        changed = (np.abs(clipped - rec.boxes).sum(1) > 1e-3) & keep
        report.clipped += int(changed.sum())
        report.dropped += int((~keep).sum())
        for k in np.flatnonzero(changed | ~keep)[: max(0, 3 - len(report.examples))]:
            box = [round(float(v), 1) for v in rec.boxes[k]]
            what = (f"clipped {box} to {[round(float(v), 1) for v in clipped[k]]}" if keep[k] else
                    f"dropped {box} (under {min_size:g} px once clipped to {rec.width}x{rec.height})")
            report.examples.append(f"{rec.box_source(int(k))}: {what}")
        rec.boxes, rec.labels, rec.difficult = clipped[keep], rec.labels[keep], rec.difficult[keep]
        rec.box_ids = rec.box_ids[keep] if len(rec.box_ids) == len(keep) else rec.box_ids
    return report


def read_text(path: Path, what: str = "file") -> str:
    """A UTF-8 text file's contents; unreadable or non-UTF-8 bytes are a DatasetError naming the file."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as e:
        raise DatasetError(f"{path}: cannot read {what} ({e.strerror or e})") from e
    except UnicodeDecodeError as e:
        line = e.object[: e.start].count(b"\n") + 1
        raise DatasetError(f"{path}:{line}: {what} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                           f"{e.start})") from None


def read_image(path: Path) -> torch.Tensor:
    """Read an image file as uint8 [3, H, W] RGB; a clear error names the file."""
    try:
        data = torch.from_numpy(np.fromfile(path, dtype=np.uint8))
    except OSError as e:
        raise DatasetError(f"{path}: cannot read image ({e.strerror or e})") from e
    try:
        return decode_image(data, mode=ImageReadMode.RGB)
    except RuntimeError as e:
        raise DatasetError(f"{path}: unreadable image ({e})") from e


class DetectionDataset(Dataset):
    """A list of :class:`ImageRecord` served in the sample format above.

    Args:
        records: parsed annotations; ``image_id`` 0 means "assign 1-based in order".
        classes: class names; label ``k`` is ``classes[k]``.
        transforms: a torchvision.transforms.v2 callable on ``(image, target)``.
        name: shown in logs and errors.
    """

    def __init__(
        self,
        records: list[ImageRecord],
        classes: list[str],
        transforms: Callable | None = None,
        name: str = "dataset",
    ):
        self.records = records
        self.classes = list(classes)
        self.transforms = transforms
        self.name = name
        for i, rec in enumerate(records):
            if rec.image_id == 0:
                rec.image_id = i + 1
        report = sanitize_records(records, len(self.classes))
        if report and report.message(name) not in _WARNED:
            _WARNED.add(report.message(name))
            log.warning("%s", report.message(name))
        self.sanitize_report = report
        self._images: list[torch.Tensor] | None = None

    def cache_images(self, threads: int | None = None) -> None:
        """Decode every image once and keep it in memory (uint8), so loader workers skip decoding.

        Call it before the loader's worker processes start: they then share the decoded images.
        """
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(threads or min(16, os.cpu_count() or 1)) as pool:  # decoding releases the GIL
            self._images = list(pool.map(read_image, (rec.file for rec in self.records)))

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, index: int) -> tuple[tv_tensors.Image, dict]:
        """The untransformed sample ``index``."""
        rec = self.records[index]
        image = self._images[index] if self._images is not None else read_image(rec.file)
        h, w = image.shape[-2:]
        if (h, w) != (rec.height, rec.width):
            raise DatasetError(
                f"{rec.file}: image is {w}x{h} but its annotation says {rec.width}x{rec.height}"
            )
        target = {
            "boxes": tv_tensors.BoundingBoxes(
                torch.from_numpy(rec.boxes), format="XYXY", canvas_size=(h, w)
            ),
            "labels": torch.from_numpy(rec.labels),
            "difficult": torch.from_numpy(rec.difficult),
            "image_id": rec.image_id,
            "orig_size": (h, w),
        }
        return tv_tensors.Image(image), target

    def __getitem__(self, index: int):
        image, target = self.load(index)
        if self.transforms is not None:
            image, target = self.transforms(image, target)
        return image, target

    def coco_gt(self) -> dict:
        """Ground truth as a COCO dict: 1-based image/annotation ids, category id = label + 1.

        VOC ``difficult`` boxes become ``iscrowd=1`` / ``ignore=1`` so a detection on them
        is neither a true nor a false positive.
        """
        images, annotations = [], []
        for rec in self.records:
            images.append({"id": rec.image_id, "width": rec.width, "height": rec.height,
                           "file_name": str(rec.file)})
            for box, label, difficult in zip(rec.boxes.tolist(), rec.labels.tolist(), rec.difficult.tolist()):
                x0, y0, x1, y1 = box
                annotations.append({
                    "id": len(annotations) + 1,
                    "image_id": rec.image_id,
                    "category_id": label + 1,
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "area": (x1 - x0) * (y1 - y0),
                    "iscrowd": int(difficult),
                    "ignore": int(difficult),
                })
        categories = [{"id": k + 1, "name": n} for k, n in enumerate(self.classes)]
        return {"images": images, "annotations": annotations, "categories": categories}
