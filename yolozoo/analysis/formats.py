"""A :class:`~yolozoo.analysis.tables.Table` as Markdown, LaTeX (booktabs), HTML; its summary as CSV.

Plain writers, no templates: the output depends only on the table, so the same results give
byte-identical files.
"""

from __future__ import annotations

import html

import pandas as pd

from ..stats import LEVEL, METHOD, MIN_SEEDS
from .columns import MAP, MAP50
from .compare import Comparison
from .tables import Table

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "–": "--"}


def md_text(text: str) -> str:
    """Text for a Markdown cell or line: ``&`` and ``<`` escaped, so an axis label or description stays
    data and never becomes HTML (a lone ``>`` cannot start markup and is kept readable)."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def to_markdown(table: Table, heading: str = "##") -> str:
    """GitHub Markdown: heading, provenance line, table (bold = ``**``), notes, published reference."""
    out = [f"{heading} {md_text(table.title)}", "",
           "Provenance: " + "; ".join(f"{k} {md_text(v)}" for k, v in table.provenance) + ".", ""]
    out.append("| " + " | ".join(md_text(h) for h in table.headers) + " |")
    out.append("|" + "|".join("---" for _ in table.headers) + "|")
    for row in table.rows:
        out.append("| " + " | ".join(f"**{md_text(c.text)}**" if c.bold else md_text(c.text) for c in row) + " |")
    out += [""] + [f"- {md_text(n)}" for n in table.notes]
    if table.findings:
        out += ["", "*The known study's directions, on these results:*", ""]
        out += [f"- {md_text(f)}" for f in table.findings]
    if table.reference:
        caption, headers, rows = table.reference
        out += ["", f"*{md_text(caption)}:*", "", "| " + " | ".join(headers) + " |",
                "|" + "|".join("---" for _ in headers) + "|"]
        out += ["| " + " | ".join(md_text(c) for c in r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _tex(text: str) -> str:
    text = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    for symbol, tex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return text


def _tabular(headers, rows, bold=None, keys: int = 1) -> list[str]:
    spec = "l" * keys + "r" * (len(headers) - keys)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(_tex(h) for h in headers) + r" \\", r"\midrule"]
    for r, row in enumerate(rows):
        cells = [rf"\textbf{{{_tex(t)}}}" if bold and bold[r][c] else _tex(t) for c, t in enumerate(row)]
        lines.append(" & ".join(cells) + r" \\")
    return lines + [r"\bottomrule", r"\end{tabular}"]


def to_latex(table: Table) -> str:
    """A booktabs ``table`` float (needs ``\\usepackage{booktabs}``); provenance and notes in the caption."""
    caption = _tex(table.title) + ". " + _tex("; ".join(f"{k} {v}" for k, v in table.provenance)) + ". " + \
        " ".join(_tex(n if n.endswith(".") else n + ".") for n in table.notes)
    out = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption.strip()}}}"]
    out += _tabular(table.headers, [[c.text for c in r] for r in table.rows], [[c.bold for c in r] for r in table.rows],
                    keys=table.keys)
    out.append(r"\end{table}")
    if table.reference:
        ref_caption, headers, rows = table.reference
        out += ["", r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{_tex(ref_caption)}.}}"]
        out += _tabular(list(headers), [list(r) for r in rows]) + [r"\end{table}"]
    return "\n".join(out) + "\n"


def _html_table(headers, rows, caption: str) -> list[str]:
    out = ["<table>", f"<caption>{html.escape(caption)}</caption>",
           "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead>", "<tbody>"]
    for row in rows:
        cells = "".join(f"<td><b>{html.escape(t)}</b></td>" if b else f"<td>{html.escape(t)}</td>" for t, b in row)
        out.append(f"<tr>{cells}</tr>")
    return out + ["</tbody>", "</table>"]


def to_html(table: Table) -> str:
    """A standalone HTML page: the table (bold = ``<b>``), provenance list, notes, published reference."""
    out = ["<!DOCTYPE html>", '<html lang="en">', '<head><meta charset="utf-8">',
           f"<title>{html.escape(table.title)}</title>",
           "<style>table{border-collapse:collapse}th,td{padding:2px 8px;text-align:right}"
           "th:first-child,td:first-child{text-align:left}thead{border-bottom:1px solid}</style>",
           "</head>", "<body>", f"<h2>{html.escape(table.title)}</h2>"]
    out += _html_table(table.headers, [[(c.text, c.bold) for c in r] for r in table.rows], table.title)
    out += ["<ul>"] + [f"<li>{html.escape(k)}: {html.escape(v)}</li>" for k, v in table.provenance] + ["</ul>"]
    out += [f"<p>{html.escape(n)}</p>" for n in table.notes]
    if table.findings:
        out += ["<p><i>The known study's directions, on these results:</i></p>", "<ul>"]
        out += [f"<li>{html.escape(f)}</li>" for f in table.findings] + ["</ul>"]
    if table.reference:
        caption, headers, rows = table.reference
        out += _html_table(headers, [[(t, False) for t in r] for r in rows], caption)
    return "\n".join(out + ["</body>", "</html>"]) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    """The per-point summary (raw numbers: means, stds, n, run counts, deltas) as CSV."""
    return summary.to_csv(index=False, lineterminator="\n", float_format="%.8g")


def comparisons_markdown(comparisons: list[Comparison], title: str) -> str:
    """The comparisons as a Markdown table, with the method stated."""
    headers = {MAP50.key: MAP50.header, MAP.key: MAP.header}
    out = [f"## {md_text(title)}", "", "Paired over shared completed seeds: mean of per-seed differences (A − B) "
           "and its "
           f"{METHOD} {LEVEL:.0%} interval (mean ± t(n−1) · sd / √n). A direction is read only from "
           f"{MIN_SEEDS} or more shared seeds with the interval excluding 0. Fewer than 2 shared seeds: no interval.",
           "", f"| A | B | metric | n | seeds | mean A − B | {LEVEL:.0%} CI ({METHOD}) | reading |",
           "|---|---|---|---|---|---|---|---|"]
    for c in comparisons:
        ci = "–" if c.interval is None else f"[{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]"
        mean = "–" if c.n == 0 else f"{c.mean:+.4f}"
        out.append("| " + " | ".join(md_text(t) for t in (c.row_a, c.row_b, headers.get(c.metric, c.metric), str(c.n),
                                                       ", ".join(map(str, c.seeds)) or "–", mean, ci, c.verdict))
                   + " |")
    return "\n".join(out) + "\n"


__all__ = ["comparisons_markdown", "to_csv", "to_html", "to_latex", "to_markdown"]
