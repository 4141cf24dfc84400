"""Run one experiment, or a sweep of them: ``python bench/run.py``, ``python -m yolozoo.run`` or ``yolozoo``.

    python bench/run.py [preset=NAME] [key=value ...]
    python bench/run.py sweep=NAME [storage=URL] [workers=N] [heartbeat=S] [retries=N] [key=value ...]
    python bench/run.py search=NAME [n_trials=N] [storage=URL] [workers=N] [metric=M] [sampler=S] [key=value ...]
    python bench/run.py config=FILE [key=value ...]
    python bench/run.py resume=true|PATH [key=value ...]

With no arguments: trains the default config on the built-in ``digits`` dataset on the
CPU, evaluates it, prints a summary and writes a result record under ``results/runs/``.

With ``sweep=NAME`` (a file in ``sweeps/``, or ``sweep=path/to/file.yaml``): runs that grid
as Optuna trials in ``storage`` (default ``sqlite:///<results_dir>/sweeps.db``); every other
``key=value`` applies to every point. Run the same command again to resume (completed
points are skipped, failed ones retried), or on more machines with the same ``storage=``
to split the grid. Results: ``yolozoo.sweep.load_results(storage, sweep)``.

Sweep options: ``storage=URL`` (shared by all workers), ``workers=N`` (worker processes on
this machine), ``heartbeat=S`` (a point silent for 3 x S seconds is re-run; default 60),
``retries=N`` (re-runs of a point whose worker died; default 3), ``wait=false`` (exit when
nothing is left to claim instead of waiting to take over other workers' points).

With ``search=NAME`` (a file in ``sweeps/search/``, or a path): an Optuna hyperparameter
search over that space, in the same storage, resumable and shared by workers like a sweep;
pruned trials stop early. It writes the best trial's overrides to
``<results_dir>/search/NAME-best.yaml`` and plots to ``reports/search/``; options:
``python -m yolozoo.sweep.cli search=`` lists them.

``resume=true`` continues the newest interrupted run of the same name and config under
``out_dir`` from its last finished epoch (``resume=PATH``: that run folder or checkpoint, whose
stored config is used); on the CPU the result equals an uninterrupted run's. Sweep points
resume by themselves (``resume=auto``). See ``yolozoo/resume.py``.

``config=FILE``: a YAML file of (dotted) overrides applied after the preset and before the
other ``key=value`` overrides, e.g. a search's best-trial file.

Exit status: 0 on success; 1 when a sweep ends with any failed point, or a search with no
completed trial; 2 for a bad override, option, sweep or search file; 130 when interrupted,
143 when stopped by SIGTERM.
"""

from __future__ import annotations

import sys

from .config import ConfigError
from .console import quiet_libraries
from .preflight import check_outputs
from .resume import load_run_config
from .summary import summary


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        from .cli_help import print_help

        return print_help(__doc__)
    if any(a.startswith(("sweep=", "search=")) for a in argv):
        from .sweep.cli import main as study_main  # one runner for both (yolozoo/sweep/runner.py)

        return study_main(argv)
    try:
        cfg = load_run_config(argv)
        check_outputs([cfg])
        from .resume import resume_checkpoint
        from .train import run_name

        resume_checkpoint(cfg, run_name(cfg))  # resume=true with no run to continue: one line, before any work
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    quiet_libraries()
    from .time_budget import BudgetError
    from .train import train

    try:
        record = train(cfg)
    except BudgetError as e:  # trainer.max_time too short for this machine: one line, not a traceback
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130
    except SystemExit:  # SIGTERM mid-training (Lightning raises it)
        print("\nstopped by SIGTERM", file=sys.stderr)
        return 143
    print(summary(record))
    if record.get("record_path"):
        print(f"record: {record['record_path']}")
    return 0


def cli() -> None:
    """The ``yolozoo`` console script."""
    sys.exit(main(sys.argv[1:]))


if __name__ == "__main__":
    cli()
