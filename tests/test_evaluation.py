"""COCO evaluation: exact AP values on tiny hand-checked cases, NaN handling, difficult boxes, errors."""

from __future__ import annotations

import copy
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from yolozoo.data.base import DetectionDataset, ImageRecord
from yolozoo.evaluation import evaluate_detections, format_metrics

CLASSES = ["cat", "dog", "bird"]


def make_gt(images: list[list[tuple]], classes=CLASSES, size=(400, 400)) -> tuple[DetectionDataset, dict]:
    """A dataset from ``images``: each a list of ``(x0, y0, x1, y1, label[, difficult])``.

    Goes through the real :class:`DetectionDataset`, so ids and category ids follow the contract.
    The image files are never read by ``coco_gt()``.
    """
    records = []
    for i, anns in enumerate(images):
        boxes = [a[:4] for a in anns]
        labels = [a[4] for a in anns]
        difficult = [bool(a[5]) if len(a) > 5 else False for a in anns]
        records.append(ImageRecord(Path(f"img{i}.jpg"), size[1], size[0], boxes, labels, difficult))
    ds = DetectionDataset(records, classes)
    return ds, ds.coco_gt()


def det(image_id: int, rows: list[tuple], as_torch: bool = False) -> dict:
    """One image's detections from ``(x0, y0, x1, y1, score, label)`` rows."""
    arr = np.asarray(rows, dtype=np.float64).reshape(-1, 6)
    out = {"image_id": image_id, "boxes": arr[:, :4].astype(np.float32), "scores": arr[:, 4],
           "labels": arr[:, 5].astype(np.int64)}
    if as_torch:
        out = {"image_id": image_id, **{k: torch.from_numpy(v) for k, v in out.items() if k != "image_id"}}
    return out


def perfect(ds: DetectionDataset, as_torch: bool = False) -> list[dict]:
    """Every non-difficult GT box detected exactly, score 0.9."""
    out = []
    for rec in ds.records:
        keep = ~rec.difficult
        rows = [(*b, 0.9, lab) for b, lab in zip(rec.boxes[keep].tolist(), rec.labels[keep].tolist())]
        out.append(det(rec.image_id, rows, as_torch))
    return out


def coco_ap(tp_sorted: list[bool], num_gt: int) -> float:
    """COCO AP from its definition: detections sorted by score, each TP or FP.

    Precision is made monotone (max over higher recall), then read at the 101 recall
    thresholds 0, 0.01, .., 1 (the first detection reaching that recall; 0 if none does).
    """
    tp = np.cumsum(tp_sorted)
    fp = np.cumsum(~np.asarray(tp_sorted))
    recall = tp / num_gt
    precision = tp / (tp + fp)
    for i in range(len(precision) - 2, -1, -1):
        precision[i] = max(precision[i], precision[i + 1])
    samples = []
    for r in np.linspace(0, 1, 101):
        idx = np.searchsorted(recall, r, side="left")
        samples.append(precision[idx] if idx < len(precision) else 0.0)
    return float(np.mean(samples))


# Large (100x100 > 96^2 px) boxes, one class, two images.
TWO_LARGE = [[(10, 10, 110, 110, 0)], [(200, 200, 300, 300, 0)]]


@pytest.mark.parametrize("as_torch", [False, True])
def test_perfect_predictions_score_one(as_torch):
    ds, gt = make_gt([[(10, 10, 110, 110, 0), (150, 150, 250, 250, 1)], [(20, 30, 140, 170, 1)]])
    m = evaluate_detections(gt, perfect(ds, as_torch), CLASSES)
    for key in ("mAP", "mAP50", "mAP75", "APl", "AR100"):
        assert m[key] == pytest.approx(1.0), key
    assert m["per_class"]["cat"] == {"AP": pytest.approx(1.0), "AP50": pytest.approx(1.0)}


