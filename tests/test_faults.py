"""Fault injection with real processes (the cases of bench/reliability.py): nothing trained is lost, bad input is a
one-line error before training, signals end a command with its documented status.

The quick cases run in ``nox -s test``; the long ones (signals, kill -9, racing workers) carry the ``faults``
mark and run in ``nox -s faults``.
"""

from __future__ import annotations

import json
import os

import pytest

from bench import reliability as faults

pytestmark = pytest.mark.slow


def test_unwritable_results_dir_is_refused_before_training(tmp_path):
    obs = faults.unwritable_results_dir(tmp_path)
    assert obs.code == 2 and obs.outcome == "clear error", obs.output[-2000:]
    assert obs.detail.startswith(f"error: results_dir={tmp_path / 'afile' / 'sub'}: cannot write")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_bad_sweep_axis_value_is_refused_before_any_point(tmp_path):
    obs = faults.bad_axis_value(tmp_path)
    assert obs.code == 2 and obs.outcome == "clear error", obs.output[-2000:]
    assert "axis 'model.backbone' label 'nosuch'" in obs.detail and "not a timm model" in obs.detail
    assert not (tmp_path / "runs").exists()


def test_record_that_cannot_be_written_goes_next_to_the_checkpoints(tmp_path):
    obs = faults.record_blocked_after_training(tmp_path)
    assert obs.code == 0 and obs.outcome == "recovered", obs.output[-3000:]
    (path,) = obs.extra["fallback"]
    record = json.loads(path.read_text())
    assert record["status"] == "completed" and 0 <= record["metrics"]["mAP50"] <= 1
    assert record["record_path"] == str(path) and (path.parent / "checkpoints").is_dir()
    assert f"wrote it to {path}" in obs.output and "Traceback" not in obs.output


def test_path_traversal_name_stays_inside_out_dir(tmp_path):
    obs = faults.traversal_name(tmp_path)
    assert obs.code == 0 and obs.outcome == "recovered", obs.output[-3000:]
    assert obs.extra["outside"] == []
    (record,) = obs.extra["records"]
    name = json.loads(record.read_text())["name"]
    assert "/" not in name and not name.startswith(".") and name.endswith("escape")


@pytest.mark.faults
def test_bad_values_are_one_line_errors(tmp_path):
    obs = faults.bad_values(tmp_path)
    assert obs.outcome == "clear error", obs.output[-2000:]
    keys = ["trainer.batch_size", "optim.lr", "trainer.max_epochs", "data.img_size", "model.backbone"]
    assert [k in e for k, e in zip(keys, obs.extra["errors"])] == [True] * 5


@pytest.mark.faults
def test_unwritable_storage_and_digits_cache_are_one_line_errors(tmp_path):
    obs = faults.unwritable_storage(tmp_path)
    assert obs.outcome == "clear error", (obs.detail, obs.output[-2000:])


@pytest.mark.faults
def test_storage_password_is_never_printed(tmp_path):
    obs = faults.password_redacted(tmp_path)
    assert obs.outcome == "clear error" and "s3cret" not in obs.output, obs.output[-2000:]


@pytest.mark.faults
def test_ctrl_c_mid_training_exits_130(tmp_path):
    obs = faults.sigint_single_run(tmp_path)
    assert obs.code == 130, obs.output[-3000:]


@pytest.mark.faults
def test_ctrl_c_mid_point_fails_the_trial_and_the_next_start_reruns_it_at_once(tmp_path):
    obs = faults.sigint_sweep(tmp_path)
    assert obs.code == 130, obs.output[-3000:]
    first = obs.extra["first"]
    assert first.state.name == "FAIL" and first.user_attrs["reason"].startswith("interrupted")
    assert obs.extra["after"] == ["FAIL", "COMPLETE"] and obs.outcome == "recovered", obs.detail


@pytest.mark.faults
def test_sigterm_mid_point_leaves_the_trial_running_for_takeover(tmp_path):
    obs = faults.sigterm_sweep(tmp_path)
    assert obs.code == 143, obs.output[-3000:]
    assert obs.extra["first"].state.name == "RUNNING"
    assert obs.extra["after"].count("COMPLETE") == 1 and obs.outcome == "recovered", obs.detail


@pytest.mark.faults
def test_kill_9_of_one_worker_parent_prints_the_table_and_exits_0(tmp_path):
    obs = faults.kill9_worker(tmp_path)
    assert obs.code == 0 and obs.outcome == "recovered", obs.output[-4000:]
    assert obs.extra["after"].count("COMPLETE") == 2 and "FAIL" in obs.extra["after"]  # the killed point, re-run


@pytest.mark.faults
def test_three_workers_on_one_sqlite_file(tmp_path):
    obs = faults.three_workers(tmp_path)
    assert obs.code == 0 and obs.outcome == "recovered", obs.output[-4000:]


@pytest.mark.faults
def test_three_workers_on_one_postgres_database(tmp_path):
    url = os.environ.get("YOLOZOO_TEST_PG_URL")
    if not url:
        pytest.skip("YOLOZOO_TEST_PG_URL is not set (.ci/run starts PostgreSQL and sets it)")
    obs = faults.three_workers(tmp_path, url)
    assert obs.code == 0 and obs.outcome == "recovered", obs.output[-4000:]
