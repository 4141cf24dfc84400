"""Drawing pieces of the ``digits`` scenes: cluttered backgrounds and resized, varied digit glyphs.

A digit's alpha is its MNIST intensity / 255; its pixels are those with alpha above
``ALPHA_THRESHOLD``, and its box is their tight box (see :func:`render_digit`).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFilter
from scipy import ndimage

ALPHA_THRESHOLD = 0.3  # a digit pixel is one whose alpha (MNIST intensity / 255) exceeds this


def make_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A cluttered, textured background, uint8 [size, size, 3].

    A smooth random colour field (a coarse random grid upsampled bicubically), soft blurred
    blobs, sharp non-digit strokes and shapes, then Gaussian pixel noise.
    """
    grid = int(rng.integers(2, 6))
    coarse = rng.integers(0, 256, (grid, grid, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((size, size), Image.BICUBIC)
    scale = size / 128  # shape counts and extents are specified for a 128 px canvas
    blobs = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(blobs)
    for _ in range(int(rng.integers(1, 6))):
        x, y = rng.uniform(-0.1, 1.1, 2) * size
        rx, ry = rng.uniform(6, 40, 2) * scale
        shape = draw.ellipse if rng.random() < 0.6 else draw.rectangle
        rgba = rng.integers([0, 0, 0, 80], [256, 256, 256, 200])  # opaque-ish random colour
        shape([x - rx, y - ry, x + rx, y + ry], fill=tuple(rgba.tolist()))
    blobs = blobs.filter(ImageFilter.GaussianBlur(float(rng.uniform(1, 6)) * scale))
    image = Image.alpha_composite(image.convert("RGBA"), blobs).convert("RGB")
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(2, round(9 * scale**2) + 3))):
        kind = int(rng.integers(4))
        width = int(rng.integers(1, 4))
        colour = tuple(rng.integers(0, 256, 3).tolist())
        x, y = rng.uniform(0, size, 2)
        ext = rng.uniform(5, 30, 2) * scale
        if kind == 0:  # straight line
            draw.line([x, y, x + rng.uniform(-1, 1) * ext[0] * 2, y + rng.uniform(-1, 1) * ext[1] * 2],
                      fill=colour, width=width)
        elif kind == 1:  # zig-zag polyline
            pts = np.cumsum(rng.uniform(-1, 1, (int(rng.integers(3, 6)), 2)) * ext, axis=0) + (x, y)
            draw.line([tuple(p) for p in pts], fill=colour, width=width, joint="curve")
        elif kind == 2:  # open arc
            start = float(rng.uniform(0, 360))
            draw.arc([x, y, x + ext[0], y + ext[1]], start, start + float(rng.uniform(60, 200)),
                     fill=colour, width=width)
        else:  # outlined rectangle or triangle
            if rng.random() < 0.5:
                draw.rectangle([x, y, x + ext[0], y + ext[1]], outline=colour, width=width)
            else:
                pts = rng.uniform(-1, 1, (3, 2)) * ext + (x, y)
                draw.polygon([tuple(p) for p in pts], outline=colour, width=width)

    noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, rng.uniform(0, 10), (size, size, 3))
    return noisy.round().clip(0, 255).astype(np.uint8)


def distort_digit(rng: np.random.Generator, digit: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """A random elastic-free variant of one MNIST digit: rotation, shear, aspect and stroke width.

    Rotation up to 12 deg, shear up to 0.25, aspect 0.8-1.2 (all times ``strength``), and with
    probability 1/3 strokes one pixel thicker. The 28x28 digit is
    padded to 40x40 first so nothing is cut; returns uint8 [40, 40].
    """
    big = np.pad(digit, 6)
    angle = np.deg2rad(rng.uniform(-12, 12) * strength)
    shear = rng.uniform(-0.25, 0.25) * strength
    aspect = np.exp(rng.uniform(np.log(0.8), np.log(1.2)) * strength)
    # Output -> input map (PIL's AFFINE convention) about the centre: inverse of rotate @ shear @ scale.
    forward = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) @ \
        np.array([[1.0, shear], [0.0, 1.0]]) @ np.diag([aspect, 1 / aspect])
    inverse = np.linalg.inv(forward)
    c = np.array([19.5, 19.5])
    offset = c - inverse @ c
    coeffs = (inverse[0, 0], inverse[0, 1], offset[0], inverse[1, 0], inverse[1, 1], offset[1])
    out = np.asarray(Image.fromarray(big).transform(big.shape[::-1], Image.AFFINE, coeffs, Image.BILINEAR))
    out = np.where(out < 0.1 * 255, 0, out).astype(np.uint8)  # drop the faint resampling halo
    if rng.random() < 1 / 3:  # thicker strokes (thinning is left out: it breaks thin digits into specks)
        out = ndimage.grey_dilation(out, size=(2, 2))
    return np.ascontiguousarray(out)


def render_digit(digit: np.ndarray, size: float) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """Resize one 28x28 MNIST digit so its tight box's longer side is about ``size`` px.

    Returns the alpha patch float32 [h, w] in [0, 1] (cropped to its nonzero pixels) and the
    tight box of ``alpha > ALPHA_THRESHOLD`` inside the patch, xyxy, x1/y1 exclusive.
    """
    ys, xs = np.nonzero(digit > ALPHA_THRESHOLD * 255)
    if not len(xs):
        raise ValueError("digit has no pixel above the alpha threshold")
    longer = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1
    ys0, xs0 = np.nonzero(digit)
    crop = digit[ys0.min():ys0.max() + 1, xs0.min():xs0.max() + 1]
    factor = size / longer
    best = None
    for _ in range(4):  # resampling moves the thresholded edges by a pixel or so: correct, keep the closest
        new_w, new_h = max(1, round(crop.shape[1] * factor)), max(1, round(crop.shape[0] * factor))
        alpha = np.asarray(Image.fromarray(crop).resize((new_w, new_h), Image.BILINEAR), np.float32) / 255
        ys, xs = np.nonzero(alpha > ALPHA_THRESHOLD)
        got = max(xs.max() - xs.min(), ys.max() - ys.min()) + 1 if len(xs) else 0
        if got and (best is None or abs(got - round(size)) < abs(best[0] - round(size))):
            best = (got, alpha)
        if got == round(size):
            break
        factor *= round(size) / got if got else 1.5
    if best is None:
        raise ValueError("digit vanished when resized; no pixel above the alpha threshold")
    alpha = best[1]
    ys, xs = np.nonzero(alpha)
    alpha = alpha[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
    ys, xs = np.nonzero(alpha > ALPHA_THRESHOLD)
    return alpha, (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