def test_torch_and_numpy_inputs_agree_including_grad_tensors():
    _, gt = make_gt(TWO_LARGE)
    rows1 = [(10, 10, 110, 110, 0.9, 0), (300, 10, 380, 90, 0.6, 0)]
    rows2 = [(205, 195, 305, 290, 0.3, 0)]
    as_np = [det(1, rows1), det(2, rows2)]
    as_pt = [det(1, rows1, True), det(2, rows2, True)]
    as_pt[0]["boxes"] = as_pt[0]["boxes"].clone().requires_grad_(True)
    m_np = evaluate_detections(gt, as_np, ["cat"] + CLASSES[1:])
    m_pt = evaluate_detections(gt, as_pt, CLASSES)
    assert m_np["mAP"] < 1.0
    for key in ("mAP", "mAP50", "mAP75", "AR100"):
        assert m_np[key] == m_pt[key]


def test_no_predictions_give_zero_not_crash():
    _, gt = make_gt([[(10, 10, 110, 110, 0), (5, 5, 25, 25, 1)]])
    for dets in ([], [det(1, [])], [{"image_id": 1, "boxes": torch.zeros(0, 4), "scores": torch.zeros(0),
                                     "labels": torch.zeros(0, dtype=torch.long)}]):
        m = evaluate_detections(gt, dets, CLASSES)
        for key in ("mAP", "mAP50", "mAP75", "APs", "APl", "AR100"):
            assert m[key] == 0.0, key
        assert m["per_class"]["cat"]["AP"] == 0.0
        assert math.isnan(m["APm"])  # no medium GT: missing, not 0


def test_partial_case_matches_hand_computed_101_point_ap():
    # 2 GT; detections by score: TP (0.9), FP (0.6, on empty background), TP (0.3).
    _, gt = make_gt(TWO_LARGE)
    dets = [det(1, [(10, 10, 110, 110, 0.9, 0), (300, 10, 390, 100, 0.6, 0)]),
            det(2, [(200, 200, 300, 300, 0.3, 0)])]
    m = evaluate_detections(gt, dets, CLASSES)

    # precision 1, 1/2, 2/3 at recall 1/2, 1/2, 1 -> monotone 1, 2/3, 2/3.
    # Recall thresholds 0.00..0.50 (51 of them) read 1; 0.51..1.00 (50) read 2/3.
    expected = (51 * 1.0 + 50 * (2 / 3)) / 101
    assert coco_ap([True, False, True], 2) == pytest.approx(expected, abs=1e-12)
    assert m["mAP50"] == pytest.approx(expected, abs=1e-9)
    assert m["per_class"]["cat"]["AP50"] == pytest.approx(expected, abs=1e-9)
    # TPs are exact boxes, so every IoU threshold sees the same ranking.
    assert m["mAP"] == pytest.approx(expected, abs=1e-9)
    assert m["AR100"] == pytest.approx(1.0)


def test_partial_case_with_fp_first_and_a_miss():
    # 3 GT; by score: FP, TP, TP; the third GT is never found.
    _, gt = make_gt([[(10, 10, 110, 110, 0), (200, 200, 300, 300, 0)], [(50, 50, 160, 160, 0)]])
    dets = [det(1, [(300, 10, 390, 100, 0.95, 0), (10, 10, 110, 110, 0.8, 0), (200, 200, 300, 300, 0.7, 0)]),
            det(2, [])]
    m = evaluate_detections(gt, dets, CLASSES)
    assert m["mAP50"] == pytest.approx(coco_ap([False, True, True], 3), abs=1e-9)
    assert m["AR100"] == pytest.approx(2 / 3)


def test_iou_threshold_sweep_in_map():
    # One GT 100x100, one detection shifted by 20 px: IoU = 80*100 / (2*10000 - 8000) = 2/3.
    _, gt = make_gt([[(100, 100, 200, 200, 0)]])
    m = evaluate_detections(gt, [det(1, [(120, 100, 220, 200, 0.9, 0)])], CLASSES)
    assert m["mAP50"] == pytest.approx(1.0)
    assert m["mAP75"] == 0.0
    # TP at thresholds 0.50, 0.55, 0.60, 0.65 (IoU 0.667), miss at 0.70..0.95 -> 4 of 10.
    assert m["mAP"] == pytest.approx(0.4)


