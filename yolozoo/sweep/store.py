"""Where sweeps and searches live: an Optuna RDB storage (SQLite file or SQLAlchemy URL), one study each.

Added to plain ``RDBStorage``: SQLite transactions take the write lock up front (``BEGIN IMMEDIATE``: with
pysqlite's deferred transactions two processes both "popped" one WAITING trial, 13 of 180 pops with 3 processes;
PostgreSQL locks the row instead), and creating a fresh database concurrently is retried (two workers race on
``CREATE TABLE``)."""

from __future__ import annotations

import logging
import os
import socket
import time
import warnings
from pathlib import Path

import optuna
from optuna.exceptions import ExperimentalWarning
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from ..redact import redact

log = logging.getLogger(__name__)

# Command-line keys that say where outputs go or how they are logged, not what is trained:
# they do not make a different study (workers on different machines may differ in them).
NON_IDENTITY_KEYS = ("out_dir", "results_dir", "data.root", "data.num_workers", "trainer.enable_progress_bar",
                     "trainer.log_every_n_steps", "wandb.mode", "wandb.project", "wandb.group")


def default_storage_url(results_dir: str | Path = "results") -> str:
    """``sqlite:////abs/path/results/sweeps.db``."""
    return f"sqlite:///{(Path(results_dir) / 'sweeps.db').resolve()}"


def sqlite_path(url: str) -> Path | None:
    """The file of a ``sqlite:///`` URL, or None for other databases (and in-memory SQLite)."""
    file = url.removeprefix("sqlite:///")
    return Path(file) if file not in (url, ":memory:") else None


def open_storage(url: str, heartbeat: int | None = None, grace: int | None = None, max_retry: int = 3,
                 attempts: int = 6) -> RDBStorage:
    """Open (creating if needed) the Optuna storage at ``url``. With ``heartbeat`` (seconds), a trial silent for
    ``grace`` (default 3 x heartbeat) is failed by the next worker that looks and queued again (``max_retry``)."""
    path = sqlite_path(url)
    if path is None and url.startswith("sqlite"):
        raise ValueError(f"storage={url}: use a SQLite file (sqlite:///path/to/sweeps.db) so workers can share it")
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ValueError(f"storage={url}: cannot create the folder {path.parent} ({e.strerror or e})") from None
    # isolation_level=None: pysqlite emits no BEGIN of its own; the "begin" listener below emits BEGIN IMMEDIATE.
    engine_kwargs = {"connect_args": {"timeout": 120, "isolation_level": None}} if path is not None else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        kwargs = dict(heartbeat_interval=int(heartbeat), grace_period=int(grace or 3 * heartbeat),
                      heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
                      ) if heartbeat else {}
        for attempt in range(attempts):
            try:
                storage = RDBStorage(url, engine_kwargs=engine_kwargs, **kwargs)
                break
            except ImportError as e:
                raise ValueError(f"storage={redact(url)}: the database driver is not installed ({e}); for "
                                 "PostgreSQL: pip install psycopg2-binary") from None
            except Exception as e:  # concurrent creation of a new database: tables half made by another worker
                if attempt == attempts - 1:
                    raise ValueError(f"storage={redact(url)}: cannot open the database: {redact(str(e))}") from None
                log.debug("retrying storage creation after %r", e)
                time.sleep(0.5 * (attempt + 1))
    if path is not None:  # SQLAlchemy's recipe for SQLite transactions with real isolation
        from sqlalchemy import event

        event.listen(storage.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
    return storage


def fail_stale(study: optuna.Study) -> None:
    """Fail the study's trials whose worker stopped sending heartbeats (Optuna re-queues them: see open_storage)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def study_name(sweep: str, cli: dict[str, str]) -> str:
    """``widths`` or ``widths trainer.max_epochs=3``: other command-line overrides make another study."""
    identity = sorted(f"{k}={v}" for k, v in cli.items() if k not in NON_IDENTITY_KEYS)
    return " ".join([sweep, *identity])


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"
