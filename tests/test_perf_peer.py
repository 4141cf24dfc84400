"""bench/perf_peer.py: ultralytics predictions are scored like ours, and the script runs end to end."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from bench.perf_peer import SECTION, _report, main, peer_detections
from yolozoo.evaluation import evaluate_detections

ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["a", "b", "c"]


def _gt() -> dict:
    """Two images; COCO ids 1-based, category_id = label + 1, bbox xywh."""
    return {
        "images": [{"id": 1, "width": 100, "height": 80}, {"id": 2, "width": 100, "height": 80}],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [10, 20, 30, 40], "area": 1200, "iscrowd": 0},
            {"id": 2, "image_id": 2, "category_id": 1, "bbox": [50, 5, 20, 10], "area": 200, "iscrowd": 0},
            {"id": 3, "image_id": 2, "category_id": 2, "bbox": [0, 40, 60, 30], "area": 1800, "iscrowd": 0},
        ],
        "categories": [{"id": k + 1, "name": n} for k, n in enumerate(CLASSES)],
    }


def _result(path: str, rows: list[list[float]]) -> SimpleNamespace:
    """An ultralytics ``Results`` stand-in: ``.path`` and ``.boxes`` with xyxy / conf / cls tensors."""
    t = torch.tensor(rows, dtype=torch.float32).reshape(-1, 6)  # [N, 6] x0 y0 x1 y1 conf cls
    return SimpleNamespace(path=path, boxes=SimpleNamespace(xyxy=t[:, :4], conf=t[:, 4], cls=t[:, 5]))


@pytest.fixture
def ids(tmp_path) -> dict[Path, int]:
    return {(tmp_path / "x.png").resolve(): 1, (tmp_path / "y.png").resolve(): 2}


def test_peer_detections_keep_boxes_scores_classes_and_image_ids(tmp_path, ids):
    results = [_result(str(tmp_path / "y.png"), [[50, 5, 70, 15, 0.9, 0], [0, 40, 60, 70, 0.8, 1]]),
               _result(str(tmp_path / "sub" / ".." / "x.png"), [[10, 20, 40, 60, 0.7, 2]])]
    dets = peer_detections(results, ids)
    assert [d["image_id"] for d in dets] == [2, 1]  # by path, whatever the spelling, not by order
    np.testing.assert_array_equal(dets[0]["boxes"], [[50, 5, 70, 15], [0, 40, 60, 70]])
    np.testing.assert_allclose(dets[0]["scores"], [0.9, 0.8], rtol=1e-6)
    assert dets[0]["labels"].tolist() == [0, 1] and dets[0]["labels"].dtype == np.int64
    assert dets[1]["labels"].tolist() == [2]
    metrics = evaluate_detections(_gt(), dets, CLASSES)  # class k is category k + 1, boxes xyxy -> xywh
    assert metrics["mAP50"] == pytest.approx(1.0) and metrics["mAP"] == pytest.approx(1.0)


def test_a_class_off_by_one_scores_zero(tmp_path, ids):
    """Guards the mapping: ultralytics' class k must stay label k (not category id k)."""
    results = [_result(str(tmp_path / "x.png"), [[10, 20, 40, 60, 0.7, 1]]),
               _result(str(tmp_path / "y.png"), [[50, 5, 70, 15, 0.9, 1], [0, 40, 60, 70, 0.8, 2]])]
    assert evaluate_detections(_gt(), peer_detections(results, ids), CLASSES)["mAP50"] == 0.0


def test_an_image_without_boxes_and_an_unknown_image(tmp_path, ids):
    (empty,) = peer_detections([_result(str(tmp_path / "x.png"), [])], ids)
    assert empty["image_id"] == 1 and empty["boxes"].shape == (0, 4) and len(empty["labels"]) == 0
    with pytest.raises(ValueError, match="not a val image"):
        peer_detections([_result(str(tmp_path / "z.png"), [])], ids)


