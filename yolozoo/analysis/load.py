"""Runs -> the one DataFrame shape reports are built from, read from ``records`` (``results/published/<sweep>/``,
the default), the results ``store`` or ``wandb``; every source goes through :func:`prepare`, as a test's frame does."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..record import METRICS, record_columns
from ..sweep import load_results as load_store
from ..sweep.published import published_dir, read_records, records_frame
from .spec import ReportSpec

STATUSES = ("completed", "failed", "running", "pending", "pruned")
WANDB_STATES = {"finished": "completed", "crashed": "failed", "killed": "failed", "preempted": "failed"}  # else same


def _one_study(df: pd.DataFrame, spec: ReportSpec, study: str | None) -> pd.DataFrame:
    """The rows of one study (a store keeps one per set of extra overrides: ``widths preset=voc``); never mixed."""
    studies = sorted(set(df["study"].dropna()))
    if study is None and len(studies) <= 1:
        return df
    if study is None and spec.name not in studies:
        raise ValueError(f"sweep {spec.name!r} has several studies ({'; '.join(studies)}); pick one with study=NAME")
    if study is not None and study not in studies:
        raise ValueError(f"sweep {spec.name!r} has no study {study!r}; studies: {', '.join(studies) or 'none'}")
    return df[df["study"] == (study or spec.name)]  # by default the sweep run without extra overrides


def prepare(frame: pd.DataFrame, spec: ReportSpec, study: str | None = None) -> pd.DataFrame:
    """Check and normalise a results frame for ``spec``: one study (the only one, else the one named like the sweep),
    every results-frame column (each source derives a record's columns with :func:`yolozoo.record.record_columns`),
    float metrics, ``point`` (axis labels) and ``row`` (``"label/label"``), sorted by grid order, then seed."""
    missing = [c for c in ("status", "seed", *spec.axis_names) if c not in frame.columns]
    if missing and not frame.empty:  # a frame without rows (a source that never saw the sweep) gets every column
        raise ValueError(f"results for sweep {spec.name!r} lack column(s) {missing}; have {list(frame.columns)}")
    df = frame[frame["sweep"].isna() | (frame["sweep"] == spec.name)] if "sweep" in frame.columns else frame
    columns = records_frame([], spec.name, spec.axis_names).columns
    df = df.assign(**{c: None for c in columns if c not in df.columns} | {"sweep": spec.name})
    df = _one_study(df, spec, study).copy()  # a copy, not a slice: columns are set below
    bad = sorted(set(df["status"]) - set(STATUSES))
    if bad:
        raise ValueError(f"sweep {spec.name!r}: unknown status {bad}; valid: {', '.join(STATUSES)}")
    for col in (*METRICS, "pos_per_gt", "gt_without_pos", "duration_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    df["point"] = [tuple(axis.canonical(v) for axis, v in zip(spec.axes, vals))
                   for vals in df[spec.axis_names].itertuples(index=False)]
    df["row"] = df["point"].map("/".join)
    order = {p: i for i, p in enumerate(spec.points())}
    df["_order"] = df["point"].map(lambda p: order.get(p, len(order)))
    return df.sort_values(["_order", "row", "seed"], kind="stable", ignore_index=True).drop(columns="_order")


def load_records(spec: ReportSpec, folder: Path) -> pd.DataFrame:
    """The records in ``folder`` of points the sweep file still has with the same overrides: a record whose
    point changed since (another fingerprint) is stale, left out so a table never mixes budgets."""
    current = []
    for r in read_records(folder):
        labels, seed = r["point"].get("labels") or {}, r["point"].get("seed")
        try:
            fingerprint = spec.sweep.point(labels, seed).fingerprint
        except (KeyError, TypeError):  # an axis or label the sweep file no longer has
            continue
        if set(labels) == set(spec.sweep.axes) and r["point"].get("fingerprint") == fingerprint:
            current.append(r)
    return records_frame(current, spec.name, spec.axis_names)


def epoch_history(steps) -> list[dict]:
    """W&B's logged steps (Lightning: train and val scalars in separate steps tagged with a 0-based ``epoch``)
    -> one dict of ``train/...`` and ``val/...`` epoch values per epoch, 1-based as in a run record."""
    epochs: dict[int, dict] = {}
    for step in steps:
        if step.get("epoch") is not None:
            epochs.setdefault(int(step["epoch"]) + 1, {}).update(
                {k: v for k, v in step.items() if k.startswith(("train/", "val/")) and not k.endswith("_step")})
    return [{"epoch": e, **{k.removesuffix("_epoch"): v for k, v in row.items()}} for e, row in sorted(epochs.items())
            if any(k.startswith("val/") for k in row)]


def wandb_frame(runs, spec: ReportSpec) -> pd.DataFrame:
    """``wandb.apis.public.Run`` objects of group ``spec.name`` -> results rows; the point comes from
    each run's resolved config. A point and seed that ran twice (a retry): the completed, then the latest run."""
    rows = []
    for run in runs:
        config = {k: v for k, v in dict(run.config).items() if not k.startswith("_")}
        summary = dict(getattr(run.summary, "_json_dict", None) or run.summary)
        record = {"config": config, "metrics": summary, "history": epoch_history(run.scan_history()),
                  "environment": {"git_commit": getattr(run, "commit", None)}}  # a run record's shape
        status = WANDB_STATES.get(run.state, run.state)
        rows.append({"sweep": spec.name, "status": status, "seed": config.get("seed"),
                     "reason": None if status == "completed" else f"W&B state {run.state}",
                     **{axis.name: axis.from_config(config) for axis in spec.axes}, **record_columns(record),
                     "date": getattr(run, "created_at", None), "wandb_dir": getattr(run, "url", None)})
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).assign(_done=lambda f: f["status"] == "completed")
    frame = frame.sort_values(["_done", "date"], kind="stable", na_position="first")
    return frame.drop_duplicates([*spec.axis_names, "seed"], keep="last").drop(columns="_done")


def load_results(spec: ReportSpec, source: str = "records", storage: str | None = None,
                 results_dir: str = "results", study: str | None = None) -> pd.DataFrame:
    """Read ``spec``'s runs from ``source`` and :func:`prepare` them. ``storage``: the records folder
    (default ``results_dir/published/<sweep>``), the store URL, or W&B's ``entity/project`` (default
    ``yolozoo``). A sweep the source has never seen gives an empty frame: every point shows as missing."""
    if source == "records":
        frame = load_records(spec, Path(storage) if storage else published_dir(results_dir, spec.name))
    elif source == "store":
        try:  # no store at all: FileNotFoundError, which says where it looked
            frame = load_store(storage=storage, sweep=spec.name, results_dir=results_dir)
        except KeyError:  # the store holds other sweeps, not this one yet
            frame = pd.DataFrame()
    elif source == "wandb":
        try:
            import wandb

            frame = wandb_frame(wandb.Api().runs(storage or "yolozoo", filters={"group": spec.name}), spec)
        except Exception as e:  # no wandb, no network, no API key, no such project: say which
            raise OSError(f"reading W&B project {storage or 'yolozoo'!r} failed: {type(e).__name__}: {e}") from None
    else:
        hint = ("; W&B offline runs are read through the public API: upload them with "
                "`wandb sync DIR/wandb/offline-run-*`, then use source=wandb") if source == "wandb_offline" else ""
        raise ValueError(f"unknown source {source!r}; valid: records, store, wandb{hint}")
    return prepare(frame, spec, study)
