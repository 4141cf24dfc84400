"""Sweeps' and searches' results as DataFrames: each trial's status from the store, the rest from the run record
it points to. A record that is not on this machine (a worker elsewhere wrote it) leaves its row's metrics empty."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ..pruning import PRUNED_ATTR
from ..record import METRICS, read_record, record_columns
from .claims import is_superseded, trial_key, trial_params
from .spec import HEAD_COLUMNS, TAIL_COLUMNS, point_key
from .store import default_storage_url, open_storage, sqlite_path

STATUS = {TrialState.COMPLETE: "completed", TrialState.FAIL: "failed", TrialState.RUNNING: "running",
          TrialState.WAITING: "pending", TrialState.PRUNED: "pruned"}
STALE_REASON = "no heartbeat within the grace period: the worker was killed or pre-empted"
SEARCH_HEAD = ("search", "study", "trial", "status", "reason", "value")
SEARCH_TAIL = ("params", *METRICS, "pruned_epoch", "history", "overrides", "config", "date", "duration_s", "worker",
               "wandb_dir", "record", "run_dir", "checkpoint", "retry_of")


def trial_record(trial: FrozenTrial) -> dict:
    """The run record ``trial`` points to (a dict), or ``{}`` if it has none readable here."""
    path = trial.user_attrs.get("record")
    try:
        return read_record(path) if path else {}
    except ValueError:
        return {}


def _studies(url: str | None, results_dir: str | Path, tag: str) -> tuple[Any, list]:
    """The storage at ``url`` and the summaries of its studies with user attr ``tag`` (``sweep`` or ``search``)."""
    url = url or default_storage_url(results_dir)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"no {'sweep ' if tag == 'sweep' else ''}store at {path}; run `python bench/run.py "
                                f"{tag}=NAME` first, or pass storage=/results_dir= where it ran")
    store = open_storage(url)
    return store, [s for s in optuna.get_all_study_summaries(store, include_best_trial=False) if tag in s.user_attrs]


def _outcome(trial: FrozenTrial) -> dict[str, Any]:
    """Columns every trial row has: status, reason, the record's columns, date, duration, paths."""
    attrs, state = trial.user_attrs, STATUS[trial.state]
    record = trial_record(trial)
    when = trial.datetime_complete or trial.datetime_start
    duration = (trial.datetime_complete - trial.datetime_start).total_seconds() \
        if trial.datetime_start and trial.datetime_complete else None
    reason = attrs.get("reason") or (STALE_REASON if state == "failed" else None)
    return {"status": state, "reason": reason if state in ("failed", "pruned") else None,
            "overrides": attrs.get("overrides"), **record_columns(record), "date": when.isoformat() if when else None,
            "duration_s": duration, "worker": attrs.get("worker"), "record": attrs.get("record"),
            **{k: record.get(k) for k in ("wandb_dir", "run_dir", "checkpoint")}}


def load_results(storage: str | None = None, sweep: str | None = None, results_dir: str | Path = "results"
                 ) -> pd.DataFrame:
    """All points of the sweeps in ``storage`` (default: ``results_dir/sweeps.db``), one row per (point, seed).

    ``sweep``: only that sweep's studies (one per set of extra command-line overrides, told apart by ``study``).
    A point's row is its latest attempt; points not yet started are ``pending``. Columns:
    :data:`~.spec.HEAD_COLUMNS` (``trial``: Int64, <NA> if never started; ``status``: completed | failed |
    running | pending | pruned), one per axis (the point's value or label), :data:`~.spec.TAIL_COLUMNS`
    (``point``: dict axis -> label; ``config`` the resolved config, the metrics, assignment statistics and
    ``history`` from the run record; ``date`` ISO, ``worker`` host:pid).
    """
    store, ours = _studies(storage, results_dir, "sweep")
    chosen = [s for s in ours if sweep is None or s.user_attrs["sweep"] == sweep]
    if sweep is not None and not chosen:
        have = sorted({s.user_attrs["sweep"] for s in ours})
        raise KeyError(f"no sweep {sweep!r} in {storage or default_storage_url(results_dir)}; it holds: "
                       f"{', '.join(have) or '(none)'}")
    rows, axes = [], []
    for s in sorted(chosen, key=lambda s: s.study_name):
        axes += [a for a in (s.user_attrs.get("spec") or {}).get("axes", {}) if a not in axes]
        by_key: dict[str, list[FrozenTrial]] = {}
        for t in optuna.load_study(study_name=s.study_name, storage=store).get_trials(deepcopy=False):
            if trial_key(t) is not None and not is_superseded(t):
                by_key.setdefault(trial_key(t), []).append(t)
        points = s.user_attrs.get("points") or [trial_params(ts[0]) for ts in by_key.values()]
        for params in points:
            trials = sorted(by_key.get(point_key(params), []), key=lambda t: t.number)
            labels = {k: v for k, v in params.items() if k != "seed"}
            row = {"sweep": s.user_attrs["sweep"], "study": s.study_name, "trial": None, "status": "pending",
                   "seed": params.get("seed"), **labels, "point": labels, **record_columns({}), "attempts": len(trials)}
            if trials:
                row.update(trial=trials[-1].number, **_outcome(trials[-1]))
                if row["status"] not in ("completed", "failed", "running"):
                    row["worker"] = None
            rows.append(row)
    df = pd.DataFrame(rows, columns=[*HEAD_COLUMNS, *axes, *TAIL_COLUMNS])
    df["trial"] = df["trial"].astype("Int64")
    return df


def load_trials(storage: str | None = None, search: str | None = None, results_dir: str | Path = "results",
                study: str | None = None) -> pd.DataFrame:
    """All trials of the searches in ``storage`` (default ``results_dir/sweeps.db``), one row per trial.

    ``search``: only that search's studies (one per set of extra command-line overrides); ``study``: only that
    study. Columns: :data:`SEARCH_HEAD` (``value``: the objective, a pruned trial's last reported value), one
    per searched parameter, :data:`SEARCH_TAIL` (``retry_of``: the trial this one re-runs after its worker
    died). ``trial``, ``pruned_epoch`` and ``retry_of`` are Int64.
    """
    store, ours = _studies(storage, results_dir, "search")
    chosen = [s for s in ours if (search is None or s.user_attrs["search"] == search)
              and (study is None or s.study_name == study)]
    if (search is not None or study is not None) and not chosen:
        raise KeyError(f"no search study matching search={search!r} study={study!r} in "
                       f"{storage or default_storage_url(results_dir)}; it holds: "
                       f"{', '.join(sorted(s.study_name for s in ours)) or '(none)'}")
    rows, params = [], []
    for s in sorted(chosen, key=lambda s: s.study_name):
        params += [p for p in (s.user_attrs.get("space") or {}).get("params", {}) if p not in params]
        for t in optuna.load_study(study_name=s.study_name, storage=store).get_trials(deepcopy=False):
            row = _outcome(t)
            rows.append({**row, "search": s.user_attrs["search"], "study": s.study_name, "trial": t.number,
                         "value": t.value if row["status"] in ("completed", "pruned") else None, **t.params,
                         "params": dict(t.params), "pruned_epoch": (t.user_attrs.get(PRUNED_ATTR) or {}).get("epoch"),
                         "retry_of": (t.system_attrs.get("retry_history") or [None])[-1]})
    df = pd.DataFrame(rows, columns=[*SEARCH_HEAD, *params, *SEARCH_TAIL])
    for column in ("trial", "pruned_epoch", "retry_of"):
        df[column] = df[column].astype("Int64")
    return df
