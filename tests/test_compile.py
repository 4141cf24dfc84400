"""trainer.compile: the training steps' model through torch.compile, the same model and weights otherwise.

Inductor takes minutes to compile on these CPUs, so the tests give ``torch.compile`` Dynamo's ``eager`` backend:
the model is traced and its graph run by PyTorch's own ops, which is what the wiring here needs to show.
"""

import copy

import lightning as L
import pytest
import torch

from yolozoo.config import ConfigError, load_config
from yolozoo.ema import FusedEMA
from yolozoo.train import build_datamodule, build_module


def smoke(tmp_path, *extra):
    return load_config(["preset=smoke", f"data.root={tmp_path}", "data.num_train=32", "data.num_val=4",
                        "trainer.batch_size=8", "trainer.channels_last=true", "wandb.mode=disabled",
                        f"out_dir={tmp_path}/runs", *extra])


@pytest.fixture
def eager_compile(monkeypatch):
    """torch.compile with the ``eager`` backend; records the modes it was asked for."""
    modes, compile_ = [], torch.compile

    def fake(model, mode=None, **kw):
        modes.append(mode)
        return compile_(model, backend="eager", **kw)

    monkeypatch.setattr(torch, "compile", fake)
    torch._dynamo.reset()
    yield modes
    torch._dynamo.reset()


def test_an_unknown_mode_fails_at_load_naming_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"trainer\.compile must be null or a torch\.compile mode: default, "
                                          r"reduce-overhead"):
        smoke(tmp_path, "trainer.compile=fast")
    assert smoke(tmp_path, "trainer.compile=reduce-overhead").trainer.compile == "reduce-overhead"


def train(cfg, steps: int = 3):
    L.seed_everything(cfg.seed, verbose=False)
    dm = build_datamodule(cfg)
    module = build_module(cfg, num_classes=10)
    trainer = L.Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        num_sanity_val_steps=0, callbacks=[FusedEMA(decay=0.9, update_starting_at_step=0)])
    trainer.fit(module, datamodule=dm)
    return module, trainer


def test_compiled_steps_train_the_same_weights(tmp_path, eager_compile):
    eager, _ = train(smoke(tmp_path))
    assert eager._compiled is None and eager_compile == []
    compiled, trainer = train(smoke(tmp_path, "trainer.compile=default"))
    assert eager_compile == [None]  # mode "default" is torch.compile's own default, passed as None
    assert compiled._compiled is not None and compiled._compiled._orig_mod is compiled.model
    # the same steps from the same seed: the same weights; the state dict has the model's keys only
    assert list(compiled.state_dict()) == list(eager.state_dict())
    for (name, a), b in zip(eager.state_dict().items(), compiled.state_dict().values()):
        assert torch.equal(b, a), name
    # the EMA's copy (deepcopy at fit start) holds no compiled wrapper of the training model
    ema = next(c for c in trainer.callbacks if isinstance(c, FusedEMA))._average_model.module
    assert ema._compiled is None and ema.model is not compiled.model
    clone = copy.deepcopy(compiled)
    assert clone._compiled is None and clone.train_model() is not compiled._compiled


def test_cuda_graph_modes_mark_each_step(tmp_path, eager_compile, monkeypatch):
    marks = []
    monkeypatch.setattr(torch.compiler, "cudagraph_mark_step_begin", lambda: marks.append(1))
    train(smoke(tmp_path, "trainer.compile=reduce-overhead"), steps=3)
    assert eager_compile == ["reduce-overhead"] and len(marks) == 3


@pytest.mark.parametrize("precision", ["16-mixed", "bf16-mixed"])
def test_mixed_precision_clips_gradients_with_an_unfused_optimizer(tmp_path, precision):
    """Lightning's mixed precision refuses to clip a fused optimizer's gradients (fp16: it would unscale them in its
    own step, after the clipping): ``preset=voc`` on a GPU failed at its first step, and so did ``bf16-mixed``, which
    Lightning also takes for ``16-mixed`` on a CPU. fp16 with its GradScaler emulated on the CPU."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    cfg = smoke(tmp_path)
    L.seed_everything(cfg.seed, verbose=False)
    dm, module = build_datamodule(cfg), build_module(cfg, num_classes=10)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", plugins=[MixedPrecision(precision, "cpu")],
                        gradient_clip_val=10.0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, limit_val_batches=0, num_sanity_val_steps=0)
    trainer.fit(module, datamodule=dm)
    assert trainer.global_step == 2 and not any(g["fused"] for g in trainer.optimizers[0].param_groups)
