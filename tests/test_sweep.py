"""Sweeps end to end at smoke size: results as a DataFrame, resume, failures, W&B, kill -9, many workers."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from yolozoo.sweep import SweepOptions, load_results, load_sweep, run_sweep
from yolozoo.sweep.claims import is_superseded, trial_key
from yolozoo.sweep.store import default_storage_url, open_storage

ROOT = Path(__file__).resolve().parents[1]
SHRINK = {"preset": "smoke", "data.num_train": "32", "data.num_val": "16", "trainer.max_epochs": "1",
          "eval.latency_batches": "1"}
REQUIRED = ["sweep", "trial", "status", "reason", "seed", "overrides", "config", "mAP50", "mAP", "mAP75", "APs", "APm",
            "APl", "params", "flops", "latency_ms", "throughput", "train_time_s", "epochs", "best_epoch", "pos_per_gt",
            "gt_without_pos", "pos_per_level", "history", "commit", "date", "device", "preset", "dataset", "wandb_dir"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("digits")  # generated once, shared by this module's points


def sweep_file(tmp_path: Path, axes: dict, seeds=(0,), name: str = "grid") -> Path:
    path = tmp_path / f"{name}.yaml"
    data = {"name": name, "description": "test grid", "table": "widths", "axes": axes, "seeds": list(seeds)}
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cli(tmp_path: Path, data_root: Path, **more) -> dict[str, str]:
    return {**SHRINK, "out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"),
            "data.root": str(data_root), **more}


def run(path: Path, overrides: dict[str, str], **options):
    options.setdefault("estimate", False)  # tested in test_sweep_estimate.py
    return run_sweep(load_sweep(str(path), overrides), overrides, SweepOptions(progress_bar=False, **options))


def trials_of(url: str, name: str) -> list:
    (study,) = [s for s in optuna.get_all_study_summaries(open_storage(url)) if s.user_attrs.get("sweep") == name]
    return optuna.load_study(study_name=study.study_name, storage=open_storage(url)).get_trials()


def assert_each_point_completed_once(trials: list, points: int) -> None:
    done = [trial_key(t) for t in trials if t.state == TrialState.COMPLETE]
    assert len(done) == len(set(done)) == points, [(t.number, t.state, t.params) for t in trials]
    running_or_done = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.COMPLETE)
                       and not is_superseded(t)]
    assert len(running_or_done) == points


@pytest.mark.slow
def test_smoke_sweep_records_every_point_and_resumes(tmp_path, data_root, capsys):
    path = sweep_file(tmp_path, {"model.width": [0.25, 0.5]}, seeds=(0, 1))
    overrides = cli(tmp_path, data_root)
    outcome = run(path, overrides)
    assert outcome.ran == 4 and outcome.failed == 0

    df = load_results(results_dir=tmp_path / "results", sweep="grid")
    assert set(REQUIRED + ["model.width"]) <= set(df.columns)
    assert len(df) == 4 and (df["status"] == "completed").all() and df["reason"].isna().all()
    assert sorted(zip(df["model.width"], df["seed"])) == [(0.25, 0), (0.25, 1), (0.5, 0), (0.5, 1)]
    assert df["trial"].is_unique and str(df["trial"].dtype) == "Int64"
    for _, row in df.iterrows():
        cfg = row["config"]  # the resolved config that ran: the point, its seed, the command line
        assert cfg["model"]["width"] == row["model.width"] and cfg["seed"] == row["seed"]
        assert cfg["trainer"]["max_epochs"] == 1 and cfg["data"]["num_train"] == 32 and cfg["wandb"]["group"] == "grid"
        assert row["overrides"]["trainer.max_epochs"] == "1"
        assert 0 <= row["mAP50"] <= 1 and 0 <= row["mAP"] <= row["mAP50"] and row["epochs"] == row["best_epoch"] == 1
        assert row["flops"] > 0 and row["latency_ms"] > 0 and row["throughput"] > 0 and row["train_time_s"] > 0
        assert row["pos_per_gt"] > 0 and 0 <= row["gt_without_pos"] <= 1
        assert len(row["pos_per_level"]) == 3 and math.isclose(sum(row["pos_per_level"]), 1, abs_tol=1e-3)
        assert len(row["history"]) == 1 and "val/mAP50" in row["history"][0]
        assert row["commit"] and row["device"].startswith(("cpu", "cuda")) and row["date"]
        assert row["preset"] == "smoke" and row["dataset"] == "digits" and row["wandb_dir"] is None
        record = json.loads(Path(row["record"]).read_text())  # the JSON record of the same run
        assert record["sweep"]["trial"] == row["trial"] and record["metrics"]["mAP50"] == pytest.approx(row["mAP50"])
    params = df.groupby("model.width")["params"].first()
    assert params[0.5] > params[0.25]  # the axis really changed the model

    trials = len(trials_of(default_storage_url(tmp_path / "results"), "grid"))
    again = run(path, overrides)  # the same command again: nothing left to run
    assert again.ran == 0 and len(trials_of(default_storage_url(tmp_path / "results"), "grid")) == trials
    import bench.run as bench_run

    capsys.readouterr()
    args = [f"sweep={path}", *(f"{k}={v}" for k, v in overrides.items())]
    assert bench_run.main(args) == 0
    out = capsys.readouterr().out
    assert "4/4 done, 0 running, 0 failed" in out and "completed" in out and "load_results" in out


@pytest.mark.slow
def test_failing_point_is_recorded_and_the_sweep_goes_on(tmp_path, data_root, capsys):
    import bench.run as bench_run

    broken = tmp_path / "broken.pth"  # exists, so the preflight passes; fails only when the point loads it
    broken.write_bytes(b"not a state dict")
    path = sweep_file(tmp_path, {"model.pretrained": [str(broken), "false"]})
    overrides = cli(tmp_path, data_root)
    args = [f"sweep={path}", *(f"{k}={v}" for k, v in overrides.items())]
    assert bench_run.main(args) == 1  # a failed point makes the exit status non-zero
    out = capsys.readouterr().out
    assert "1 failed point(s)" in out and "broken.pth" in out

    df = load_results(results_dir=tmp_path / "results", sweep="grid").set_index("model.pretrained")
    bad, good = df.loc[str(broken)], df.loc["false"]
    assert bad["status"] == "failed" and "broken.pth" in bad["reason"] and math.isnan(bad["mAP50"])
    assert good["status"] == "completed" and good["trial"] > bad["trial"]  # it ran after the failure
    failure = json.loads(Path(bad["record"]).read_text())
    assert failure["status"] == "failed" and "Traceback" in failure["traceback"]
    assert failure["config"]["model"]["pretrained"] == str(broken)

    again = run(path, overrides)  # re-running retries the failed point only
    df = load_results(results_dir=tmp_path / "results", sweep="grid").set_index("model.pretrained")
    assert again.ran == 1 and again.failed == 1
    assert df.loc[str(broken), "attempts"] == 2 and df.loc["false", "attempts"] == 1


@pytest.mark.slow
def test_nan_loss_fails_the_point_with_its_reason(tmp_path, data_root, nan_loss):
    outcome = run(sweep_file(tmp_path, {"model.width": [0.25]}), cli(tmp_path, data_root))
    (row,) = outcome.results.to_dict("records")
    assert outcome.failed == 1 and row["status"] == "failed"
    assert row["reason"].startswith("FloatingPointError: loss is nan at epoch 0, step 0")


def spy_wandb(monkeypatch) -> tuple[list, list, list]:
    """Record what runs pass to W&B's public API (``wandb.init``, ``Run.log``, ``Run.finish``), calling through."""
    import wandb

    started, logged, finished = [], [], []
    real_init, real_log, real_finish = wandb.init, wandb.Run.log, wandb.Run.finish

    def init(*args, **kwargs):
        started.append(kwargs)
        return real_init(*args, **kwargs)

    def log(run, data, *args, **kwargs):
        logged.append(dict(data))
        return real_log(run, data, *args, **kwargs)

    def finish(run, *args, **kwargs):
        finished.append(kwargs.get("exit_code", args[0] if args else None))
        return real_finish(run, *args, **kwargs)

    monkeypatch.setattr(wandb, "init", init)
    monkeypatch.setattr(wandb.Run, "log", log)
    monkeypatch.setattr(wandb.Run, "finish", finish)
    return started, logged, finished


