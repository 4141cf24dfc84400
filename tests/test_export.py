"""export_dataset: yolo and coco layouts round-trip through our own parsers."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from PIL import Image

from yolozoo.data import export
from yolozoo.data.base import DetectionDataset, ImageRecord, read_image
from yolozoo.data.coco import parse_coco
from yolozoo.data.digits import build_digits
from yolozoo.data.export import EXPORT_FORMATS, export_dataset
from yolozoo.data.yolo import parse_yolo

TINY = dict(num_train=10, num_val=6, img_size=80, max_size=48)


@pytest.fixture(scope="module")
def splits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    return {split: build_digits(split, root=root, **TINY) for split in ("train", "val")}


def _parse(fmt, out, split):
    if fmt == "yolo":
        return parse_yolo(out / "data.yaml", split)
    return parse_coco(out / "annotations" / f"instances_{split}.json", out / "images" / split)


@pytest.mark.parametrize("fmt", ["yolo", "coco"])
def test_digits_round_trip(tmp_path, splits, fmt):
    out = export_dataset(splits, fmt, tmp_path / "export")
    assert out == tmp_path / "export"
    for split, ds in splits.items():
        records, classes = _parse(fmt, out, split)
        assert classes == ds.classes
        assert len(records) == len(ds)
        parsed = {r.file.name: r for r in records}
        for rec in ds.records:
            got = parsed[rec.file.name]
            assert got.file == out / "images" / split / rec.file.name
            assert got.file.read_bytes() == rec.file.read_bytes()  # untransformed, copied
            assert (got.width, got.height) == (rec.width, rec.height)
            assert np.array_equal(got.labels, rec.labels)
            assert got.boxes.shape == rec.boxes.shape
            assert np.abs(got.boxes - rec.boxes).max(initial=0) <= 0.5
    assert sum(len(r.labels) for ds in splits.values() for r in ds.records) > 20  # the check had boxes


def test_yolo_layout_and_data_yaml(tmp_path, splits):
    out = export_dataset(splits, "yolo", tmp_path / "y")
    data = yaml.safe_load((out / "data.yaml").read_text())
    assert data == {"path": str(out), "train": "images/train", "val": "images/val",
                    "names": {k: str(k) for k in range(10)}}
    rec = splits["val"].records[0]
    lines = (out / "labels" / "val" / f"{rec.file.stem}.txt").read_text().splitlines()
    assert len(lines) == len(rec.labels)
    x0, y0, x1, y1 = rec.boxes[0].tolist()
    cls, cx, cy, w, h = (float(v) for v in lines[0].split())
    assert int(cls) == rec.labels[0]
    assert (cx, cy, w, h) == pytest.approx(((x0 + x1) / 160, (y0 + y1) / 160, (x1 - x0) / 80, (y1 - y0) / 80),
                                           abs=1e-6)


def test_exported_folders_build_as_datasets(tmp_path, splits):
    from yolozoo.data.registry import create_dataset

    out = export_dataset(splits, "yolo", tmp_path / "y")
    ds = create_dataset("yolo", "val", root=out)
    assert len(ds) == len(splits["val"]) and ds.classes == splits["val"].classes


def test_unknown_format_lists_valid_ones(tmp_path, splits):
    with pytest.raises(ValueError, match="unknown export format 'voc'; valid: coco, yolo"):
        export_dataset(splits, "voc", tmp_path / "x")
    assert not (tmp_path / "x").exists()
    assert EXPORT_FORMATS == ("coco", "yolo")


def test_refuses_a_non_empty_output(tmp_path, splits):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "old.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match=str(tmp_path / "x")):
        export_dataset(splits, "coco", tmp_path / "x")
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["old.txt"]
    (tmp_path / "empty").mkdir()
    assert export_dataset(splits, "coco", tmp_path / "empty") == tmp_path / "empty"


def test_splits_must_share_classes(tmp_path, splits):
    other = DetectionDataset(list(splits["val"].records), [f"c{i}" for i in range(10)], name="other")
    with pytest.raises(ValueError, match="'train' and 'val' have different classes"):
        export_dataset({"train": splits["train"], "val": other}, "yolo", tmp_path / "x")
    with pytest.raises(ValueError, match="not a plain folder name"):
        export_dataset({"../up": splits["train"]}, "yolo", tmp_path / "x")


def test_failed_export_leaves_nothing(tmp_path, splits, monkeypatch):
    real, calls = export._write_image, []

    def fail_on_third(rec, dest):
        calls.append(dest)
        if len(calls) == 3:
            raise OSError("disk full")
        real(rec, dest)

    monkeypatch.setattr(export, "_write_image", fail_on_third)
    (tmp_path / "parent").mkdir()
    with pytest.raises(OSError, match="disk full"):
        export_dataset(splits, "yolo", tmp_path / "parent" / "x")
    assert list((tmp_path / "parent").iterdir()) == []


def _hand_made(tmp_path) -> DetectionDataset:
    """Two images with the same file name in different folders, one a GIF; one difficult box."""
    rng = np.random.default_rng(0)
    (tmp_path / "a").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(tmp_path / "a" / "img.png")
    Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / "b" / "img.gif")
    records = [
        ImageRecord(tmp_path / "a" / "img.png", 40, 30, [[1, 2, 11, 12], [5, 5, 35, 25]], [1, 0],
                    difficult=[False, True]),
        ImageRecord(tmp_path / "b" / "img.gif", 24, 20, [[0.5, 1.25, 20.5, 19.75]], [2]),
    ]
    return DetectionDataset(records, ["a", "b", "c"], name="hand")


def test_name_clashes_reencoding_and_difficult_boxes(tmp_path):
    ds = _hand_made(tmp_path / "src")
    coco_out = export_dataset({"val": ds}, "coco", tmp_path / "coco")
    yolo_out = export_dataset({"val": ds}, "yolo", tmp_path / "yolo")
    assert sorted(p.name for p in (coco_out / "images" / "val").iterdir()) == ["img.png", "img_1.png"]
    # The GIF is not a YOLO image suffix: it is decoded and stored losslessly as PNG.
    assert np.array_equal(read_image(coco_out / "images" / "val" / "img_1.png").numpy(),
                          read_image(ds.records[1].file).numpy())

    records, _ = parse_coco(coco_out / "annotations" / "instances_val.json", coco_out / "images" / "val")
    assert [r.difficult.tolist() for r in records] == [[False, True], [False]]
    assert np.abs(records[1].boxes - ds.records[1].boxes).max() <= 0.5
    gt = json.loads((coco_out / "annotations" / "instances_val.json").read_text())
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1, 0]

    records, _ = parse_yolo(yolo_out / "data.yaml", "val")
    by_name = {r.file.name: r for r in records}
    assert by_name["img.png"].labels.tolist() == [1]  # the difficult box is left out of YOLO labels
    assert np.abs(by_name["img.png"].boxes - ds.records[0].boxes[:1]).max() <= 0.5
    assert np.abs(by_name["img_1.png"].boxes - ds.records[1].boxes).max() <= 0.5
