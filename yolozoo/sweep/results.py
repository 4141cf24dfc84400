"""Sweeps' and searches' results as DataFrames: each trial's status from the store, the rest from the run record
it points to. A record that is not on this machine (a worker elsewhere wrote it) leaves its row's metrics empty."""

from __future__ import annotations

from collections.abc import Callable
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


def _studies(url: str | None, results_dir: str | Path, tag: str, keep: Callable[[Any], bool], asked: str | None
             ) -> list[tuple[Any, list[FrozenTrial]]]:
    """The studies with user attr ``tag`` (``sweep`` or ``search``) in ``url`` (default ``results_dir/sweeps.db``)
    that ``keep`` keeps, by name, each with its trials; none kept while ``asked`` (what was asked for) is an error."""
    url = url or default_storage_url(results_dir)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"no {'sweep ' if tag == 'sweep' else ''}store at {path}; run `python bench/run.py "
                                f"{tag}=NAME` first, or pass storage=/results_dir= where it ran")
    store = open_storage(url)
    ours = [s for s in optuna.get_all_study_summaries(store, include_best_trial=False) if tag in s.user_attrs]
    chosen = sorted((s for s in ours if keep(s)), key=lambda s: s.study_name)
    if asked is not None and not chosen:  # a sweep has a study per set of extra overrides: name the sweeps
        held = sorted({s.user_attrs["sweep"] if tag == "sweep" else s.study_name for s in ours})
        raise KeyError(f"no {asked} in {url}; it holds: {', '.join(held) or '(none)'}")
    return [(s, optuna.load_study(study_name=s.study_name, storage=store).get_trials(deepcopy=False)) for s in chosen]


def _outcome(trial: FrozenTrial) -> dict[str, Any]:
    """Columns every trial row has: status, reason, the record's columns, date, duration, paths."""
    attrs, state = trial.user_attrs, STATUS[trial.state]
    record = trial_record(trial)
    when = trial.datetime_complete or trial.datetime_start
    duration = trial.duration.total_seconds() if trial.duration is not None else None
    reason = attrs.get("reason") or (STALE_REASON if state == "failed" else None)
    return {"status": state, "reason": reason if state in ("failed", "pruned") else None,
            "overrides": attrs.get("overrides"), **record_columns(record), "date": when.isoformat() if when else None,
            "duration_s": duration, "worker": attrs.get("worker"), "record": attrs.get("record"),
            **{k: record.get(k) for k in ("wandb_dir", "run_dir", "checkpoint")}}


def load_results(storage: str | None = None, sweep: str | None = None, results_dir: str | Path = "results"
                 ) -> pd.DataFrame:
    """All points of the sweeps in ``storage`` (default ``results_dir/sweeps.db``), one row per (point, seed): its
    latest attempt, or ``pending``. ``sweep``: only that sweep's studies (one per set of extra overrides: ``study``).

    Columns: :data:`~.spec.HEAD_COLUMNS` (``trial``: Int64; ``status``: completed | failed | running | pending |
    pruned), one per axis (the point's label), :data:`~.spec.TAIL_COLUMNS` (``point``: axis -> label; ``config``,
    metrics, assignment statistics and ``history`` from the run record; ``date`` ISO; ``worker`` host:pid)."""
    rows, axes = [], []
    for s, all_trials in _studies(storage, results_dir, "sweep", lambda s: sweep in (None, s.user_attrs["sweep"]),
                                  None if sweep is None else f"sweep {sweep!r}"):
        axes += [a for a in (s.user_attrs.get("spec") or {}).get("axes", {}) if a not in axes]
        by_key: dict[str, list[FrozenTrial]] = {}
        for t in all_trials:
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
    return pd.DataFrame(rows, columns=[*HEAD_COLUMNS, *axes, *TAIL_COLUMNS]).astype({"trial": "Int64"})


def load_trials(storage: str | None = None, search: str | None = None, results_dir: str | Path = "results",
                study: str | None = None) -> pd.DataFrame:
    """All trials of the searches in ``storage`` (default ``results_dir/sweeps.db``), one row per trial; ``search``:
    only that search's studies (one per set of extra overrides), ``study``: only that study. Columns:
    :data:`SEARCH_HEAD` (``value``: the objective), one per searched parameter, :data:`SEARCH_TAIL` (``retry_of``:
    the trial this one re-runs after its worker died); ``trial``, ``pruned_epoch`` and ``retry_of`` are Int64."""
    asked = None if search is None and study is None else f"search study matching search={search!r} study={study!r}"
    rows, params = [], []
    for s, trials in _studies(storage, results_dir, "search", lambda s: search in (None, s.user_attrs["search"])
                              and study in (None, s.study_name), asked):
        params += [p for p in (s.user_attrs.get("space") or {}).get("params", {}) if p not in params]
        for t in trials:
            rows.append({**_outcome(t), "search": s.user_attrs["search"], "study": s.study_name, "trial": t.number,
                         "value": t.value, **t.params, "params": dict(t.params),  # a pruned trial's: its last report
                         "pruned_epoch": (t.user_attrs.get(PRUNED_ATTR) or {}).get("epoch"),
                         "retry_of": (t.system_attrs.get("retry_history") or [None])[-1]})
    return pd.DataFrame(rows, columns=[*SEARCH_HEAD, *params, *SEARCH_TAIL]).astype(
        dict.fromkeys(("trial", "pruned_epoch", "retry_of"), "Int64"))
