"""Search spaces, sampling, replay, the pruning callback and the best-config file, without training.

Trials here "train" with a fake ``train_point`` that scores the sampled config with a fixed
function and writes its run record, so these tests exercise the real study, storage, sampler
and records in seconds; the end-to-end runs with real training are in ``test_search.py``.
"""

from __future__ import annotations

import copy
import json
import math
import pickle
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

from yolozoo.config import ConfigError, flatten, load_config, to_dict
from yolozoo.pruning import PRUNED_ATTR, TrialPruning
from yolozoo.record import RunRecord, save_record
from yolozoo.search import SearchError, SearchOptions, list_searches, load_search, run_search
from yolozoo.search.report import best_overrides
from yolozoo.search.study import ReplayableSampler, count_trials
from yolozoo.sweep.runner import INTERRUPTED

TINY = {"preset": "smoke", "data.num_train": "32", "data.num_val": "16", "trainer.max_epochs": "2"}


def space_file(tmp_path: Path, params: dict, name: str = "space", **top) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "params": params, **top}, sort_keys=False))
    return path


def fake_train(calls: list | None = None):
    """A ``train_point`` stand-in: mAP a smooth function of the run's resolved config; its record is written like
    a real run's. ``calls``: each run's config."""

    def train_point(cfg, extra, panel_images=8, callbacks=None):
        if calls is not None:
            calls.append(cfg)
        score = 0.5 - (math.log10(cfg.optim.lr) + 2.5) ** 2 / 10 + 0.01 * cfg.assigner.get("topk", 0)
        now = datetime.now(timezone.utc).isoformat()
        record = RunRecord(name=cfg.name, status="completed", started=now, finished=now, config=to_dict(cfg),
                           metrics={"mAP": score, "mAP50": score}, **extra)
        save_record(record, Path(cfg.results_dir), None)
        return {"status": "completed", "reason": None, "record": record.to_dict()}

    return train_point


def record_of(trial) -> dict:
    """The run record a trial points to."""
    return json.loads(Path(trial.user_attrs["record"]).read_text())


def run(path: Path, tmp_path: Path, n_trials: int, db: str = "store.db", **options):
    cli = {**TINY, "results_dir": str(tmp_path / "results")}
    space, context = load_search(str(path), cli, options)
    url = f"sqlite:///{tmp_path / db}"
    worker = run_search(space, context, cli, SearchOptions(storage=url, n_trials=n_trials, progress_bar=False),
                        options)
    return worker.study


# -- shipped spaces and the errors a typo gives -------------------------------------------------
def test_shipped_spaces_load_and_cover_optimizer_loss_and_every_assigner_family():
    spaces = [load_search(name)[0] for name in list_searches()]  # each checked against the config, as a search is
    assert all(s.params and s.sampler["seed"] == 0 and s.description for s in spaces)
    searched = {key for s in spaces for key in s.params}
    assert {"optim.lr", "optim.weight_decay", "loss.cls", "loss.box"} <= searched
    assert {"tal", "atss", "fcos", "simota", "yolov5"} <= {s.base.get("assigner.name") for s in spaces}
    (grid,) = [s for s in spaces if s.name == "grid"]
    assert set(grid.params["assigner.name"].choices) == {"single_grid", "nearby_grid", "all_grid"}
    assert grid.params["assigner.ensure_one"].when == {"assigner.name": ("all_grid",)}


def test_unknown_space_names_the_valid_ones():
    with pytest.raises(SearchError, match=r"unknown search space 'tall'; valid: .*\btal\b"):
        load_search("tall")


