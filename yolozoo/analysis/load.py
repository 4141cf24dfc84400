"""Results -> the one DataFrame shape reports are built from.

Sources: the published run records (``results/published/<sweep>/*.json``, committed with the
repository; the default), the results store (``yolozoo.sweep.load_results``), offline W&B run
folders, or the W&B public API. Whatever the source, :func:`prepare` checks the frame against the
sweep file and adds ``point`` (the tuple of axis labels) and ``row`` (``"label/label"``),
so a synthetic frame in a test goes through exactly the code a real store does.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..sweep.columns import METRICS
from .spec import ReportSpec, dotted_get

STATUSES = ("completed", "failed", "running", "pending", "pruned")
NUMERIC = (*METRICS, "pos_per_gt", "gt_without_pos", "duration_s")
OBJECTS = ("reason", "overrides", "config", "history", "pos_per_level", "commit", "date", "device", "cpu", "isa",
           "preset", "dataset", "wandb_dir", "trial")
SOURCES = ("records", "store", "wandb", "wandb_offline")


class SourceError(RuntimeError):
    """Results cannot be read from the chosen source; the message says what to do instead."""


def _from_history(history, key: str) -> float:
    """The last epoch's ``key`` in a run's history (assignment statistics are logged per epoch)."""
    for row in reversed(history if isinstance(history, list) else []):
        if isinstance(row, dict) and row.get(key) is not None:
            return float(row[key])
    return math.nan


def _one_study(df: pd.DataFrame, spec: ReportSpec, study: str | None) -> pd.DataFrame:
    """The rows of one study of the sweep: a store keeps one per set of extra command-line
    overrides (``widths`` and ``widths preset=voc``), and a table must not mix them."""
    studies = sorted(set(df["study"].dropna()))
    if study is not None:
        if study not in studies:
            raise ValueError(f"sweep {spec.name!r} has no study {study!r}; studies: {', '.join(studies) or 'none'}")
        return df[df["study"] == study]
    if len(studies) <= 1:
        return df
    if spec.name in studies:  # the sweep run without extra overrides
        return df[df["study"] == spec.name]
    raise ValueError(f"sweep {spec.name!r} has several studies ({'; '.join(studies)}); pick one with study=NAME")


def prepare(frame: pd.DataFrame, spec: ReportSpec, study: str | None = None) -> pd.DataFrame:
    """Validate a results frame for ``spec`` and normalise it; one row per (point, seed).

    Keeps one study (``study``; by default the only one, else the one named like the sweep),
    adds absent optional columns (as missing), makes metrics float (NaN where not recorded),
    fills assignment statistics from the history where a row lacks them, maps axis values
    to the sweep file's labels (``point``, ``row``) and sorts rows by grid order, then seed.
    Raises ``ValueError`` on a missing required column, an unknown status or an ambiguous study.
    """
    missing = [c for c in ("status", "seed", *spec.axis_names) if c not in frame.columns]
    if missing:
        raise ValueError(f"results for sweep {spec.name!r} lack column(s) {missing}; have {list(frame.columns)}")
    df = frame.copy()
    if "sweep" in df.columns:
        df = df[df["sweep"].isna() | (df["sweep"] == spec.name)].copy()
    df["sweep"] = spec.name
    if "study" not in df.columns:
        df["study"] = None
    df = _one_study(df, spec, study).copy()
    bad = sorted(set(df["status"]) - set(STATUSES))
    if bad:
        raise ValueError(f"sweep {spec.name!r}: unknown status {bad}; valid: {', '.join(STATUSES)}")
    for col in OBJECTS:
        if col not in df.columns:
            df[col] = None
    for col in NUMERIC:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float) if col in df.columns else math.nan
    for col, key in (("pos_per_gt", "train/assign/pos_per_gt_mean"), ("gt_without_pos", "train/assign/gt_without_pos")):
        derived = df["history"].map(lambda h, k=key: _from_history(h, k))
        df[col] = df[col].fillna(derived)
    for col, key in (("dataset", "data.name"), ("preset", "preset")):
        df[col] = [v if isinstance(v, str) else dotted_get(c if isinstance(c, dict) else None, key)
                   for v, c in zip(df[col], df["config"])]
    df["point"] = [tuple(axis.canonical(v) for axis, v in zip(spec.axes, vals))
                   for vals in df[spec.axis_names].itertuples(index=False)]
    df["row"] = df["point"].map("/".join)
    order = {p: i for i, p in enumerate(spec.points())}
    df["_order"] = df["point"].map(lambda p: order.get(p, len(order)))
    df = df.sort_values(["_order", "row", "seed"], kind="stable").drop(columns="_order")
    return df.reset_index(drop=True)


def load_records(spec: ReportSpec, folder: Path) -> pd.DataFrame:
    """The published records in ``folder`` whose point the sweep file still has with the same overrides.

    A record of a point whose overrides changed since (another fingerprint) is stale: left out,
    so a table never mixes budgets. No folder: an empty frame (every point shows as missing).
    """
    from yolozoo.sweep.published import read_records, records_frame

    records = read_records(folder) if folder.is_dir() else []
    axes = spec.sweep.axes
    current = []
    for r in records:
        labels, seed = r["point"].get("labels") or {}, r["point"].get("seed")
        try:
            fingerprint = spec.sweep.point(labels, seed).fingerprint
        except (KeyError, TypeError):  # an axis or label the sweep file no longer has
            continue
        if set(labels) == set(axes) and r["point"].get("fingerprint") == fingerprint:
            current.append(r)
    return records_frame(current, spec.name, spec.axis_names)


def load_results(spec: ReportSpec, source: str = "records", storage: str | None = None,
                 results_dir: str = "results", study: str | None = None) -> pd.DataFrame:
    """Read ``spec``'s runs from ``source`` and :func:`prepare` them (``study``: see :func:`prepare`).

    ``storage`` is the records folder for ``records`` (default ``results_dir/published/<sweep>``),
    the store URL for ``store``, the folder holding ``offline-run-*`` folders for
    ``wandb_offline`` (default ``runs``), and ``entity/project`` for ``wandb`` (default ``yolozoo``).
    A sweep the source has never seen gives an empty frame: every point shows as missing.
    """
    if source == "records":
        from yolozoo.sweep.published import published_dir

        frame = load_records(spec, Path(storage) if storage else published_dir(results_dir, spec.name))
    elif source == "store":
        try:
            from yolozoo.sweep import load_results as load_store
        except ImportError as e:
            raise SourceError(f"the results store needs the sweep runner (yolozoo.sweep): {e}; "
                              "or read W&B runs with source=wandb_offline") from None
        try:
            frame = load_store(storage=storage, sweep=spec.name, results_dir=results_dir)
        except FileNotFoundError as e:
            raise SourceError(str(e)) from None
        except KeyError:  # the store holds other sweeps, not this one yet
            frame = pd.DataFrame()
    elif source == "wandb_offline":
        from .wandb_runs import load_offline

        frame = load_offline(storage or "runs", spec)
    elif source == "wandb":
        from .wandb_runs import load_online

        try:
            frame = load_online(storage or "yolozoo", spec)
        except Exception as e:  # no network, no API key, no such project: say which
            raise SourceError(f"reading W&B project {storage or 'yolozoo'!r} failed: {e}") from None
    else:
        raise SourceError(f"unknown source {source!r}; valid: {', '.join(SOURCES)}")
    if frame.empty:
        frame = pd.DataFrame(columns=["sweep", "status", "seed", *spec.axis_names])
    return prepare(frame, spec, study)


__all__ = ["NUMERIC", "SOURCES", "STATUSES", "SourceError", "load_results", "prepare"]
