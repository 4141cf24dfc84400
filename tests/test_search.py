"""Searches end to end at smoke size: pruning, resume, two workers, W&B per trial, DDP, the best-config file."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from yolozoo.search import SearchOptions, load_search, load_trials, run_search
from yolozoo.sweep.store import default_storage_url, open_storage

ROOT = Path(__file__).resolve().parents[1]
SHRINK = {"preset": "smoke", "data.num_train": "32", "data.num_val": "16", "trainer.max_epochs": "3",
          "eval.latency_batches": "1"}


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("digits")  # generated once, shared by this module's trials


def space_file(tmp_path: Path, pruner: dict | None = None) -> Path:
    """One parameter: a learning rate that learns (0.02) or one that cannot (1e-6), so a pruner has work.

    Seed 1 draws 0.02, 1e-6, 1e-6, 0.02, 1e-6 (fixed: a search is replayable): a completed trial
    that learns comes first, so the median pruner has a bar to hold the others to.
    """
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump({
        "name": "tiny", "objective": {"metric": "mAP", "direction": "maximize"},
        "sampler": {"name": "tpe", "seed": 1, "n_startup_trials": 10},
        "pruner": pruner or {"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
        "params": {"optim.lr": {"type": "categorical", "choices": [0.02, 1.0e-6]}}}, sort_keys=False))
    return path


def cli(tmp_path: Path, data_root: Path, **more) -> dict[str, str]:
    return {**SHRINK, "out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
            "data.root": str(data_root), **more}


def argv(path: Path, overrides: dict[str, str], *options: str) -> list[str]:
    return [f"search={path}", *options, *(f"{k}={v}" for k, v in overrides.items())]


def record_of(trial) -> dict:
    """The run record a trial points to (the store keeps its status, reason and this path)."""
    return json.loads(Path(trial.user_attrs["record"]).read_text())


def study_of(url: str) -> optuna.Study:
    (summary,) = [s for s in optuna.get_all_study_summaries(open_storage(url)) if "search" in s.user_attrs]
    return optuna.load_study(study_name=summary.study_name, storage=open_storage(url))


@pytest.mark.slow
def test_smoke_search_prunes_resumes_and_its_best_config_round_trips(tmp_path, data_root, capsys):
    import bench.run as bench_run

    path, overrides = space_file(tmp_path), cli(tmp_path, data_root)
    url = default_storage_url(tmp_path / "results")
    assert bench_run.main(argv(path, overrides, "n_trials=4")) == 0
    out = capsys.readouterr().out
    trials = study_of(url).get_trials()
    assert len(trials) == 4
    pruned = [t for t in trials if t.state == TrialState.PRUNED]
    completed = [t for t in trials if t.state == TrialState.COMPLETE]
    assert pruned and completed, [(t.number, t.state, t.params) for t in trials]
    for t in pruned:  # stopped after its first epoch, recorded with the reason, its record says so
        assert t.params["optim.lr"] == 1e-6 and list(t.intermediate_values) == [1]
        assert re.fullmatch(r"pruned by the median pruner after epoch 1: val/mAP [0-9.e-]+", t.user_attrs["reason"])
        record = record_of(t)
        assert len(record["history"]) == 1 and record["metrics"]["epochs"] == 1
        assert t.value == t.intermediate_values[1]
        assert record["status"] == "pruned" and record["search"]["trial"] == t.number
        assert record["reason"] == t.user_attrs["reason"]
    for t in completed:  # trained all 3 epochs; the value is the run's recorded val mAP
        record = record_of(t)
        assert len(record["history"]) == 3 and t.value == record["metrics"]["mAP"]
        assert list(t.intermediate_values) == [1, 2, 3]
    assert "pruned by the median pruner" in out and "best config:" in out

    df = load_trials(url, search="tiny")
    assert list(df["trial"]) == [0, 1, 2, 3] and set(df["status"]) == {"completed", "pruned"}
    assert (df.loc[df["status"] == "pruned", "pruned_epoch"] == 1).all() and df["optim.lr"].notna().all()
    stem = re.search(r"best config: (\S+)-best\.yaml", out).group(1)
    for plot in ("history", "parallel", "intermediate"):
        png = tmp_path / "reports" / "search" / f"{Path(stem).name}_{plot}.png"
        assert png.read_bytes()[:4] == b"\x89PNG", plot

    assert bench_run.main(argv(path, overrides, "n_trials=5")) == 0  # the same command, a larger budget: resumes
    trials = study_of(url).get_trials()  # (study_of: still one study)
    assert [t.number for t in trials] == [0, 1, 2, 3, 4] and all(t.state.is_finished() for t in trials)
    assert bench_run.main(argv(path, overrides, "n_trials=5")) == 0 and len(study_of(url).get_trials()) == 5

    best = study_of(url).best_trial
    best_file = Path(f"{stem}-best.yaml")
    written = yaml.safe_load(best_file.read_text())
    assert written["optim.lr"] == best.params["optim.lr"] == 0.02 and written["preset"] == "smoke"
    assert f"trial {best.number}" in best_file.read_text()  # the comment names the trial and value
    rerun = tmp_path / "rerun"
    capsys.readouterr()
    assert bench_run.main([f"config={best_file}", f"out_dir={rerun}", f"results_dir={rerun}",
                           f"data.root={data_root}"]) == 0
    (record_path,) = (rerun / "runs").glob("*.json")
    record = json.loads(record_path.read_text())
    ran, tuned = record["config"], record_of(best)["config"]
    for section in ("data", "model", "optim", "loss", "trainer", "assigner"):
        same = {k: v for k, v in ran[section].items() if k not in ("root",)}
        assert same == {k: v for k, v in tuned[section].items() if k not in ("root",)}, section
    assert ran["seed"] == tuned["seed"] and ran["preset"] == "smoke"
    assert record["metrics"]["mAP"] == pytest.approx(best.value, abs=1e-4)  # the same config trains the same


def wait_for_running_trial(url: str, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if Path(url.removeprefix("sqlite:///")).exists():
            try:
                if any(t.state == TrialState.RUNNING for t in study_of(url).get_trials()):
                    return
            except ValueError:  # the study is not created yet
                continue
    raise AssertionError(f"the worker never started a trial (exit code {proc.poll()})")


@pytest.mark.slow
def test_two_workers_share_one_study(tmp_path, data_root):
    path = space_file(tmp_path, pruner={"name": "none"})
    overrides = cli(tmp_path, data_root, **{"trainer.max_epochs": "1"})
    url = default_storage_url(tmp_path / "results")
    other = subprocess.Popen([sys.executable, str(ROOT / "bench" / "run.py"), *argv(path, overrides, "n_trials=4")],
                             env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_running_trial(url, other)
        space, context = load_search(str(path), overrides)
        mine = run_search(space, context, overrides, SearchOptions(n_trials=4, progress_bar=False)).ran
        log, _ = other.communicate(timeout=300)
    finally:
        other.kill()
    assert other.returncode == 0, log[-3000:]
    trials = study_of(url).get_trials()
    assert 4 <= len(trials) <= 5 and all(t.state == TrialState.COMPLETE for t in trials)  # one study, both workers
    assert len({t.user_attrs["worker"] for t in trials}) == 2 and 1 <= mine < len(trials)
    records = [record_of(t) for t in trials]
    assert sorted(r["search"]["trial"] for r in records) == [t.number for t in trials]  # each trained once
    assert all(r["config"]["optim"]["lr"] == t.params["optim.lr"] for r, t in zip(records, trials))


@pytest.mark.slow
def test_pruning_stops_every_ddp_rank_and_the_trial_has_one_wandb_run(tmp_path, data_root, capfd):
    path = space_file(tmp_path, pruner={"name": "threshold", "lower": 1.0})  # no mAP reaches 1: pruned at epoch 1
    overrides = cli(tmp_path, data_root, **{"trainer.accelerator": "cpu", "trainer.devices": "2",
                                            "trainer.strategy": "ddp", "wandb.mode": "offline"})
    space, context = load_search(str(path), overrides)
    worker = run_search(space, context, overrides, SearchOptions(n_trials=1, progress_bar=False))
    (trial,) = worker.study.get_trials()
    err = capfd.readouterr().err
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in err  # the trial trained on two ranks, in its own process
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [1]  # reported from the child
    assert trial.user_attrs["reason"].startswith("pruned by the threshold pruner after epoch 1: val/mAP")
    record = record_of(trial)
    assert len(record["history"]) == 1 and record["config"]["trainer"]["devices"] == 2
    assert record["name"] == "tiny-t0" and record["config"]["wandb"]["group"] == "search-tiny"  # the W&B run's
    (path,) = (tmp_path / "results" / "runs").glob("*.json")  # both ranks stopped; rank 0 wrote the one record
    assert str(path) == trial.user_attrs["record"] and record["status"] == "pruned"
    # one W&B run, from rank 0, under WANDB_DIR (conftest sets it per test; a user's WANDB_DIR wins over out_dir);
    # its group, name and config are checked in process by test_sweep.py's W&B test
    (folder,) = (tmp_path / "wandb_dir").glob("wandb/offline-run-*")
    assert Path(record["wandb_dir"]) == folder and list(folder.glob("*.wandb"))
