"""Optuna's plots of a study as PNG files (matplotlib, no extra dependencies).

``<stem>_history.png`` (objective per trial and the best so far), ``<stem>_importance.png``
(fANOVA parameter importances), ``<stem>_parallel.png`` (parallel coordinates of the
parameters against the objective) and ``<stem>_intermediate.png`` (the per-epoch values the
pruner saw). A plot that the study cannot make yet (importances need two completed trials
and a parameter that varies between them) is skipped with the reason.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import optuna
from optuna.trial import TrialState


def _varying_params(trials: list[optuna.trial.FrozenTrial]) -> list[str]:
    names = {name for t in trials for name in t.params}
    return sorted(n for n in names if len({repr(t.params.get(n)) for t in trials if n in t.params}) > 1)


def _why_not(name: str, study: optuna.Study) -> str | None:
    """Why ``name`` cannot be plotted for ``study`` yet, or None."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if name == "intermediate":
        return None if any(t.intermediate_values for t in trials) else "no trial reported per-epoch values"
    if not complete:
        return "no completed trial"
    if name == "importance":
        if len(complete) < 2:
            return "parameter importances need at least 2 completed trials"
        if not _varying_params(complete):
            return "no parameter varies between the completed trials"
    if name == "parallel" and not any(t.params for t in complete):
        return "the completed trials have no parameters"
    return None


def save_plots(study: optuna.Study, out_dir: Path, stem: str) -> dict[str, Path | str]:
    """Write the plots of ``study`` to ``out_dir/<stem>_<plot>.png``; return plot -> path, or the reason it was
    skipped (a plot never fails the search)."""
    import matplotlib

    if matplotlib.get_backend().lower() != "agg":
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as vis

    plots = {"history": vis.plot_optimization_history, "importance": vis.plot_param_importances,
             "parallel": vis.plot_parallel_coordinate, "intermediate": vis.plot_intermediate_values}
    out_dir.mkdir(parents=True, exist_ok=True)
    done: dict[str, Path | str] = {}
    for name, plot in plots.items():
        reason = _why_not(name, study)
        if reason is not None:
            done[name] = reason
            continue
        path = out_dir / f"{stem}_{name}.png"
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # ExperimentalWarning on every matplotlib plot
                ax = plot(study)
            figure = (ax.flat[0] if hasattr(ax, "flat") else ax).figure
            figure.savefig(path, dpi=110, bbox_inches="tight")
            plt.close(figure)
            done[name] = path
        except Exception as e:
            plt.close("all")
            done[name] = f"{type(e).__name__}: {e}"
    return done
