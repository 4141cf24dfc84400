"""bench/perf_profile.py's split of real steps at Lightning's hooks."""

import pytest

from bench.perf_profile import REAL, StepClock


def test_real_steps_split_at_the_hooks_from_the_same_steps():
    clock = StepClock()
    # step i: starts at 10 i; forward 4 ms, backward 3, optimizer and batch end 2, then 1 until the next start
    for i in range(8):
        t = 10.0 * i
        clock.steps.append({"start": t, "forward": t + 4, "backward": t + 7, "end": t + 9})
    clock.steps[5]["forward"] += 50  # one slow forward: the medians ignore it
    segments, whole = clock.split(warmup=3)
    assert list(segments) == REAL
    assert [segments[k] for k in REAL] == pytest.approx([4, 3, 2, 1]) and whole == pytest.approx(10)


def test_parts_rows_set_each_parts_operations_against_its_time():
    from bench.perf_profile import PARTS, parts_rows

    parts = dict.fromkeys(PARTS, 0.001)  # 1 ms each
    flops = dict.fromkeys(PARTS, 0) | {"forward: neck": 1e9, "backward: neck": 2e9}
    parts["backward: neck"] = 0.004
    rows = parts_rows(parts, flops, ceiling=1000e9, batch_size=8)
    assert len(rows) == len(PARTS) + 1
    assert rows[PARTS.index("forward: neck")] == "| forward: neck | 1.0 | 7% | 1.00 | 1000 | 100% |"
    assert rows[PARTS.index("backward: neck")] == "| backward: neck | 4.0 | 29% | 2.00 | 500 | 50% |"
    assert rows[PARTS.index("optimizer step")] == "| optimizer step | 1.0 | 7% | 0.00 |  |  |"
    assert rows[-1] == "| **sum of the parts** | **14.0** | 571 images/s | 3.00 | 214 | 21% |"


def test_step_flops_splits_the_operations_where_the_times_are_split(tmp_path):
    """Counted at the same marks as the parts' times: the forward parts' operations are those of each part's own
    forward, the backward's add up to about twice the forward's (input and weight gradients), nothing after it."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from bench.perf_profile import PARTS, step_flops
    from yolozoo.config import load_config
    from yolozoo.train import build_module, ready_datamodule

    cfg = load_config(["preset=smoke", f"data.root={tmp_path / 'data'}"])
    dm = ready_datamodule(cfg)
    batch = next(iter(dm.train_dataloader()))
    module = build_module(cfg, len(dm.classes))
    module.train()
    flops = step_flops(module, batch)
    assert list(flops) == PARTS
    model = module.model
    with FlopCounterMode(display=False) as forward_only, torch.no_grad():
        model(module.images(batch))
    counts = forward_only.get_flop_counts()
    root = type(model).__name__
    for part, row in [("backbone", "forward: backbone"), ("neck", "forward: neck")]:
        assert flops[row] == sum(counts[f"{root}.{part}"].values()) > 0, part
    forward = sum(flops[p] for p in PARTS[:3])
    backward = sum(flops[p] for p in PARTS if p.startswith("backward"))
    assert 1.5 * forward < backward < 2.1 * forward  # the stem's first conv needs no input gradient
    assert all(flops[p] == 0 for p in PARTS[PARTS.index("optimizer step"):])
    assert all(p.grad is None for p in model.parameters())  # the counted step leaves no gradients behind
