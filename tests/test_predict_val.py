"""The daily loop: train preset=smoke, then predict.py, val.py and export.py need only checkpoint=."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import bench.export as export_cli
import bench.predict as predict_cli
import bench.val as val_cli
from yolozoo.checkpoint import load_checkpoint

SHRINK = ["preset=smoke", "data.num_train=32", "data.num_val=16", "trainer.max_epochs=1", "eval.latency_batches=1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    from yolozoo.config import load_config
    from yolozoo.train import train

    tmp = tmp_path_factory.mktemp("run")
    cfg = load_config([*SHRINK, f"out_dir={tmp / 'runs'}", f"results_dir={tmp / 'results'}",
                       f"data.root={tmp / 'data'}"])
    record = train(cfg)
    assert record["checkpoint"] and Path(record["checkpoint"]).is_file()
    return record


def test_checkpoint_stores_the_resolved_config(trained):
    ckpt = load_checkpoint(trained["checkpoint"])  # weights_only=True
    hp = ckpt["hyper_parameters"]
    assert hp["config"] == trained["config"]
    assert hp["classes"] == [str(i) for i in range(10)] and hp["num_classes"] == 10


def test_val_reproduces_the_runs_final_metrics(trained, tmp_path, capsys):
    assert val_cli.main([f"checkpoint={trained['checkpoint']}", f"results_dir={tmp_path}"]) == 0
    out = capsys.readouterr().out
    assert "mAP@0.5:0.95" in out and "AP 0" in out and "AP 9" in out  # the run's summary, per-class AP included
    record_path = Path(out.strip().splitlines()[-1].removeprefix("record: "))
    assert record_path.parent == tmp_path / "val"
    record = json.loads(record_path.read_text())
    for key in ("mAP50", "mAP", "mAP75", "AR100", "params", "flops"):
        assert record["metrics"][key] == pytest.approx(trained["metrics"][key], rel=1e-6, nan_ok=True), key
    assert record["per_class"].keys() == trained["per_class"].keys()
    for name, ap in trained["per_class"].items():
        assert record["per_class"][name] == pytest.approx(ap, rel=1e-6, nan_ok=True), name
    assert record["metrics"]["mAP50"] > 0  # the comparison is of something measured
    assert record["checkpoint"] == trained["checkpoint"] and record["kind"] == "val"


def test_val_override_goes_on_top_of_the_stored_config(trained, tmp_path, capsys):
    assert val_cli.main([f"checkpoint={trained['checkpoint']}", f"results_dir={tmp_path}", "data.num_val=8"]) == 0
    record_path = Path(capsys.readouterr().out.strip().splitlines()[-1].removeprefix("record: "))
    cfg = json.loads(record_path.read_text())["config"]
    assert cfg["data"]["num_val"] == 8 and cfg["model"] == {**trained["config"]["model"], "pretrained": "false"}


def test_predict_on_the_dataset_writes_drawn_images_and_coco_json(trained, tmp_path, capsys):
    out = tmp_path / "pred"
    assert predict_cli.main([f"checkpoint={trained['checkpoint']}", f"out={out}", "conf=0.01", "iou=0.5"]) == 0
    images = sorted((out / "images").iterdir())
    assert len(images) == 16
    dets = json.loads((out / "detections.json").read_text())
    assert dets, "conf=0.01 keeps some detections of a trained model"
    assert set(dets[0]) == {"image_id", "category_id", "bbox", "score", "file_name"}
    assert all(d["score"] >= 0.01 and 1 <= d["category_id"] <= 10 and d["bbox"][2] >= 0 for d in dets)
    # each drawn image is its source image, same size, with boxes drawn on it
    from omegaconf import OmegaConf

    from yolozoo.data.base import read_image
    from yolozoo.data.registry import create_dataset
    from yolozoo.train import dataset_options

    data = OmegaConf.create(trained["config"]["data"])
    records = {r.image_id: r for r in create_dataset("digits", "val", data.root, **dataset_options(data)).records}
    rec = records[dets[0]["image_id"]]
    assert dets[0]["file_name"] == rec.file.name
    drawn = torch.from_numpy(np.array(Image.open(out / "images" / rec.file.name))).permute(2, 0, 1)
    source = read_image(rec.file)
    assert drawn.shape == source.shape and not torch.equal(drawn, source)
    high = tmp_path / "high"
    assert predict_cli.main([f"checkpoint={trained['checkpoint']}", f"out={high}", "conf=0.99"]) == 0
    assert len(json.loads((high / "detections.json").read_text())) < len(dets)


def test_predict_on_a_folder_and_a_file(trained, tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, size in enumerate([(40, 30), (64, 64)]):
        Image.new("RGB", size, (255, 255, 255)).save(folder / f"im{i}.png")
    assert predict_cli.main([f"checkpoint={trained['checkpoint']}", f"source={folder}", f"out={tmp_path / 'a'}"]) == 0
    assert sorted(p.name for p in (tmp_path / "a" / "images").iterdir()) == ["im0.png", "im1.png"]
    assert Image.open(tmp_path / "a" / "images" / "im0.png").size == (40, 30)  # original size
    assert predict_cli.main([f"checkpoint={trained['checkpoint']}", f"source={folder / 'im1.png'}",
                             f"out={tmp_path / 'b'}"]) == 0
    assert [p.name for p in (tmp_path / "b" / "images").iterdir()] == ["im1.png"]


def test_export_needs_only_the_checkpoint(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert export_cli.main([f"checkpoint={trained['checkpoint']}"]) == 0
    assert (tmp_path / "model.onnx").is_file()
    assert "cls_logits [B, A, 10]" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["source=x"], "checkpoint=PATH is required"),
    (["checkpoint={ckpt}", "confidence=0.3"], "unknown option 'confidence'.*did you mean 'conf'"),
    (["checkpoint={ckpt}", "source={tmp}/nope"], "source=.*nope: no such file or folder"),
    (["checkpoint={ckpt}", "model.widht=1"], "unknown key 'model.widht'.*did you mean 'model.width'"),
    (["checkpoint={ckpt}", "conf=2"], r"conf must be in \[0, 1\)"),
])
def test_predict_user_errors_are_one_line_exit_2(trained, tmp_path, capsys, argv, message):
    import re

    argv = [a.format(ckpt=trained["checkpoint"], tmp=tmp_path) for a in argv]
    assert predict_cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and re.search(message, err), err
