"""A sweep's wall-time estimate: from its records on this CPU, else from a short calibration."""

from __future__ import annotations

import math

import pytest

from yolozoo.config import load_config
from yolozoo.sweep.estimate import from_calibration, from_records
from yolozoo.train_speed import synthetic_batch


def record(seconds: float, cpu: str, status: str = "completed") -> dict:
    return {"status": status, "started": "2026-11-25T10:00:00+00:00",
            "finished": f"2026-11-25T10:{int(seconds // 60):02d}:{int(seconds % 60):02d}+00:00",
            "point": {"labels": {}, "seed": 0}, "environment": {"cpu": {"model": cpu, "isa": "AVX2"}}}


def test_estimate_from_records_uses_this_cpu_median():
    records = [record(100, "A"), record(300, "A"), record(200, "A"), record(900, "B"), record(5, "A", "failed")]
    est = from_records(records, points_left=4, cpu_model="A")
    assert est.seconds == 4 * 200 and not est.lower_bound and "median of 3 recorded point(s)" in est.how
    assert from_records(records, 4, cpu_model="C") is None  # another machine's times do not carry over


def test_synthetic_batch_is_in_the_collate_format():
    b = synthetic_batch(3, 64, 10, boxes=5)
    assert b["images"].shape == (3, 3, 64, 64) and b["images"].dtype.is_floating_point is False
    boxes = b["gt_boxes"]
    assert boxes.shape == (3, 5, 4) and (boxes[..., 2:] > boxes[..., :2]).all() and (boxes >= 0).all()
    assert (boxes <= 64).all() and b["gt_mask"].all() and b["gt_labels"].max() < 10


@pytest.mark.parametrize("head", ["free", "anchor"])
def test_estimate_from_calibration(head):
    overrides = {"preset": "smoke", "data.num_train": "64", "trainer.max_epochs": "2", "model.head": head}
    if head == "anchor":
        overrides.update({"assigner.name": "nearby_grid", "model.anchors": "auto"})  # auto would need the data
    cfg = load_config(overrides)
    est = from_calibration(cfg, points_left=3)
    images = 64 // cfg.trainer.batch_size * cfg.trainer.batch_size * 2
    assert est.lower_bound and math.isfinite(est.seconds) and est.seconds > 0
    assert f"x {images} images a point" in est.how
