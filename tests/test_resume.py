"""resume=true|auto|PATH: a run killed mid-epoch continues to the same result; sweep points resume by themselves."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from yolozoo.checkpoint import detector_state, load_checkpoint
from yolozoo.config import ConfigError, load_config
from yolozoo.resume import RngState, checkpoint_in, resume_checkpoint, resume_mode
from yolozoo.training_identity import training_config

ROOT = Path(__file__).resolve().parents[1]
# smoke size, with the random augmentations on: the resumed run must redraw the same ones
# trainer.channels_last fixed: timed at start-up (the default), the whole run and the killed one could pick different
# layouts on a loaded machine, whose numbers differ in the last bits (two such failures under load)
RUN = ["preset=smoke", "trainer.max_epochs=3", "data.mosaic=0.5", "data.scale=0.2", "data.translate=0.1",
       "eval.latency_batches=1", "name=r", "trainer.channels_last=true"]
# bench/run.py, killed with SIGKILL at the third step of its second epoch (after one saved epoch)
KILLED = """
import os, runpy, signal, sys
from yolozoo.lit import DetectorModule
step = DetectorModule.training_step
def killing_step(self, batch, batch_idx):
    if self.current_epoch == 1 and batch_idx == 2:
        os.kill(os.getpid(), signal.SIGKILL)
    return step(self, batch, batch_idx)
