"""Dataset parsers (COCO JSON, VOC XML, YOLO txt) and the dataset registry, on tiny fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from yolozoo.data.base import DatasetError, DetectionDataset
from yolozoo.data.coco import parse_coco
from yolozoo.data.registry import create_dataset, list_datasets
from yolozoo.data.voc import VOC_CLASSES, parse_voc
from yolozoo.data.yolo import label_file, parse_yolo


def write_image(path: Path, width: int, height: int, suffix_format: str | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (10, 20, 30)).save(path, format=suffix_format)
    return path


# --------------------------------------------------------------------------- COCO


def coco_dict() -> dict:
    return {
        "images": [
            {"id": 5, "file_name": "a.png", "width": 40, "height": 30},
            {"id": 7, "file_name": "b.png", "width": 20, "height": 20},  # no annotations
        ],
        # Category ids deliberately unordered and non-contiguous: labels follow ascending id.
        "categories": [{"id": 9, "name": "dog"}, {"id": 2, "name": "cat"}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 9, "bbox": [1, 2, 10, 5], "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 2, "bbox": [20, 10, 5, 8], "iscrowd": 1},
        ],
    }


def write_coco(tmp_path: Path, data: dict | str, images: tuple[str, ...] = ("a.png", "b.png")) -> Path:
    ann = tmp_path / "annotations" / "instances_val2017.json"
    ann.parent.mkdir(parents=True, exist_ok=True)
    ann.write_text(data if isinstance(data, str) else json.dumps(data, indent=1))
    sizes = {"a.png": (40, 30), "b.png": (20, 20)}
    for name in images:
        write_image(tmp_path / "val2017" / name, *sizes[name])
    return ann


def test_coco_valid(tmp_path):
    ann = write_coco(tmp_path, coco_dict())
    records, classes = parse_coco(ann, tmp_path / "val2017")
    assert classes == ["cat", "dog"]
    assert [r.image_id for r in records] == [5, 7]
    a, b = records
    assert (a.width, a.height, a.file) == (40, 30, tmp_path / "val2017" / "a.png")
    np.testing.assert_allclose(a.boxes, [[1, 2, 11, 7], [20, 10, 25, 18]])
    assert a.labels.tolist() == [1, 0]
    assert a.difficult.tolist() == [False, True]  # iscrowd -> difficult
    assert b.boxes.shape == (0, 4) and b.labels.shape == (0,)


def test_coco_ids_below_one_renumbered(tmp_path):
    data = coco_dict()
    data["images"][0]["id"] = 0
    for ann in data["annotations"]:
        ann["image_id"] = 0
    records, _ = parse_coco(write_coco(tmp_path, data), tmp_path / "val2017")
    ds = DetectionDataset(records, ["cat", "dog"])
    assert [r.image_id for r in ds.records] == [1, 2]
    image, target = ds[0]
    assert image.shape == (3, 30, 40) and target["image_id"] == 1 and len(target["boxes"]) == 2


def test_coco_truncated_json(tmp_path):
    text = json.dumps(coco_dict(), indent=1)
    ann = write_coco(tmp_path, text[: len(text) // 2])
    with pytest.raises(DatasetError, match=r"instances_val2017\.json: malformed JSON at line \d+"):
        parse_coco(ann, tmp_path / "val2017")


def test_coco_missing_bbox_key(tmp_path):
    data = coco_dict()
    del data["annotations"][1]["bbox"]
    ann = write_coco(tmp_path, data)
    with pytest.raises(DatasetError, match=r"instances_val2017\.json: annotations\[1\]: missing key 'bbox'"):
        parse_coco(ann, tmp_path / "val2017")


def test_coco_missing_top_level_key(tmp_path):
    data = coco_dict()
    del data["categories"]
    with pytest.raises(DatasetError, match=r"instances_val2017\.json: top level: missing key 'categories'"):
        parse_coco(write_coco(tmp_path, data), tmp_path / "val2017")


def test_coco_unknown_category(tmp_path):
    data = coco_dict()
    data["annotations"][0]["category_id"] = 4
    with pytest.raises(DatasetError, match=r"val2017\.json: annotations\[0\]: unknown category_id 4"):
        parse_coco(write_coco(tmp_path, data), tmp_path / "val2017")


def test_coco_missing_image(tmp_path):
    ann = write_coco(tmp_path, coco_dict(), images=("a.png",))
    with pytest.raises(DatasetError, match=r"val2017\.json: 1 image file\(s\) missing, e\.g\. .*b\.png"):
        parse_coco(ann, tmp_path / "val2017")


def test_out_of_bounds_clipped_and_degenerate_dropped(tmp_path, caplog):
    data = coco_dict()
    data["annotations"] += [
        {"id": 3, "image_id": 5, "category_id": 2, "bbox": [30, 20, 20, 20]},  # past the 40x30 edge
        {"id": 4, "image_id": 5, "category_id": 9, "bbox": [5, 5, 0, 4]},  # zero width
        {"id": 5, "image_id": 7, "category_id": 9, "bbox": [-5, 3, 2, 2]},  # fully outside -> dropped
    ]
    records, classes = parse_coco(write_coco(tmp_path, data), tmp_path / "val2017")
    ds = DetectionDataset(records, classes, name="fixture")
    assert (ds.sanitize_report.clipped, ds.sanitize_report.dropped) == (1, 2)
    assert "clipped 1" in caplog.text and "dropped 2" in caplog.text
    a, b = ds.records
    np.testing.assert_allclose(a.boxes, [[1, 2, 11, 7], [20, 10, 25, 18], [30, 20, 40, 30]])
    assert a.labels.tolist() == [1, 0, 0] and a.difficult.tolist() == [False, True, False]
    assert len(b.boxes) == 0


# --------------------------------------------------------------------------- VOC


def voc_xml(objects: list[tuple[str, tuple, int]], width: int = 50, height: int = 40) -> str:
    objs = "".join(
        f"<object><name>{name}</name><difficult>{diff}</difficult><bndbox><xmin>{b[0]}</xmin>"
        f"<ymin>{b[1]}</ymin><xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bndbox></object>\n"
        for name, b, diff in objects
    )
    return (f"<annotation>\n<size><width>{width}</width><height>{height}</height><depth>3</depth></size>\n"
            f"{objs}</annotation>\n")


def write_voc(root: Path, xmls: dict[str, str], image_set: str = "test", year: str = "2007",
              skip_images: tuple[str, ...] = ()) -> Path:
    base = root / f"VOC{year}"
    (base / "Annotations").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    (base / "ImageSets" / "Main" / f"{image_set}.txt").write_text("\n".join(xmls) + "\n")
    for image_id, xml in xmls.items():
        (base / "Annotations" / f"{image_id}.xml").write_text(xml)
        if image_id not in skip_images:
            write_image(base / "JPEGImages" / f"{image_id}.jpg", 50, 40, "JPEG")
    return root


def test_voc_valid(tmp_path):
    root = write_voc(tmp_path, {
        "000001": voc_xml([("dog", (1, 1, 10, 20), 0), ("person", (5, 6, 30, 40), 1)]),
        "000002": voc_xml([]),
    })
    records, classes = parse_voc(root, [("2007", "test")])
    assert classes == list(VOC_CLASSES) and len(classes) == 20
    a, b = records
    np.testing.assert_allclose(a.boxes, [[0, 0, 10, 20], [4, 5, 30, 40]])  # 1-based -> 0-based
    assert a.labels.tolist() == [VOC_CLASSES.index("dog"), VOC_CLASSES.index("person")]
    assert a.difficult.tolist() == [False, True]
    assert (a.width, a.height) == (50, 40) and len(b.boxes) == 0
    ds = DetectionDataset(records, classes)
    assert [r.image_id for r in ds.records] == [1, 2]
    assert ds.sanitize_report.clipped == 0 and ds.sanitize_report.dropped == 0
    image, target = ds[0]
    assert image.shape == (3, 40, 50) and target["difficult"].tolist() == [False, True]


def test_voc_two_sets_in_order(tmp_path):
    write_voc(tmp_path, {"a": voc_xml([("cat", (1, 1, 5, 5), 0)])}, year="2007", image_set="trainval")
    write_voc(tmp_path, {"b": voc_xml([("cow", (1, 1, 5, 5), 0)])}, year="2012", image_set="trainval")
    records, _ = parse_voc(tmp_path, [("2007", "trainval"), ("2012", "trainval")])
    assert [r.file.name for r in records] == ["a.jpg", "b.jpg"]
    assert [int(r.labels[0]) for r in records] == [VOC_CLASSES.index("cat"), VOC_CLASSES.index("cow")]


def test_voc_bad_xml(tmp_path):
    root = write_voc(tmp_path, {"000001": "<annotation>\n<size><width>5</width>\n</annotation>\n"})
    with pytest.raises(DatasetError, match=r"000001\.xml: malformed XML at line 3"):
        parse_voc(root, [("2007", "test")])


def test_voc_missing_element(tmp_path):
    root = write_voc(tmp_path, {"000001": "<annotation><object><name>dog</name></object></annotation>"})
    with pytest.raises(DatasetError, match=r"000001\.xml: missing <size/width>"):
        parse_voc(root, [("2007", "test")])


def test_voc_unknown_class(tmp_path):
    root = write_voc(tmp_path, {"000001": voc_xml([("dog", (1, 1, 5, 5), 0), ("unicorn", (1, 1, 5, 5), 0)])})
    with pytest.raises(DatasetError, match=r"000001\.xml: object 1: unknown class 'unicorn'"):
        parse_voc(root, [("2007", "test")])


def test_voc_missing_image(tmp_path):
    xmls = {"x1": voc_xml([]), "x2": voc_xml([]), "x3": voc_xml([])}
    root = write_voc(tmp_path, xmls, skip_images=("x1", "x3"))
    expected = r"test\.txt: 2 image file\(s\) missing, e\.g\. \S*x1\.jpg, \S*x3\.jpg$"
    with pytest.raises(DatasetError, match=expected):
        parse_voc(root, [("2007", "test")])


def test_voc_bad_image_set_line(tmp_path):
    root = write_voc(tmp_path, {"000001": voc_xml([])})
    (root / "VOC2007" / "ImageSets" / "Main" / "test.txt").write_text("000001\n000002  1\n")
    with pytest.raises(DatasetError, match=r"test\.txt:2: expected one image id"):
        parse_voc(root, [("2007", "test")])


# --------------------------------------------------------------------------- YOLO


def write_yolo(root: Path, names, labels: dict[str, str], sizes: dict[str, tuple[int, int]]) -> Path:
    for stem, (w, h) in sizes.items():
        write_image(root / "images" / "val" / f"{stem}.png", w, h)
    for stem, text in labels.items():
        (root / "labels" / "val").mkdir(parents=True, exist_ok=True)
        (root / "labels" / "val" / f"{stem}.txt").write_text(text)
    data_yaml = root / "data.yaml"
    data = {"path": ".", "train": "images/train", "val": "images/val", "names": names}
    data_yaml.write_text(json.dumps(data))  # JSON is valid YAML
    return data_yaml


@pytest.mark.parametrize("names", [["cat", "dog"], {0: "cat", 1: "dog"}])
def test_yolo_valid(tmp_path, names):
    data_yaml = tmp_path / "data.yaml"
    labels = {"a": "1 0.5 0.5 0.5 0.25\n\n0 0.25 0.5 0.1 0.2\n"}
    write_yolo(tmp_path, names, labels, {"a": (40, 20), "b": (8, 8)})
    if isinstance(names, dict):  # YAML form of an {id: name} mapping (JSON would make the keys strings)
        data_yaml.write_text("path: .\nval: images/val\nnames:\n  0: cat\n  1: dog\n")
    records, classes = parse_yolo(data_yaml, "val")
    assert classes == ["cat", "dog"]
    a, b = records
    assert (a.width, a.height) == (40, 20)
    np.testing.assert_allclose(a.boxes, [[10, 7.5, 30, 12.5], [8, 8, 12, 12]], atol=1e-5)
    assert a.labels.tolist() == [1, 0]
    assert len(b.boxes) == 0  # no label file: an image with no objects


def test_yolo_label_dir_replaces_last_images_component(tmp_path):
    image = tmp_path / "images" / "set" / "images" / "val" / "a.jpg"
    assert label_file(image) == tmp_path / "images" / "set" / "labels" / "val" / "a.txt"
    with pytest.raises(DatasetError, match="no 'images' directory"):
        label_file(tmp_path / "pics" / "a.jpg")


def test_yolo_four_fields(tmp_path):
    data_yaml = write_yolo(tmp_path, ["cat"], {"a": "0 0.5 0.5 0.1 0.1\n0 0.5 0.5 0.1\n"}, {"a": (8, 8)})
    with pytest.raises(DatasetError, match=r"labels/val/a\.txt:2: expected 5 fields 'cls cx cy w h', got 4"):
        parse_yolo(data_yaml, "val")


def test_yolo_class_out_of_range(tmp_path):
    data_yaml = write_yolo(tmp_path, ["cat", "dog"], {"a": "2 0.5 0.5 0.1 0.1\n"}, {"a": (8, 8)})
    with pytest.raises(DatasetError, match=r"a\.txt:1: class id 2 out of range \[0, 2\)"):
        parse_yolo(data_yaml, "val")


def test_yolo_missing_image_in_list(tmp_path):
    data_yaml = write_yolo(tmp_path, ["cat"], {}, {"a": (8, 8)})
    (tmp_path / "val.txt").write_text("images/val/a.png\nimages/val/gone.png\n")
    data_yaml.write_text("path: .\nval: val.txt\nnames: [cat]\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: 1 image file\(s\) missing, e\.g\. .*gone\.png"):
        parse_yolo(data_yaml, "val")


def test_yolo_missing_keys(tmp_path):
    data_yaml = write_yolo(tmp_path, ["cat"], {}, {"a": (8, 8)})
    data_yaml.write_text("path: .\nval: images/val\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: missing key 'names'"):
        parse_yolo(data_yaml, "val")
    data_yaml.write_text("path: .\nval: images/val\nnames: [cat]\n")
    with pytest.raises(DatasetError, match=r"data\.yaml: missing key 'train'"):
        parse_yolo(data_yaml, "train")


# --------------------------------------------------------------------------- registry


def test_registry_lists_builtins():
    assert {"coco", "voc", "yolo", "digits"} <= set(list_datasets())


def test_registry_unknown_name():
    with pytest.raises(ValueError, match=r"unknown dataset 'cocoa'; valid: .*coco.*voc.*yolo"):
        create_dataset("cocoa", "val", root="x")


def test_registry_unknown_option(tmp_path):
    with pytest.raises(ValueError, match=r"unknown option\(s\) val_sets; valid: train_set, val_set"):
        create_dataset("coco", "val", root=tmp_path, val_sets="x")


def test_registry_unknown_split(tmp_path):
    with pytest.raises(ValueError, match=r"unknown split 'test'; valid: train, val"):
        create_dataset("voc", "test", root=tmp_path)


@pytest.mark.parametrize("name", ["coco", "voc", "yolo"])
def test_registry_missing_root(name):
    with pytest.raises(DatasetError, match=rf"dataset '{name}' needs a data root: pass data.root="):
        create_dataset(name, "val")


def test_registry_root_does_not_exist(tmp_path):
    with pytest.raises(DatasetError, match="does not exist"):
        create_dataset("coco", "val", root=tmp_path / "nope")


def test_registry_builds_each_format(tmp_path):
    write_coco(tmp_path / "coco", coco_dict())
    (tmp_path / "coco" / "annotations" / "instances_val2017.json").rename(
        tmp_path / "coco" / "annotations" / "instances_mini.json")
    (tmp_path / "coco" / "val2017").rename(tmp_path / "coco" / "mini")
    coco = create_dataset("coco", "val", root=tmp_path / "coco", val_set="mini")
    assert len(coco) == 2 and coco.classes == ["cat", "dog"]

    write_voc(tmp_path / "voc", {"000001": voc_xml([("dog", (1, 1, 10, 20), 1)])})
    voc = create_dataset("voc", "train", root=str(tmp_path / "voc"), train_sets="2007_test")
    assert len(voc) == 1 and voc.records[0].difficult.tolist() == [True]
    with pytest.raises(ValueError, match="must look like '2007_trainval'"):
        create_dataset("voc", "val", root=tmp_path / "voc", val_sets="test")

    write_yolo(tmp_path / "yolo", ["cat"], {"a": "0 0.5 0.5 0.5 0.5\n"}, {"a": (8, 8)})
    marker = object()
    yolo = create_dataset("yolo", "val", root=tmp_path / "yolo", transforms=marker)
    assert len(yolo) == 1 and yolo.transforms is marker
    assert len(create_dataset("yolo", "val", root=tmp_path / "yolo" / "data.yaml")) == 1


def test_yolo_label_file_not_utf8_names_the_file(tmp_path):
    data_yaml = write_yolo(tmp_path, ["cat"], {"a": "0 0.5 0.5 0.1 0.1\n"}, {"a": (8, 8)})
    bad = label_file(tmp_path / "images" / "val" / "a.png")
    bad.write_bytes(b"0 0.5 0.5 0.1 0.1\n0 0.5 \xff\xfe 0.1\n")
    with pytest.raises(DatasetError, match=rf"^{bad}:2: label file is not UTF-8 text"):
        parse_yolo(data_yaml, "val")


def test_yolo_non_finite_box_names_file_and_line(tmp_path):
    data_yaml = write_yolo(tmp_path, ["cat"], {"a": "0 0.5 0.5 0.1 0.1\n0 nan 0.5 0.1 0.1\n"}, {"a": (8, 8)})
    with pytest.raises(DatasetError, match=r"a.txt:2: box .cx cy w h. must be finite normalised"):
        parse_yolo(data_yaml, "val")


def test_clip_warning_names_the_annotation_once(tmp_path, caplog):
    data = coco_dict()
    data["annotations"].append({"id": 3, "image_id": 5, "category_id": 2, "bbox": [30, 20, 20, 20]})
    ann = write_coco(tmp_path, data)
    for _ in range(3):  # a dataset is built several times per run (train/val setup, anchors): one warning
        DetectionDataset(*parse_coco(ann, tmp_path / "val2017"), name="fixture-once")
    warnings = [r.getMessage() for r in caplog.records if "fixture-once" in r.getMessage()]
    assert len(warnings) == 1
    assert f"{ann}: annotations[2] (image {tmp_path / 'val2017' / 'a.png'}): clipped" in warnings[0]

    labels = {"a": "0 0.5 0.5 0.1 0.1\n0 0.95 0.5 0.2 0.2\n"}  # line 2 sticks out of the right edge
    data_yaml = write_yolo(tmp_path / "y", ["cat"], labels, {"a": (40, 20)})
    records, classes = parse_yolo(data_yaml, "val")
    report = DetectionDataset(records, classes, name="yolo-once").sanitize_report
    assert report.clipped == 1 and report.examples[0].startswith(f"{tmp_path / 'y' / 'labels' / 'val' / 'a.txt'}: "
                                                                "line 2 (image ")
