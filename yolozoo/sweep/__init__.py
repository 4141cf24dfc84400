"""The experiment engine: sweeps (grids) and searches as Optuna studies, resumable and split across workers.

- :mod:`.spec`: ``sweeps/NAME.yaml`` -> checked :class:`SweepSpec` and its points (and the file helpers searches share)
- :mod:`.store`: the Optuna storage; :mod:`.claims`: which grid point a worker runs next, never twice
- :mod:`.runner`: the one worker loop; :mod:`.grid`: a sweep on it (:mod:`yolozoo.search.study`: a search)
- :mod:`.point`: one point or trial, in process or in its own process for DDP
- :mod:`.cli`: ``python bench/run.py sweep=NAME | search=NAME ...``; :mod:`.progress`: progress lines, tables
- :mod:`.results`: :func:`load_results` (and :func:`~.results.load_trials`), read from the run records
- :mod:`.published`: the committed records of a sweep's points; :mod:`.estimate`: a sweep's cost up front
"""

from ..record import METRICS
from .grid import SweepOutcome, run_sweep
from .published import published_dir, read_records, records_frame
from .results import load_results
from .runner import Options
from .spec import SweepError, SweepSpec, list_sweeps, load_sweep

SweepOptions = Options  # the name sweeps used before searches shared the runner

__all__ = ["METRICS", "Options", "SweepError", "SweepOptions", "SweepOutcome", "SweepSpec", "list_sweeps",
           "load_results", "load_sweep", "published_dir", "read_records", "records_frame", "run_sweep"]