@pytest.mark.parametrize(("params", "message"), [
    ({"optim.lrr": {"type": "float", "low": 0.001, "high": 0.01}},
     r"space.yaml: params.optim.lrr=0.001: unknown key 'optim.lrr'; valid keys: optim.name, optim.lr"),
    ({"assigner.topkk": {"type": "int", "low": 5, "high": 9}},
     r"params.assigner.topkk=5: assigner: assigner 'tal' has no option 'topkk'; valid: topk, alpha"),
    ({"assigner.name": {"type": "categorical", "choices": ["tal", "atss"]},
      "assigner.alpha": {"type": "float", "low": 0.5, "high": 1.0}},  # alpha under atss too: not an ATSS option
     r"params.assigner.alpha=0.5: assigner: assigner 'atss' has no option 'alpha'"),
    ({"trainer.max_epochs": {"type": "float", "low": 1.0, "high": 3.5}},
     r"params.trainer.max_epochs=1.0: bad value for 'trainer.max_epochs'"),
    ({"optim.lr": {"type": "float", "low": 0.0, "high": 0.1, "log": True}}, r"params.optim.lr: .*needs low > 0"),
    ({"optim.lr": {"type": "floatt", "low": 0.0, "high": 0.1}}, r"params.optim.lr: Input tag 'floatt' .*"
     r"tags: 'categorical', 'float', 'int'"),
    ({"assigner.topk": {"type": "int", "low": 5, "high": 9, "when": {"assigner.nam": "tal"}}},
     r"params.assigner.topk: when names 'assigner.nam', which is neither a config key nor an earlier parameter"),
    ({"assigner.topk": {"type": "int", "low": 5, "high": 9, "when": {"assigner.name": "atss"}}},
     r"params.assigner.topk: never sampled: when assigner.name in \['atss'\], but the config has "
     r"assigner.name='tal'"),
    ({"assigner.topk": {"type": "int", "low": 5, "high": 9, "when": {"assigner.name": "atss"}},
      "assigner.name": {"type": "categorical", "choices": ["tal", "atss"]}},
     r"when names 'assigner.name', a parameter listed after it; list 'assigner.name' first"),
    ({"seed": {"type": "int", "low": 0, "high": 9}}, r"'seed' cannot be set by a search file"),
])
def test_bad_parameter_fails_before_training_naming_file_and_key(tmp_path, params, message):
    with pytest.raises(SearchError, match=message):
        load_search(str(space_file(tmp_path, params)))


@pytest.mark.parametrize(("top", "options", "message"), [
    ({"objective": {"metric": "mAp"}}, {}, r"objective metric 'mAp' is not a recorded metric; valid: mAP50, mAP,"),
    ({}, {"metric": "map50"}, r"objective metric 'map50' is not a recorded metric"),
    ({"objective": {"metric": "latency_ms"}}, {},
     r"pruner 'median' needs a metric measured after every epoch .*set pruner: \{name: none\}"),
    ({"sampler": {"name": "tpee"}}, {}, r"unknown sampler 'tpee'; valid: tpe, random"),
    ({"sampler": {"name": "tpe", "n_startup": 3}}, {}, r"sampler 'tpe' has no option 'n_startup'; valid: .*"
                                                       r"n_startup_trials"),
    ({"pruner": {"name": "median", "warmup": 1}}, {}, r"pruner 'median' has no option 'warmup'"),
    ({"samplr": {}}, {}, r"unknown key 'samplr'; valid keys: name, description, base"),
])
def test_bad_objective_sampler_or_pruner_is_an_error(tmp_path, top, options, message):
    path = space_file(tmp_path, {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01}}, **top)
    with pytest.raises(SearchError, match=message):
        load_search(str(path), {}, options)


def test_command_line_may_not_override_a_searched_key(tmp_path):
    path = space_file(tmp_path, {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01}})
    with pytest.raises(SearchError, match=r"command line: 'optim.lr' is a searched parameter in .*space.yaml"):
        load_search(str(path), {"optim.lr": "0.1"})
    with pytest.raises(SearchError, match=r"command line: unknown key 'optim.lrr'"):
        load_search(str(path), {"optim.lrr": "0.1"})


def test_bad_options_on_the_command_line_exit_2(tmp_path, capsys):
    import bench.run as bench_run

    path = space_file(tmp_path, {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01}})
    assert bench_run.main([f"search={path}", "metric=mAp"]) == 2
    assert "objective metric 'mAp' is not a recorded metric" in capsys.readouterr().err
    assert bench_run.main(["search=nope", f"results_dir={tmp_path}"]) == 2
    assert "unknown search space 'nope'" in capsys.readouterr().err
    assert bench_run.main([f"search={path}", "n_trials=0"]) == 2
    assert "command line: n_trials: Input should be greater than or equal to 1" in capsys.readouterr().err


# -- sampling: conditions, replay, resume ---------------------------------------------------------
CONDITIONAL = {"assigner.name": {"type": "categorical", "choices": ["tal", "atss"]},
               "optim.lr": {"type": "float", "low": 1.0e-4, "high": 1.0e-1, "log": True},
               "assigner.topk": {"type": "int", "low": 5, "high": 15},
               "assigner.alpha": {"type": "float", "low": 0.25, "high": 2.0, "when": {"assigner.name": "tal"}}}


