"""Ablation reports from recorded runs: :mod:`.load` -> :mod:`.tables` -> :mod:`.formats` (Markdown, LaTeX, HTML,
CSV), :mod:`.plots`; :mod:`.render` is ``python reports/render.py``.
"""

from .load import load_results, prepare
from .render import render_sweep
from .spec import ReportSpec, load_spec
from .tables import Comparison, build_table, compare_rows, summarize

__all__ = ["Comparison", "ReportSpec", "build_table", "compare_rows", "load_results", "load_spec", "prepare",
           "render_sweep", "summarize"]
