"""``nox -s test`` runs the suite but the long fault-injection tests, in one pytest-xdist process per usable CPU
core (each test file in one process, with its module fixtures; ``nox -s test -- -n 0`` runs it all in one process
with torch's own thread count). ``nox -s faults`` runs the fault-injection tests; ``nox -s lint`` runs ruff, the
import-circle check and the engine's line budget.

The test session reuses the repo's ``.venv`` when it exists (it holds torch, ~6 GB, which
would be wasteful to install twice); otherwise nox builds its own.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import nox

ROOT = Path(__file__).parent
VENV = ROOT / ".venv"
nox.options.reuse_existing_virtualenvs = True


def _test_env(tmp: str) -> dict:
    """Keep W&B, matplotlib and datasets inside a temp dir, offline."""
    return {
        "WANDB_MODE": "offline",
        "WANDB_DIR": tmp,
        "WANDB_CACHE_DIR": f"{tmp}/wandb-cache",
        "WANDB_DATA_DIR": f"{tmp}/wandb-data",
        "WANDB_CONFIG_DIR": f"{tmp}/wandb-config",
        "WANDB_SILENT": "true",
        "MPLCONFIGDIR": f"{tmp}/mpl",
        "YOLOZOO_DATA": f"{tmp}/data",
        "HF_HUB_OFFLINE": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }


def _pytest(session: nox.Session, *args: str, env: dict | None = None) -> None:
    python = str(VENV / "bin" / "python") if VENV.is_dir() else "python"
    if not VENV.is_dir():
        session.install("-e", ".[dev]")
    with tempfile.TemporaryDirectory(prefix="yolozoo-test-") as tmp:
        env = {**_test_env(tmp), "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
        session.run(python, "-m", "pytest", "-q", *args, *session.posargs, env=env, external=True)


def _parallel(posargs: list[str]) -> tuple[list[str], dict]:
    """pytest-xdist's arguments and environment: one process per usable core, each with one torch thread (two
    processes of two threads each on two cores slow training many times over), a test file per process; none
    where the command line chooses its own ``-n``."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    if cores < 2 or any(a.startswith(("-n", "--numprocesses")) for a in posargs):
        return [], {}
    return ["-n", str(cores), "--dist", "loadfile"], {"OMP_NUM_THREADS": "1"}


@nox.session(venv_backend="none" if VENV.is_dir() else "virtualenv")
def test(session: nox.Session) -> None:
    args, env = _parallel(session.posargs)
    _pytest(session, "-m", "not faults", *args, env=env)


@nox.session(venv_backend="none" if VENV.is_dir() else "virtualenv")
def faults(session: nox.Session) -> None:
    """Fault injection with real processes: Ctrl-C, SIGTERM, kill -9, racing workers (a few minutes)."""
    _pytest(session, "-m", "faults", "tests/test_faults.py")


@nox.session(venv_backend="none" if VENV.is_dir() else "virtualenv")
def lint(session: nox.Session) -> None:
    if not VENV.is_dir():
        session.install("ruff")
    ruff = str(VENV / "bin" / "ruff") if VENV.is_dir() else "ruff"
    session.run(ruff, "check", "yolozoo", "bench", "tests", "reports", "noxfile.py", external=True)
    # no import circle inside the package (a stdlib-only script: runs without the venv)
    session.run("python3", str(ROOT / "yolozoo" / "tools" / "import_graph.py"), external=True)
    # the experiment engine's line budget (sweep + search + analysis <= 3,000 lines)
    session.run("python3", str(ROOT / "yolozoo" / "tools" / "size_budget.py"), external=True)
