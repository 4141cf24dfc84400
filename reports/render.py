"""Regenerate the ablation tables and figures from recorded results: ``python reports/render.py [key=value ...]``.

See ``yolozoo/reports/render.py`` for the keys; e.g. ``python reports/render.py sweep=assigners``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from yolozoo.reports.render import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
