"""Hyperparameter search: Optuna studies over search spaces stored as data, in the sweeps' storage.

- :mod:`.params`: one searched parameter (float / int / categorical, log scale, ``when``)
- :mod:`.space`: ``sweeps/search/NAME.yaml`` -> checked :class:`SearchSpace`
- :mod:`.objective`: which recorded metric is optimized, in which direction
- :mod:`.samplers`: samplers and pruners by name; per-trial seeding (replayable studies)
- :mod:`.pruning`: the Lightning callback that reports val metrics and stops pruned trials (DDP-safe)
- :mod:`.study`: the worker loop (resume, many workers, failed / pruned trials with reasons)
- :mod:`.results`: :func:`load_trials`; :mod:`.best`: the best trial as a ``config=FILE``;
  :mod:`.plots`: Optuna's plots; :mod:`.cli`: ``python bench/run.py search=NAME ...``
"""

from .params import SearchError
from .results import load_trials
from .space import SearchSpace, list_searches, load_search
from .study import SearchOptions, run_search

__all__ = ["SearchError", "SearchOptions", "SearchSpace", "list_searches", "load_search", "load_trials",
           "run_search"]