def test_conditional_parameter_only_in_trials_where_it_applies(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr("yolozoo.sweep.runner.train_point", fake_train(calls))
    path = space_file(tmp_path, CONDITIONAL, pruner={"name": "none"}, sampler={"name": "random", "seed": 3})
    trials = run(path, tmp_path, n_trials=8).get_trials()
    assert len(trials) == 8 and all(t.state == TrialState.COMPLETE for t in trials)
    names = {t.params["assigner.name"] for t in trials}
    assert names == {"tal", "atss"}
    for t, handed in zip(trials, calls):
        cfg = record_of(t)["config"]  # the config that ran holds the sampled values
        assert cfg["assigner"]["name"] == t.params["assigner.name"] and cfg["optim"]["lr"] == t.params["optim.lr"]
        assert cfg["assigner"]["topk"] == t.params["assigner.topk"]
        assert ("assigner.alpha" in t.params) == (t.params["assigner.name"] == "tal")
        assert ("alpha" in handed.assigner) == (t.params["assigner.name"] == "tal")
        assert handed.name == f"space-t{t.number}" and handed.wandb.group == "search-space"
        assert t.user_attrs["overrides"]["name"] == handed.name  # the trial keeps the overrides it was resolved from


def test_same_seed_replays_the_same_trials_and_resume_continues_them(tmp_path, monkeypatch):
    monkeypatch.setattr("yolozoo.sweep.runner.train_point", fake_train())
    path = space_file(tmp_path, CONDITIONAL, pruner={"name": "none"},
                      sampler={"name": "tpe", "seed": 7, "n_startup_trials": 2})

    def params(study):
        return [t.params for t in study.get_trials()]

    first = params(run(path, tmp_path, 4, db="a.db"))  # 2 random start-up trials, then 2 from TPE's model
    assert params(run(path, tmp_path, 4, db="b.db")) == first  # a fresh study, same seed: the same trials
    assert len({repr(p) for p in first}) == 4  # and not one point over and over
    run(path, tmp_path, 2, db="c.db")  # stopped after 2 trials, then the same command with the full budget
    resumed = run(path, tmp_path, 4, db="c.db")
    assert params(resumed) == first and len(resumed.get_trials()) == 4
    assert params(run(path, tmp_path, 2, db="d.db", sampler_seed="8")) != first[:2]  # another seed, other trials
    assert len(run(path, tmp_path, 4, db="c.db").get_trials()) == 4  # budget spent: nothing more runs


def test_study_from_an_edited_space_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr("yolozoo.sweep.runner.train_point", fake_train())
    path = space_file(tmp_path, {"optim.lr": {"type": "float", "low": 0.001, "high": 0.01}}, pruner={"name": "none"})
    run(path, tmp_path, 1)
    space_file(tmp_path, {"optim.lr": {"type": "float", "low": 0.001, "high": 0.1}}, pruner={"name": "none"})
    with pytest.raises(SearchError, match=r"was started from a different .*space.yaml .* study=NEW_NAME"):
        run(path, tmp_path, 2)


def test_budget_counts_a_re_run_trial_once_and_an_interrupted_one_not_at_all():
    study = optuna.create_study()
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for state, system, user in [(TrialState.COMPLETE, {}, {}), (TrialState.PRUNED, {}, {}), (TrialState.FAIL, {}, {}),
                                (TrialState.FAIL, {}, {}),  # its worker died; trial 4 re-runs it
                                (TrialState.RUNNING, {"failed_trial": 3, "retry_history": [3]}, {}),
                                (TrialState.FAIL, {}, {"reason": INTERRUPTED})]:
        study.add_trial(optuna.trial.create_trial(state=state, params={"x": 0.5}, distributions=dist,
                                                  system_attrs=system, user_attrs=user,
                                                  value=0.5 if state == TrialState.COMPLETE else None))
    b = count_trials(study.get_trials())
    assert (b["complete"], b["pruned"], b["fail"], b["running"], b["finished"]) == (1, 1, 1, 1, 3)


# -- pruning under DDP: rank 0 decides, every rank stops ------------------------------------------
def test_pruning_decision_is_made_on_rank_zero_and_broadcast():
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=0.5))
    trial = study.ask()
    sent = {}

    def trainer(rank: int, metrics: dict):
        def broadcast(obj, src=0):
            if rank == src:
                sent["obj"] = obj
            return sent["obj"]

        return SimpleNamespace(sanity_checking=False, is_global_zero=rank == 0, current_epoch=0, should_stop=False,
                               callback_metrics=metrics, strategy=SimpleNamespace(broadcast=broadcast))

    def no_storage():
        raise AssertionError("only rank 0 may touch the trial")

    rank0, rank1 = trainer(0, {"val/mAP": 0.1}), trainer(1, {})  # val/ metrics are logged on rank 0 only
    TrialPruning("mAP", trial, "threshold").on_validation_end(rank0, None)
    other = TrialPruning("mAP", no_storage, "threshold")
    other.on_validation_end(rank1, None)
    assert rank0.should_stop and rank1.should_stop
    assert other.pruned == {"epoch": 1, "value": 0.1, "metric": "mAP", "pruner": "threshold"}
    frozen = study.trials[0]
    assert frozen.intermediate_values == {1: 0.1} and frozen.user_attrs[PRUNED_ATTR]["epoch"] == 1

    keep = study.ask()  # above the threshold: reported, not stopped
    rank0 = trainer(0, {"val/mAP": 0.9})
    TrialPruning("mAP", keep, "threshold").on_validation_end(rank0, None)
    assert not rank0.should_stop and study.trials[1].intermediate_values == {1: 0.9}


