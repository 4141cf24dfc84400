"""Ablation reports from recorded runs: tables (Markdown, LaTeX, HTML, CSV), figures, paired comparisons.

``load`` reads runs into one DataFrame shape, ``tables`` summarises it per grid point, ``formats``
writes the table, ``plots`` the figures, ``compare`` pairs rows seed by seed; ``render`` ties them
together behind ``python reports/render.py``.
"""

from .compare import Comparison, compare_rows
from .load import load_results, prepare
from .render import render_sweep
from .spec import ReportSpec, load_spec
from .tables import build_table, summarize

__all__ = ["Comparison", "ReportSpec", "build_table", "compare_rows", "load_results", "load_spec", "prepare",
           "render_sweep", "summarize"]
