"""``python bench/run.py search=NAME [n_trials=N] [storage=URL] [workers=N] [metric=M] ... [key=value ...]``.

Runs one worker (or ``workers=N`` local worker processes) on the search, prints a line per
finished trial, then the best trials, writes the best trial's overrides to
``<results_dir>/search/<name>-best.yaml`` (``bench/run.py config=FILE`` runs it) and Optuna's
plots to ``reports/search/`` (next to ``results_dir``; ``reports=DIR`` elsewhere).

Exit status: 0 when the study has a completed trial; 1 when none completed (all pruned or
failed); 2 for a bad search file, option or override; 130 when interrupted, 143 when stopped
by SIGTERM (re-run the same command to resume).
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

from ..config import ConfigError, load_config
from ..console import quiet_libraries
from ..redact import redact
from ..sweep.cli import CHILD_ENV, spawn_workers, split_command
from ..sweep.spec import SweepError

# Options of the search command itself; every other key=value overrides the config of every trial.
OPTIONS = {
    "search": "a search space in sweeps/search/ or a path to a search .yaml file",
    "n_trials": "trials to finish in the study, over all workers and runs (default: the file's n_trials, else 20)",
    "storage": "Optuna storage URL shared by all workers (default sqlite:///<results_dir>/sweeps.db)",
    "workers": "worker processes to start on this machine (default 1; each takes a share of the GPUs)",
    "heartbeat": "seconds between a running trial's heartbeats (default 60); silent for 3x that = dead, re-run",
    "retries": "how many times a trial whose worker died is re-run (default 3)",
    "wait": "true (default): when the budget is taken, wait for other workers' trials (and take over dead ones)",
    "metric": "objective metric (default: the file's, else mAP); any key of a run record's metrics",
    "direction": "maximize or minimize (default: the file's, or the metric's usual one)",
    "sampler": "Optuna sampler: tpe (default), random, cmaes, gp, qmc, nsgaii",
    "sampler_seed": "the sampler's seed (default: the file's, else 0); same seed + same space = same trials",
    "pruner": "none, median (default), percentile, hyperband, successive_halving, threshold",
    "study": "study name (default: search:NAME plus the command line's config overrides)",
    "reports": "folder for the plots (default reports/search next to results_dir)",
}
SEARCH_OPTIONS = ("metric", "direction", "sampler", "sampler_seed", "pruner")


def _number(args: dict[str, str], key: str, default: int | None, minimum: int) -> int | None:
    if key not in args:
        return default
    try:
        value = int(args[key])
    except ValueError:
        raise ConfigError(f"{key} must be an integer, got {args[key]!r}") from None
    if value < minimum:
        raise ConfigError(f"{key} must be at least {minimum}, got {value}")
    return value


def _options(ours: dict[str, str]):
    from .study import SearchOptions

    wait = ours.get("wait", "true").lower()
    if wait not in ("true", "false"):
        raise ConfigError(f"wait must be true or false, got {ours['wait']!r}")
    options = SearchOptions(storage=ours.get("storage") or None, n_trials=_number(ours, "n_trials", None, 1),
                            study=ours.get("study") or None, heartbeat=_number(ours, "heartbeat", 60, 1),
                            max_retry=_number(ours, "retries", 3, 0), wait=wait == "true")
    return options, _number(ours, "workers", 1, 1)


def file_stem(space_name: str, study: str) -> str:
    """``tal`` for the plain study ``search:tal``; ``tal-1a2b3c4d`` for one with extra overrides or its own name."""
    if study == f"search:{space_name}":
        return space_name
    return f"{space_name}-{hashlib.sha1(study.encode()).hexdigest()[:8]}"


def report(space, url: str, study_name: str, results_dir: str, reports_dir: Path) -> int:
    """Print the best trials, write the best-config file and the plots; return the exit status."""
    import optuna

    from ..sweep.store import open_storage
    from .best import write_best
    from .plots import save_plots
    from .results import load_trials, summary_table

    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    df = load_trials(url, study=study_name)
    print(summary_table(df, space.objective.direction))
    stem = file_stem(space.name, study_name)
    completed = (df["status"] == "completed").sum()
    if completed:
        best = study.best_trial
        path = Path(results_dir) / "search" / f"{stem}-best.yaml"
        counts = df["status"].value_counts().to_dict()
        tuned = ", ".join(f"{k}={v}" for k, v in best.params.items())
        write_best(best, path, [
            f"best trial of search {space.name!r}: trial {best.number}, {space.objective.label} = {best.value:.6g} "
            f"({space.objective.direction})",
            f"study {study_name!r} in {redact(url)}: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
            f"tuned: {tuned}",
            f"re-run: python bench/run.py config={path}",
            f"as a sweep's base: python bench/run.py sweep=NAME config={path}",
        ])
        print(f"\nbest: trial {best.number}, {space.objective.label} {best.value:.4g}: {tuned}\nbest config: {path}")
    for name, where in save_plots(study, reports_dir, stem).items():
        print(f"plot {name}: {where}" if isinstance(where, Path) else f"plot {name}: skipped ({where})")
    print(f"\nall trials: yolozoo.search.load_trials(storage={redact(url)!r}, study={study_name!r})")
    return 0 if completed else 1


def main(argv: list[str]) -> int:
    """Run the search command; see the module docstring for the arguments and the exit status."""
    from .space import load_search

    try:
        ours, args = split_command(argv, OPTIONS, "search")
        options, workers = _options(ours)
        search_options = {k: ours[k] for k in SEARCH_OPTIONS if ours.get(k)}
        space, context = load_search(ours["search"], args, search_options)
        if CHILD_ENV not in os.environ:  # before any training: every output location is writable
            from ..preflight import check_outputs
            from ..sweep.store import default_storage_url

            cfg = load_config(space.resolve({}, args))
            check_outputs([cfg], options.storage or default_storage_url(cfg.results_dir))
    except (ConfigError, SweepError) as e:
        print(f"error: {redact(str(e))}", file=sys.stderr)
        return 2
    if workers > 1:
        code = spawn_workers(argv, workers, module="yolozoo.search.cli")
        if code:
            return code
    quiet_libraries()
    from ..sweep.store import default_storage_url
    from .study import run_search, search_study_name

    results_dir = load_config(space.resolve({}, args)).results_dir
    url = options.storage or default_storage_url(results_dir)
    name = options.study or search_study_name(space, args, search_options)
    if workers == 1:
        try:
            run_search(space, context, args, options, search_options)
        except KeyboardInterrupt:
            print("\ninterrupted: re-run the same command to resume", file=sys.stderr)
            return 130
        except SystemExit:
            print("\nstopped by SIGTERM: its trial is re-run by the next worker once its heartbeat goes stale; "
                  "re-run the same command to resume", file=sys.stderr)
            return 143
        except (SweepError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        if CHILD_ENV in os.environ:  # the parent reports for all workers
            return 0
    reports_dir = Path(ours.get("reports") or Path(results_dir).parent / "reports" / "search")
    return report(space, url, name, results_dir, reports_dir)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
