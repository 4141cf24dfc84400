"""The sweep store and claims without training: queue pops, which point runs next, results errors."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from yolozoo.config import load_config
from yolozoo.record import json_safe
from yolozoo.sweep import load_results
from yolozoo.sweep.claims import GridState, conflicting_trial, trial_key
from yolozoo.sweep.grid import GridSampler
from yolozoo.sweep.point import needs_own_process
from yolozoo.sweep.spec import Point
from yolozoo.sweep.store import default_storage_url, open_storage, study_name

ROOT = Path(__file__).resolve().parents[1]
POINTS = [Point({"w": w}, 0, {"model.width": w}) for w in (0.25, 0.5, 0.75)]

POP = textwrap.dedent("""
    import time, optuna
    from yolozoo.sweep.store import open_storage
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.load_study(study_name="q", storage=open_storage({url!r}))
    while time.time() < {start}:
        time.sleep(0.005)
    got = []
    for i in range(30):
        if i % 2 == 0:
            study.enqueue_trial({{"x": i}})
        got.append(study.ask()._trial_id)
    print(" ".join(map(str, got)))
""")


def test_concurrent_workers_never_pop_the_same_queued_trial(tmp_path):
    # pysqlite's deferred transactions let two processes pop one WAITING trial; open_storage must not
    url = default_storage_url(tmp_path)
    optuna.create_study(study_name="q", storage=open_storage(url))
    code = POP.format(url=url, start=time.time() + 6)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env)
             for _ in range(3)]
    ids = [int(i) for p in procs for i in p.communicate(timeout=120)[0].split()]
    assert all(p.returncode == 0 for p in procs) and len(ids) == 90
    assert len(set(ids)) == 90


def study_with(*trials) -> optuna.Study:
    """A fresh in-memory study holding ``(state, width)`` trials, in order."""
    study = optuna.create_study(direction="maximize")
    for state, w in trials:
        study.enqueue_trial({"w": w, "seed": 0}, user_attrs={"fingerprint": Point({"w": w}, 0, {"model.width": w})
                                                             .fingerprint})
        trial = study.ask({"w": optuna.distributions.CategoricalDistribution([0.25, 0.5, 0.75]),
                           "seed": optuna.distributions.CategoricalDistribution([0])})
        if state != TrialState.RUNNING:
            study.tell(trial, 0.5 if state == TrialState.COMPLETE else None, state=state)
    return study


def test_grid_state_skips_completed_and_running_and_retries_old_failures():
    study = study_with((TrialState.COMPLETE, 0.25), (TrialState.RUNNING, 0.5), (TrialState.FAIL, 0.75))
    state = GridState(study.get_trials(), POINTS)
    assert state.counts() == {"total": 3, "done": 1, "running": 1, "failed": 1}
    # 0.75 failed before this worker started: retried; after it started: left for the next run
    assert [p.labels["w"] for p in state.todo(datetime.now() + timedelta(seconds=1))] == [0.75]
    assert state.todo(datetime.now() - timedelta(hours=1)) == []


def test_grid_state_reruns_a_point_whose_overrides_changed():
    study = study_with((TrialState.COMPLETE, 0.25))
    changed = [Point({"w": 0.25}, 0, {"model.width": 0.25, "data.img_size": 96})]  # the sweep file was edited
    assert GridState(study.get_trials(), changed).todo(datetime.now()) == changed


def test_a_point_already_held_by_another_trial_is_a_conflict():
    study = study_with((TrialState.RUNNING, 0.5), (TrialState.RUNNING, 0.5), (TrialState.FAIL, 0.25))
    first, second, _ = study.get_trials()
    point = Point({"w": 0.5}, 0, {"model.width": 0.5})
    assert conflicting_trial(study, second.number, point).number == first.number
    assert conflicting_trial(study, first.number, point).number == second.number
    assert conflicting_trial(study, 99, POINTS[0]) is None  # a failed trial does not hold its point


def test_a_trial_killed_between_its_suggestions_still_holds_its_whole_point():
    # CI saw it: a worker killed after suggest("w") but before suggest("seed") left a RUNNING trial
    # keyed by {"w"} alone, so the next worker neither saw it running nor ran its queued retry
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"w": 0.5, "seed": 0})
    trial = study.ask()
    trial.suggest_categorical("w", [0.25, 0.5, 0.75])  # killed here
    (half,) = study.get_trials()
    assert half.params == {"w": 0.5}
    assert trial_key(half) == POINTS[1].key
    state = GridState(study.get_trials(), POINTS)
    assert list(state.running) == [POINTS[1].key] and state.counts()["running"] == 1


def test_grid_sampler_lets_the_worker_queue_the_last_point():
    # optuna 5.0's GridSampler.after_trial raises KeyError('grid_id') for an enqueued last point
    study = optuna.create_study(sampler=GridSampler({"x": [1]}), direction="maximize")
    study.enqueue_trial({"x": 1})
    study.optimize(lambda t: t.suggest_categorical("x", [1]), n_trials=1)
    assert study.trials[0].state == TrialState.COMPLETE


def test_study_name_ignores_output_locations():
    assert study_name("widths", {"out_dir": "/a", "data.root": "/d", "wandb.mode": "online"}) == "widths"
    assert study_name("widths", {"trainer.max_epochs": "3", "preset": "voc"}) == \
        "widths preset=voc trainer.max_epochs=3"


def test_json_safe_drops_nan_and_keeps_structure():
    import numpy as np

    assert json_safe({"a": float("nan"), "b": [np.float32(0.5), (1, float("inf"))], "c": Path("/x")}) == \
        {"a": None, "b": [0.5, [1, None]], "c": "/x"}
    assert json_safe(0.123456789, digits=3) == 0.123


def test_load_results_errors_name_the_store_and_the_sweeps(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no sweep store at .*sweeps.db; run `python bench/run.py sweep="):
        load_results(results_dir=tmp_path)
    url = default_storage_url(tmp_path)
    optuna.create_study(study_name="widths", storage=open_storage(url)).set_user_attr("sweep", "widths")
    with pytest.raises(KeyError, match=r"no sweep 'assigners' in .*; it holds: widths"):
        load_results(url, "assigners")
    assert load_results(url, "widths").empty


def test_multi_device_points_get_their_own_process():
    assert not needs_own_process(load_config(["trainer.accelerator=cpu"]))
    assert needs_own_process(load_config(["trainer.accelerator=cpu", "trainer.devices=[0,1,2]"]))
    assert needs_own_process(load_config(["trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp"]))
    assert needs_own_process(load_config(["trainer.strategy=ddp", "trainer.devices=1"]))


def test_workers_option_starts_that_many_workers(monkeypatch):
    from yolozoo.sweep import cli

    started = []

    class FakeWorker:
        def __init__(self, cmd, env):
            started.append((cmd, env))

        def wait(self):
            return 1 if len(started) == 1 else 0  # one worker saw a failed point: not an error of the launch

    monkeypatch.setattr(cli.subprocess, "Popen", FakeWorker)
    assert cli.spawn_workers(["sweep=widths", "workers=3", "trainer.max_epochs=1"], 3) == 0
    assert len(started) == 3
    for i, (cmd, env) in enumerate(started):
        assert cmd[1:] == ["-m", "yolozoo.sweep.cli", "sweep=widths", "trainer.max_epochs=1"]
        assert env[cli.CHILD_ENV] == str(i) and str(ROOT) in env["PYTHONPATH"]
