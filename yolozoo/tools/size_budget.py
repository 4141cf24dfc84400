"""Fail when the experiment engine outgrows its line budget: ``python -m yolozoo.tools.size_budget``.

The engine (``yolozoo/sweep``, ``yolozoo/search``, ``yolozoo/analysis``) once held 4.1k of the library's 10.3k
lines as twin stacks; issue 14 capped it at 3,000 physical lines (``wc -l``: blank lines, comments and docstrings
count). Prints each package's lines and the total; exits 1 over the budget. Stdlib only, so ``nox -s lint`` runs it
without the venv.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

PACKAGES = ("sweep", "search", "analysis")
BUDGET = 3000


def count_lines(root: Path, packages: tuple[str, ...] = PACKAGES) -> dict[str, int]:
    """Physical lines of the ``.py`` files of each package under ``root`` (the yolozoo folder)."""
    return {name: sum(len(p.read_text(encoding="utf-8").splitlines()) for p in sorted((root / name).glob("*.py")))
            for name in packages}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=BUDGET, help=f"line budget (default {BUDGET})")
    args = parser.parse_args(argv)
    counts = count_lines(Path(__file__).resolve().parents[1])
    total = sum(counts.values())
    print(", ".join(f"yolozoo/{k}: {v}" for k, v in counts.items()) + f"; total {total} of {args.budget} lines")
    if total > args.budget:
        print(f"over budget by {total - args.budget} lines: fold a duplicate before adding more", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