# -- config=FILE and the best-config file ---------------------------------------------------------
def test_config_file_sits_between_preset_and_command_line(tmp_path):
    path = tmp_path / "over.yaml"
    path.write_text("preset: smoke\noptim.lr: 0.003\nassigner:\n  name: atss\n  topk: 7\n")
    cfg = load_config([f"config={path}", "optim.weight_decay=0.5"])
    assert cfg.preset == "smoke" and cfg.data.img_size == 64  # the file's preset
    assert cfg.optim.lr == 0.003 and dict(cfg.assigner) == {"name": "atss", "topk": 7}
    assert load_config([f"config={path}", "optim.lr=0.1", "preset=default"]).optim.lr == 0.1  # command line wins
    assert load_config([f"config={path}", "preset=default"]).data.img_size == 128
    path.write_text("optim.lrr: 0.003\n")
    with pytest.raises(ConfigError, match=r"over.yaml: unknown key 'optim.lrr'"):
        load_config([f"config={path}"])
    with pytest.raises(ConfigError, match=r"config=.*missing.yaml: no such file"):
        load_config([f"config={tmp_path / 'missing.yaml'}"])


@pytest.mark.parametrize("overrides", [
    ["optim.lr=0.0123", "assigner.name=atss", "assigner.topk=7", "loss.box=2.5"],
    ["preset=smoke", "model.head=anchor", "assigner.name=yolov5", "assigner.anchor_t=3.0", "optim.ema_decay=0.0",
     "model.anchors=[[[10,13],[16,30],[33,23]],[[30,61],[62,45],[59,119]],[[116,90],[156,198],[373,326]]]"],
    ["model.family=yolov8", "loss.dfl=2.0", "seed=3", "out_dir=/elsewhere", "wandb.mode=disabled", "name=t7"],
    ["resume=auto", "optim.lr=0.002"],  # how a trial runs; its best-config file must not resume anything
])
def test_best_overrides_reproduce_the_config(tmp_path, overrides):
    cfg = to_dict(load_config(overrides))
    flat = best_overrides(cfg)
    assert "name" not in flat and "out_dir" not in flat and not any(k.startswith("wandb.") for k in flat)
    assert "resume" not in flat
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(flat))
    again, original = flatten(to_dict(load_config([f"config={path}"]))), flatten(cfg)
    skip = ("name", "out_dir", "wandb.mode", "resume")
    assert {k: v for k, v in again.items() if k not in skip} == {k: v for k, v in original.items() if k not in skip}


def test_best_config_file_as_a_sweeps_base(tmp_path):
    from yolozoo.sweep import load_sweep

    best = tmp_path / "best.yaml"
    best.write_text("preset: smoke\noptim.lr: 0.0123\nmodel.width: 0.5\nassigner.name: atss\n")
    cli = {"config": str(best)}
    spec = load_sweep("assigners", cli)
    (point,) = [p for p in spec.points() if p.labels["assigner"] == "nearby_grid" and p.seed == 0]
    cfg = load_config(spec.resolve(point.axis_overrides, cli))
    assert cfg.preset == "smoke" and cfg.data.img_size == 64  # the file's preset outranks the sweep's CPU base
    assert cfg.optim.lr == 0.0123 and cfg.model.width == 0.5  # the tuned values outrank the sweep's base
    assert cfg.assigner.name == "nearby_grid"  # the axis outranks the file
    assert cfg.model.backbone == spec.base["model.backbone"]  # a base key neither the file nor its preset sets holds


