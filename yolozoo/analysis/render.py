"""Render a sweep's report: ``python reports/render.py [key=value ...]`` (the keys below). Writes
``out/<sweep>.{md,tex,html,csv}``, ``_compare.md`` and ``out/plots/<sweep>_*.{png,svg}`` (the ``.html``: the
self-contained study report); with ``readme=`` also the README's generated-tables section.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pandas as pd

from ..cli_help import KeyHelp, print_help, wants_help
from ..sweep.spec import list_sweeps
from ..sweep_files import where
from . import formats
from .load import load_results
from .plots import CAPTIONS, render_plots
from .spec import ReportSpec, load_spec
from .tables import PAIRED, build_table, compare_rows, summarize

KEY_HELP = {
    "sweep": (None, "sweep name(s) to render, repeatable or comma-separated (default: every sweeps/*.yaml)"),
    "source": ("records", "records (results/published, committed) | store (Optuna DB) | wandb (W&B public API; "
                          "offline runs after `wandb sync`)"),
    "storage": (None, "records folder, store URL or W&B entity/project, per source"),
    "study": (None, "one study of a sweep run with extra overrides (store source)"),
    "out": ("reports", "output folder"),
    "compare": (None, "SWEEP:ROW_A,ROW_B: an extra paired comparison, repeatable"),
    "readme": (None, "rewrite this README's generated-tables section too"),
    "results_dir": ("results", "where results/published and the default store live"),
    "sweeps_dir": (None, "where the sweep files live (default: $YOLOZOO_SWEEPS, then the shipped sweeps/)"),
}
README_BEGIN, README_END = "<!-- begin generated tables -->", "<!-- end generated tables -->"


def parse_args(argv: list[str]) -> dict:
    """``key=value`` arguments -> options; ``sweep`` and ``compare`` repeat (or take commas for sweep)."""
    opts: dict = {key: default for key, (default, _) in KEY_HELP.items()} | {"sweep": [], "compare": []}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep or key not in KEY_HELP:
            got = f"unknown key {key!r}" if sep else f"expected key=value, got {arg!r}"
            raise ValueError(f"{got}; valid keys: {', '.join(KEY_HELP)}")
        if key == "sweep":
            opts["sweep"] += [s for s in value.split(",") if s]
        elif key == "compare":
            m = re.fullmatch(r"([^:]+):([^,]+),([^,]+)", value)
            if not m:
                raise ValueError(f"compare expects SWEEP:ROW_A,ROW_B, got {value!r}")
            opts["compare"].append(m.groups())
        else:
            opts[key] = value
    return opts


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8", newline="\n")
    return path


def render_sweep(df: pd.DataFrame, spec: ReportSpec, out_dir: str | Path,
                 pairs: list[tuple[str, str]] = ()) -> list[Path]:
    """Write every output of one sweep from its prepared results ``df``; return the paths written.
    ``pairs``: extra (row A, row B) comparisons on top of every present row against its baseline row."""
    out = Path(out_dir)
    summary = summarize(df, spec)
    table = build_table(df, spec, summary)
    paths = [_write(out / f"{spec.name}.md", formats.to_markdown(table)),
             _write(out / f"{spec.name}.tex", formats.to_latex(table)),
             _write(out / f"{spec.name}.csv", summary.to_csv(index=False, lineterminator="\n", float_format="%.8g"))]
    bases = [("/".join(p), "/".join(b)) for p in dict.fromkeys(df["point"]) if (b := spec.baseline_of(p)) and b != p]
    todo = dict.fromkeys([ab for ab in bases if set(ab) <= set(df["row"])] + list(pairs))
    comparisons = [compare_rows(df, a, b, col.key) for a, b in todo for col in PAIRED]
    if comparisons:
        paths.append(_write(out / f"{spec.name}_compare.md",
                            formats.comparisons_markdown(comparisons, f"{spec.name}: paired comparisons")))
    plots = render_plots(df, spec, out / "plots", comparisons)
    figures = [(CAPTIONS[p.stem.removeprefix(f"{spec.name}_")], p) for p in plots if p.suffix == ".svg"]
    paths.append(_write(out / f"{spec.name}.html", formats.study_html(table, comparisons, figures)))
    paths += plots
    # outputs of an earlier render that these results no longer produce (a plot of runs now stale) go
    for old in [out / f"{spec.name}_compare.md", *(out / "plots").glob(f"{spec.name}_*.*")]:
        if old.is_file() and old not in paths:
            old.unlink()
    return paths


def update_readme(path: Path, sections: list[str], command: str) -> None:
    """Replace the README's generated-tables section (between its markers) with ``sections``."""
    text = path.read_text(encoding="utf-8")
    if README_BEGIN not in text or README_END not in text:
        raise ValueError(f"{path} has no {README_BEGIN} ... {README_END} section to regenerate")
    body = "\n".join([README_BEGIN, f"<!-- written by `{command}`; edits here are overwritten -->", "", *sections,
                      README_END])
    head, rest = text.split(README_BEGIN, 1)
    _write(path, head + body + rest.split(README_END, 1)[1])


def readme_figures(name: str, paths: list[Path], readme_dir: Path) -> str:
    """The sweep's figures (PNG) as Markdown images, linked relative to the README's folder."""
    lines = []
    for path in (p.resolve() for p in paths if p.suffix == ".png"):
        link = path.relative_to(readme_dir) if path.is_relative_to(readme_dir) else path
        lines.append(f"![{name}: {CAPTIONS[path.stem.removeprefix(f'{name}_')]}]({link.as_posix()})")
    return "\n" + "\n\n".join(lines) + "\n" if lines else ""


def main(argv: list[str]) -> int:
    if wants_help(argv):
        return print_help(__doc__, [KeyHelp(k, d, m) for k, (d, m) in KEY_HELP.items()], with_config=False)
    try:
        opts = parse_args(argv)
        sweeps_dir = Path(opts["sweeps_dir"]) if opts["sweeps_dir"] else None
        names = opts["sweep"] or list_sweeps(sweeps_dir)
        if not names:
            raise ValueError(f"no sweep files in {where(folder=sweeps_dir)} and no sweep= given")
        specs = {name: load_spec(name, sweeps_dir) for name in names}
        unknown = sorted({s for s, _, _ in opts["compare"]} - set(specs))
        if unknown:
            raise ValueError(f"compare names sweep(s) {unknown} not being rendered; rendering: {', '.join(specs)}")
        sections = []
        for name, spec in specs.items():
            df = load_results(spec, opts["source"], opts["storage"], opts["results_dir"], opts["study"])
            paths = render_sweep(df, spec, opts["out"], [(a, b) for s, a, b in opts["compare"] if s == name])
            counts = df["status"].value_counts().to_dict()
            print(f"{name}: {len(df)} runs {counts or '(none recorded)'} -> {', '.join(str(p) for p in paths)}")
            if opts["readme"]:
                sections.append(formats.to_markdown(build_table(df, spec), heading="###")
                                + readme_figures(spec.name, paths, Path(opts["readme"]).resolve().parent))
        if opts["readme"]:
            update_readme(Path(opts["readme"]), sections, "python reports/render.py " + " ".join(argv))
    except (OSError, ValueError) as e:  # no store, W&B unreadable, a bad argument or sweep file (SweepError)
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0
