"""``python bench/run.py sweep=NAME [storage=URL] [workers=N] [heartbeat=S] [retries=N] [key=value ...]``.

Runs one worker (or ``workers=N`` local worker processes) on the sweep, prints a progress
line per finished point and a final table listing failures with their reasons.

Exit status: 0 when every point of the sweep completed; 1 when any point failed (re-run
the same command to retry the failed ones); 2 for a bad sweep file, option or override;
130 when interrupted, 143 when stopped by SIGTERM (re-run to resume).
"""

from __future__ import annotations

import os
import subprocess
import sys

from ..config import ConfigError, parse_overrides
from ..console import quiet_libraries

# Options of the sweep command itself; every other key=value overrides the config of every point.
OPTIONS = {
    "sweep": "a sweep name in sweeps/ or a path to a sweep .yaml file",
    "storage": "Optuna storage URL shared by all workers (default sqlite:///<results_dir>/sweeps.db; "
               "e.g. postgresql+psycopg2://user:pw@host/db for many machines)",
    "workers": "worker processes to start on this machine (default 1; each takes a share of the GPUs)",
    "heartbeat": "seconds between a running point's heartbeats (default 60); silent for 3x that = dead, re-run",
    "retries": "how many times a point whose worker died is re-run (default 3)",
    "wait": "true (default): when nothing is left to claim, wait for other workers' points (and take over dead ones)",
    "auto_seeds": "true (default): add the sweep file's auto seeds (max_seeds) where a row's interval is open; "
                  "false: run the listed seeds only (a later run adds them)",
}
CHILD_ENV = "YOLOZOO_SWEEP_WORKER"


def _options(args: dict[str, str]):
    from .runner import SweepOptions

    def number(key: str, default: int, minimum: int) -> int:
        text = args.get(key, str(default))
        try:
            value = int(text)
        except ValueError:
            raise ConfigError(f"{key} must be an integer, got {text!r}") from None
        if value < minimum:
            raise ConfigError(f"{key} must be at least {minimum}, got {value}")
        return value

    def flag(key: str) -> bool:
        text = args.get(key, "true").lower()
        if text not in ("true", "false"):
            raise ConfigError(f"{key} must be true or false, got {args[key]!r}")
        return text == "true"

    return SweepOptions(storage=args.get("storage") or None, heartbeat=number("heartbeat", 60, 1),
                        max_retry=number("retries", 3, 0), wait=flag("wait"),
                        auto_seeds=flag("auto_seeds")), number("workers", 1, 1)


def spawn_workers(argv: list[str], workers: int, module: str = "yolozoo.sweep.cli") -> int:
    """Start ``workers`` copies of this command (``python -m module``, without ``workers=``), splitting the GPUs;
    wait for all. (:mod:`yolozoo.search.cli` starts its workers with this too.)

    Returns 130 when interrupted (Ctrl-C here, forwarded to the workers, or a worker stopped by Ctrl-C),
    143 when this process got SIGTERM (forwarded too), else 0: how a worker ended otherwise (a crash,
    kill -9) is the store's business, which the caller reports from.
    """
    import signal

    import torch

    from .point import REPO_ROOT

    gpus = torch.cuda.device_count() if "CUDA_VISIBLE_DEVICES" not in os.environ else 0
    share = gpus // workers
    child_argv = [a for a in argv if not a.startswith("workers=")]
    procs = []
    for i in range(workers):
        env = {**os.environ, CHILD_ENV: str(i),
               "PYTHONPATH": os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)}
        if share:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(i * share, (i + 1) * share))
        procs.append(subprocess.Popen([sys.executable, "-m", module, *child_argv], env=env))
    def forward(signum: int) -> None:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    terminated = []

    def on_sigterm(signum, frame):
        terminated.append(signum)
        forward(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    interrupted = False
    try:
        while True:
            try:
                codes = [p.wait() for p in procs]
                break
            except KeyboardInterrupt:  # the terminal's Ctrl-C reaches the workers too; a kill -INT of ours does not
                interrupted = True
                forward(signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    if terminated:
        return 143
    if interrupted or any(c in (130, -signal.SIGINT) for c in codes):
        return 130
    return 0


def split_command(argv: list[str], options: dict[str, str], required: str) -> tuple[dict, dict]:
    """Split ``key=value`` arguments into the command's own ``options`` and config overrides.

    Raises ConfigError when ``required`` (e.g. ``sweep``) is missing, listing the options.
    """
    args = parse_overrides(argv)
    ours = {k: args.pop(k) for k in list(args) if k in options}
    if not ours.get(required):
        raise ConfigError(f"{required}=NAME is required; " + "; ".join(f"{k}: {v}" for k, v in options.items()))
    return ours, args


def main(argv: list[str]) -> int:
    """Run the sweep command; see the module docstring for the arguments and the exit status."""
    from ..preflight import check_outputs
    from ..redact import redact
    from .spec import SweepError, load_sweep
    from .store import default_storage_url

    try:
        ours, args = split_command(argv, OPTIONS, "sweep")
        options, workers = _options(ours)
        spec = load_sweep(ours["sweep"], args)
        url = options.storage or default_storage_url(_results_dir(spec, args))
        if CHILD_ENV not in os.environ:  # the parent checked already
            check_outputs(point_configs(spec, args), url)
    except (ConfigError, SweepError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    code = spawn_workers(argv, workers) if workers > 1 else 0
    quiet_libraries()
    from .progress import summary_table, wall_time_line
    from .runner import SweepWorker, run_sweep

    if workers > 1:  # whatever the workers died of, the table says where the sweep stands
        try:
            df = SweepWorker(spec, args, options).results()
        except (SweepError, ValueError) as e:
            print(f"error: {redact(str(e))}", file=sys.stderr)
            return code or 1
    else:
        try:
            outcome = run_sweep(spec, args, options)
        except KeyboardInterrupt:
            print("\ninterrupted: re-run the same command to resume (the interrupted point is retried)",
                  file=sys.stderr)
            return 130
        except SystemExit:  # SIGTERM mid-point (Lightning turns it into SystemExit)
            print("\nstopped by SIGTERM: the point it was training is re-run by the next worker once its heartbeat "
                  "goes stale; re-run the same command to resume", file=sys.stderr)
            return 143
        except (SweepError, ValueError) as e:
            print(f"error: {redact(str(e))}", file=sys.stderr)
            return 2
        df = outcome.results
        if CHILD_ENV in os.environ:  # the parent prints the table for all workers
            return 1 if (df["status"] == "failed").any() else 0
    print(summary_table(df, list(spec.axes)))
    print(wall_time_line(df, outcome.wall_s if workers == 1 else None))
    print(f"\nall results: yolozoo.sweep.load_results(storage={redact(url)!r}, sweep={spec.name!r})")
    if code:
        print("\ninterrupted: re-run the same command to resume" if code == 130 else
              "\nstopped by SIGTERM: re-run the same command to resume", file=sys.stderr)
        return code
    unfinished = (df["status"] != "completed") if workers > 1 else (df["status"] == "failed")
    return 1 if unfinished.any() else 0


def point_configs(spec, args: dict[str, str]) -> list:
    """The config of every point (first seed: seeds change no output location), for the preflight."""
    from ..config import load_config

    return [load_config(spec.resolve(p.axis_overrides, args)) for p in spec.points() if p.seed == spec.seeds[0]]


def _results_dir(spec, args: dict[str, str]) -> str:
    from ..config import load_config

    return load_config(spec.resolve({}, args)).results_dir


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
