"""bench/perf_gpu.py's meter, run on the CPU with a stand-in for nvidia-smi."""

import pytest
import torch

from bench.perf_gpu import run_variant
from yolozoo.config import load_config


class FakeSampler:
    def __init__(self):
        self.started = self.stopped = 0

    def start(self):
        self.started += 1

    def stop(self):
        self.stopped += 1
        return [50.0, 100.0]


def test_meter_times_the_steps_after_warm_up(tmp_path):
    cfg = load_config(["preset=smoke", f"data.root={tmp_path}", "data.num_train=24", "data.num_val=4",
                       "trainer.batch_size=4", "data.num_workers=0", "wandb.mode=disabled", f"out_dir={tmp_path}/runs"])
    sampler = FakeSampler()
    r = run_variant(cfg, warmup=2, steps=5, accelerator="cpu", sampler=sampler)
    assert sampler.started == sampler.stopped == 1
    assert r["samples"] == 2 and r["util_mean"] == 75.0 and r["util_min"] == 50.0
    assert r["img_per_s"] * r["seconds"] == pytest.approx(4 * 3)  # steps 3-5 of batch 4, not the warm-up
    assert 0 <= r["wait_share"] < 1


def test_no_loader_feeds_the_first_batch_at_every_step(tmp_path):
    cfg = load_config(["preset=smoke", f"data.root={tmp_path}", "data.num_train=8", "data.num_val=4",
                       "trainer.batch_size=4", "data.num_workers=0", "wandb.mode=disabled", f"out_dir={tmp_path}/runs"])
    r = run_variant(cfg, warmup=2, steps=5, accelerator="cpu", sampler=FakeSampler(), no_loader=True)
    # 8 scenes make two batches an epoch: five steps only run if one batch is fed again and again
    assert r["img_per_s"] * r["seconds"] == pytest.approx(4 * 3)


def test_only_names_no_variant(capsys):
    from bench.perf_gpu import main

    assert main(["only=no such variant"]) == 2
    assert "no variant's name contains it" in capsys.readouterr().err


def test_only_takes_a_whole_name_else_a_part():
    from bench.perf_gpu import VARIANTS, picks

    whole = "AMP fp16, 14 workers, cache + GPU jitter"
    assert [n for n, _ in VARIANTS if picks(whole, n)] == [whole]  # not its batch-128, EMA, compiled ... rows
    part = [n for n, _ in VARIANTS if picks("CUDA graphs", n)]
    assert len(part) >= 2 and all("CUDA graphs" in n for n in part)


def test_syncs_are_counted_by_place():
    from collections import Counter

    from bench.perf_gpu import syncs_text

    counts = Counter({"/venv/lib/python3.12/site-packages/torch/amp/grad_scaler.py:460": 1,
                      "/repo/yolozoo/assigners/tal.py:64": 3})
    assert syncs_text(counts) == "4 (/repo/yolozoo/assigners/tal.py:64 x3, torch/amp/grad_scaler.py:460 x1)"
    assert syncs_text(Counter()) == "0" and syncs_text(None) == "not counted (no GPU)"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a lent device)")
def test_syncs_are_counted_on_a_gpu(tmp_path):
    cfg = load_config(["preset=smoke", f"data.root={tmp_path}", "data.num_train=24", "data.num_val=4",
                       "trainer.batch_size=4", "data.num_workers=0", "wandb.mode=disabled", f"out_dir={tmp_path}/runs"])
    r = run_variant(cfg, warmup=2, steps=4, sampler=FakeSampler())
    # the TAL assigner's candidate pairs (nonzero) make the host wait: at least one place, in yolozoo's code
    assert sum(r["syncs"].values()) >= 1 and any("yolozoo" in place for place in r["syncs"])
