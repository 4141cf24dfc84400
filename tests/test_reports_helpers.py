"""Helpers for the report tests (no tests here): synthetic results frames with known numbers, a table reader."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from yolozoo.analysis.spec import ReportSpec
from yolozoo.sweep.schema import validated
from yolozoo.sweep.spec import SweepSpec

ASSIGNERS_SWEEP = {
    "name": "assigners", "description": "label assignment on digits", "table": "assigners",
    "base": {"model.backbone": "resnet18"},
    "axes": {"assigner": {"tal": {"assigner.name": "tal"},
                          "nearby_grid": {"assigner.name": "nearby_grid", "model.head": "anchor"},
                          "all_grid": {"assigner.name": "all_grid", "model.head": "anchor"},
                          "single_grid": {"assigner.name": "single_grid", "model.head": "anchor"}}},
    "seeds": [0, 1, 2], "baseline": {"assigner": "tal"},
}

# (status, mAP50, mAP, reason) per assigner and seed; no row = a missing seed. The failed all_grid
# run carries a partial mAP50 of 0.99 that must be neither averaged nor bolded.
ASSIGNER_RUNS = {
    "tal": {0: ("completed", 0.50, 0.30, None), 1: ("completed", 0.52, 0.31, None), 2: ("completed", 0.54, 0.35, None)},
    "nearby_grid": {0: ("completed", 0.60, 0.36, None), 1: ("completed", 0.58, 0.33, None),
                    2: ("completed", 0.65, 0.39, None)},
    "all_grid": {0: ("completed", 0.55, 0.32, None), 1: ("failed", 0.99, math.nan, "CUDA out of memory"),
                 2: ("completed", 0.57, 0.34, None)},
    "single_grid": {0: ("failed", math.nan, math.nan,
                        "Traceback (most recent call last):\n  File x\nFloatingPointError: loss is nan at epoch 3\n"),
                    1: ("running", math.nan, math.nan, None)},
}


def config(backbone: str = "resnet18", width: float = 0.75, assigner: str = "tal", seed: int = 0) -> dict:
    return {"preset": "default", "seed": seed, "data": {"name": "digits", "img_size": 128},
            "model": {"backbone": backbone, "width": width, "pretrained": "false"},
            "assigner": {"name": assigner}, "trainer": {"max_epochs": 18}}


def row(sweep: str, axes: dict, status: str, seed: int, cfg: dict, mAP50=math.nan, mAP=math.nan, reason=None,
        **metrics) -> dict:
    """One results row in the sweep runner's contract shape."""
    done = status == "completed"
    history = [{"epoch": e, "val/mAP50": mAP50 * e / 3, "val/mAP": mAP * e / 3, "train/loss": 3.0 / e,
                "train/assign/pos_per_gt_mean": 2.0 + seed, "train/assign/gt_without_pos": 0.1 * seed}
               for e in (1, 2, 3)] if done else []
    base = {"sweep": sweep, "trial": 0, "status": status, "reason": reason, "seed": seed, **axes, "overrides": {},
            "config": cfg, "mAP50": mAP50, "mAP": mAP, "mAP75": math.nan, "APs": math.nan, "APm": math.nan,
            "APl": math.nan, "params": math.nan, "flops": math.nan, "latency_ms": math.nan, "throughput": math.nan,
            "train_time_s": math.nan, "epochs": 3 if done else math.nan, "best_epoch": 3 if done else math.nan,
            "pos_per_gt": 2.0 + seed if done else math.nan, "gt_without_pos": 0.1 * seed if done else math.nan,
            "history": history, "commit": "abc123", "date": f"2026-11-2{seed}T10:00:00+00:00", "device": "cpu",
            "preset": "default", "dataset": "digits", "wandb_dir": None}
    base.update(metrics)
    return base


def assigners_frame() -> pd.DataFrame:
    rows = []
    for assigner, seeds in ASSIGNER_RUNS.items():
        for seed, (status, m50, m, reason) in seeds.items():
            extra = {"APs": m - 0.1, "latency_ms": 5.0 + seed, "params": 11.2e6, "flops": 2.5e9,
                     "train_time_s": 400.0 + 10 * seed} if status == "completed" else {}
            rows.append(row("assigners", {"assigner": assigner}, status, seed, config(assigner=assigner, seed=seed),
                            m50, m, reason, **extra))
    return pd.DataFrame(rows)


def spec_of(data: dict) -> ReportSpec:
    """A sweep file's contents (as loaded from YAML) as the report reads it."""
    return ReportSpec(validated(SweepSpec, data, Path(f"{data['name']}.yaml")))


def assigners_spec() -> ReportSpec:
    return spec_of(ASSIGNERS_SWEEP)


def md_table(text: str, n_axes: int = 1) -> dict[str, dict[str, str]]:
    """The first Markdown table in ``text`` as {axis labels joined by '/': {header: cell text}}."""
    lines = next(block for block in text.split("\n\n") if block.startswith("| ")).splitlines()
    headers = [h.strip() for h in lines[0].strip("|").split("|")]
    out = {}
    for line in lines[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out["/".join(cells[1:1 + n_axes])] = dict(zip(headers, cells))
    return out
