"""bench/perf_train.py's step is the one training runs: bfloat16 autocast where the config asks for it."""

import pytest
import torch

from bench.perf_train import Stepper
from yolozoo.config import load_config


@pytest.mark.parametrize("precision, dtype", [("bf16-mixed", torch.bfloat16), ("32-true", torch.float32)])
def test_the_timed_step_autocasts_as_lightning_does_on_a_cpu(precision, dtype, smoke_overrides, monkeypatch):
    seen = []
    stepper = Stepper(load_config([*smoke_overrides, f"trainer.precision={precision}"]), steps=3)
    real = stepper.module.loss.__class__.__call__
    monkeypatch.setattr(stepper.module.loss.__class__, "__call__",
                        lambda self, cls_logits, *args: seen.append(cls_logits.dtype) or real(self, cls_logits, *args))
    stepper.run(1)
    assert seen == [dtype]
    assert all(p.grad is None or p.grad.dtype == torch.float32 for p in stepper.module.parameters())
