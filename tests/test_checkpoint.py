"""Checkpoints load with weights_only=True: a pickle that would run code is refused, naming the file."""

from __future__ import annotations

import pytest
import torch

import bench.export as export_cli
import bench.predict as predict_cli
import bench.val as val_cli
from yolozoo.checkpoint import CheckpointError, checkpoint_hparams, load_checkpoint, read_checkpoint


class _CreatesFile:
    """Unpickling this calls ``open(path, "w")``: it creates a file, as a malicious checkpoint could."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return open, (self.path, "w")


@pytest.fixture
def malicious(tmp_path):
    marker = tmp_path / "pwned.txt"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {"model.w": torch.zeros(1)}, "payload": _CreatesFile(marker)}, path)
    assert not marker.exists()
    return path, marker


def test_malicious_pickle_is_refused_and_nothing_runs(malicious):
    path, marker = malicious
    for load in (load_checkpoint, read_checkpoint):
        with pytest.raises(CheckpointError, match=r"evil\.ckpt: refused: .*could run code"):
            load(path)
    assert not marker.exists()


@pytest.mark.parametrize("cli", [export_cli, predict_cli, val_cli])
def test_clis_refuse_a_malicious_checkpoint_with_one_line(malicious, cli, tmp_path, capsys):
    path, marker = malicious
    assert cli.main([f"checkpoint={path}", f"out_dir={tmp_path / 'runs'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and str(path) in err and "refused" in err and "\n" not in err
    assert not marker.exists()


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"checkpoint=.*nope\.ckpt: no such file"):
        load_checkpoint(tmp_path / "nope.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.ckpt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")


def test_hparams_round_trip_with_weights_only(tmp_path):
    config = {"preset": "smoke", "model": {"width": 0.25, "strides": [4, 8, 16], "pretrained": "false"},
              "name": None, "trainer": {"deterministic": False}}
    hp = checkpoint_hparams(config, ["a", "b"], anchors=torch.ones(3, 2, 2))
    torch.save({"hyper_parameters": hp, "state_dict": {}}, tmp_path / "c.ckpt")
    loaded = load_checkpoint(tmp_path / "c.ckpt")["hyper_parameters"]
    assert loaded == {"config": config, "classes": ["a", "b"], "num_classes": 2, "anchors": [[[1.0, 1.0]] * 2] * 3}


def test_a_checkpoint_from_before_streamlined_backbones_still_loads():
    """Weights saved before backbones were streamlined (timm's body: frozen BatchNorms unfolded, unused stride-32
    blocks present) load into a detector built now, which then predicts as the old one did."""
    import torch
    from omegaconf import OmegaConf

    from yolozoo.checkpoint import load_detector_state
    from yolozoo.config import ModelConfig
    from yolozoo.models import build_model
    from yolozoo.models.backbone import freeze_up_to
    from yolozoo.models.pretrained import create_backbone_body

    cfg = OmegaConf.structured(ModelConfig(backbone="mobilenetv2_100", strides=[4, 8, 16], freeze=4, width=0.25))
    torch.manual_seed(0)
    old = build_model(cfg, 3)
    old.backbone.body = create_backbone_body("mobilenetv2_100", False)  # as built before
    freeze_up_to(old.backbone.body, "mobilenetv2_100", 4)
    with torch.no_grad():  # frozen norms that do something, so a wrong fold would show
        for name, buf in old.backbone.body.named_buffers():
            if name.startswith(("bn1.", "blocks.0.", "blocks.1.")) and name.endswith(("running_var", "weight")):
                buf.uniform_(0.5, 2.0)
            elif name.startswith(("bn1.", "blocks.0.", "blocks.1.")) and name.endswith(("running_mean", "bias")):
                buf.normal_(0, 0.5)
    state = old.state_dict()
    assert "backbone.body.blocks.6.0.conv_pw.weight" in state and "backbone.body.bn1.running_var" in state
    new = build_model(cfg, 3)
    assert set(new.state_dict()) != set(state)
    load_detector_state(new, state, "old.ckpt")
    images = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    with torch.no_grad():
        want, got = old.eval()(images), new.eval()(images)
    torch.testing.assert_close(got.cls_logits, want.cls_logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(got.boxes, want.boxes, rtol=1e-4, atol=1e-3)
    with pytest.raises(ValueError, match="old.ckpt: does not fit the configured detector"):
        load_detector_state(build_model(cfg, 3), {**state, "backbone.body.extra": torch.zeros(1)}, "old.ckpt")