def test_unknown_option_fails_before_any_work(capsys):
    assert main(["peer_tme=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "peer_tme" in err and "peer_time" in err
    assert main(["peer_time=soon"]) == 2 and "peer_time" in capsys.readouterr().err
    assert main(["model.widht=1"]) == 2 and "model.widht" in capsys.readouterr().err


def test_bad_seeds_fail_before_any_work(capsys):
    assert main(["seeds=0,one"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "seeds" in err and "'0,one'" in err


def _pair(seed: int, ours: float, theirs: float, ips: float, peer_ips: float) -> tuple[dict, dict, dict]:
    """(yolozoo record, ultralytics training, ultralytics mAPs) as main() pairs them, with only what _report reads."""
    cfg = {"seed": seed, "model": {"backbone": "b", "pretrained": "false", "width": 0.25},
           "trainer": {"max_epochs": 5, "max_time": "10m", "batch_size": 8},
           "data": {"img_size": 128, "flip": 0.0, "name": "digits", "num_train": 10, "num_val": 5, "gen_seed": 0}}
    record = {"config": cfg, "metrics": {"mAP50": ours, "mAP": ours / 2, "train_time_s": 100.0, "epochs": 1.0,
                                         "train_img_per_s": ips, "params": 1e6}}
    peer = {"time_limit_s": 100.0, "threads": 2, "train_time_s": 101.0, "epochs": 0.5, "images": 5000,
            "train_img_per_s": peer_ips, "params": 3e6}
    return record, peer, {"mAP50": theirs, "mAP": theirs / 2}


def test_report_gives_each_seed_and_the_paired_interval_of_the_leads():
    body = _report([], [_pair(0, 0.9, 0.6, 60.0, 50.0), _pair(1, 0.92, 0.7, 58.0, 50.0)], "ultralytics 8", "t")
    assert "| val mAP@0.5 | 0.900 / 0.920 | 0.600 / 0.700 |" in body
    assert "| train images/s | 60.0 / 58.0 | 50.0 / 50.0 |" in body
    # leads +0.30 and +0.22: mean +0.26, t(1) 12.71 * sd 0.0566 / sqrt(2) = 0.508 either side
    lead = re.search(r"ahead by >= 0.10 val mAP@0.5 \| \+0.260 \[(\S+), (\S+)\] \(paired t 95% interval, n = 2\) "
                     r"\| met \(every pair\) \|", body)
    assert lead and float(lead[1]) == pytest.approx(0.26 - 0.508, abs=2e-3)
    assert float(lead[2]) == pytest.approx(0.26 + 0.508, abs=2e-3)
    assert "| +9.0 [" in body  # images/s: +10 and +8


def test_report_misses_a_target_that_one_pair_misses():
    one = _report([], [_pair(0, 0.9, 0.85, 40.0, 50.0)], "ultralytics 8", "t")
    assert "| +0.050 | MISSED (1 of 1 pairs) |" in one and "| -10.0 | MISSED (1 of 1 pairs) |" in one
    assert "| val mAP@0.5 | 0.900 | 0.850 |" in one and "n = " not in one
    two = _report([], [_pair(0, 0.9, 0.6, 60.0, 50.0), _pair(1, 0.9, 0.85, 60.0, 61.0)], "ultralytics 8", "t")
    assert "MISSED (1 of 2 pairs)" in two and "every pair" not in two


def test_without_ultralytics_it_says_what_to_install(monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ultralytics" else real(name, *a))
    assert main(["peer_time=5"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install -e '.[peer]'" in err


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("ultralytics") is None,
                    reason="ultralytics not installed (pip install -e '.[peer]')")
def test_end_to_end_writes_the_section(tmp_path):
    perf_md = tmp_path / "perf.md"
    home = tmp_path / "home"  # anything ultralytics wrote outside its temp dir would land here
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, str(ROOT / "bench" / "perf_peer.py"), "preset=smoke", "data.num_train=32",
           "data.num_val=8", "trainer.max_epochs=1", "eval.latency_batches=1", "wandb.mode=disabled",
           "peer_time=5", "seeds=0,1", f"perf_md={perf_md}"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    text = perf_md.read_text()
    assert f"## {SECTION}" in text and "python bench/perf_peer.py preset=smoke" in text and "n = 2" in text
    maps = re.search(r"\| val mAP@0\.5 \| ([\d.]+) / ([\d.]+) \| ([\d.]+) / ([\d.]+) \|", text).groups()
    assert all(0 <= float(m) <= 1 for m in maps)  # two seeds, one pair each
    assert "| train images/s |" in text and "ahead by >= 0.10" in text and "| params |" in text
    assert not list(cwd.iterdir())  # nothing written to the working directory
    assert not [p for p in home.rglob("*") if "ultralytics" in str(p).lower()], sorted(home.rglob("*"))
