"""Ablation reports from recorded runs: :mod:`.load` -> :mod:`.tables` -> :mod:`.formats` (Markdown, LaTeX, HTML,
CSV), :mod:`.plots`; :mod:`.render` is ``python reports/render.py``."""

from .load import load_results, prepare
from .render import render_sweep
from .tables import build_table, compare_rows

__all__ = ["build_table", "compare_rows", "load_results", "prepare", "render_sweep"]
