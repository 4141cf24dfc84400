"""W&B runs (offline folders or the public API) -> the results DataFrame a report reads.

Both sources become the same plain record (:func:`yolozoo.analysis.wandb_file.read_wandb_file`'s
shape), so one function, :func:`runs_to_frame`, maps either to rows; only fetching differs.
A run's sweep is its W&B group; its grid point is recovered from its resolved config through
the sweep file's axes.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..sweep.columns import METRICS
from .spec import ReportSpec, dotted_get
from .wandb_file import find_offline_runs, read_wandb_file

SUMMARY_METRICS = METRICS  # what ``yolozoo.train`` writes to a run's summary
_API_STATES = {"finished": "completed", "failed": "failed", "crashed": "failed", "killed": "failed",
               "running": "running", "pending": "pending", "preempted": "failed"}


def epoch_history(steps: list[dict]) -> list[dict]:
    """Logged steps -> one dict per epoch (``epoch`` 1-based, as ``yolozoo.train`` records it).

    Lightning logs train and val scalars in separate steps tagged with a 0-based ``epoch``;
    steps of one epoch are merged and only ``train/...`` and ``val/...`` keys are kept.
    """
    epochs: dict[int, dict] = {}
    for step in steps:
        if step.get("epoch") is None:
            continue
        row = epochs.setdefault(int(step["epoch"]) + 1, {})
        row.update({k: v for k, v in step.items() if k.startswith(("train/", "val/")) and not k.endswith("_step")})
    return [{"epoch": e, **{k.removesuffix("_epoch"): v for k, v in row.items()}} for e, row in sorted(epochs.items())
            if any(k.startswith("val/") for k in row)]


def offline_run(path: str | Path) -> dict:
    """One offline run folder's ``.wandb`` file as a run record with ``status`` and per-epoch history."""
    run = read_wandb_file(path)
    code = run.pop("exit_code")
    if code is None:
        run.update(status="running", reason="no exit record: still running, or killed")
    else:
        run.update(status="completed" if code == 0 else "failed", reason=None if code == 0 else f"exit code {code}")
    run["history"] = epoch_history(run["history"])
    run["wandb_dir"] = str(Path(path).parent)
    return run


def api_run(run) -> dict:
    """A ``wandb.apis.public.Run`` as the same run record :func:`offline_run` returns."""
    summary = getattr(run.summary, "_json_dict", None) or dict(run.summary)
    status = _API_STATES.get(run.state, run.state)
    return {"id": run.id, "name": run.name, "group": run.group, "project": getattr(run, "project", None),
            "config": {k: v for k, v in dict(run.config).items() if not k.startswith("_")},
            "summary": dict(summary), "history": epoch_history(list(run.scan_history())),
            "status": status, "reason": None if status == "completed" else f"W&B state {run.state}",
            "commit": getattr(run, "commit", None), "date": getattr(run, "created_at", None),
            "wandb_dir": getattr(run, "url", None)}


def runs_to_frame(runs: list[dict], spec: ReportSpec) -> pd.DataFrame:
    """Run records of ``spec``'s W&B group -> one row per (point, seed), as ``yolozoo.sweep.load_results``.

    Where a point and seed ran more than once (a retry), the completed run wins, then the latest.
    """
    points = spec.points()
    rows = []
    for run in runs:
        if run.get("group") != spec.name:
            continue
        config, summary, history = run["config"], run["summary"], run["history"]
        labels = tuple(axis.from_config(config) for axis in spec.axes)
        last = history[-1] if history else {}
        row = {"sweep": spec.name, "trial": points.index(labels) if labels in points else None,
               "status": run["status"], "reason": run["reason"], "seed": config.get("seed"),
               **{axis.name: lab for axis, lab in zip(spec.axes, labels)},
               "overrides": None, "config": config,
               **{m: summary.get(m) for m in SUMMARY_METRICS},
               "pos_per_gt": last.get("train/assign/pos_per_gt_mean"),
               "gt_without_pos": last.get("train/assign/gt_without_pos"),
               "pos_per_level": [last[k] for k in sorted(last) if k.startswith("train/assign/pos_level")] or None,
               "history": history, "commit": run.get("commit"), "date": run.get("date"), "device": None,
               "preset": config.get("preset"), "dataset": dotted_get(config, "data.name"),
               "wandb_dir": run.get("wandb_dir")}
        rows.append(row)
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["_done"] = frame["status"] == "completed"
    frame = frame.sort_values(["_done", "date"], kind="stable", na_position="first")
    frame = frame.drop_duplicates([*spec.axis_names, "seed"], keep="last").drop(columns="_done")
    return frame.sort_values(["trial", "seed"], kind="stable", na_position="last").reset_index(drop=True)


def load_offline(root: str | Path, spec: ReportSpec) -> pd.DataFrame:
    """Every offline run under ``root`` in ``spec``'s group, as a results frame."""
    return runs_to_frame([offline_run(p) for p in find_offline_runs(root)], spec)


def load_online(project: str, spec: ReportSpec) -> pd.DataFrame:
    """The runs of W&B group ``spec.name`` in ``project`` (``entity/project``) via the public API."""
    import wandb

    return runs_to_frame([api_run(r) for r in wandb.Api().runs(project, filters={"group": spec.name})], spec)


__all__ = ["api_run", "epoch_history", "load_offline", "load_online", "offline_run", "runs_to_frame"]
