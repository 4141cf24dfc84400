"""The experiment engine: sweeps (grids) and searches as Optuna studies, resumable and split across workers.

A sweep file is read by :mod:`.spec`; :mod:`.runner` is the one worker loop, :mod:`.grid` a sweep on it
(:mod:`yolozoo.search.study`: a search); :mod:`.cli` is ``python bench/run.py sweep=NAME | search=NAME``.
"""

from .grid import SweepOutcome, run_sweep
from .results import load_results
from .runner import Options
from .spec import SweepError, SweepSpec, list_sweeps, load_sweep

SweepOptions = Options  # the name sweeps used before searches shared the runner

__all__ = ["Options", "SweepError", "SweepOptions", "SweepOutcome", "SweepSpec", "list_sweeps", "load_results",
           "load_sweep", "run_sweep"]
