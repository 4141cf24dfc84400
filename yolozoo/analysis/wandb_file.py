"""Read an offline W&B run (``wandb/offline-run-*/run-*.wandb``) without a network or a server.

wandb 0.31 writes runs through its Go core and ships no Python reader for the ``.wandb``
datastore, but the format is small: a 7-byte file header (``:W&B``, magic ``0xBEE1``,
version 0), then LevelDB-log framing in 32 KiB blocks. Each chunk has a 7-byte header
(CRC-32 of type byte + payload, payload length, type FULL/FIRST/MIDDLE/LAST); a block's
tail shorter than a header is zero padding. Reassembled payloads are ``wandb_internal_pb2.Record``
protobufs (run, config, history, summary, exit, ...), the messages W&B itself syncs.
"""

from __future__ import annotations

import json
import struct
import zlib
from datetime import datetime, timezone
from pathlib import Path

_HEADER = struct.Struct("<4sHB")  # ident, magic, version
_CHUNK = struct.Struct("<IHB")  # crc32, length, type
_BLOCK = 32768
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


class WandbFileError(ValueError):
    """A ``.wandb`` file that is not a W&B datastore or is corrupt; the message names the file."""


def iter_records(path: Path):
    """Yield every ``wandb_internal_pb2.Record`` in ``path``, in write order.

    A truncated last record (a run killed mid-write) ends the iteration; a CRC mismatch raises.
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    if len(data) < _HEADER.size or _HEADER.unpack_from(data)[:2] != (b":W&B", 0xBEE1):
        raise WandbFileError(f"{path}: not a W&B datastore file")
    pos, payload = _HEADER.size, b""
    while pos + _CHUNK.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _CHUNK.size:  # block trailer padding
            pos += left
            continue
        crc, length, kind = _CHUNK.unpack_from(data, pos)
        chunk = data[pos + _CHUNK.size: pos + _CHUNK.size + length]
        if len(chunk) < length or kind == 0:
            return  # truncated tail or zero padding at the end of the file
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise WandbFileError(f"{path}: checksum mismatch at byte {pos}")
        pos += _CHUNK.size + length
        payload = chunk if kind in (_FULL, _FIRST) else payload + chunk
        if kind in (_FULL, _LAST):
            record = pb.Record()
            record.ParseFromString(payload)
            yield record


def _key(item) -> str:
    return item.key or ".".join(item.nested_key)


def _value(item):
    return json.loads(item.value_json) if item.value_json else None


def _apply(target: dict, change) -> None:
    """A config or summary record: set its ``update`` items in ``target``, drop its ``remove`` items."""
    target.update({_key(i): _value(i) for i in change.update})
    for i in change.remove:
        target.pop(_key(i), None)


def read_wandb_file(path: str | Path) -> dict:
    """The run in one ``.wandb`` file as plain data.

    Returns ``{"id", "name", "group", "project", "config": dict, "summary": dict,
    "history": [dict per logged step], "exit_code": int | None (None: no exit record, i.e.
    still running or killed), "commit", "date" (ISO, UTC), "path"}``.
    """
    run: dict = {"id": None, "name": None, "group": None, "project": None, "config": {}, "summary": {},
                 "history": [], "exit_code": None, "commit": None, "date": None, "path": str(path)}
    for record in iter_records(Path(path)):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.update(id=r.run_id, name=r.display_name or r.run_id, group=r.run_group or None,
                       project=r.project or None, commit=r.git.commit or None)
            if r.start_time.seconds:
                run["date"] = datetime.fromtimestamp(r.start_time.seconds, timezone.utc).isoformat()
            run["config"].update({_key(i): _value(i) for i in r.config.update})
        elif kind == "config":
            _apply(run["config"], record.config)
        elif kind == "history":
            run["history"].append({_key(i): _value(i) for i in record.history.item})
        elif kind == "summary":
            _apply(run["summary"], record.summary)
        elif kind == "exit":
            run["exit_code"] = record.exit.exit_code
    run["config"].pop("_wandb", None)
    return run


def find_offline_runs(root: str | Path) -> list[Path]:
    """Every ``offline-run-*/run-*.wandb`` under ``root``, sorted by path."""
    return sorted(Path(root).rglob("offline-run-*/run-*.wandb"))


__all__ = ["WandbFileError", "find_offline_runs", "iter_records", "read_wandb_file"]
