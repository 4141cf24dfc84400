"""Every registered assigner trains a small digits run to val mAP@0.5 > 0, above the untrained model's.

Setting (tests/train_helpers.py): ``preset=smoke`` (64 px, width 0.25) with 256 training images
for 3 epochs (48 steps), no weight EMA, 128 val images. Why not the bare preset: it trains 8
steps, and its EMA (decay 0.995) then still holds ~96% of the initial weights, so validation
measures the untrained model. An untrained model can score mAP@0.5 ~ 1e-4 to 1e-3 by chance (a
box or two matched), so "> 0" alone would prove nothing: each run must beat its own untrained
start 3x. At this size the runs reach mAP@0.5 ~ 0.006-0.04, in 5-10 s each on one CPU thread.
"""

from __future__ import annotations

import pytest
from train_helpers import train_overrides, untrained_map50

from yolozoo.assigners import create_assigner, list_assigners
from yolozoo.config import load_config


def head_for(name: str) -> str:
    return "anchor" if getattr(create_assigner(name), "requires_anchors", False) else "free"


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> list[str]:
    """Smoke overrides with one dataset cache for the whole module; runs write under tmp."""
    return train_overrides(tmp_path_factory.mktemp("assigner_train"))


@pytest.fixture(scope="module")
def untrained(base) -> dict[str, float]:
    """Val mAP@0.5 of each head at its initialisation (same seed as the training runs)."""
    return {head: untrained_map50(load_config([*base, f"model.head={head}", f"assigner.name={assigner}"]))
            for head, assigner in (("free", "tal"), ("anchor", "yolov5"))}


@pytest.mark.slow
@pytest.mark.parametrize("name", list_assigners())
def test_assigner_trains(name, base, untrained):
    from yolozoo.train import train

    head = head_for(name)
    record = train(load_config([*base, f"assigner.name={name}", f"model.head={head}"]))
    assert record["config"]["model"]["head"] == head and record["config"]["assigner"]["name"] == name
    history = record["history"]
    assert len(history) == 3
    assert history[-1]["train/loss"] < history[0]["train/loss"]
    assert all(row["train/assign/pos_per_gt_mean"] > 0 for row in history)  # the assigner gave positives
    m = record["metrics"]["mAP50"]
    assert m > 0 and m > 3 * untrained[head], (m, untrained)