DetectorModule.training_step = killing_step
sys.argv = [{run!r}, *sys.argv[1:]]
runpy.run_path({run!r}, run_name="__main__")
"""


def bench_run(*args: str, killed: bool = False) -> subprocess.CompletedProcess:
    run = str(ROOT / "bench" / "run.py")
    command = [sys.executable, "-c", KILLED.format(run=run)] if killed else [sys.executable, run]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def record_of(results: Path) -> dict:
    (path,) = (results / "runs").glob("*.json")
    return json.loads(path.read_text())


def test_resume_mode_reads_flags_and_paths():
    assert [resume_mode(v) for v in ("false", "True", "auto", "runs/x")] == ["false", "true", "auto", "path"]


def test_resume_path_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match=r"resume=.*nowhere: no such run folder or checkpoint"):
        checkpoint_in(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"holds no checkpoints/last.ckpt"):
        checkpoint_in(tmp_path)


def test_resume_true_without_an_unfinished_run_is_an_error_auto_starts_afresh(tmp_path):
    cfg = load_config(["preset=smoke", f"out_dir={tmp_path}", "resume=true"])
    with pytest.raises(ConfigError, match=r"resume=true: no unfinished run named 'r'"):
        resume_checkpoint(cfg, "r")
    assert resume_checkpoint(load_config(["preset=smoke", f"out_dir={tmp_path}", "resume=auto"]), "r") is None
    assert resume_checkpoint(load_config(["preset=smoke"]), "r") is None


def test_training_config_ignores_where_a_run_writes():
    a = load_config(["preset=smoke", "out_dir=a", "wandb.mode=offline", "resume=true"])
    b = load_config(["preset=smoke", "out_dir=b", "trainer.enable_progress_bar=true"])
    c = load_config(["preset=smoke", "model.width=0.5"])
    from yolozoo.config import to_dict

    assert training_config(to_dict(a)) == training_config(to_dict(b)) != training_config(to_dict(c))


def test_rng_state_survives_a_weights_only_checkpoint(tmp_path):
    callback = RngState()
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    torch.save({"rng": callback.state_dict()}, tmp_path / "c.ckpt")
    expected = torch.rand(3), np.random.rand(3), random.random()
    torch.manual_seed(9), np.random.seed(9), random.seed(9)
    callback.load_state_dict(torch.load(tmp_path / "c.ckpt", weights_only=True)["rng"])
    got = torch.rand(3), np.random.rand(3), random.random()
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_bench_run_resume_true_with_nothing_to_resume_exits_2(tmp_path):
    done = bench_run(*RUN, f"out_dir={tmp_path}", "resume=true")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("error: resume=true: no unfinished run named 'r'")


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_to_the_uninterrupted_result(tmp_path):
    data = f"data.root={tmp_path / 'digits'}"
    whole = bench_run(*RUN, data, f"out_dir={tmp_path / 'a'}", f"results_dir={tmp_path / 'ra'}")
    assert whole.returncode == 0, whole.stderr[-2000:]

    killed = bench_run(*RUN, data, f"out_dir={tmp_path / 'b'}", f"results_dir={tmp_path / 'rb'}", killed=True)
    assert killed.returncode == -9 and "epoch 1/3" in killed.stdout and "epoch 2/3" not in killed.stdout
    assert not list((tmp_path / "rb").rglob("*.json"))  # no record: it died
    resumed = bench_run(*RUN, data, f"out_dir={tmp_path / 'b'}", f"results_dir={tmp_path / 'rb'}", "resume=true")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming r from" in resumed.stdout and "epoch 1/3" not in resumed.stdout

    a, b = record_of(tmp_path / "ra"), record_of(tmp_path / "rb")
    assert b["resumed_from"].endswith("last.ckpt") and a["resumed_from"] is None
    assert [row["epoch"] for row in b["history"]] == [1, 2, 3]
    for key in ("mAP50", "mAP", "mAP75", "epochs", "best_epoch"):
        assert b["metrics"][key] == a["metrics"][key], key
    assert b["per_class"] == a["per_class"] and b["history"][-1]["train/loss"] == a["history"][-1]["train/loss"]
    (last_a,) = (tmp_path / "a").glob("*-r/checkpoints/last.ckpt")
    (last_b,) = (tmp_path / "b").glob("*-r/checkpoints/last.ckpt")  # the interrupted run's folder, continued
    weights_a, weights_b = (detector_state(load_checkpoint(p)) for p in (last_a, last_b))
    assert weights_a.keys() == weights_b.keys()
    assert all(torch.equal(weights_a[k], weights_b[k]) for k in weights_a)

    # a finished run has nothing left to train: resume=true finds none
    again = bench_run(*RUN, data, f"out_dir={tmp_path / 'b'}", "resume=true")
    assert again.returncode == 2 and "no unfinished run" in again.stderr


@pytest.mark.slow
def test_resume_path_uses_the_checkpoints_stored_config(tmp_path):
    data = f"data.root={tmp_path / 'digits'}"
    killed = bench_run(*RUN, data, "model.width=0.5", f"out_dir={tmp_path / 'b'}", f"results_dir={tmp_path / 'rb'}",
                       killed=True)
    assert killed.returncode == -9
    (run_dir,) = (tmp_path / "b").glob("*-r")
    resumed = bench_run(f"resume={run_dir}", f"results_dir={tmp_path / 'rb'}")  # nothing else on the command line
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    record = record_of(tmp_path / "rb")
    assert record["config"]["model"]["width"] == 0.5 and record["config"]["data"]["mosaic"] == 0.5
    assert record["resumed_from"] == str(run_dir / "checkpoints" / "last.ckpt")
    assert [row["epoch"] for row in record["history"]] == [1, 2, 3]


@pytest.mark.slow
def test_a_sweep_point_whose_worker_died_resumes_from_its_last_epoch(tmp_path):
    from yolozoo.sweep import SweepOptions, load_sweep, run_sweep

    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump({"name": "grid", "description": "test", "table": "widths",
                                    "axes": {"model.width": [0.25]}, "seeds": [0]}))
    overrides = {"preset": "smoke", "trainer.max_epochs": "3", "eval.latency_batches": "1",
                 "out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
                 "data.root": str(tmp_path / "digits")}
    killed = bench_run(f"sweep={path}", *(f"{k}={v}" for k, v in overrides.items()), "heartbeat=1", killed=True)
    assert killed.returncode == -9
    outcome = run_sweep(load_sweep(str(path), overrides), overrides,
                        SweepOptions(progress_bar=False, estimate=False, heartbeat=1))
    (row,) = outcome.results.to_dict("records")
    assert row["status"] == "completed"
    (record_path,) = (tmp_path / "results" / "runs").glob("*grid-0.25-s0.json")
    record = json.loads(record_path.read_text())
    assert record["resumed_from"] and Path(record["resumed_from"]).parent.parent.name.endswith("-grid-0.25-s0")
    assert [r["epoch"] for r in record["history"]] == [1, 2, 3] and record["config"]["resume"] == "auto"


@pytest.mark.slow
def test_a_search_trial_whose_worker_died_resumes_from_its_last_epoch(tmp_path):
    from yolozoo.search import SearchOptions, load_search, run_search

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({"name": "tiny", "objective": {"metric": "mAP", "direction": "maximize"},
                                    "sampler": {"name": "random", "seed": 0}, "pruner": {"name": "none"},
                                    "params": {"optim.lr": {"type": "categorical", "choices": [0.02]}}}))
    overrides = {"preset": "smoke", "trainer.max_epochs": "3", "eval.latency_batches": "1",
                 "out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
                 "data.root": str(tmp_path / "digits")}
    killed = bench_run(f"search={path}", "n_trials=1", "heartbeat=1", *(f"{k}={v}" for k, v in overrides.items()),
                       killed=True)
    assert killed.returncode == -9
    space, context = load_search(str(path), overrides)
    worker = run_search(space, context, overrides, SearchOptions(n_trials=1, progress_bar=False, heartbeat=1))
    (retry,) = [t for t in worker.study.get_trials() if t.system_attrs.get("failed_trial") == 0]
    assert retry.state.name == "COMPLETE" and retry.user_attrs["overrides"]["name"] == "tiny-t0"
    (record_path,) = (tmp_path / "results" / "runs").glob("*tiny-t0.json")
    record = json.loads(record_path.read_text())
    assert record["resumed_from"] and [r["epoch"] for r in record["history"]] == [1, 2, 3]
