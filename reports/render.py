"""Regenerate the ablation tables and figures from recorded results: ``python reports/render.py [key=value ...]``.

``--help`` lists the keys; e.g. ``python reports/render.py sweep=assigners``.
"""

from __future__ import annotations

import sys

from yolozoo.analysis.render import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
