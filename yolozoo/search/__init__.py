"""Hyperparameter search: the sweeps' engine (:mod:`yolozoo.sweep`) with a sampler that proposes each trial.

- :mod:`.params`: one searched parameter (float / int / categorical, log scale, ``when``)
- :mod:`.space`: ``sweeps/search/NAME.yaml`` -> checked :class:`SearchSpace` and its objective
- :mod:`.samplers`: samplers and pruners by name; per-trial seeding (replayable studies)
- :mod:`.study`: a search on the sweeps' worker loop; :mod:`.report`: best trials, best-config file, plots
"""

from ..sweep.results import load_trials
from ..sweep.runner import Options
from .params import SearchError
from .space import SearchSpace, list_searches, load_search
from .study import run_search

SearchOptions = Options  # the name searches used before they shared the sweeps' runner

__all__ = ["Options", "SearchError", "SearchOptions", "SearchSpace", "list_searches", "load_search", "load_trials",
           "run_search"]
