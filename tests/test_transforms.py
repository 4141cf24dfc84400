"""Letterbox / train pipeline geometry, collate padding and the mosaic wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from yolozoo.data.base import DetectionDataset, ImageRecord
from yolozoo.data.collate import collate_detection
from yolozoo.data.transforms import Letterbox, MosaicDataset, build_transforms, color_jitter_batch, letterbox_scale


def sample(h: int, w: int, boxes, labels=None, difficult=None, image_id: int = 1):
    """A sample in the dataset format: grey image with a white block under the first box."""
    image = torch.full((3, h, w), 50, dtype=torch.uint8)
    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    if len(boxes):
        x0, y0, x1, y1 = boxes[0].int().tolist()
        image[:, y0:y1, x0:x1] = 255
    n = len(boxes)
    target = {
        "boxes": tv_tensors.BoundingBoxes(boxes, format="XYXY", canvas_size=(h, w)),
        "labels": torch.as_tensor(labels if labels is not None else list(range(n)), dtype=torch.int64),
        "difficult": torch.as_tensor(difficult if difficult is not None else [False] * n, dtype=torch.bool),
        "image_id": image_id,
        "orig_size": (h, w),
    }
    return tv_tensors.Image(image), target


@pytest.mark.parametrize("h, w", [(100, 200), (200, 100), (16, 24)])
def test_letterbox_geometry_and_inverse(h, w):
    image, target = sample(h, w, [[w // 8, h // 8, w // 2, 3 * h // 4], [2, 2, w, h]])
    out_image, out = Letterbox(64)(image, target)
    scale = letterbox_scale(h, w, 64)
    assert scale == 64 / max(h, w)
    assert out_image.shape == (3, 64, 64) and out_image.dtype == torch.uint8
    assert isinstance(out["boxes"], tv_tensors.BoundingBoxes) and out["boxes"].canvas_size == (64, 64)
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor), target["boxes"] * scale)
    torch.testing.assert_close(out["boxes"] / letterbox_scale(*out["orig_size"], 64), target["boxes"].float())
    # Content at top-left, padding (114) bottom/right only.
    new_h, new_w = round(h * scale), round(w * scale)
    assert (out_image[:, new_h:, :] == 114).all() and (out_image[:, :, new_w:] == 114).all()
    assert (out_image[:, new_h - 1, :new_w] == 50).all() and (out_image[:, :new_h, new_w - 1] == 50).all()
    # The white block moved with its box.
    x0, y0, x1, y1 = out["boxes"][0].tolist()
    assert (out_image[:, round((y0 + y1) / 2), round((x0 + x1) / 2)] == 255).all()
    assert out["labels"].tolist() == [0, 1] and out["image_id"] == 1 and out["orig_size"] == (h, w)


def test_val_pipeline_is_letterbox_only():
    image, target = sample(30, 60, [[0, 0, 6, 6]])
    out_image, out = build_transforms(32, train=False)(image, target)
    ref_image, ref = Letterbox(32)(image, target)
    assert torch.equal(out_image, ref_image) and torch.equal(out["boxes"], ref["boxes"])


def test_train_flip_moves_boxes():
    image, target = sample(32, 64, [[4, 2, 20, 10]])
    no_flip_image, no_flip = build_transforms(64, train=True, flip=0.0, color_jitter=0.0)(image, target)
    flip_image, flipped = build_transforms(64, train=True, flip=1.0, color_jitter=0.0)(image, target)
    torch.testing.assert_close(no_flip["boxes"].as_subclass(torch.Tensor), torch.tensor([[4.0, 2, 20, 10]]))
    torch.testing.assert_close(flipped["boxes"].as_subclass(torch.Tensor), torch.tensor([[44.0, 2, 60, 10]]))
    assert torch.equal(flip_image, no_flip_image.flip(-1))


def test_train_color_jitter_changes_pixels_not_boxes():
    torch.manual_seed(0)
    image, target = sample(32, 32, [[4, 4, 20, 20]])
    out_image, out = build_transforms(32, train=True, flip=0.0, color_jitter=0.5)(image, target)
    assert out_image.dtype == torch.uint8 and not torch.equal(out_image, image)
    torch.testing.assert_close(out["boxes"], target["boxes"])


def test_train_sanitize_keeps_labels_and_difficult_aligned():
    # At 200 -> 20 px (scale 0.1) the 5 px boxes shrink under 1 px and are dropped.
    image, target = sample(200, 200, [[0, 0, 5, 5], [10, 10, 100, 100], [50, 50, 55, 55], [100, 0, 200, 50]],
                           labels=[3, 1, 4, 2], difficult=[False, True, False, False])
    _, out = build_transforms(20, train=True, flip=0.0, color_jitter=0.0)(image, target)
    expected = torch.tensor([[1.0, 1, 10, 10], [10, 0, 20, 5]])
    torch.testing.assert_close(out["boxes"].as_subclass(torch.Tensor), expected)
    assert out["labels"].tolist() == [1, 2]
    assert out["difficult"].tolist() == [True, False]


def test_collate_shapes_padding_and_mask():
    batch = [
        sample(16, 16, [[0, 0, 4, 4], [2, 2, 8, 8]], labels=[5, 6], difficult=[False, True], image_id=3),
        sample(16, 16, [], image_id=9),  # no boxes
    ]
    batch[1][1]["orig_size"] = (100, 50)
    out = collate_detection(batch)
    assert out["images"].shape == (2, 3, 16, 16) and out["images"].dtype == torch.uint8
    assert type(out["images"]) is torch.Tensor
    assert out["gt_boxes"].shape == (2, 2, 4) and out["gt_boxes"].dtype == torch.float32
    torch.testing.assert_close(out["gt_boxes"][0], torch.tensor([[0.0, 0, 4, 4], [2, 2, 8, 8]]))
    assert (out["gt_boxes"][1] == 0).all()
    assert out["gt_labels"].tolist() == [[5, 6], [0, 0]] and out["gt_labels"].dtype == torch.int64
    assert out["gt_mask"].tolist() == [[True, False], [False, False]]
    assert out["gt_difficult"].tolist() == [[False, True], [False, False]]
    assert out["image_ids"].tolist() == [3, 9] and out["image_ids"].dtype == torch.int64
    assert out["orig_sizes"].tolist() == [[16, 16], [100, 50]] and out["orig_sizes"].dtype == torch.int64


def test_collate_no_boxes_at_all():
    out = collate_detection([sample(8, 8, []), sample(8, 8, [])])
    assert out["gt_boxes"].shape == (2, 0, 4) and out["gt_labels"].shape == (2, 0)
    assert out["gt_mask"].shape == (2, 0) and out["gt_mask"].dtype == torch.bool


def test_collate_mixed_sizes_raise():
    with pytest.raises(ValueError, match=r"must share one size.*image_id 1.*image_id 2"):
        collate_detection([sample(8, 8, [], image_id=1), sample(8, 16, [], image_id=2)])


COLOURS = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255)]


@pytest.fixture
def colour_dataset(tmp_path):
    """Five solid-colour images of different shapes, each one object covering it; label = colour."""
    records = []
    for k, ((w, h), colour) in enumerate(zip([(40, 30), (30, 40), (50, 50), (20, 60), (64, 16)], COLOURS)):
        file = tmp_path / f"{k}.png"
        Image.new("RGB", (w, h), colour).save(file)
        records.append(ImageRecord(file=file, width=w, height=h, boxes=[[0, 0, w, h]], labels=[k],
                                   difficult=[k == 2]))
    return DetectionDataset(records, [str(k) for k in range(5)])


def test_mosaic_size_boxes_and_content(colour_dataset):
    mosaic = MosaicDataset(colour_dataset, img_size=64, seed=1)
    for i in range(len(mosaic)):
        image, target = mosaic[i]
        assert image.shape == (3, 64, 64) and image.dtype == torch.uint8
        boxes = target["boxes"].as_subclass(torch.Tensor)
        assert target["boxes"].canvas_size == (64, 64)
        assert len(boxes) == len(target["labels"]) == len(target["difficult"]) >= 1
        assert (boxes >= 0).all() and (boxes <= 64).all()
        assert ((boxes[:, 2:] - boxes[:, :2]) >= 1).all()
        assert target["image_id"] == i + 1
        assert target["difficult"].tolist() == [label == 2 for label in target["labels"].tolist()]
        for box, label in zip(boxes.tolist(), target["labels"].tolist()):
            # Each tile is one object, so the box centre shows that tile's colour.
            cx, cy = int((box[0] + box[2]) / 2), int((box[1] + box[3]) / 2)
            assert tuple(image[:, cy, cx].tolist()) == COLOURS[label]


def test_mosaic_randomness_follows_torch_rng_and_seed(colour_dataset):
    def images(seed: int, torch_seed: int) -> list[torch.Tensor]:
        torch.manual_seed(torch_seed)
        mosaic = MosaicDataset(colour_dataset, img_size=64, seed=seed)
        return [mosaic[i][0] for i in range(len(mosaic))]

    def same(a, b):
        return all(torch.equal(x, y) for x, y in zip(a, b))

    assert same(images(3, 0), images(3, 0))
    assert not same(images(3, 0), images(3, 1))  # a new epoch / worker draws new mosaics
    assert not same(images(3, 0), images(4, 0))


def test_mosaic_prob_zero_is_plain_dataset(colour_dataset):
    off = MosaicDataset(colour_dataset, img_size=64, prob=0.0)
    image, target = off[1]
    assert image.shape == (3, 40, 30) and target["orig_size"] == (40, 30)


def test_mosaic_applies_dataset_transforms(colour_dataset):
    colour_dataset.transforms = build_transforms(64, train=True, flip=1.0, color_jitter=0.0)
    plain = MosaicDataset(colour_dataset, img_size=64, seed=5)
    torch.manual_seed(0)
    image, target = plain[0]
    colour_dataset.transforms = None
    torch.manual_seed(0)
    raw_image, raw = plain[0]
    assert torch.equal(image, raw_image.flip(-1))
    expected = raw["boxes"].as_subclass(torch.Tensor)[:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) \
        + torch.tensor([64, 0, 64, 0])
    torch.testing.assert_close(target["boxes"].as_subclass(torch.Tensor), expected)


def test_letterbox_pure_tensor_image():
    # Without a tv_tensors.Image in the sample, v2 treats the first plain tensor as the image.
    out = Letterbox(10)(torch.zeros(3, 5, 20, dtype=torch.uint8))
    assert out.shape == (3, 10, 10) and (out[:, 3:, :] == 114).all() and (out[:, :2, :] == 0).all()


def test_boxes_np_vs_tensor_scale_consistent():
    # letterbox_scale is what evaluation divides by; it must match the box scaling for any shape.
    rng = np.random.default_rng(0)
    for h, w in rng.integers(8, 700, size=(20, 2)).tolist():
        _, out = Letterbox(96)(*sample(h, w, [[1, 1, w - 1, h - 1]]))
        torch.testing.assert_close(out["boxes"] / letterbox_scale(h, w, 96),
                                   torch.tensor([[1.0, 1, w - 1, h - 1]]))


def test_scale_translate_moves_white_block_with_its_box_and_drops_cut_boxes():

    kept = dropped = 0
    for seed in range(40):
        torch.manual_seed(seed)
        image, target = sample(64, 64, [[20, 20, 40, 40], [0, 0, 12, 12]], labels=[7, 3], difficult=[False, True])
        out_image, out = build_transforms(64, train=True, flip=0.0, color_jitter=0.0, scale=0.4, translate=0.25)(
            image, target)
        boxes = out["boxes"].as_subclass(torch.Tensor)
        assert len(boxes) == len(out["labels"]) == len(out["difficult"])
        assert (boxes >= 0).all() and (boxes <= 64).all()
        # The block box is whole on the canvas for these ranges; its label and flag follow it.
        assert out["labels"][0] == 7 and not out["difficult"][0]
        x0, y0, x1, y1 = boxes[0].tolist()
        assert 0.6 * 20 - 1 <= x1 - x0 <= 1.4 * 20 + 1 and abs((x1 - x0) - (y1 - y0)) < 1e-3
        inner = out_image[:, round(y0) + 2:round(y1) - 2, round(x0) + 2:round(x1) - 2]
        assert inner.numel() and (inner > 200).all(), "the white block must stay inside its moved box"
        if len(boxes) == 2:  # the corner box survived only if >= 60% of it is still visible
            kept += 1
            assert out["labels"][1] == 3 and out["difficult"][1]
        else:
            dropped += 1
    assert kept and dropped  # the corner box is sometimes shifted off the canvas, sometimes not


def test_scale_translate_rejects_bad_ranges():
    from yolozoo.data.transforms import RandomScaleTranslate

    with pytest.raises(ValueError, match="scale and translate"):
        RandomScaleTranslate(scale=1.2)


def test_cached_images_equal_the_files_and_skip_them(colour_dataset, tmp_path):
    fresh = [colour_dataset.load(i) for i in range(len(colour_dataset))]
    colour_dataset.cache_images(threads=2)
    for p in tmp_path.glob("*.png"):
        p.unlink()  # the cache alone now serves the images
    for i, (image, target) in enumerate(fresh):
        cached, cached_target = colour_dataset.load(i)
        assert torch.equal(cached, image) and torch.equal(cached_target["boxes"], target["boxes"])


def test_color_jitter_batch_draws_factors_per_image():
    images = torch.randint(0, 256, (6, 3, 16, 16), dtype=torch.uint8)
    assert torch.equal(color_jitter_batch(images, 0.0), images)  # strength 0 changes nothing
    torch.manual_seed(0)
    out = color_jitter_batch(images, 0.3)
    assert out.dtype == torch.uint8 and out.shape == images.shape
    ratios = out.float().mean((1, 2, 3)) / images.float().mean((1, 2, 3))
    assert ratios.std() > 0.01  # each image its own factors
    assert not torch.equal(out, images)
    torch.manual_seed(0)
    assert torch.equal(color_jitter_batch(images, 0.3), out)  # the torch RNG decides


def test_brightness_only_scales_pixels():
    # contrast and saturation factors of 1 leave brightness: a uniform grey image stays uniform
    torch.manual_seed(1)
    images = torch.full((4, 3, 8, 8), 100, dtype=torch.uint8)
    out = color_jitter_batch(images, 0.3)
    for img in out:
        assert img.unique().numel() == 1 and 70 <= int(img[0, 0, 0]) <= 130
