"""A :class:`~yolozoo.analysis.tables.Table` as Markdown, LaTeX (booktabs) and a self-contained HTML page.

Plain writers, no templates: the same results give byte-identical files. The HTML page has everything inline
(CSS, figures as SVG), makes no request, and reflows on a phone (the table scrolls sideways in its own box).
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pandas as pd

from ..stats import LEVEL, METHOD, MIN_SEEDS
from .compare import Comparison
from .tables import PAIRED, Table

_LATEX_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_LATEX_SYMBOLS = {"±": r"$\pm$", "Δ": r"$\Delta$", "–": "--"}
CSS = re.sub(r"\s*\n\s*", "", """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0 auto;max-width:1100px;padding:12px;
color:#222}
h1{font-size:1.35em}h2{font-size:1.1em;margin-top:1.6em}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;border:1px solid #ddd}
table{border-collapse:collapse;font-size:13px;white-space:nowrap}
th,td{padding:3px 8px;text-align:right;border-bottom:1px solid #eee}
th:first-child,td:first-child,td.key,th.key{text-align:left}
thead th{background:#f4f4f4;position:sticky;top:0}
figure{margin:1em 0}figure svg{max-width:100%;height:auto}figcaption{font-size:13px;color:#555}
.prov{font-size:13px;color:#444}li{margin:2px 0}
""")


def md_text(text: str) -> str:
    """Text for a Markdown cell or line with ``&``, ``<`` and ``|`` escaped: a label stays data, never HTML."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace("|", "\\|")


def _md_table(headers, rows) -> list[str]:
    """Rows of (text, bold) pairs as a GitHub Markdown table."""
    return (["| " + " | ".join(md_text(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            + ["| " + " | ".join(f"**{md_text(t)}**" if b else md_text(t) for t, b in r) + " |" for r in rows])


def _cells(rows) -> list[list[tuple[str, bool]]]:
    """Table rows (of :class:`Cell`) or reference rows (of text) as (text, bold) pairs."""
    return [[(c, False) if isinstance(c, str) else (c.text, c.bold) for c in r] for r in rows]


def to_markdown(table: Table, heading: str = "##") -> str:
    """GitHub Markdown: heading, provenance line, table (bold = ``**``), notes, findings, published reference."""
    out = [f"{heading} {md_text(table.title)}", "",
           "Provenance: " + "; ".join(f"{k} {md_text(v)}" for k, v in table.provenance) + ".", ""]
    out += _md_table(table.headers, _cells(table.rows)) + [""] + [f"- {md_text(n)}" for n in table.notes]
    if table.findings:
        out += ["", "*The known study's directions, on these results:*", ""]
        out += [f"- {md_text(f)}" for f in table.findings]
    if table.reference:
        caption, headers, rows = table.reference
        out += ["", f"*{md_text(caption)}:*", ""] + _md_table(headers, _cells(rows))
    return "\n".join(out) + "\n"


def _tex(text: str) -> str:
    text = "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)
    for symbol, tex in _LATEX_SYMBOLS.items():
        text = text.replace(symbol, tex)
    return text


def _tabular(caption: str, headers, rows, keys: int = 1) -> list[str]:
    """A booktabs ``table`` float of (text, bold) rows."""
    lines = [r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
             rf"\begin{{tabular}}{{{'l' * keys + 'r' * (len(headers) - keys)}}}", r"\toprule",
             " & ".join(_tex(h) for h in headers) + r" \\", r"\midrule"]
    lines += [" & ".join(rf"\textbf{{{_tex(t)}}}" if b else _tex(t) for t, b in row) + r" \\" for row in rows]
    return lines + [r"\bottomrule", r"\end{tabular}", r"\end{table}"]


def to_latex(table: Table) -> str:
    """Booktabs ``table`` floats (needs ``\\usepackage{booktabs}``); provenance and notes in the caption."""
    caption = _tex(table.title) + ". " + _tex("; ".join(f"{k} {v}" for k, v in table.provenance)) + ". " + \
        " ".join(_tex(n if n.endswith(".") else n + ".") for n in table.notes)
    out = _tabular(caption.strip(), table.headers, _cells(table.rows), keys=table.keys)
    if table.reference:
        ref_caption, headers, rows = table.reference
        out += [""] + _tabular(f"{_tex(ref_caption)}.", headers, _cells(rows))
    return "\n".join(out) + "\n"


def to_csv(summary: pd.DataFrame) -> str:
    """The per-point summary (raw numbers: means, stds, n, run counts, deltas) as CSV."""
    return summary.to_csv(index=False, lineterminator="\n", float_format="%.8g")


def _mean_ci(c: Comparison) -> tuple[str, str]:
    return ("–" if c.n == 0 else f"{c.mean:+.4f}",
            "–" if c.interval is None else f"[{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]")


def comparisons_markdown(comparisons: list[Comparison], title: str) -> str:
    """The comparisons as a Markdown table, with the method stated."""
    headers = {col.key: col.header for col in PAIRED}
    out = [f"## {md_text(title)}", "", "Paired over shared completed seeds: mean of per-seed differences (A − B) "
           f"and its {METHOD} {LEVEL:.0%} interval (mean ± t(n−1) · sd / √n). A direction is read only from "
           f"{MIN_SEEDS} or more shared seeds with the interval excluding 0. Fewer than 2 shared seeds: no interval.",
           ""]
    rows = [(c.row_a, c.row_b, headers.get(c.metric, c.metric), str(c.n), ", ".join(map(str, c.seeds)) or "–",
             *_mean_ci(c), c.verdict) for c in comparisons]
    out += _md_table(["A", "B", "metric", "n", "seeds", "mean A − B", f"{LEVEL:.0%} CI ({METHOD})", "reading"],
                     _cells(rows))
    return "\n".join(out) + "\n"


def _html_table(headers: list[str], rows: list[list[tuple[str, bool]]], keys: int, row_attr: str = "") -> list[str]:
    attr = [" class=key" if i < keys else "" for i in range(len(headers))]
    head = "".join(f"<th{attr[i]}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    out = ['<div class="scroll"><table>', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in rows:
        cells = "".join(f"<td{attr[i]}>" + (f"<b>{html.escape(t)}</b>" if b else html.escape(t)) + "</td>"
                        for i, (t, b) in enumerate(row))
        out.append(f"<tr{row_attr}>{cells}</tr>")
    return out + ["</tbody></table></div>"]


def study_html(table: Table, comparisons: list[Comparison], figures: list[tuple[str, Path]]) -> str:
    """The study's page: ``table`` (provenance, notes, findings, published reference), the paired
    ``comparisons`` and ``figures`` (caption, SVG file) inline."""
    title = html.escape(table.title)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{title}</title>",
           f"<style>{CSS}</style>", "</head>", "<body>", f"<h1>{title}</h1>",
           '<ul class="prov">' + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                                         for k, v in table.provenance) + "</ul>"]
    out += _html_table(table.headers, _cells(table.rows), table.keys, ' class="result"')
    out += ["<ul>"] + [f"<li>{html.escape(n)}</li>" for n in table.notes] + ["</ul>"]
    if table.findings:
        out += (["<h2>The known study's directions, on these results</h2>", "<ul>"]
                + [f"<li>{html.escape(f)}</li>" for f in table.findings] + ["</ul>"])
    if comparisons:
        out += ["<h2>Paired comparisons</h2>",
                "<p>Mean of per-seed differences (A − B) over shared completed seeds and its paired t 95% "
                "interval; a direction is read only from 3 or more shared seeds.</p>"]
        rows = _cells([(c.row_a, c.row_b, c.metric, str(c.n), *_mean_ci(c), c.verdict) for c in comparisons])
        out += _html_table(["A", "B", "metric", "n", "mean A − B", "95% CI", "reading"], rows, 3)
    for caption, path in figures:
        svg = path.read_text(encoding="utf-8")
        out += ["<figure>", svg[svg.index("<svg"):], f"<figcaption>{html.escape(caption)}</figcaption>", "</figure>"]
    if table.reference:
        caption, headers, rows = table.reference
        out += [f"<h2>{html.escape(caption)}</h2>"] + _html_table(list(headers), _cells(rows), 1)
    return "\n".join(out + ["</body>", "</html>"]) + "\n"
