"""Detections on images: an image file, a folder of them, or a dataset's val split.

:func:`predict` letterboxes each image as validation does, runs the detector and NMS, maps
the boxes back to the original image and writes, under ``out``:

    images/<name>           the image with its boxes drawn (class name and score)
    detections.json         COCO results: [{"image_id", "category_id", "bbox": [x, y, w, h], "score",
                            "file_name"}], category_id = label + 1, bbox in original-image pixels

For a dataset, ``image_id`` is the dataset's (so the file evaluates against its COCO ground
truth); for files, it is the 1-based position in sorted order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torch import nn

from .data.base import read_image
from .data.transforms import Letterbox, letterbox_scale
from .postprocess import postprocess

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
_COLORS = [(230, 25, 75), (60, 180, 75), (0, 130, 200), (245, 130, 48), (145, 30, 180), (70, 240, 240),
           (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128)]


@dataclass
class Source:
    """Images to predict on: ``files`` with their ``image_ids``."""

    files: list[Path]
    image_ids: list[int]


def image_source(source: str | Path) -> Source:
    """An image file or a folder of images (sorted; not recursive); a clear error names the path."""
    path = Path(source)
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"source={path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
    else:
        raise FileNotFoundError(f"source={path}: no such file or folder (or source=dataset for the val split)")
    return Source(files, list(range(1, len(files) + 1)))


@torch.no_grad()
def detect(model: nn.Module, images: list[torch.Tensor], img_size: int, **postprocess_kw) -> list[dict]:
    """images uint8 [3, H, W] each -> per image ``{"boxes" [N, 4] xyxy original px, "scores" [N], "labels" [N]}``."""
    letterbox = Letterbox(img_size)
    batch = torch.stack([letterbox(image) for image in images]).float()  # [B, 3, S, S] 0..255
    device = next(model.parameters()).device
    out = model.eval()(batch.to(device))
    dets = postprocess(out.cls_logits, out.boxes, **postprocess_kw)
    for det, image in zip(dets, images):
        h, w = image.shape[-2:]
        boxes = det["boxes"].cpu() / letterbox_scale(h, w, img_size)
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, w)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, h)
        det.update(boxes=boxes, scores=det["scores"].cpu(), labels=det["labels"].cpu())
    return dets


def draw(image: torch.Tensor, det: dict, classes: list[str]) -> Image.Image:
    """image uint8 [3, H, W] with ``det``'s boxes (xyxy px) drawn, each captioned ``class score``."""
    canvas = Image.fromarray(image.permute(1, 2, 0).numpy())
    pen = ImageDraw.Draw(canvas)
    for box, score, label in zip(det["boxes"].tolist(), det["scores"].tolist(), det["labels"].tolist()):
        color = _COLORS[label % len(_COLORS)]
        pen.rectangle(box, outline=color, width=max(1, round(max(canvas.size) / 200)))
        pen.text((box[0] + 2, box[1] + 1), f"{classes[label]} {score:.2f}", fill=color)
    return canvas


def coco_results(det: dict, image_id: int, file_name: str) -> list[dict]:
    """One image's detections as COCO results (bbox ``[x, y, w, h]`` px, ``category_id`` = label + 1)."""
    return [{"image_id": image_id, "category_id": int(label) + 1,
             "bbox": [round(x0, 3), round(y0, 3), round(x1 - x0, 3), round(y1 - y0, 3)], "score": round(score, 5),
             "file_name": file_name}
            for (x0, y0, x1, y1), score, label in zip(det["boxes"].tolist(), det["scores"].tolist(),
                                                      det["labels"].tolist())]


def predict(model: nn.Module, source: Source, out: Path, img_size: int, classes: list[str], batch_size: int = 16,
            **postprocess_kw) -> dict:
    """Detect on every image of ``source``; write the drawn images and ``detections.json`` under ``out``.

    Returns ``{"images": n, "detections": n, "json": path, "images_dir": path}``.
    """
    images_dir = out / "images"
    images_dir.mkdir(parents=True, exist_ok=True)
    results = []
    for start in range(0, len(source.files), batch_size):
        files = source.files[start:start + batch_size]
        images = [read_image(f) for f in files]
        for file, image_id, image, det in zip(files, source.image_ids[start:], images,
                                              detect(model, images, img_size, **postprocess_kw)):
            suffix = file.suffix.lower() if file.suffix.lower() in IMAGE_SUFFIXES else ".png"
            draw(image, det, classes).save(images_dir / f"{file.stem}{suffix}")
            results += coco_results(det, image_id, file.name)
    path = out / "detections.json"
    path.write_text(json.dumps(results))
    return {"images": len(source.files), "detections": len(results), "json": path, "images_dir": images_dir}
