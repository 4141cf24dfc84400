"""The run record: what one run (a single run, a sweep point, a search trial) trained and measured.

One JSON file per run, written atomically under ``<results_dir>/runs/`` by :func:`save_record`;
a sweep point's copy is published to ``<results_dir>/published/<sweep>/`` (:mod:`yolozoo.sweep.published`).
:class:`RunRecord` is the schema, checked when a record is made and when one is read back. The
Optuna store keeps only a trial's status, reason and record path; results are read from the records.

Schema versions: 1 = records written before ``schema_version`` existed (published ones say
``"schema": 1``); they load unchanged. 2 = :class:`RunRecord`.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 2
STATUSES = ("completed", "failed", "pruned")
# The one list of what ``metrics`` holds: results frames, reports and search objectives take their names from here.
METRICS = ("mAP50", "mAP", "mAP75", "APs", "APm", "APl", "AR100", "params", "flops", "latency_ms", "throughput",
           "timing_under_load", "timing_other_cpu", "timing_loadavg", "train_time_s", "train_img_per_s", "epochs",
           "best_epoch", "best_mAP")
# Record fields that hold this machine's paths (not published).
LOCAL_FIELDS = ("run_dir", "checkpoint", "wandb_dir", "record_path", "traceback")
# Written only when set; the other fields are always written (null when unknown).
OPTIONAL_FIELDS = ("reason", "timing", "layout", "budget", "sweep", "search", "point", "reused_from", "traceback",
                   "record_path")


@dataclass
class RunRecord:
    """One run. ``started``/``finished``: ISO 8601 (UTC); ``config``: the resolved config that ran (a dict);
    ``metrics``: :data:`METRICS` (None where not measured); ``history``: one dict of ``train/``, ``val/``
    scalars per epoch; ``sweep``/``search``: the point or trial it ran; ``point``: a published record's
    point (labels, seed, fingerprint, overrides)."""

    name: str
    status: str  # completed | failed | pruned
    started: str
    finished: str
    config: dict
    metrics: dict = field(default_factory=dict)
    per_class: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    reason: str | None = None  # why it failed or was pruned
    timing: dict | None = None  # the timing pass (yolozoo/speed.py)
    run_dir: str | None = None
    checkpoint: str | None = None
    wandb_dir: str | None = None
    resumed_from: str | None = None
    layout: dict | None = None
    budget: dict | None = None  # trainer.max_time's plan (yolozoo/time_budget.py)
    sweep: dict | None = None
    search: dict | None = None
    point: dict | None = None
    reused_from: str | None = None  # a published copy of another sweep's record: "<sweep>/<file>"
    traceback: str | None = None
    record_path: str | None = None
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"record status must be one of {', '.join(STATUSES)}, got {self.status!r}")
        for f in fields(self):
            value, kind = getattr(self, f.name), str(f.type)
            expected = next((t for t in (dict, list, str, int) if kind.startswith(t.__name__)), None)
            if value is None and "None" in kind:
                continue
            if expected is not None and not isinstance(value, expected):
                raise ValueError(f"record field {f.name!r} must be {kind}, got {type(value).__name__}")

    @classmethod
    def from_dict(cls, data: dict) -> RunRecord:
        """Check a record read from JSON (any schema version up to :data:`SCHEMA_VERSION`)."""
        if not isinstance(data, dict):
            raise ValueError(f"a run record is a JSON object, got {type(data).__name__}")
        data = {k: v for k, v in data.items() if k not in ("_path", "schema")}  # "schema": version 1 published
        data.setdefault("schema_version", 1)
        if not isinstance(data["schema_version"], int) or data["schema_version"] > SCHEMA_VERSION:
            raise ValueError(f"record schema_version {data['schema_version']!r}; this yolozoo reads up to "
                             f"{SCHEMA_VERSION}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown record field {unknown[0]!r}; valid: {', '.join(sorted(known))}")
        missing = [k for k in ("name", "status", "started", "config") if k not in data]
        if missing:
            raise ValueError(f"record lacks {', '.join(missing)}")
        data.setdefault("finished", data["started"])
        return cls(**data)

    def to_dict(self, local: bool = True) -> dict:
        """The JSON form; ``local=False`` leaves out this machine's paths (:data:`LOCAL_FIELDS`)."""
        out = {"schema_version": self.schema_version,
               **{k: v for k, v in asdict(self).items() if k != "schema_version"}}
        return {k: v for k, v in out.items()
                if not (k in OPTIONAL_FIELDS and v is None) and (local or k not in LOCAL_FIELDS)}



def _assignment(history: list[dict]) -> dict[str, Any]:
    """Assignment statistics of the last epoch: positives per GT, share of GT without one, share per level."""
    last = history[-1] if history else {}
    levels = sorted((k for k in last if k.startswith("train/assign/pos_level")), key=lambda k: int(k.rsplit("l", 1)[1]))
    return {"pos_per_gt": last.get("train/assign/pos_per_gt_mean"),
            "gt_without_pos": last.get("train/assign/gt_without_pos"),
            "pos_per_level": [last[k] for k in levels] if levels else None}


