"""Property-based fuzzing of the COCO, VOC and YOLO parsers: whatever the annotation files hold (truncated,
wrong types, out-of-range or non-finite values, stray bytes), parsing and building the dataset either works or
raises a DatasetError naming the file -- never another exception."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from yolozoo.data.base import DatasetError, DetectionDataset
from yolozoo.data.coco import parse_coco
from yolozoo.data.voc import parse_voc
from yolozoo.data.yolo import parse_yolo

pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")  # e.g. a float32 overflow is a defect too
FUZZ = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# Any JSON-ish value a field could wrongly hold.
ANY = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6,
)


def image(path: Path, width: int = 40, height: int = 30) -> None:
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height)).save(path)


def check(build, root: Path) -> None:
    """``build()`` works, or raises DatasetError whose message names a file under ``root``."""
    try:
        records, classes = build()
        DetectionDataset(records, classes, name="fuzz")
    except DatasetError as e:
        assert str(e).startswith(str(root)) or f" {root}" in str(e), str(e)


def coco() -> dict:
    return {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 30}],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 2, 10, 5]},
                            {"id": 2, "image_id": 1, "category_id": 1, "bbox": [30, 20, 20, 20], "iscrowd": 1}]}


# A place in the COCO dict (top-level key, index, field) and what to put there.
COCO_EDITS = st.sampled_from([("images", 0, k) for k in ("id", "file_name", "width", "height")]
                             + [("categories", 0, k) for k in ("id", "name")]
                             + [("annotations", i, k) for i in (0, 1) for k in ("image_id", "category_id", "bbox")])


@FUZZ
@given(edits=st.lists(st.tuples(COCO_EDITS, ANY), max_size=3), cut=st.none() | st.integers(0, 400),
       bbox=st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=4, max_size=4))
def test_coco_parser_raises_only_dataset_errors(tmp_path, edits, cut, bbox):
    image(tmp_path / "img" / "a.png")
    data = coco()
    data["annotations"][0]["bbox"] = bbox
    for (top, index, key), value in edits:
        data[top][index][key] = value
    text = json.dumps(data)  # NaN/Infinity are written as Python's json reads them
    ann = tmp_path / "ann" / "instances.json"
    ann.parent.mkdir(exist_ok=True)
    ann.write_text(text[:cut] if cut is not None else text)
    check(lambda: parse_coco(ann, tmp_path / "img"), tmp_path)


def voc_xml(name: str, size: tuple[str, str], box: tuple[str, ...]) -> str:
    return (f"<annotation><size><width>{size[0]}</width><height>{size[1]}</height></size><object><name>{name}"
            "</name><bndbox>" + "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
            + "</bndbox></object></annotation>")


NUMBERISH = st.sampled_from(["1", "40", "0", "-3", "nan", "inf", "1e309", "abc", "", "4.5"]) | st.text(max_size=5)


@FUZZ
@given(name=st.sampled_from(["cat", "dog", "", "<x>"]) | st.text(max_size=5), size=st.tuples(NUMBERISH, NUMBERISH),
       box=st.tuples(NUMBERISH, NUMBERISH, NUMBERISH, NUMBERISH), cut=st.none() | st.integers(0, 300),
       junk=st.binary(max_size=6))
def test_voc_parser_raises_only_dataset_errors(tmp_path, name, size, box, cut, junk):
    base = tmp_path / "VOC2007"
    image(base / "JPEGImages" / "a.jpg")
    (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main" / "test.txt").write_text("a\n")
    (base / "Annotations").mkdir(exist_ok=True)
    xml = voc_xml(name, size, box).encode("utf-8", "replace")
    (base / "Annotations" / "a.xml").write_bytes(xml if cut is None else xml[:cut] + junk)
    check(lambda: parse_voc(tmp_path, [("2007", "test")], ["cat", "dog"]), tmp_path)


LABEL_LINE = st.lists(st.sampled_from(["0", "1", "2", "-1", "0.5", "1.5", "nan", "inf", "-0.2", "x", "1e400"]),
                      max_size=6).map(" ".join)


@FUZZ
@given(lines=st.lists(LABEL_LINE, max_size=4), junk=st.binary(max_size=6), cut=st.none() | st.integers(0, 80),
       names=st.sampled_from([["cat", "dog"], {0: "cat", 1: "dog"}, {1: "cat"}, {"a": 1, 0: "x"}, [], "cat", None,
                              {0: "cat", 1: None}]))
def test_yolo_parser_raises_only_dataset_errors(tmp_path, lines, junk, cut, names):
    image(tmp_path / "images" / "val" / "a.png")
    data_yaml = tmp_path / "data.yaml"
    text = json.dumps({"path": ".", "val": "images/val", "names": names}, default=str)
    data_yaml.write_text(text[:cut] if cut is not None else text)
    labels = tmp_path / "labels" / "val" / "a.txt"
    labels.parent.mkdir(parents=True, exist_ok=True)
    labels.write_bytes("\n".join(lines).encode() + junk)
    check(lambda: parse_yolo(data_yaml, "val"), tmp_path)


@pytest.mark.parametrize("raw", [b"\xff\xfe0 0.5 0.5 0.1 0.1", b"0 0.5 0.5 0.1 0.1\n\x80"])
def test_yolo_label_bytes_name_the_label_file(tmp_path, raw):
    image(tmp_path / "images" / "val" / "a.png")
    (tmp_path / "data.yaml").write_text(json.dumps({"val": "images/val", "names": ["cat"]}))
    (tmp_path / "labels" / "val").mkdir(parents=True)
    (tmp_path / "labels" / "val" / "a.txt").write_bytes(raw)
    with pytest.raises(DatasetError, match="labels/val/a.txt:.*not UTF-8"):
        parse_yolo(tmp_path / "data.yaml", "val")
