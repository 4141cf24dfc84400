"""Shared fixtures; tests run on the CPU with W&B offline and every write in a temp dir."""

from __future__ import annotations

import os

import huggingface_hub.constants
import pytest


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """W&B, matplotlib and the dataset cache write only under this test's tmp_path."""
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_CONFIG_DIR", "MPLCONFIGDIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # huggingface_hub reads HF_HUB_OFFLINE once, at import (timm imports it before any test runs)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("YOLOZOO_DATA", os.environ.get("YOLOZOO_TEST_DATA", str(tmp_path / "data")))


@pytest.fixture
def smoke_overrides(tmp_path) -> list[str]:
    """Overrides that keep a smoke run's outputs in tmp_path."""
    return ["preset=smoke", f"out_dir={tmp_path / 'runs'}", f"results_dir={tmp_path / 'results'}",
            f"data.root={tmp_path / 'data'}"]


@pytest.fixture
def nan_loss(monkeypatch):
    """Make the box loss term NaN at every step, as in a diverging run."""
    import torch

    from yolozoo import losses

    real = losses.DetectionLoss.__call__

    def nan_box(self, *args):
        terms = real(self, *args)
        terms["box"] = terms["box"] * torch.tensor(float("nan"))
        return terms

    monkeypatch.setattr(losses.DetectionLoss, "__call__", nan_box)
