"""Backbone pretraining: a few steps on digit crops / an ImageFolder, then the detector starts from it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from PIL import Image

import bench.pretrain as pretrain_cli
from yolozoo.config import ConfigError, ModelConfig
from yolozoo.models import build_model
from yolozoo.models.backbone import TimmBackbone
from yolozoo.models.pretrained import WeightsError, save_backbone
from yolozoo.pretrain import crop_boxes, load_pretrain_config, pretrain

TINY = ["model.backbone=darknet_tiny", "digits.num_train=8", "digits.num_val=4", "digits.scene_size=64",
        "batch_size=8", "max_steps=3", "progress_bar=false", "accelerator=cpu"]


def _detector(pretrained: str):
    return build_model(OmegaConf.structured(ModelConfig(backbone="darknet_tiny", pretrained=pretrained)), 10)


def test_pretrain_round_trip(tmp_path, capsys):
    """Start from a known file, train 3 steps, save; the detector loads exactly what was trained."""
    init = save_backbone(TimmBackbone("darknet_tiny").body, "darknet_tiny", tmp_path / "init.pth")
    out = tmp_path / "bb.pth"
    argv = [*TINY, f"digits.root={tmp_path / 'data'}", f"model.pretrained={init}", f"out={out}"]
    assert pretrain_cli.main(argv) == 0
    printed = capsys.readouterr().out
    acc = float(printed.split("val accuracy ")[1].split()[0])
    assert 0.0 <= acc <= 1.0 and f"wrote {out}" in printed and "3 steps" in printed

    saved = torch.load(out, weights_only=True)
    assert saved["backbone"] == "darknet_tiny" and saved["steps"] == 3 and round(saved["val_acc"], 4) == acc
    trained, start = _detector(str(out)).eval(), _detector(str(init)).eval()
    for k, v in trained.backbone.body.state_dict().items():
        assert torch.equal(v, saved["state_dict"][k]), k
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8).float()
    with torch.no_grad():
        a = trained.backbone((images - trained.backbone.mean) / trained.backbone.std)
        b = start.backbone((images - start.backbone.mean) / start.backbone.std)
    assert all((x - y).abs().max() > 1e-4 for x, y in zip(a, b))  # training moved every level


def test_wrong_file_fails_clearly(tmp_path):
    path = save_backbone(TimmBackbone("darknet_tiny").body, "darknet_tiny", tmp_path / "bb.pth")
    with pytest.raises(WeightsError, match="weights are for backbone 'darknet_tiny', not 'darknet_small'"):
        build_model(OmegaConf.structured(ModelConfig(backbone="darknet_small", pretrained=str(path))), 10)
    state = TimmBackbone("darknet_tiny").body.state_dict()
    state["stages_1.0.conv.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(WeightsError, match=r"bad.pth: tensor 'stages_1.0.conv.weight' has shape \(1,\)"):
        _detector(str(tmp_path / "bad.pth"))


def test_image_folder(tmp_path):
    """Any ImageFolder: two classes told apart by colour; split by val_fraction."""
    rng = np.random.default_rng(0)
    for cls, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        (tmp_path / "imgs" / cls).mkdir(parents=True)
        for i in range(6):
            img = np.clip(rng.normal(colour, 20, (40, 48, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(img).save(tmp_path / "imgs" / cls / f"{i}.png")
    cfg = load_pretrain_config([*TINY, f"data={tmp_path / 'imgs'}", "val_fraction=0.25", "epochs=1", "max_steps=-1",
                                f"out={tmp_path / 'o.pth'}"])
    result = pretrain(cfg)
    assert result["classes"] == ["blue", "red"] and (result["num_train"], result["num_val"]) == (9, 3)
    assert result["out"].is_file() and result["steps"] == 1  # 9 images, batch 8, partial batch dropped


def test_crop_boxes_centres_the_box():
    image = torch.zeros(3, 40, 40, dtype=torch.uint8)
    image[:, 10:20, 20:30] = 255  # a white 10x10 square
    crops = crop_boxes(image, torch.tensor([[20.0, 10.0, 30.0, 20.0], [35.0, 35.0, 45.0, 45.0]]), 12, context=1.2)
    assert crops.shape == (2, 3, 12, 12) and crops.dtype == torch.uint8
    assert crops[0, :, 2:10, 2:10].min() > 200 and crops[0, :, 0, :].max() < 128  # square inside, border outside
    assert crops[1].max() == 0  # past the image edge: zero padding, no error


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown key 'epoch'"):
        load_pretrain_config(["epoch=3"])
    with pytest.raises(ConfigError, match="img_size must be a positive multiple of 32"):
        load_pretrain_config(["img_size=40"])
    with pytest.raises(ConfigError, match="neither"):
        load_pretrain_config([f"data={tmp_path / 'missing'}"])
    assert load_pretrain_config([]).out == str(Path("runs/pretrain/darknet_small-digits.pth"))
    assert pretrain_cli.main(["epochs=x"]) == 2
