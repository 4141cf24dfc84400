"""The start-up layout benchmark leaves the model, its statistics and the RNG as they were."""

import torch

from yolozoo.config import load_config
from yolozoo.layout import faster_layout
from yolozoo.models import build_model


def test_faster_layout_times_a_copy():
    model = build_model(load_config(["model.width=0.25"]).model, num_classes=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    torch.manual_seed(7)
    rng = torch.get_rng_state()
    use_nhwc, seconds = faster_layout(model, img_size=64, batch_size=2, steps=1)
    assert isinstance(use_nhwc, bool) and use_nhwc == (seconds["channels_last"] < seconds["nchw"])
    assert all(s > 0 for s in seconds.values())
    assert torch.equal(torch.get_rng_state(), rng)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # weights and batch-norm statistics
    assert all(p.grad is None for p in model.parameters())
    assert next(p for p in model.parameters() if p.ndim == 4).is_contiguous()  # the model's own layout


def test_a_resumed_run_keeps_the_layout_its_checkpoint_trained_in(tmp_path, monkeypatch):
    import pytest
    from lightning.pytorch.callbacks import Callback

    import yolozoo.train
    from yolozoo.train import train

    class Interrupt(Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == 1:
                raise RuntimeError("interrupted")

    def timed(nhwc: bool):  # what the start-up timing chose, made up: the machine was busy
        return lambda *a, **k: (nhwc, {"channels_last": nhwc, "how": "auto: timed", "channels_last_ms": 1.0,
                                       "nchw_ms": 1.0})

    run = ["preset=smoke", f"out_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}",
           f"data.root={tmp_path / 'data'}", "eval.latency_batches=1", "name=layout"]
    monkeypatch.setattr(yolozoo.train, "resolve_channels_last", timed(False))
    with pytest.raises(RuntimeError, match="interrupted"):
        train(load_config(run), callbacks=[Interrupt()])
    monkeypatch.setattr(yolozoo.train, "resolve_channels_last", timed(True))  # would now choose the other
    record = train(load_config([*run, "resume=true"]))
    assert record["resumed_from"] and record["layout"] == {"channels_last": False, "how": "checkpoint"}