def test_size_metrics_are_nan_without_gt_of_that_size():
    ds, gt = make_gt(TWO_LARGE)
    m = evaluate_detections(gt, perfect(ds), CLASSES)
    assert math.isnan(m["APs"]) and math.isnan(m["APm"])
    assert m["APl"] == pytest.approx(1.0)

    # 20x20 (small) and 50x50 (medium) only: APl is the missing one.
    ds, gt = make_gt([[(10, 10, 30, 30, 0), (100, 100, 150, 150, 0)]])
    m = evaluate_detections(gt, perfect(ds), CLASSES)
    assert m["APs"] == pytest.approx(1.0) and m["APm"] == pytest.approx(1.0)
    assert math.isnan(m["APl"])


def test_difficult_gt_undetected_is_not_a_miss():
    images = [[(10, 10, 110, 110, 0), (200, 200, 300, 300, 0, True)]]
    _, gt = make_gt(images)
    assert [a["iscrowd"] for a in gt["annotations"]] == [0, 1]
    dets = [det(1, [(10, 10, 110, 110, 0.9, 0)])]
    m = evaluate_detections(gt, dets, CLASSES)
    assert m["mAP"] == pytest.approx(1.0) and m["AR100"] == pytest.approx(1.0)

    # Control: the same box not marked difficult is a miss, so the check above can fail.
    _, gt_plain = make_gt([[(10, 10, 110, 110, 0), (200, 200, 300, 300, 0)]])
    assert evaluate_detections(gt_plain, dets, CLASSES)["AR100"] == pytest.approx(0.5)


def test_detection_on_difficult_gt_is_not_a_false_positive():
    images = [[(10, 10, 110, 110, 0), (200, 200, 300, 300, 0, True)]]
    _, gt = make_gt(images)
    # Detections on the difficult box have the top scores: as FPs they would cut AP to 1/3.
    # The duplicate lies inside it; crowd matching (intersection / detection area) ignores it too.
    dets = [det(1, [(200, 200, 300, 300, 0.95, 0), (202, 202, 298, 298, 0.92, 0), (10, 10, 110, 110, 0.9, 0)])]
    m = evaluate_detections(gt, dets, CLASSES)
    assert m["mAP"] == pytest.approx(1.0)
    assert m["per_class"]["cat"]["AP50"] == pytest.approx(1.0)

    # Control: a detection on background at the same score is an FP.
    bg = [det(1, [(300, 10, 390, 100, 0.95, 0), (10, 10, 110, 110, 0.9, 0)])]
    assert evaluate_detections(gt, bg, CLASSES)["mAP50"] == pytest.approx(coco_ap([False, True], 1))


def test_class_with_only_difficult_gt_is_nan():
    _, gt = make_gt([[(10, 10, 110, 110, 0), (200, 200, 300, 300, 1, True)]])
    m = evaluate_detections(gt, [det(1, [(10, 10, 110, 110, 0.9, 0)])], CLASSES)
    assert math.isnan(m["per_class"]["dog"]["AP"])
    assert m["mAP"] == pytest.approx(1.0)


def test_per_class_ap_and_mean_skip_classes_without_gt():
    _, gt = make_gt(TWO_LARGE + [[(50, 50, 200, 200, 1)]])
    dets = [det(1, [(10, 10, 110, 110, 0.9, 0)]),
            det(2, [(200, 200, 300, 300, 0.8, 0)]),
            # the dog is found but called a bird: a miss for dog, an FP for bird (which has no GT)
            det(3, [(50, 50, 200, 200, 0.9, 2)])]
    m = evaluate_detections(gt, dets, CLASSES)
    pc = m["per_class"]
    assert list(pc) == CLASSES
    assert pc["cat"]["AP"] == pytest.approx(1.0) and pc["cat"]["AP50"] == pytest.approx(1.0)
    assert pc["dog"]["AP"] == 0.0 and pc["dog"]["AP50"] == 0.0
    assert math.isnan(pc["bird"]["AP"]) and math.isnan(pc["bird"]["AP50"])
    assert m["mAP"] == pytest.approx(0.5)  # mean of cat and dog; bird is not averaged in as 0


