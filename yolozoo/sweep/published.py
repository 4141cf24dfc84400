"""Published run records: a sweep point's :class:`~yolozoo.record.RunRecord`, less this machine's paths, as
``<results_dir>/published/<sweep>/<point slug>.json``, committed with the repository (README, "Records")."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..record import SCHEMA_VERSION, RunRecord, atomic_write, duration_s, json_safe, read_record, record_columns
from ..training_identity import training_config
from .spec import HEAD_COLUMNS, TAIL_COLUMNS, Point
from .store import NON_IDENTITY_KEYS


def publishable(cli: dict[str, str]) -> bool:
    """Whether a sweep run with these extra overrides runs the sweep file's own points."""
    return all(k in NON_IDENTITY_KEYS or k.startswith("wandb.") for k in cli)


def published_dir(results_dir: str | Path, sweep: str) -> Path:
    return Path(results_dir) / "published" / sweep


def publish(folder: Path, point: Point, record: dict, overrides: dict[str, str]) -> Path:
    """Write ``record`` (a run record as a dict) as the point's published record, atomically; return its path."""
    point_info = {"labels": point.labels, "seed": point.seed, "fingerprint": point.fingerprint, "overrides": overrides}
    run = RunRecord.from_dict({**record, "schema_version": SCHEMA_VERSION, "point": point_info})  # less "_path"
    run.environment = {k: v for k, v in run.environment.items() if k != "host"}
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(json_safe(run.to_dict(local=False)), indent=1, allow_nan=False) + "\n"  # NaN -> null
    return atomic_write(folder / f"{point.slug}.json", text)


def _identity(config: dict) -> str:
    return json.dumps(json_safe(training_config(config)), sort_keys=True)


def reusable(root: Path, sweep: str) -> dict[str, dict]:
    """Completed records of the sweeps under ``root`` other than ``sweep``, by training identity (config + seed);
    copies (``reused_from``) are left out, so each run has one origin."""
    out: dict[str, dict] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and p.name != sweep) if root.is_dir() else []:
        for record in read_records(folder):
            if record.get("status") == "completed" and not record.get("reused_from") and record.get("config"):
                out.setdefault(_identity(record["config"]), record)
    return out


def reuse(folder: Path, point: Point, config: dict, overrides: dict[str, str], found: dict[str, dict]) -> Path | None:
    """Publish as ``point``'s record the one in ``found`` (see :func:`reusable`) that ran its resolved ``config``;
    None if there is none."""
    original = found.get(_identity(config))
    if original is None:
        return None
    return publish(folder, point, {**original, "reused_from": "/".join(Path(original["_path"]).parts[-2:])}, overrides)


def read_published(path: Path) -> dict:
    """The published record at ``path`` (a dict, ``_path`` added); a file that is not one is an error naming it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: not a readable run record ({e})") from None
    if not isinstance(data, dict) or not isinstance(data.get("point"), dict):
        raise ValueError(f"{path}: not a published run record (no 'point' key)")
    return read_record(path)


def read_records(folder: Path) -> list[dict]:
    """Every published record in ``folder`` (sorted by file name)."""
    return [read_published(path) for path in sorted(Path(folder).glob("*.json"))]


def completed(folder: Path | None, points: list[Point]) -> dict[str, dict]:
    """``point key -> record`` for the points whose published record completed with their current overrides."""
    keys = {(p.slug, p.fingerprint): p.key for p in points}
    done = {(Path(r["_path"]).stem, r["point"].get("fingerprint")): r for r in (read_records(folder) if folder else [])
            if r.get("status") == "completed"}
    return {keys[k]: r for k, r in done.items() if k in keys}


def records_frame(records: list[dict], sweep: str, axes: list[str]) -> pd.DataFrame:
    """Published records as rows shaped like :func:`~.results.load_results`' (``duration_s``: the
    point's wall time, started to finished; ``record``: the file)."""
    rows = []
    for r in records:
        labels = dict(r["point"].get("labels") or {})
        status = r.get("status") if r.get("status") in ("completed", "failed") else "failed"
        rows.append({"sweep": sweep, "study": sweep, "trial": None, "status": status,
                     "reason": r.get("reason") if status == "failed" else None, "seed": r["point"].get("seed"),
                     **labels, "point": labels, "overrides": r["point"].get("overrides"), **record_columns(r),
                     "date": r.get("finished") or r.get("started"), "record": r.get("_path"),
                     "duration_s": duration_s(r), "attempts": 1, "reused_from": r.get("reused_from")})
    return pd.DataFrame(rows, columns=[*HEAD_COLUMNS, *axes, *TAIL_COLUMNS]).astype({"trial": "Int64"})

