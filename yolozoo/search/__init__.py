"""Hyperparameter search: the sweeps' engine (:mod:`yolozoo.sweep`) with a sampler that proposes each trial.

``sweeps/search/NAME.yaml`` -> :mod:`.space` -> :mod:`.study` -> :mod:`.report`.
"""

from ..sweep.results import load_trials
from ..sweep.runner import Options
from .space import SearchError, SearchSpace, list_searches, load_search
from .study import run_search

SearchOptions = Options  # the name searches used before they shared the sweeps' runner

__all__ = ["Options", "SearchError", "SearchOptions", "SearchSpace", "list_searches", "load_search", "load_trials",
           "run_search"]
