"""The timing pass: medians over the asked batches, a fixed thread count, and the load flag."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from yolozoo.speed import LOAD_LIMIT, LoadMeter, timing_pass


class Tiny(torch.nn.Module):
    """A stand-in detector: what timing_pass needs is ``out.cls_logits`` [B, A, C] and ``out.boxes`` [B, A, 4]."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, stride=8)

    def forward(self, images):
        x = self.conv(images.float() / 255).flatten(2).transpose(1, 2)  # [B, A, 4]
        return type("Out", (), {"cls_logits": x[..., :2], "boxes": x.abs().cumsum(-1) * 10})()


def fake_meter(other_busy_per_s: float) -> LoadMeter:
    """A meter whose clock advances 1 s per reading, while other processes use ``other_busy_per_s`` cores."""
    state = {"t": 0.0}

    def clock():
        state["t"] += 1.0
        return state["t"]

    return LoadMeter(busy=lambda: 100.0 + state["t"] * (other_busy_per_s + 0.5), own=lambda: state["t"] * 0.5,
                     clock=clock)


@pytest.mark.parametrize("other, flagged", [(0.0, False), (LOAD_LIMIT / 2, False), (1.0, True)])
def test_load_flag_from_other_processes_cpu_time(other, flagged):
    t = timing_pass(Tiny(), 32, batches=3, batch_size=2, warmup=1, threads=1, meter=fake_meter(other))
    assert t.other_cpu == pytest.approx(other, abs=1e-6)  # this process's own 0.5 cores are not counted
    assert t.under_load is flagged and t.metrics()["timing_under_load"] == float(flagged)


def test_unreadable_proc_stat_gives_no_flag():
    meter = LoadMeter(busy=lambda: None)
    t = timing_pass(Tiny(), 32, batches=2, batch_size=2, warmup=0, threads=1, meter=meter)
    assert t.other_cpu is None and t.under_load is False


def test_timing_pass_fixes_and_restores_threads():
    before = torch.get_num_threads()
    t = timing_pass(Tiny(), 32, batches=4, batch_size=2, warmup=1, threads=1)
    assert t.threads == 1 and t.batches == 4 and torch.get_num_threads() == before
    assert t.latency_ms > 0 and t.throughput > 0
    with pytest.raises(ValueError, match="batches"):
        timing_pass(Tiny(), 32, batches=0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the load meter reads /proc/stat (Linux only)")
def test_a_busy_process_during_the_pass_is_flagged():
    spin = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start spinning
        t = timing_pass(Tiny(), 64, batches=300, batch_size=2, warmup=2, threads=1)  # ~1 s: many jiffies
    finally:
        spin.kill()
        spin.wait()
    assert t.other_cpu is not None and t.other_cpu > LOAD_LIMIT and t.under_load
