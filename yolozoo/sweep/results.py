"""Every sweep point's result as one pandas DataFrame, read from the sweep store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from .claims import is_superseded, trial_key, trial_params
from .columns import HEAD_COLUMNS, METRICS, TAIL_COLUMNS
from .spec import point_key
from .store import default_storage_url, open_storage, sqlite_path

STATUS = {TrialState.COMPLETE: "completed", TrialState.FAIL: "failed", TrialState.RUNNING: "running",
          TrialState.WAITING: "pending", TrialState.PRUNED: "pruned"}
STALE_REASON = "no heartbeat within the grace period: the worker was killed or pre-empted"


def _assignment(history: list[dict]) -> dict[str, Any]:
    """Assignment statistics of the last epoch: positives per GT, share of GT without one, share per level."""
    last = history[-1] if history else {}
    levels = sorted((k for k in last if k.startswith("train/assign/pos_level")), key=lambda k: int(k.rsplit("l", 1)[1]))
    return {"pos_per_gt": last.get("train/assign/pos_per_gt_mean"),
            "gt_without_pos": last.get("train/assign/gt_without_pos"),
            "pos_per_level": [last[k] for k in levels] if levels else None}


def record_columns(config: dict, metrics: dict, history: list, env: dict) -> dict[str, Any]:
    """The columns a run record gives a results row, whether it comes from the store or a published file."""
    cpu = env.get("cpu") or {}
    return {"config": config or None, **{k: metrics.get(k) for k in METRICS}, **_assignment(history),
            "history": history, "commit": env.get("git_commit"), "device": env.get("device"),
            "cpu": cpu.get("model"), "isa": cpu.get("isa"), "preset": config.get("preset"),
            "dataset": (config.get("data") or {}).get("name")}


def _row(sweep: str, study: str, trial: FrozenTrial | None, params: dict, attempts: int) -> dict[str, Any]:
    attrs = trial.user_attrs if trial is not None else {}
    state = STATUS[trial.state] if trial is not None else "pending"
    reason = attrs.get("reason")
    if state == "failed" and not reason:
        reason = STALE_REASON
    config = attrs.get("config") or {}
    env = attrs.get("environment") or {}
    metrics = attrs.get("metrics") or {}
    history = attrs.get("history") or []
    labels = {k: v for k, v in params.items() if k != "seed"}
    when = trial and (trial.datetime_complete or trial.datetime_start)
    duration = None
    if trial is not None and trial.datetime_start and trial.datetime_complete:
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
    active = state in ("completed", "failed", "running")
    row = {
        "sweep": sweep, "study": study, "trial": trial.number if trial is not None else None, "status": state,
        "reason": reason if state in ("failed", "pruned") else None, "seed": params.get("seed"), **labels,
        "point": labels, "overrides": attrs.get("overrides"), **record_columns(config, metrics, history, env),
        "date": when.isoformat() if when else None, "wandb_dir": attrs.get("wandb_dir"),
        "record": attrs.get("record"), "run_dir": attrs.get("run_dir"),
        "checkpoint": attrs.get("checkpoint"), "worker": attrs.get("worker") if active else None,
        "attempts": attempts, "duration_s": duration,
    }
    return row


def _study_rows(study: optuna.Study, sweep: str, spec: dict, points: list[dict] | None) -> list[dict]:
    by_key: dict[str, list[FrozenTrial]] = {}
    for t in study.get_trials(deepcopy=False):
        key = trial_key(t)
        if key is not None and not is_superseded(t):
            by_key.setdefault(key, []).append(t)
    if points is None:  # a study without the runner's grid list: whatever ran
        points = [trial_params(ts[0]) for ts in by_key.values()]
    rows = []
    for params in points:
        trials = sorted(by_key.get(point_key(params), []), key=lambda t: t.number)
        rows.append(_row(sweep, study.study_name, trials[-1] if trials else None, params, len(trials)))
    return rows


def load_results(storage: str | None = None, sweep: str | None = None, results_dir: str | Path = "results"
                 ) -> pd.DataFrame:
    """All points of the sweeps in ``storage`` (default: ``results_dir/sweeps.db``), one row per (point, seed).

    ``sweep``: only that sweep's studies (one per distinct set of extra command-line
    overrides, told apart by ``study``). A point's row is its latest attempt; points not yet
    started are ``pending``. Columns:

    - ``sweep``, ``study`` (sweep name + extra overrides), ``trial`` (Optuna trial number, Int64;
      <NA> if never started), ``status`` (completed | failed | running | pending | pruned),
      ``reason`` (why it failed, else None), ``seed``;
    - one column per axis, named by the axis, holding the point's value or label;
    - ``point`` (dict axis -> value/label), ``overrides`` (dict: the key=value overrides that made
      the config), ``config`` (dict: the resolved config that ran);
    - metrics: ``mAP50, mAP, mAP75, APs, APm, APl, AR100, params, flops, latency_ms, throughput,
      train_time_s, train_img_per_s, epochs, best_epoch, best_mAP``;
    - assignment statistics of the last epoch: ``pos_per_gt`` (mean positives per GT),
      ``gt_without_pos`` (share of GT without a positive), ``pos_per_level`` (list: share of
      positives per pyramid level);
    - ``history`` (list of per-epoch dicts of train/ and val/ scalars);
    - ``commit`` (git, ``-dirty`` if the tree had changes), ``date`` (ISO, finished or started),
      ``device``, ``preset``, ``dataset``;
    - ``wandb_dir`` (the offline W&B run folder, or None), ``record`` (the JSON record file),
      ``run_dir``, ``checkpoint``, ``worker`` (host:pid), ``attempts``, ``duration_s``.
    """
    url = storage or default_storage_url(results_dir)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"no sweep store at {path}; run `python bench/run.py sweep=NAME` first, or pass "
                                "storage=/results_dir= where it ran")
    store = open_storage(url)
    summaries = optuna.get_all_study_summaries(store, include_best_trial=False)
    ours = [s for s in summaries if "sweep" in s.user_attrs]
    chosen = [s for s in ours if sweep is None or s.user_attrs["sweep"] == sweep]
    if sweep is not None and not chosen:
        have = sorted({s.user_attrs["sweep"] for s in ours})
        raise KeyError(f"no sweep {sweep!r} in {url}; it holds: {', '.join(have) or '(none)'}")
    rows, axes = [], []
    for s in sorted(chosen, key=lambda s: s.study_name):
        spec = s.user_attrs.get("spec") or {}
        axes += [a for a in spec.get("axes", {}) if a not in axes]
        study = optuna.load_study(study_name=s.study_name, storage=store)
        rows += _study_rows(study, s.user_attrs["sweep"], spec, s.user_attrs.get("points"))
    columns = [*HEAD_COLUMNS, *axes, *TAIL_COLUMNS]
    df = pd.DataFrame(rows, columns=columns)
    df["trial"] = df["trial"].astype("Int64")
    return df
