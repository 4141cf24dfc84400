"""``python bench/run.py sweep=NAME | search=NAME [options] [key=value ...]``: one command for both.

Runs one worker (or ``workers=N`` local worker processes), then prints a sweep's table or a search's best trials
(:mod:`yolozoo.search.report`). Exit status: see the README's Sweeps section (a search: 1 when no trial completed).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

from ..config import ConfigError, load_config, parse_overrides
from ..console import quiet_libraries
from ..redact import redact
from .point import child_env

# The command's own options; every other key=value overrides the config of every point or trial.
COMMON = {
    "storage": "Optuna storage URL shared by all workers (default sqlite:///<results_dir>/sweeps.db; "
               "e.g. postgresql+psycopg2://user:pw@host/db for many machines)",
    "workers": "worker processes to start on this machine (default 1; each takes a share of the GPUs)",
    "heartbeat": "seconds between a running trial's heartbeats (default 60); silent for 3x that = dead, re-run",
    "retries": "how many times a trial whose worker died is re-run (default 3)",
    "wait": "true (default): when nothing is left to take, wait for other workers' trials (and take over dead ones)",
}
OPTIONS = {
    "sweep": {"sweep": "a sweep name in sweeps/ or a path to a sweep .yaml file", **COMMON,
              "auto_seeds": "true (default): add the sweep file's auto seeds (max_seeds) where a row's interval is "
                            "open; false: run the listed seeds only (a later run adds them)"},
    "search": {"search": "a search space in sweeps/search/ or a path to a search .yaml file", **COMMON,
               "n_trials": "trials to finish in the study, over all workers and runs (default: the file's, else 20)",
               "metric": "objective metric (default: the file's, else mAP); any key of a run record's metrics",
               "direction": "maximize or minimize (default: the file's, or the metric's usual one)",
               "sampler": "Optuna sampler: tpe (default), random, cmaes, gp, qmc, nsgaii",
               "sampler_seed": "the sampler's seed (default: the file's, else 0); same seed + space = same trials",
               "pruner": "none, median (default), percentile, hyperband, successive_halving, threshold",
               "study": "study name (default: search:NAME plus the command line's config overrides)",
               "reports": "folder for the plots (default reports/search next to results_dir)"},
}
SEARCH_OPTIONS = ("metric", "direction", "sampler", "sampler_seed", "pruner")
CHILD_ENV = "YOLOZOO_SWEEP_WORKER"


def parse_command(argv: list[str]) -> tuple[str, dict[str, str], dict[str, str]]:
    """``(kind, options, overrides)``: ``kind`` is ``sweep`` or ``search``; an option of the other kind, or a
    missing name, is a ConfigError listing the options."""
    args = parse_overrides(argv)
    kind = "search" if args.get("search") is not None and "sweep" not in args else "sweep"
    misplaced = sorted(set(args) & (set(OPTIONS["search" if kind == "sweep" else "sweep"]) - set(OPTIONS[kind])))
    if misplaced:
        raise ConfigError(f"{misplaced[0]} is not an option of {kind}=; {kind} options: {', '.join(OPTIONS[kind])}")
    ours = {k: args.pop(k) for k in list(args) if k in OPTIONS[kind]}
    if not ours.get(kind):
        raise ConfigError(f"{kind}=NAME is required; " + "; ".join(f"{k}: {v}" for k, v in OPTIONS[kind].items()))
    return kind, ours, args


def spawn_workers(argv: list[str], workers: int) -> int:
    """Start ``workers`` copies of this command (``python -m yolozoo.sweep.cli``, without ``workers=``), splitting
    the GPUs; wait for all. Returns 130 on Ctrl-C (here or in a worker), 143 on SIGTERM (both forwarded), else 0:
    how a worker ended otherwise (a crash, kill -9) is the store's business, which the caller reports from."""
    gpus = torch.cuda.device_count() if "CUDA_VISIBLE_DEVICES" not in os.environ else 0
    share = gpus // workers
    procs = []
    for i in range(workers):
        env = {**child_env(), CHILD_ENV: str(i)}
        if share:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(i * share, (i + 1) * share))
        procs.append(subprocess.Popen([sys.executable, "-m", "yolozoo.sweep.cli",
                                       *(a for a in argv if not a.startswith("workers="))], env=env))

    received: list[int] = []

    def forward(signum: int, frame=None) -> None:  # a terminal's Ctrl-C reaches the workers too; kill -INT does not
        received.append(signum)
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        codes = [p.wait() for p in procs]
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if signal.SIGTERM in received:
        return 143
    return 130 if received or any(c in (130, -signal.SIGINT) for c in codes) else 0