@pytest.mark.slow
def test_wandb_run_per_point_with_predictions_panel(tmp_path, data_root, monkeypatch):
    started, logged, finished = spy_wandb(monkeypatch)
    outcome = run(sweep_file(tmp_path, {"model.width": [0.25]}), cli(tmp_path, data_root, **{"wandb.mode": "offline"}))
    (row,) = outcome.results.to_dict("records")
    assert row["status"] == "completed"
    folder = Path(row["wandb_dir"])
    assert folder.name.startswith("offline-run-") and folder.is_dir() and list(folder.glob("*.wandb"))
    panel = list((folder / "files" / "media" / "images" / "val").glob("predictions_*.png"))
    assert 1 <= len(panel) <= 8  # the val images of the panel, with their boxes
    assert list((folder / "files" / "media" / "metadata" / "boxes2D" / "val").glob("predictions_*.boxes2D.json"))
    (init,) = started  # one W&B run for the point: its group, name and resolved config
    assert init["group"] == "grid" and init["name"] == "grid-0.25-s0" and finished == [0]
    assert init["config"]["model"]["width"] == 0.25 and init["config"]["trainer"]["max_epochs"] == 1
    assert any("val/mAP50" in step for step in logged) and any("val/predictions" in step for step in logged)


@pytest.mark.slow
def test_wandb_failure_never_fails_a_point(tmp_path, data_root, monkeypatch, caplog):
    import wandb

    def no_network(*args, **kwargs):
        raise wandb.errors.CommError("network is unreachable")

    monkeypatch.setattr(wandb, "init", no_network)
    outcome = run(sweep_file(tmp_path, {"model.width": [0.25]}),
                  cli(tmp_path, data_root, **{"wandb.mode": "online"}))
    (row,) = outcome.results.to_dict("records")
    assert row["status"] == "completed" and row["wandb_dir"] is None
    assert "W&B online run could not start" in caplog.text and "goes on without W&B" in caplog.text