def test_ids_are_one_based_and_labels_map_to_category_plus_one():
    _, gt = make_gt(TWO_LARGE)
    assert [img["id"] for img in gt["images"]] == [1, 2]
    assert [a["id"] for a in gt["annotations"]] == [1, 2]
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3]
    # Label 0 must score against category 1 ("cat"): an off-by-one would give 0 here.
    m = evaluate_detections(gt, [det(1, [(10, 10, 110, 110, 0.9, 0)]), det(2, [(200, 200, 300, 300, 0.9, 0)])],
                            CLASSES)
    assert m["per_class"]["cat"]["AP"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"detections\[0\] \(image_id 0\).*1-based"):
        evaluate_detections(gt, [det(0, [(10, 10, 110, 110, 0.9, 0)])], CLASSES)


def test_gt_dict_is_not_modified_and_nothing_is_printed(capsys):
    ds, gt = make_gt([[(10, 10, 110, 110, 0), (200, 200, 300, 300, 0, True)]])
    before = copy.deepcopy(gt)
    evaluate_detections(gt, perfect(ds), CLASSES)
    evaluate_detections(gt, perfect(ds), CLASSES)  # called every epoch: must be repeatable
    assert gt == before
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"image_id": 1, "boxes": np.zeros((1, 4)), "scores": np.ones(1)}, r"detections\[0\]: missing key 'labels'"),
        ({"image_id": 1, "boxes": np.zeros((2, 5)), "scores": np.ones(2), "labels": np.zeros(2, int)},
         r"\(image_id 1\) key 'boxes': expected shape \[N, 4\]"),
        ({"image_id": 1, "boxes": np.zeros((2, 4)), "scores": np.ones(3), "labels": np.zeros(2, int)},
         r"disagree in length \(2, 3, 2\)"),
        ({"image_id": 1, "boxes": np.zeros((1, 4)), "scores": np.ones(1), "labels": np.array([3])},
         r"key 'labels': class 3 out of range \[0, 3\)"),
        ({"image_id": 1, "boxes": np.full((1, 4), np.nan), "scores": np.ones(1), "labels": np.zeros(1, int)},
         r"NaN"),
        ({"image_id": 9, "boxes": np.zeros((1, 4)), "scores": np.ones(1), "labels": np.zeros(1, int)},
         r"image_id 9\).*not in coco_gt"),
        ({"image_id": "1", "boxes": np.zeros((1, 4)), "scores": np.ones(1), "labels": np.zeros(1, int)},
         r"image_id must be an int"),
    ],
)
def test_bad_detections_raise_clear_errors(entry, message):
    _, gt = make_gt(TWO_LARGE)
    error = TypeError if "must be an int" in message else ValueError
    with pytest.raises(error, match=message):
        evaluate_detections(gt, [entry], CLASSES)


def test_duplicate_image_entry_is_an_error():
    _, gt = make_gt(TWO_LARGE)
    with pytest.raises(ValueError, match=r"detections\[1\] \(image_id 2\): image_id appears twice"):
        evaluate_detections(gt, [det(2, []), det(2, [])], CLASSES)


def test_class_names_must_match_gt_categories():
    _, gt = make_gt(TWO_LARGE)
    with pytest.raises(ValueError, match=r"category ids \[1, 2, 3\] do not match class_names"):
        evaluate_detections(gt, [], CLASSES[:2])
    with pytest.raises(ValueError, match=r"category id 2 is named 'dog' but class_names\[1\] is 'cow'"):
        evaluate_detections(gt, [], ["cat", "cow", "bird"])
    with pytest.raises(ValueError, match=r"coco_gt: missing key 'categories'"):
        evaluate_detections({"images": [], "annotations": []}, [], CLASSES)


def test_format_metrics_shows_nan_as_dash():
    ds, gt = make_gt(TWO_LARGE)
    text = format_metrics(evaluate_detections(gt, perfect(ds), CLASSES))
    lines = text.splitlines()
    assert lines[0].split() == ["mAP50", "mAP", "mAP75", "APs", "APm", "APl", "AR100"]
    assert lines[1].split() == ["1.000", "1.000", "1.000", "-", "-", "1.000", "1.000"]
    rows = {line.split()[0]: line.split()[1:] for line in lines[3:]}
    assert rows["class"] == ["AP50", "AP"]
    assert rows["cat"] == ["1.000", "1.000"]
    assert rows["bird"] == ["-", "-"]
    assert "nan" not in text.lower() and "-1" not in text
