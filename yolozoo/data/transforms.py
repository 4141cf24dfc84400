"""Box-aware image transforms built from torchvision.transforms.v2.

All transforms take and return ``(image, target)`` in the sample format of
``yolozoo.data.base``: image ``tv_tensors.Image`` uint8 [3, H, W] (never normalised here; the
model does that), ``target["boxes"]`` ``tv_tensors.BoundingBoxes`` [N, 4] XYXY pixels, and
``labels`` / ``difficult`` [N] aligned with the boxes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as F

from yolozoo.data.base import DetectionDataset


def letterbox_scale(orig_h: int, orig_w: int, size: int) -> float:
    """The factor :class:`Letterbox` multiplies coordinates by; divide predictions by it.

    Padding is bottom/right only, so ``box_orig = box_letterboxed / letterbox_scale(...)``
    with no offset.
    """
    return size / max(orig_h, orig_w)


def color_jitter_batch(images: torch.Tensor, strength: float) -> torch.Tensor:
    """Brightness, contrast, then saturation jitter of a whole batch where it lies (on the GPU, say).

    images: uint8 [B, 3, H, W]; each image draws its three factors from ``1 +- strength``, as
    ``v2.ColorJitter`` does, but in a fixed order and after the letterbox (the padding is jittered
    too). Returns uint8 [B, 3, H, W].
    """
    x = images.float()
    f = 1 + (torch.rand(3, x.shape[0], 1, 1, 1, device=x.device) * 2 - 1) * strength  # [3, B, 1, 1, 1]
    weights = torch.tensor([0.299, 0.587, 0.114], device=x.device).view(1, 3, 1, 1)
    x = (x * f[0]).clamp(0, 255)
    mean = (x * weights).sum(1, keepdim=True).mean((2, 3), keepdim=True)
    x = (f[1] * x + (1 - f[1]) * mean).clamp(0, 255)
    gray = (x * weights).sum(1, keepdim=True)
    return (f[2] * x + (1 - f[2]) * gray).clamp(0, 255).to(torch.uint8)


class Letterbox(v2.Transform):
    """Resize the longer side to ``size`` keeping aspect, then pad bottom/right to ``size x size``.

    Boxes are multiplied by exactly :func:`letterbox_scale` (the same factor on both axes),
    so the mapping back to the original image is a single division. The image's shorter
    side is rounded to whole pixels, which moves content by at most half a pixel.

    Args:
        size: output side S; the output image is uint8 [3, S, S].
        fill: padding value for the image.
    """

    def __init__(self, size: int, fill: int = 114):
        super().__init__()
        self.size = int(size)
        self.fill = fill

    def transform(self, inpt: Any, params: dict[str, Any]) -> Any:
        if isinstance(inpt, tv_tensors.BoundingBoxes):
            if tv_tensors.is_rotated_bounding_format(inpt.format):
                raise ValueError(f"Letterbox: rotated box format {inpt.format} is not supported")
            h, w = inpt.canvas_size
            scale = letterbox_scale(h, w, self.size)
            return tv_tensors.wrap(inpt * scale, like=inpt, canvas_size=(self.size, self.size))
        if isinstance(inpt, tv_tensors.KeyPoints):
            raise TypeError("Letterbox: keypoints are not supported")
        # What remains is image-like: tv_tensors.Image/Mask/Video, a PIL image, or the pure
        # tensor that v2 treats as the image when the sample holds no tv_tensors.Image.
        return self._resize_pad(inpt)

    def _resize_pad(self, image: torch.Tensor) -> torch.Tensor:
        h, w = F.get_size(image)
        scale = letterbox_scale(h, w, self.size)
        new_h, new_w = min(self.size, round(h * scale)), min(self.size, round(w * scale))
        if (new_h, new_w) != (h, w):
            image = F.resize(image, [new_h, new_w], antialias=True)
        if (new_h, new_w) != (self.size, self.size):
            fill = 0 if isinstance(image, tv_tensors.Mask) else self.fill
            image = F.pad(image, [0, 0, self.size - new_w, self.size - new_h], fill=fill)
        return image

    def extra_repr(self) -> str:
        return f"size={self.size}, fill={self.fill}"


def _labels_and_difficult(inputs: Any) -> tuple[torch.Tensor, ...]:
    """For SanitizeBoundingBoxes: the per-box tensors to filter together with the boxes."""
    items = inputs if isinstance(inputs, (tuple, list)) else [inputs]
    target = next(x for x in items if isinstance(x, dict))
    return tuple(target[k] for k in ("labels", "difficult") if k in target)


class RandomScaleTranslate(v2.Transform):
    """Random zoom and shift (``v2.RandomAffine`` without rotation or shear) that drops cut-off boxes.

    The image is scaled by a factor in ``[1 - scale, 1 + scale]`` about its centre and shifted by
    up to ``translate`` of its size; uncovered pixels get ``fill``. A box keeps its label only if
    at least ``min_visible`` of its transformed area is still on the canvas (a digit cut in half
    is not that digit any more); otherwise it is made empty, so a following
    ``SanitizeBoundingBoxes`` drops it together with its labels. Kept boxes are clipped.
    """

    def __init__(self, scale: float = 0.3, translate: float = 0.1, min_visible: float = 0.6, fill: int = 114):
        super().__init__()
        if not 0 <= scale < 1 or not 0 <= translate < 1:
            raise ValueError(f"RandomScaleTranslate: scale and translate must be in [0, 1), got {scale}, {translate}")
        self.affine = v2.RandomAffine(degrees=0, translate=(translate, translate), scale=(1 - scale, 1 + scale),
                                      interpolation=v2.InterpolationMode.BILINEAR, fill=fill)
        self.min_visible = min_visible

    def forward(self, *inputs: Any) -> Any:
        sample = inputs if len(inputs) > 1 else inputs[0]
        image, target = sample
        boxes = target["boxes"]
        unclamped = tv_tensors.wrap(boxes.as_subclass(torch.Tensor), like=boxes, clamping_mode=None)
        image, moved = self.affine(image, unclamped)
        raw = moved.as_subclass(torch.Tensor)
        h, w = moved.canvas_size
        clipped = torch.stack([raw[:, 0].clamp(0, w), raw[:, 1].clamp(0, h), raw[:, 2].clamp(0, w),
                               raw[:, 3].clamp(0, h)], dim=1)
        area = (raw[:, 2:] - raw[:, :2]).clamp(min=0).prod(1)
        visible = (clipped[:, 2:] - clipped[:, :2]).prod(1) / area.clamp(min=1e-6)
        clipped[visible < self.min_visible, 2:] = clipped[visible < self.min_visible, :2]  # empty: dropped later
        target = {**target, "boxes": tv_tensors.wrap(clipped, like=boxes)}
        return image, target


def build_transforms(img_size: int, train: bool, flip: float = 0.5, color_jitter: float = 0.3,
                     scale: float = 0.0, translate: float = 0.0) -> v2.Compose:
    """The standard pipeline on ``(image, target)``; outputs uint8 [3, S, S] with ``S = img_size``.

    train: colour jitter (brightness/contrast/saturation factors in ``1 +- color_jitter``;
    0 disables it) -> :class:`Letterbox` -> :class:`RandomScaleTranslate` (zoom ``1 +- scale``,
    shift up to ``translate``; both 0 disable it) -> horizontal flip with probability ``flip``
    (0 disables it) -> drop boxes under 1 px, keeping ``labels`` and ``difficult`` aligned.
    val: :class:`Letterbox` only.
    """
    if not train:
        return v2.Compose([Letterbox(img_size)])
    steps: list[v2.Transform] = []
    if color_jitter > 0:
        steps.append(v2.ColorJitter(brightness=color_jitter, contrast=color_jitter, saturation=color_jitter))
    steps.append(Letterbox(img_size))
    if scale > 0 or translate > 0:
        steps.append(RandomScaleTranslate(scale, translate))
    if flip > 0:
        steps.append(v2.RandomHorizontalFlip(p=flip))
    steps.append(v2.SanitizeBoundingBoxes(min_size=1.0, labels_getter=_labels_and_difficult))
    return v2.Compose(steps)


class MosaicDataset(Dataset):
    """Wrap a :class:`DetectionDataset` so a sample is, with probability ``prob``, a 4-image mosaic.

    A mosaic is an S x S canvas (``S = img_size``, fill 114) split at a random centre
    ``(xc, yc)`` drawn uniformly from ``[S/4, 3S/4]^2``. Four images (the indexed one and three
    random ones), each resized so its longer side is S, meet at the centre: their
    bottom-right, bottom-left, top-right and top-left corners touch it, and what falls
    outside the canvas is cut off. Boxes are scaled, shifted, clipped to the canvas and
    dropped when under ``min_size`` px. The wrapped dataset's ``transforms`` are then applied
    (its Letterbox to S is then the identity; flip and colour jitter still act).

    A mosaic sample has the indexed image's ``image_id`` and ``orig_size = (S, S)``; without a
    mosaic the sample is ``dataset[index]`` unchanged.

    Randomness: each call seeds a generator from ``(seed, index, one draw of torch's RNG)``.
    Like the v2 random transforms, it thus follows torch's RNG, which the DataLoader seeds
    per worker and which advances across epochs (also with persistent workers): new mosaics
    every epoch, reproducible under ``torch.manual_seed`` / ``seed_everything``.
    """

    def __init__(self, dataset: DetectionDataset, img_size: int, prob: float = 1.0, seed: int = 0,
                 min_size: float = 1.0, fill: int = 114):
        if not 0.0 <= prob <= 1.0:
            raise ValueError(f"MosaicDataset: prob must be in [0, 1], got {prob}")
        self.dataset = dataset
        self.img_size = int(img_size)
        self.prob = prob
        self.seed = seed
        self.min_size = min_size
        self.fill = fill

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[tv_tensors.Image, dict]:
        rng = np.random.default_rng([self.seed, index, int(torch.randint(2**62, ()))])
        if rng.random() >= self.prob:
            return self.dataset[index]
        image, target = self._mosaic(index, rng)
        transforms = self.dataset.transforms
        return transforms(image, target) if transforms is not None else (image, target)

    def _mosaic(self, index: int, rng: np.random.Generator) -> tuple[tv_tensors.Image, dict]:
        s = self.img_size
        xc, yc = (int(v) for v in rng.uniform(s / 4, 3 * s / 4, size=2))
        indices = [index, *rng.integers(len(self.dataset), size=3).tolist()]
        canvas = torch.full((3, s, s), self.fill, dtype=torch.uint8)
        boxes, labels, difficult = [], [], []
        for k, idx in enumerate(indices):
            image, target = self.dataset.load(idx)
            h, w = image.shape[-2:]
            scale = letterbox_scale(h, w, s)
            th, tw = min(s, round(h * scale)), min(s, round(w * scale))
            tile = F.resize(image.as_subclass(torch.Tensor), [th, tw], antialias=True)
            # Top-left corner of the tile on the canvas; k = 0..3 is top-left, top-right,
            # bottom-left, bottom-right of the centre.
            x0 = xc - tw if k in (0, 2) else xc
            y0 = yc - th if k in (0, 1) else yc
            cx0, cy0, cx1, cy1 = max(x0, 0), max(y0, 0), min(x0 + tw, s), min(y0 + th, s)
            canvas[:, cy0:cy1, cx0:cx1] = tile[:, cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0]
            boxes.append(target["boxes"].as_subclass(torch.Tensor) * scale + torch.tensor([x0, y0, x0, y0]))
            labels.append(target["labels"])
            difficult.append(target["difficult"])
        boxes = torch.cat(boxes).clamp_(0, s)
        wh = boxes[:, 2:] - boxes[:, :2]
        keep = (wh >= self.min_size).all(dim=1)
        target = {
            "boxes": tv_tensors.BoundingBoxes(boxes[keep], format="XYXY", canvas_size=(s, s)),
            "labels": torch.cat(labels)[keep],
            "difficult": torch.cat(difficult)[keep],
            "image_id": self.dataset.records[index].image_id,
            "orig_size": (s, s),
        }
        return tv_tensors.Image(canvas), target