def worker_command(path: Path, overrides: dict[str, str], *extra: str) -> list[str]:
    return [sys.executable, str(ROOT / "bench" / "run.py"), f"sweep={path}",
            *(f"{k}={v}" for k, v in overrides.items()), *extra]


def worker_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}


def wait_for_running_point(url: str, proc: subprocess.Popen, timeout: float = 240) -> list:
    """Poll the store until a worker process holds a point; the RUNNING trials."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.2)
        if Path(url.removeprefix("sqlite:///")).exists():
            try:
                running = [t for t in trials_of(url, "grid") if t.state == TrialState.RUNNING and t.params]
            except ValueError:  # the study is not created yet
                continue
            if running:
                return running
    raise AssertionError(f"the worker never started a point (exit code {proc.poll()})")


@pytest.mark.slow
def test_two_workers_split_the_grid_without_duplicates(tmp_path, data_root):
    path = sweep_file(tmp_path, {"model.width": [0.25, 0.5]}, seeds=(0, 1))
    overrides = cli(tmp_path, data_root)
    url = default_storage_url(tmp_path / "results")
    other = subprocess.Popen(worker_command(path, overrides), env=worker_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_running_point(url, other)
        mine = run(path, overrides)  # a second worker, in this process, while the other one trains
        log, _ = other.communicate(timeout=300)
    finally:
        other.kill()
    assert other.returncode == 0, log[-3000:]
    assert_each_point_completed_once(trials_of(url, "grid"), 4)
    df = load_results(url, "grid")
    assert (df["status"] == "completed").all() and df["attempts"].eq(1).all()
    assert df["worker"].nunique() == 2 and 1 <= mine.ran <= 3  # both trained points, none twice


@pytest.mark.slow
def test_killed_worker_has_its_point_rerun(tmp_path, data_root):
    path = sweep_file(tmp_path, {"model.width": [0.25, 0.5]})
    overrides = cli(tmp_path, data_root, **{"trainer.max_epochs": "2"})
    url = default_storage_url(tmp_path / "results")
    victim = subprocess.Popen(worker_command(path, overrides, "heartbeat=1"), env=worker_env(),
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        (killed,) = wait_for_running_point(url, victim)
        # Optuna's heartbeat thread writes its first beat just after the trial turns RUNNING; a trial killed before
        # that beat has none and is never found stale (a gap in Optuna's heartbeat, not what this test is about)
        time.sleep(1)
    finally:
        os.kill(victim.pid, signal.SIGKILL)  # kill -9 mid-point
        victim.wait()
    (now,) = [t for t in trials_of(url, "grid") if t.number == killed.number]
    assert now.state == TrialState.RUNNING  # left behind, still marked running

    outcome = run(path, overrides, heartbeat=1)  # the next worker: detects the dead one, re-runs its point
    trials = trials_of(url, "grid")
    (dead,) = [t for t in trials if t.number == killed.number]
    assert dead.state == TrialState.FAIL
    (retry,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retry.state == TrialState.COMPLETE and trial_key(retry) == trial_key(killed)
    assert_each_point_completed_once(trials, 2)
    row = outcome.results.set_index("trial").loc[retry.number]
    assert outcome.failed == 0 and row["status"] == "completed" and row["attempts"] == 2


@pytest.mark.slow
def test_postgres_storage(tmp_path, data_root):
    url = os.environ.get("YOLOZOO_TEST_PG_URL")
    if not url:
        pytest.skip("YOLOZOO_TEST_PG_URL is not set (.ci/run starts PostgreSQL and sets it)")
    name = f"pg_{uuid.uuid4().hex[:8]}"  # the database outlives the test: a new study each time
    path = sweep_file(tmp_path, {"model.width": [0.25, 0.5]}, name=name)
    overrides = cli(tmp_path, data_root)
    outcome = run(path, overrides, storage=url)
    assert outcome.ran == 2 and outcome.storage == url
    df = load_results(storage=url, sweep=name)
    assert len(df) == 2 and (df["status"] == "completed").all() and df["mAP50"].notna().all()
    assert run(path, overrides, storage=url).ran == 0
    assert_each_point_completed_once(trials_of(url, name), 2)


@pytest.mark.slow
def test_ddp_point_runs_on_all_ranks_and_only_rank_zero_records(tmp_path, data_root, capfd):
    overrides = cli(tmp_path, data_root, **{"trainer.accelerator": "cpu", "trainer.devices": "2",
                                            "trainer.strategy": "ddp", "wandb.mode": "offline"})
    outcome = run(sweep_file(tmp_path, {"model.width": [0.25]}), overrides)
    (row,) = outcome.results.to_dict("records")
    assert row["status"] == "completed" and row["config"]["trainer"]["devices"] == 2 and row["mAP50"] >= 0
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in capfd.readouterr().err  # the second rank trained the same point
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 1  # one record, from rank 0
    assert len(list((tmp_path / "wandb_dir").glob("wandb/offline-run-*"))) == 1  # one W&B run (rank 0), in WANDB_DIR
    assert len(trials_of(default_storage_url(tmp_path / "results"), "grid")) == 1


@pytest.mark.slow
def test_published_records_make_a_fresh_clone_resume_and_render(tmp_path, data_root, capsys):
    from yolozoo.analysis import build_table
    from yolozoo.analysis import load_results as report_results
    from yolozoo.analysis.spec import load_spec

    path = tmp_path / "pub.yaml"
    grid = {"name": "pub", "description": "published", "table": "widths", "base": SHRINK,
            "axes": {"model.width": [0.25, 0.5]}, "seeds": [0], "max_seeds": 2, "baseline": {"model.width": 0.5}}
    path.write_text(yaml.safe_dump(grid, sort_keys=False))
    where = {"out_dir": str(tmp_path / "runs"), "results_dir": str(tmp_path / "results"), "data.root": str(data_root)}
    first = run(path, where, auto_seeds=False)  # the listed seeds only; it says which rows are still open
    assert first.ran == 2 and first.failed == 0
    assert re.search(r"auto seeds off \(auto_seeds=false\): 2 row\(s\) .*model.width=0.25", capsys.readouterr().out)
    outcome = run(path, where)
    # seed 0 of both rows, then auto seeds: one shared seed is an open question, so seed 1 for both (the cap)
    assert outcome.ran == 2 and outcome.failed == 0
    assert "auto seeds: 2 more point(s)" in capsys.readouterr().out
    folder = tmp_path / "results" / "published" / "pub"
    files = sorted(p.name for p in folder.glob("*.json"))
    assert files == ["0.25-s0.json", "0.25-s1.json", "0.5-s0.json", "0.5-s1.json"]
    record = json.loads((folder / "0.5-s1.json").read_text())
    assert record["schema_version"] == 2 and record["status"] == "completed" and record["point"]["seed"] == 1
    assert record["environment"]["cpu"]["isa"] and record["timing"]["threads"] == 2 and record["timing"]["batches"] >= 1
    assert not {"run_dir", "checkpoint", "wandb_dir", "record_path"} & set(record)  # no machine-local paths

    # a fresh clone: the records, no store. Nothing trains again; the outcome lists every point.
    (tmp_path / "results" / "sweeps.db").unlink()
    capsys.readouterr()
    again = run(path, where)
    assert again.ran == 0 and sorted(again.results["status"]) == ["completed"] * 4
    assert "[pub] 2/2 done, 0 running, 0 failed" in capsys.readouterr().out  # the progress counts the records

    # the reports read the records, without a store
    spec = load_spec(path)
    df = report_results(spec, "records", results_dir=str(tmp_path / "results"))
    assert len(df) == 4 and (df["status"] == "completed").all() and df["duration_s"].gt(0).all()
    table = build_table(df, spec)
    assert dict(table.provenance)["wall time"].endswith("(sum of the runs' wall times)")
    # a changed sweep file makes the records stale: they are neither shown nor counted as done
    path.write_text(yaml.safe_dump({**grid, "base": {**SHRINK, "trainer.max_epochs": 2}}, sort_keys=False))
    assert report_results(load_spec(path), "records", results_dir=str(tmp_path / "results")).empty


@pytest.mark.slow
def test_extra_overrides_do_not_publish(tmp_path, data_root):
    path = sweep_file(tmp_path, {"model.width": [0.25]})
    assert run(path, cli(tmp_path, data_root)).ran == 1
    assert not (tmp_path / "results" / "published").exists()
