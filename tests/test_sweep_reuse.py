"""A sweep point whose run another sweep already recorded (same resolved config and seed) reuses that record."""

from __future__ import annotations

import json

import yaml

from yolozoo.analysis.tables import provenance
from yolozoo.config import load_config, to_dict
from yolozoo.sweep import SweepOptions, load_sweep
from yolozoo.sweep.grid import GridWorker
from yolozoo.sweep.published import publish, read_records, records_frame


def sweep(tmp_path, name: str, base: dict, axes: dict) -> GridWorker:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "description": name, "table": "widths", "base": base,
                                    "axes": axes, "seeds": [0, 1]}))
    cli = {"results_dir": str(tmp_path / "results"), "out_dir": str(tmp_path / "runs")}
    return GridWorker(load_sweep(str(path), cli), cli, SweepOptions(progress_bar=False, estimate=False))


def record_of(worker: GridWorker, point, mAP50: float) -> dict:
    config = to_dict(load_config(worker.point_overrides(point)))
    return {"name": f"{worker.spec.name}-{point.slug}", "status": "completed", "started": "2026-11-26T00:00:00+00:00",
            "finished": "2026-11-26T00:04:00+00:00", "config": config, "metrics": {"mAP50": mAP50, "mAP": 0.5},
            "history": [], "environment": {"cpu": {"model": "AMD EPYC", "isa": "AVX2"}}}


def test_a_point_reuses_the_record_of_the_same_run_in_another_sweep(tmp_path):
    widths = sweep(tmp_path, "widths", {"assigner.name": "tal"}, {"model.width": [0.25, 0.5]})
    for point in widths.points:
        if point.seed == 0:  # seed 1 never ran
            publish(widths.publish_dir, point, record_of(widths, point, 0.8 + point.labels["model.width"]),
                    widths.point_overrides(point))
    # another sweep whose mobilenet row is the widths sweep's width-0.25 row: the same resolved config
    backbones = sweep(tmp_path, "backbones", {"model.width": 0.25},
                      {"backbone": {"lcnet": {"model.backbone": "lcnet_075", "assigner.name": "tal"},
                                    "resnet": {"model.backbone": "resnet18", "assigner.name": "tal"}}})
    backbones.reuse_published(backbones.points)

    (copy,) = read_records(backbones.publish_dir)
    assert copy["reused_from"] == "widths/0.25-s0.json" and copy["_path"].endswith("lcnet-s0.json")
    assert copy["point"]["labels"] == {"backbone": "lcnet"} and copy["metrics"]["mAP50"] == 1.05
    assert [p.key for p in backbones.points if p.key in backbones.published] == [backbones.points[0].key]
    assert backbones.reused == ["backbone=lcnet seed=0 (widths/0.25-s0.json)"]

    # a copy is never the origin of another copy, and a run with another seed or config is not reused
    again = sweep(tmp_path, "again", {"model.width": 0.25, "assigner.name": "tal"}, {"model.backbone": ["lcnet_075"]})
    again.reuse_published(again.points)
    (second,) = read_records(again.publish_dir)
    assert second["reused_from"] == "widths/0.25-s0.json"

    # the report says which records are shared, and counts them in the table's wall time (what its runs take)
    frame = records_frame(read_records(backbones.publish_dir), "backbones", ["backbone"])
    frame["cpu"], frame["isa"] = "AMD EPYC", "AVX2"
    lines = dict(provenance(frame))
    assert lines["runs"] == "1 completed (1 of them shared with widths: the same run, same config and seed)"
    assert lines["wall time"].startswith("0 h 04 min for 1 run on AMD EPYC (AVX2)")


def test_the_reused_record_is_the_published_file_verbatim_but_for_its_point(tmp_path):
    widths = sweep(tmp_path, "widths", {"assigner.name": "tal"}, {"model.width": [0.25]})
    point = widths.points[0]
    publish(widths.publish_dir, point, record_of(widths, point, 0.84), widths.point_overrides(point))
    other = sweep(tmp_path, "other", {"assigner.name": "tal"}, {"model.width": [0.25]})
    other.reuse_published(other.points)
    original = json.loads((widths.publish_dir / "0.25-s0.json").read_text())
    copy = json.loads((other.publish_dir / "0.25-s0.json").read_text())
    assert {k: v for k, v in copy.items() if k not in ("point", "reused_from")} == \
           {k: v for k, v in original.items() if k != "point"}
