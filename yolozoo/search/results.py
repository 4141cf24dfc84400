"""Every search trial as one pandas DataFrame, read from the (sweep) store, and the end-of-search table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.trial import FrozenTrial

from ..sweep.columns import METRICS
from ..sweep.results import STALE_REASON, STATUS
from ..sweep.store import default_storage_url, open_storage, sqlite_path
from .pruning import PRUNED_ATTR

HEAD_COLUMNS = ("search", "study", "trial", "status", "reason", "value")
TAIL_COLUMNS = ("params", *METRICS, "pruned_epoch", "history", "overrides", "config", "date", "duration_s", "worker",
                "wandb_dir", "record", "run_dir", "checkpoint", "retry_of")


def _row(search: str, study: str, trial: FrozenTrial) -> dict[str, Any]:
    attrs = trial.user_attrs
    state = STATUS[trial.state]
    reason = attrs.get("reason")
    if state == "failed" and not reason:
        reason = STALE_REASON
    metrics = attrs.get("metrics") or {}
    when = trial.datetime_complete or trial.datetime_start
    duration = None
    if trial.datetime_start and trial.datetime_complete:
        duration = (trial.datetime_complete - trial.datetime_start).total_seconds()
    return {"search": search, "study": study, "trial": trial.number, "status": state,
            "reason": reason if state in ("failed", "pruned") else None,
            "value": trial.value if state in ("completed", "pruned") else None, **trial.params,
            "params": dict(trial.params), **{k: metrics.get(k) for k in METRICS},
            "pruned_epoch": (attrs.get(PRUNED_ATTR) or {}).get("epoch"), "history": attrs.get("history") or [],
            "overrides": attrs.get("overrides"), "config": attrs.get("config"),
            "date": when.isoformat() if when else None, "duration_s": duration, "worker": attrs.get("worker"),
            "wandb_dir": attrs.get("wandb_dir"), "record": attrs.get("record"), "run_dir": attrs.get("run_dir"),
            "checkpoint": attrs.get("checkpoint"), "retry_of": (trial.system_attrs.get("retry_history") or [None])[-1]}


def load_trials(storage: str | None = None, search: str | None = None, results_dir: str | Path = "results",
                study: str | None = None) -> pd.DataFrame:
    """All trials of the searches in ``storage`` (default ``results_dir/sweeps.db``), one row per trial.

    ``search``: only that search's studies (one per set of extra command-line overrides, told
    apart by ``study``); ``study``: only that study. Columns: ``search, study, trial``,
    ``status`` (completed | pruned | failed | running | pending), ``reason`` (why it was pruned
    or failed), ``value`` (the objective; a pruned trial's last reported value), one column
    per searched parameter, ``params`` (dict), the record's metrics (``mAP50, mAP, ...``, as
    :func:`yolozoo.sweep.load_results`), ``pruned_epoch``, ``history`` (per-epoch train/ and
    val/ scalars), ``overrides``, ``config`` (the resolved config that ran), ``date``,
    ``duration_s``, ``worker``, ``wandb_dir``, ``record``, ``run_dir``, ``checkpoint``,
    ``retry_of`` (the trial this one re-runs after its worker died). ``trial``, ``pruned_epoch``
    and ``retry_of`` are Int64 (<NA> where none).
    """
    url = storage or default_storage_url(results_dir)
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise FileNotFoundError(f"no store at {path}; run `python bench/run.py search=NAME` first, or pass "
                                "storage=/results_dir= where it ran")
    store = open_storage(url)
    ours = [s for s in optuna.get_all_study_summaries(store, include_best_trial=False) if "search" in s.user_attrs]
    chosen = [s for s in ours if (search is None or s.user_attrs["search"] == search)
              and (study is None or s.study_name == study)]
    if (search is not None or study is not None) and not chosen:
        have = sorted({s.study_name for s in ours})
        raise KeyError(f"no search study matching search={search!r} study={study!r} in {url}; it holds: "
                       f"{', '.join(have) or '(none)'}")
    rows, params = [], []
    for s in sorted(chosen, key=lambda s: s.study_name):
        params += [p for p in (s.user_attrs.get("space") or {}).get("params", {}) if p not in params]
        loaded = optuna.load_study(study_name=s.study_name, storage=store)
        rows += [_row(s.user_attrs["search"], s.study_name, t) for t in loaded.get_trials(deepcopy=False)]
    df = pd.DataFrame(rows, columns=[*HEAD_COLUMNS, *params, *TAIL_COLUMNS])
    for column in ("trial", "pruned_epoch", "retry_of"):
        df[column] = df[column].astype("Int64")
    return df


def summary_table(df: pd.DataFrame, direction: str, top: int = 10) -> str:
    """The best ``top`` trials (then a count of the rest by status), and the failed ones with their reasons."""
    if df.empty:
        return "(no trials)"
    params = [c for c in df.columns if c not in HEAD_COLUMNS and c not in TAIL_COLUMNS]
    done = df[df["status"] == "completed"].sort_values("value", ascending=direction == "minimize")
    lines = []
    if len(done):
        table = done[["trial", "value", *params]].head(top).copy()
        table["value"] = table["value"].map(lambda v: f"{v:.4g}")
        lines.append(table.to_string(index=False))
    counts = df["status"].value_counts().to_dict()
    lines.append(", ".join(f"{n} {s}" for s, n in counts.items()))
    for _, row in df[df["status"].isin(["failed", "pruned"])].iterrows():
        lines.append(f"  trial {row['trial']} {row['status']}: {row['reason']}")
    return "\n".join(lines)
