"""The end of a search: its best trials, the best trial as a ``config=FILE``, and Optuna's plots."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.trial import TrialState

from ..config import flatten, load_config, to_dict
from ..record import atomic_write
from ..redact import redact
from ..sweep.results import SEARCH_HEAD, SEARCH_TAIL, load_trials, trial_record
from ..sweep.store import NON_IDENTITY_KEYS, open_storage
from .space import SearchSpace

LEFT_OUT = (*NON_IDENTITY_KEYS, "name", "preset", "resume")  # a trial runs resume=auto; a re-run starts afresh


def best_overrides(config: dict) -> dict[str, Any]:
    """Dotted overrides that turn ``config``'s preset into ``config`` (a trial's resolved config, a dict): every key
    that differs from the preset (and the whole ``assigner`` block), less where outputs go and how they are logged."""
    preset = config.get("preset", "default")
    values, default = flatten(config), flatten(to_dict(load_config({"preset": preset})))
    kept = {k: v for k, v in values.items() if k not in LEFT_OUT and not k.startswith("wandb.")
            and (k.startswith("assigner.") or k not in default or default[k] != v)}
    return kept if preset == "default" else {"preset": preset, **kept}


def summary_table(df: pd.DataFrame, direction: str) -> str:
    """The best 10 trials, a count of all by status, and the failed and pruned ones with their reasons."""
    if df.empty:
        return "(no trials)"
    params = [c for c in df.columns if c not in SEARCH_HEAD and c not in SEARCH_TAIL]
    done = df[df["status"] == "completed"].sort_values("value", ascending=direction == "minimize")
    table = done[["trial", "value", *params]].head(10).to_string(index=False, formatters={"value": "{:.4g}".format})
    lines = [table] if len(done) else []
    lines.append(", ".join(f"{n} {s}" for s, n in df["status"].value_counts().items()))
    lines += [f"  trial {row['trial']} {row['status']}: {row['reason']}"
              for _, row in df[df["status"].isin(["failed", "pruned"])].iterrows()]
    return "\n".join(lines)


def _why_not(study: optuna.Study) -> dict[str, str | None]:
    """Why each plot cannot be made for ``study`` yet (None: it can)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    varying = {n for t in complete for n in t.params if len({repr(u.params[n]) for u in complete if n in u.params}) > 1}
    none = None if complete else "no completed trial"
    importance = ("parameter importances need at least 2 completed trials" if len(complete) < 2 else
                  None if varying else "no parameter varies between the completed trials")
    parallel = None if any(t.params for t in complete) else "the completed trials have no parameters"
    epochs = None if any(t.intermediate_values for t in trials) else "no trial reported per-epoch values"
    return {"history": none, "importance": none or importance, "parallel": none or parallel, "intermediate": epochs}


def save_plots(study: optuna.Study, out_dir: Path, stem: str) -> dict[str, Path | str]:
    """Write the plots of ``study`` to ``out_dir/<stem>_<plot>.png``; return plot -> path, or the reason it was
    skipped (a plot never fails the search)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    plots = {"history": vis.plot_optimization_history, "importance": vis.plot_param_importances,
             "parallel": vis.plot_parallel_coordinate, "intermediate": vis.plot_intermediate_values}
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path | str] = {name: why or out_dir / f"{stem}_{name}.png" for name, why in _why_not(study).items()}
    for name, plot in plots.items():
        if isinstance(done[name], Path):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # ExperimentalWarning on every matplotlib plot
                    plot(study)
                plt.savefig(done[name], dpi=110, bbox_inches="tight")  # the figure the plot made
            except Exception as e:
                done[name] = f"{type(e).__name__}: {e}"
            finally:
                plt.close("all")
    return done


def report(space: SearchSpace, url: str, study_name: str, results_dir: str, reports_dir: Path) -> int:
    """Print the best trials, write the best-config file and the plots; return the exit status (1: none completed)."""
    study = optuna.load_study(study_name=study_name, storage=open_storage(url))
    df = load_trials(url, study=study_name)
    print(summary_table(df, space.objective.direction))
    # ``tal`` for the plain study ``search:tal``; ``tal-1a2b3c4d`` for one with extra overrides or its own name
    stem = space.name if study_name == f"search:{space.name}" else \
        f"{space.name}-{hashlib.sha1(study_name.encode()).hexdigest()[:8]}"
    completed = (df["status"] == "completed").sum()
    if completed:
        best = study.best_trial
        config = trial_record(best).get("config")
        tuned = ", ".join(f"{k}={v}" for k, v in best.params.items())
        where = f"none written: trial {best.number}'s record is not on this machine"
        if config:
            where = Path(results_dir) / "search" / f"{stem}-best.yaml"
            counts = ", ".join(f"{n} {s}" for s, n in df["status"].value_counts().items())
            header = [f"best trial of search {space.name!r}: trial {best.number}, {space.label} = {best.value:.6g} "
                      f"({space.objective.direction})", f"study {study_name!r} in {redact(url)}: {counts}",
                      f"tuned: {tuned}", f"re-run: python bench/run.py config={where}",
                      f"as a sweep's base: python bench/run.py sweep=NAME config={where}"]
            body = [f"{k}: {yaml.safe_dump(v, default_flow_style=True, width=10**6).splitlines()[0]}"
                    for k, v in best_overrides(config).items()]
            where.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(where, "\n".join([*(f"# {line}" for line in header), *body]) + "\n")
        print(f"\nbest: trial {best.number}, {space.label} {best.value:.4g}: {tuned}\nbest config: {where}")
    for name, where in save_plots(study, reports_dir, stem).items():
        print(f"plot {name}: {where}" if isinstance(where, Path) else f"plot {name}: skipped ({where})")
    print(f"\nall trials: yolozoo.search.load_trials(storage={redact(url)!r}, study={study_name!r})")
    return 0 if completed else 1
