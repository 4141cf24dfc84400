"""Sweeps: grids of runs stored as Optuna studies, resumable and split across workers.

- :mod:`.spec`: ``sweeps/NAME.yaml`` -> checked :class:`SweepSpec` and its points
- :mod:`.store`: the Optuna storage (SQLite file or SQLAlchemy URL)
- :mod:`.claims`: which point a worker runs next; no point runs twice
- :mod:`.runner`: the worker loop; :mod:`.point`: one point (in process, or :mod:`.child` for DDP)
- :mod:`.cli`: ``python bench/run.py sweep=NAME ...``
- :mod:`.panel`: W&B prediction images; :mod:`.progress`: progress lines and the final table
- :mod:`.results`: :func:`load_results`, every point as one DataFrame
"""

from .results import load_results
from .runner import SweepOptions, SweepOutcome, run_sweep
from .spec import SweepError, SweepSpec, list_sweeps, load_sweep

__all__ = ["SweepError", "SweepOptions", "SweepOutcome", "SweepSpec", "list_sweeps", "load_results", "load_sweep",
           "run_sweep"]