def test_failed_trials_are_recorded_with_their_reason_and_the_search_goes_on(tmp_path, monkeypatch, capsys):
    import bench.run as bench_run
    from yolozoo.search import load_trials
    from yolozoo.sweep.point import failed_result

    train = fake_train()

    def diverges_at_high_lr(cfg, extra, panel_images=8, callbacks=None):
        if cfg.optim.lr > 0.05:  # a failed result, its record written as train_point writes it for a training error
            return failed_result(cfg, "FloatingPointError: loss is nan at epoch 0, step 3", extra)
        return train(cfg, extra, panel_images, callbacks)

    monkeypatch.setattr("yolozoo.sweep.runner.train_point", diverges_at_high_lr)
    path = space_file(tmp_path, {"optim.lr": {"type": "categorical", "choices": [0.1, 0.001]}},
                      pruner={"name": "none"}, sampler={"name": "random", "seed": 0})
    args = [f"search={path}", "n_trials=4", f"results_dir={tmp_path / 'results'}",
            *(f"{k}={v}" for k, v in TINY.items())]
    assert bench_run.main(args) == 0  # some trials completed
    out = capsys.readouterr().out
    df = load_trials(results_dir=tmp_path / "results", search="space")
    assert len(df) == 4 and set(df["status"]) == {"completed", "failed"}
    failed = df[df["status"] == "failed"]
    assert (failed["optim.lr"] == 0.1).all()
    assert (failed["reason"] == "FloatingPointError: loss is nan at epoch 0, step 3").all()
    assert failed["config"].map(lambda c: c["optim"]["lr"] == 0.1).all()  # the config that failed is kept
    assert f"trial {failed['trial'].iloc[0]} failed: FloatingPointError" in out
    best = yaml.safe_load(next((tmp_path / "results" / "search").glob("space-*-best.yaml")).read_text())
    assert best["optim.lr"] == 0.001


def test_trial_of_a_dead_worker_is_re_run_with_its_parameters(tmp_path, monkeypatch):
    import time

    from yolozoo.search import load_trials
    from yolozoo.search.study import SearchWorker
    from yolozoo.sweep.results import STALE_REASON

    monkeypatch.setattr("yolozoo.sweep.runner.train_point", fake_train())
    path = space_file(tmp_path, CONDITIONAL, pruner={"name": "none"}, sampler={"name": "random", "seed": 0})
    cli = {**TINY, "results_dir": str(tmp_path / "results")}
    space, context = load_search(str(path), cli)
    url = f"sqlite:///{tmp_path / 'store.db'}"
    worker = SearchWorker(space, context, cli, SearchOptions(storage=url, n_trials=2, heartbeat=1, grace=1,
                                                             progress_bar=False))
    with pytest.warns(UserWarning, match="Heartbeat"):
        dead = worker.study.ask()  # a worker sampled this trial, beat once, and was killed
    space.suggest(dead, context)
    dead.set_user_attr(PRUNED_ATTR, {"epoch": 1})  # what it wrote before dying must not stick to its re-run
    worker.study._storage.record_heartbeat(dead._trial_id)
    time.sleep(2.1)  # SQLite's heartbeat clock has 1 s resolution: stale = more than grace (1 s) apart
    worker.run()
    first, *rest = worker.study.get_trials()
    (retry,) = [t for t in rest if t.system_attrs.get("failed_trial") == 0]
    assert first.state == TrialState.FAIL and len(rest) == 2  # the dead trial counts through its re-run
    assert all(t.state == TrialState.COMPLETE for t in rest) and retry.params == first.params
    assert retry.user_attrs[PRUNED_ATTR] is None  # not inherited from the dead trial
    assert record_of(retry)["config"]["optim"]["lr"] == first.params["optim.lr"]
    df = load_trials(url).set_index("trial")
    assert df.loc[0, "reason"] == STALE_REASON and df.loc[retry.number, "retry_of"] == 0
    assert pd.isna(df.loc[retry.number, "reason"])


def test_replayable_sampler_is_a_sampler_that_copies():
    """It forwards BaseSampler's interface to the sampler it rebuilds per trial; copying or unpickling it (before
    its inner sampler exists) must not recurse."""
    sampler = ReplayableSampler("tpe", 3, {"n_startup_trials": 2})
    assert isinstance(sampler, optuna.samplers.BaseSampler)
    for twin in (copy.deepcopy(sampler), pickle.loads(pickle.dumps(sampler))):
        assert isinstance(twin._inner, optuna.samplers.TPESampler) and twin.options == {"n_startup_trials": 2}
