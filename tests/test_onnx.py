"""ONNX export: onnxruntime reproduces the eager detector, at any batch size; checkpoints load strictly."""

from __future__ import annotations

import onnx
import pytest
import torch
from omegaconf import OmegaConf

import bench.export as export_cli
from yolozoo.checkpoint import infer_num_classes, load_detector_state, read_checkpoint
from yolozoo.config import ModelConfig
from yolozoo.models import build_model
from yolozoo.onnx_export import export_onnx, onnx_parity

RTOL = 1e-4  # of the output's scale; float32 eager itself is ~1e-5 off float64


def _detector(num_classes: int = 7, size: int = 64, **kw) -> torch.nn.Module:
    """A detector whose outputs vary with the input, as a trained one's do.

    At init the BatchNorm running stats (mean 0, var 1) do not match the activations, and in
    eval mode the logits come out nearly constant; one pass in train mode with momentum 1 sets
    the running stats to the batch's.
    """
    torch.manual_seed(0)
    model = build_model(OmegaConf.structured(ModelConfig(**kw)), num_classes)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.momentum = 1.0
    with torch.no_grad():
        model.train()(torch.rand(8, 3, size, size) * 255)
    for m in norms:
        m.momentum = 0.1
    return model.eval()


def _check_parity(model, path, size):
    for batch in (1, 3):  # exported at batch 2: the batch axis is dynamic
        parity = onnx_parity(model, path, torch.rand(batch, 3, size, size) * 255)
        assert [p.name for p in parity] == ["cls_logits", "boxes"]
        assert all(p.relative < RTOL for p in parity), [str(p) for p in parity]
    with torch.no_grad():
        logits = model(torch.rand(2, 3, size, size) * 255).cls_logits
    assert logits.std() > 1e-3  # the comparison covered logits that vary, not a constant


def test_cli_exports_a_checkpoint_that_matches_eager(tmp_path, capsys):
    """Default model at 64 px, weights from a Lightning-style checkpoint, class count read from it."""
    model = _detector(num_classes=7)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 3},
               tmp_path / "last.ckpt")
    out = tmp_path / "m.onnx"
    # a plain checkpoint: the overrides describe the detector (preset=smoke: the dataclass default model)
    assert export_cli.main(["preset=smoke", "data.img_size=64", f"checkpoint={tmp_path / 'last.ckpt'}",
                            f"out={out}"]) == 0
    printed = capsys.readouterr().out
    assert "cls_logits [B, A, 7]" in printed and "onnxruntime vs eager, batch 3" in printed

    graph = onnx.load(str(out)).graph
    assert [i.name for i in graph.input] == ["images"] and [o.name for o in graph.output] == ["cls_logits", "boxes"]
    dims = [d.dim_param or d.dim_value for d in graph.input[0].type.tensor_type.shape.dim]
    assert isinstance(dims[0], str) and dims[1:] == [3, 64, 64]
    _check_parity(model, out, 64)


def test_darknet_detector_exports_at_96px(tmp_path):
    model = _detector(num_classes=3, size=96, backbone="darknet_tiny", width=0.25)
    path = export_onnx(model, tmp_path / "d.onnx", 96)
    _check_parity(model, path, 96)


def test_infer_num_classes_and_strict_checkpoint(tmp_path):
    def build(n):
        return build_model(OmegaConf.structured(ModelConfig(width=0.25)), n)

    state = build(13).state_dict()
    assert infer_num_classes(state, build) == 13
    torch.save(state, tmp_path / "plain.pth")
    assert set(read_checkpoint(tmp_path / "plain.pth")) == set(state)
    wider = build_model(OmegaConf.structured(ModelConfig(width=0.5)), 13)
    with pytest.raises(ValueError, match=r"ck.pth: does not fit the configured detector .*pass the model.\* overrides"):
        load_detector_state(wider, state, "ck.pth")
    with pytest.raises(ValueError, match="checkpoint=.*nope.ckpt: no such file"):
        read_checkpoint(tmp_path / "nope.ckpt")


def test_cli_errors(tmp_path, capsys):
    assert export_cli.main(["model.widht=1"]) == 2
    assert "unknown key 'model.widht'" in capsys.readouterr().err
    assert export_cli.main([f"checkpoint={tmp_path / 'nope.ckpt'}", f"out={tmp_path / 'x.onnx'}"]) == 2
    assert "nope.ckpt: no such file" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
