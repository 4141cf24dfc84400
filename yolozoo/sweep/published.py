"""Published run records: one small JSON file per sweep point, committed with the repository.

A sweep run with the sweep file's own settings (no extra config overrides on the command
line, apart from where files go and how W&B logs; see :data:`NEUTRAL_KEYS`) writes each finished
point to ``<results_dir>/published/<sweep>/<point slug>.json``. Those files are the source of
the README tables (``python reports/render.py`` reads them, no database needed), and they make a
sweep resumable from a fresh clone: a point whose published record completed with the point's
current overrides (same fingerprint) counts as done and is not trained again.

A point whose resolved config and seed equal those of a completed record in another sweep
(every key but the run's name and where it writes: :func:`yolozoo.config.training_config`)
reuses that record instead of training: the copy says ``reused_from``. Runs are bitwise
repeatable on the CPU (seven assigners points trained again a day later gave every metric to
the last digit), so the reused record is the result the point would train; the tables
name the records they share with another sweep.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path

import pandas as pd

from .columns import HEAD_COLUMNS, TAIL_COLUMNS
from .results import record_columns
from .spec import Point
from .store import json_safe

SCHEMA = 1
# Command-line keys that change where a run's files go or how it is shown, never its result.
NEUTRAL_KEYS = ("out_dir", "results_dir", "data.root", "data.num_workers", "trainer.enable_progress_bar",
                "trainer.log_every_n_steps")
# Record keys that hold this machine's paths: not published.
LOCAL_KEYS = ("run_dir", "checkpoint", "wandb_dir", "record_path", "traceback")


def publishable(cli: dict[str, str]) -> bool:
    """Whether a sweep run with these extra overrides runs the sweep file's own points."""
    return all(k in NEUTRAL_KEYS or k.startswith("wandb.") for k in cli)


def published_dir(results_dir: str | Path, sweep: str) -> Path:
    return Path(results_dir) / "published" / sweep


def record_path(folder: Path, point: Point) -> Path:
    return folder / f"{point.slug}.json"


def publish(folder: Path, point: Point, record: dict, overrides: dict[str, str]) -> Path:
    """Write ``record`` (a run record, see :func:`yolozoo.train.train`) as the point's published record, atomically."""
    env = dict(record.get("environment") or {})
    env.pop("host", None)
    out = {"schema": SCHEMA, **{k: v for k, v in record.items() if k not in LOCAL_KEYS}, "environment": env,
           "point": {"labels": point.labels, "seed": point.seed, "fingerprint": point.fingerprint,
                     "overrides": overrides}}
    folder.mkdir(parents=True, exist_ok=True)
    path = record_path(folder, point)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(json_safe(out), indent=1, allow_nan=False) + "\n", encoding="utf-8")  # NaN -> null
    tmp.replace(path)
    return path


def _identity(config: dict) -> str:
    from ..config import training_config

    return json.dumps(json_safe(training_config(config)), sort_keys=True)


def reusable(root: Path, sweep: str) -> dict[str, dict]:
    """Completed records of the sweeps under ``root`` other than ``sweep``, by training identity (config + seed);
    copies (``reused_from``) are left out, so each run has one origin."""
    out: dict[str, dict] = {}
    if not root.is_dir():
        return out
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != sweep):
        for record in read_records(folder):
            if record.get("status") == "completed" and not record.get("reused_from") and record.get("config"):
                out.setdefault(_identity(record["config"]), record)
    return out


def reuse(folder: Path, point: Point, config: dict, overrides: dict[str, str], found: dict[str, dict]) -> Path | None:
    """Publish, as ``point``'s record, the completed record in ``found`` (see :func:`reusable`) that ran the point's
    resolved ``config``; None if there is none."""
    original = found.get(_identity(config))
    if original is None:
        return None
    source = Path(original["_path"])
    record = {k: v for k, v in original.items() if k not in ("_path", "schema", "point")}
    return publish(folder, point, {**record, "reused_from": f"{source.parent.name}/{source.name}"}, overrides)


def read_record(path: Path) -> dict:
    """The published record at ``path`` (``_path`` added); a file that is not a record is an error naming it."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable run record ({e})") from None
    if not isinstance(record, dict) or not isinstance(record.get("point"), dict):
        raise ValueError(f"{path}: not a published run record (no 'point' key)")
    if record.get("schema") != SCHEMA:
        raise ValueError(f"{path}: record schema {record.get('schema')!r}, this yolozoo reads {SCHEMA}")
    record["_path"] = str(path)
    return record


def read_records(folder: Path) -> list[dict]:
    """Every published record in ``folder`` (sorted by file name)."""
    return [read_record(path) for path in sorted(Path(folder).glob("*.json"))]


def completed(folder: Path | None, points: list[Point]) -> dict[str, dict]:
    """``point key -> record`` for the points whose published record completed with their current overrides."""
    if folder is None or not Path(folder).is_dir():
        return {}
    by_fingerprint = {(p.slug, p.fingerprint): p for p in points}
    out = {}
    for record in read_records(folder):
        point = by_fingerprint.get((Path(record["_path"]).stem, record["point"].get("fingerprint")))
        if point is not None and record.get("status") == "completed":
            out[point.key] = record
    return out


def _seconds(record: dict) -> float | None:
    try:
        return (datetime.fromisoformat(record["finished"]) - datetime.fromisoformat(record["started"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def records_frame(records: list[dict], sweep: str, axes: list[str]) -> pd.DataFrame:
    """Published records as rows shaped like :func:`~.results.load_results`' (``duration_s``: the
    point's wall time, started to finished; ``record``: the file)."""
    rows = []
    for r in records:
        labels = dict(r["point"].get("labels") or {})
        status = r.get("status") if r.get("status") in ("completed", "failed") else "failed"
        rows.append({"sweep": sweep, "study": sweep, "trial": None, "status": status,
                     "reason": r.get("reason") if status == "failed" else None, "seed": r["point"].get("seed"),
                     **labels, "point": labels, "overrides": r["point"].get("overrides"),
                     **record_columns(r.get("config") or {}, r.get("metrics") or {}, r.get("history") or [],
                                      r.get("environment") or {}),
                     "date": r.get("finished") or r.get("started"), "record": r.get("_path"),
                     "duration_s": _seconds(r), "attempts": 1, "reused_from": r.get("reused_from")})
    df = pd.DataFrame(rows, columns=[*HEAD_COLUMNS, *axes, *TAIL_COLUMNS])
    df["trial"] = df["trial"].astype("Int64")
    return df


__all__ = ["NEUTRAL_KEYS", "SCHEMA", "completed", "publish", "publishable", "published_dir", "read_record",
           "read_records", "record_path", "records_frame", "reusable", "reuse"]