def duration_s(record: dict) -> float | None:
    """A record's (dict) wall time, started to finished; None if it does not say."""
    try:
        return (datetime.fromisoformat(record["finished"]) - datetime.fromisoformat(record["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def record_columns(record: dict) -> dict[str, Any]:
    """A record's (dict) results-row columns: config, :data:`METRICS`, assignment statistics, history, environment."""
    config, metrics = record.get("config") or {}, record.get("metrics") or {}
    env = record.get("environment") or {}
    cpu = env.get("cpu") or {}
    return {"config": config or None, **{k: metrics.get(k) for k in METRICS},
            **_assignment(record.get("history") or []), "history": record.get("history") or [],
            "commit": env.get("git_commit"), "device": env.get("device"), "cpu": cpu.get("model"),
            "isa": cpu.get("isa"), "preset": config.get("preset"), "dataset": (config.get("data") or {}).get("name")}


def json_safe(obj: Any, digits: int | None = None) -> Any:
    """A JSON-able copy: NaN/inf -> None, numpy/torch scalars -> Python, tuples/sets -> lists, rest -> str.

    ``digits``: round floats to that many significant digits.
    """
    if isinstance(obj, dict):
        return {str(k): json_safe(v, digits) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [json_safe(v, digits) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, (str, int)):
        return obj
    if isinstance(obj, float) or hasattr(obj, "item"):
        try:
            value = float(obj) if isinstance(obj, float) else obj.item()
        except (TypeError, ValueError):
            return str(obj)
        if isinstance(value, float):
            if not math.isfinite(value):
                return None
            return float(f"{value:.{digits}g}") if digits else value
        return value
    return str(obj)


def atomic_write(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers never see half a file."""
    path = Path(path)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path


def safe_name(name: str) -> str:
    """``name`` as one path component: ``../../x`` -> ``_._.._x`` never leaves the folder it is joined to.

    Characters other than letters, digits and ``.-_+=,@`` become ``_``; a leading dot too (no hidden or
    ``..`` names); at most 150 characters.
    """
    text = re.sub(r"[^\w.\-+=,@]", "_", str(name), flags=re.ASCII)
    text = re.sub(r"^\.", "_", text)[:150]
    return text or "run"


def record_file_name(record: RunRecord) -> str:
    """``2024-05-01T120000-NAME.json``."""
    return f"{record.started[:19].replace(':', '')}-{safe_name(record.name)}.json"


def write_record(record: RunRecord, results_dir: Path) -> Path:
    """Write ``record`` as JSON under ``results_dir/runs/`` (atomically); return its path."""
    out = Path(results_dir) / "runs"
    out.mkdir(parents=True, exist_ok=True)
    return atomic_write(out / record_file_name(record), json.dumps(record.to_dict(), indent=2, default=str))


def save_record(record: RunRecord, results_dir: Path, fallback_dir: Path | None) -> Path | None:
    """:func:`write_record`, or, if ``results_dir`` cannot be written, the same file in ``fallback_dir`` (the run
    folder, next to the checkpoints), saying where on stderr: what trained is never lost. None if neither can
    be written (said too). Sets ``record.record_path``."""
    try:
        path = write_record(record, results_dir)
        record.record_path = str(path)
        return path
    except OSError as e:
        problem = f"cannot write the run record under {Path(results_dir) / 'runs'} ({e.strerror or e})"
    if fallback_dir is not None:
        try:
            Path(fallback_dir).mkdir(parents=True, exist_ok=True)
            path = Path(fallback_dir) / record_file_name(record)
            record.record_path = str(path)
            atomic_write(path, json.dumps(record.to_dict(), indent=2, default=str))
            print(f"warning: {problem}; wrote it to {path}", file=sys.stderr, flush=True)
            return path
        except OSError as e:
            record.record_path = None
            problem += f", nor to {fallback_dir} ({e.strerror or e})"
    print(f"warning: {problem}; the record is lost", file=sys.stderr, flush=True)
    return None


def read_record(path: str | Path) -> dict:
    """The record at ``path`` as written (a dict, ``_path`` added), checked against :class:`RunRecord`;
    a file that is not a record is an error naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
        RunRecord.from_dict(data)
    except (OSError, json.JSONDecodeError, ValueError, TypeError) as e:
        raise ValueError(f"{path}: not a readable run record ({e})") from None
    return {**data, "_path": str(path)}


def set_status(path: str | Path | None, status: str, reason: str | None) -> None:
    """Rewrite the record at ``path`` with ``status`` and ``reason`` (a pruned trial trains to a normal record)."""
    if not path or not Path(path).is_file():
        return
    record = RunRecord.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
    record.status, record.reason = status, reason
    atomic_write(Path(path), json.dumps(record.to_dict(), indent=2, default=str))


__all__ = ["METRICS", "SCHEMA_VERSION", "STATUSES", "RunRecord", "atomic_write", "duration_s", "json_safe",
           "read_record", "record_columns", "save_record", "set_status", "write_record"]