def main(argv: list[str]) -> int:
    """Run the sweep or search command; see the module docstring for the arguments and the exit status."""
    from ..preflight import check_outputs
    from ..search import load_search
    from ..search.report import report
    from ..search.study import run_search, search_study_name
    from .grid import GridWorker, run_sweep
    from .progress import summary_table, wall_time_line
    from .runner import Options
    from .schema import validated
    from .spec import check_sweep, find_sweep, read_sweep
    from .store import default_storage_url

    outcome = None
    try:
        kind, ours, args = parse_command(argv)
        names = {"retries", *Options.model_fields} - {"max_retry"}  # the worker options, workers= included
        options = validated(Options, {k: v for k, v in ours.items() if k in names and v}, "command line", ConfigError)
        if kind == "sweep":
            spec = read_sweep(find_sweep(ours["sweep"]))
            cfgs = check_sweep(spec, args)
        else:
            search_options = {k: ours[k] for k in SEARCH_OPTIONS if ours.get(k)}
            space, context = load_search(ours["search"], args, search_options)
            cfgs = [load_config(space.resolve({}, args))]
        url = options.storage or default_storage_url(cfgs[0].results_dir)
        if CHILD_ENV not in os.environ:  # before any training, once: every output location is writable
            check_outputs(cfgs, url)
        code = spawn_workers(argv, options.workers) if options.workers > 1 else 0
        quiet_libraries()
        if options.workers == 1 and kind == "sweep":
            outcome = run_sweep(spec, args, options)
        elif options.workers == 1:
            run_search(space, context, args, options, search_options)
    except KeyboardInterrupt:
        print("\ninterrupted: re-run the same command to resume (the interrupted trial is re-run)", file=sys.stderr)
        return 130
    except SystemExit:  # SIGTERM mid-trial (Lightning turns it into SystemExit)
        print("\nstopped by SIGTERM: the trial it was training is re-run by the next worker once its heartbeat "
              "goes stale; re-run the same command to resume", file=sys.stderr)
        return 143
    except ValueError as e:  # ConfigError, SweepError: a bad file, option or override
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    if CHILD_ENV in os.environ:  # the parent reports for all workers
        return int(outcome is not None and outcome.failed > 0)
    if kind == "search":
        if code:
            return code
        name = options.study or search_study_name(space, args, search_options)
        reports_dir = Path(ours.get("reports") or Path(cfgs[0].results_dir).parent / "reports" / "search")
        return report(space, url, name, cfgs[0].results_dir, reports_dir)
    try:  # whatever the workers died of, the table says where the sweep stands
        df = outcome.results if outcome else GridWorker(spec, args, options).results()
    except ValueError as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return code or 1
    print(summary_table(df, list(spec.axes)))
    print(wall_time_line(df, outcome.wall_s if outcome else None))
    print(f"\nall results: yolozoo.sweep.load_results(storage={redact(url)!r}, sweep={spec.name!r})")
    if code:
        print("\ninterrupted: re-run the same command to resume" if code == 130 else
              "\nstopped by SIGTERM: re-run the same command to resume", file=sys.stderr)
        return code
    unfinished = (df["status"] == "failed") if outcome else (df["status"] != "completed")
    return int(unfinished.any())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
