"""A :class:`~yolozoo.analysis.tables.Table` as Markdown, LaTeX (booktabs) and a self-contained HTML page (CSS and
SVG figures inline, no request; on a phone the table scrolls sideways). Plain writers: same results, same bytes."""

from __future__ import annotations

import html
import re
from operator import methodcaller
from pathlib import Path

from ..stats import LEVEL, METHOD, MIN_SEEDS
from .tables import PAIRED, Cell, Comparison, Table

_tex = methodcaller("translate", str.maketrans({  # text as LaTeX
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
    "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "±": r"$\pm$", "Δ": r"$\Delta$", "–": "--"}))
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


def _styled(rows, escape, bold: str) -> list[list[str]]:
    """Rows of :class:`Cell` or plain text as escaped text, a bold cell through the format string ``bold``."""
    cells = [[Cell(c) if isinstance(c, str) else c for c in row] for row in rows]
    return [[bold.format(escape(c.text)) if c.bold else escape(c.text) for c in row] for row in cells]


def _md_table(headers, rows) -> list[str]:
    return (["| " + " | ".join(map(md_text, headers)) + " |", "|" + "|".join("---" for _ in headers) + "|"]
            + ["| " + " | ".join(row) + " |" for row in _styled(rows, md_text, "**{}**")])


def to_markdown(table: Table, heading: str = "##") -> str:
    """GitHub Markdown: heading, provenance line, table (bold = ``**``), notes, findings, published reference."""
    out = [f"{heading} {md_text(table.title)}", "",
           "Provenance: " + "; ".join(f"{k} {md_text(v)}" for k, v in table.provenance) + ".", ""]
    out += _md_table(table.headers, table.rows) + [""] + [f"- {md_text(n)}" for n in table.notes]
    if table.findings:
        out += ["", "*The known study's directions, on these results:*", ""]
        out += [f"- {md_text(f)}" for f in table.findings]
    if table.reference:
        caption, headers, rows = table.reference
        out += ["", f"*{md_text(caption)}:*", ""] + _md_table(headers, rows)
    return "\n".join(out) + "\n"


def _tabular(caption: str, headers, rows, keys: int = 1) -> list[str]:
    """A booktabs ``table`` float."""
    return ([r"\begin{table}[t]", r"\centering", r"\small", rf"\caption{{{caption}}}",
             rf"\begin{{tabular}}{{{'l' * keys + 'r' * (len(headers) - keys)}}}", r"\toprule",
             " & ".join(map(_tex, headers)) + r" \\", r"\midrule"]
            + [" & ".join(row) + r" \\" for row in _styled(rows, _tex, r"\textbf{{{}}}")]
            + [r"\bottomrule", r"\end{tabular}", r"\end{table}"])


def to_latex(table: Table) -> str:
    """Booktabs ``table`` floats (needs ``\\usepackage{booktabs}``); provenance and notes in the caption."""
    caption = _tex(table.title) + ". " + _tex("; ".join(f"{k} {v}" for k, v in table.provenance)) + ". " + \
        " ".join(_tex(n if n.endswith(".") else n + ".") for n in table.notes)
    out = _tabular(caption.strip(), table.headers, table.rows, keys=table.keys)
    if table.reference:
        ref_caption, headers, rows = table.reference
        out += [""] + _tabular(f"{_tex(ref_caption)}.", headers, rows)
    return "\n".join(out) + "\n"


def _mean_ci(c: Comparison) -> tuple[str, str]:
    s = c.stats
    return "–" if s.n == 0 else f"{s.mean:+.4f}", "–" if s.low is None else f"[{s.low:+.4f}, {s.high:+.4f}]"


def comparisons_markdown(comparisons: list[Comparison], title: str) -> str:
    """The comparisons as a Markdown table, with the method stated."""
    headers = {col.key: col.header for col in PAIRED}
    out = [f"## {md_text(title)}", "", "Paired over shared completed seeds: mean of per-seed differences (A − B) "
           f"and its {METHOD} {LEVEL:.0%} interval (mean ± t(n−1) · sd / √n). A direction is read only from "
           f"{MIN_SEEDS} or more shared seeds with the interval excluding 0. Fewer than 2 shared seeds: no interval.",
           ""]
    rows = [(c.row_a, c.row_b, headers.get(c.metric, c.metric), str(c.stats.n), ", ".join(map(str, c.seeds)) or "–",
             *_mean_ci(c), c.verdict) for c in comparisons]
    out += _md_table(["A", "B", "metric", "n", "seeds", "mean A − B", f"{LEVEL:.0%} CI ({METHOD})", "reading"], rows)
    return "\n".join(out) + "\n"


def _html_table(headers: list[str], rows, keys: int, row_attr: str = "") -> list[str]:
    attr = [" class=key" if i < keys else "" for i in range(len(headers))]
    head = "".join(f"<th{a}>{html.escape(h)}</th>" for a, h in zip(attr, headers))
    body = [f"<tr{row_attr}>" + "".join(f"<td{a}>{t}</td>" for a, t in zip(attr, row)) + "</tr>"
            for row in _styled(rows, html.escape, "<b>{}</b>")]
    return ['<div class="scroll"><table>', f"<thead><tr>{head}</tr></thead>", "<tbody>", *body,
            "</tbody></table></div>"]


def study_html(table: Table, comparisons: list[Comparison], figures: list[tuple[str, Path]]) -> str:
    """The study's page: ``table`` (provenance, notes, findings, published reference), the paired
    ``comparisons`` and ``figures`` (caption, SVG file) inline."""
    title = html.escape(table.title)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{title}</title>",
           f"<style>{CSS}</style>", "</head>", "<body>", f"<h1>{title}</h1>",
           '<ul class="prov">' + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                                         for k, v in table.provenance) + "</ul>"]
    out += _html_table(table.headers, table.rows, table.keys, ' class="result"')
    out += ["<ul>"] + [f"<li>{html.escape(n)}</li>" for n in table.notes] + ["</ul>"]
    if table.findings:
        out += (["<h2>The known study's directions, on these results</h2>", "<ul>"]
                + [f"<li>{html.escape(f)}</li>" for f in table.findings] + ["</ul>"])
    if comparisons:
        out += ["<h2>Paired comparisons</h2>",
                f"<p>Mean of per-seed differences (A − B) over shared completed seeds and its {METHOD} {LEVEL:.0%} "
                f"interval; a direction is read only from {MIN_SEEDS} or more shared seeds.</p>"]
        rows = [(c.row_a, c.row_b, c.metric, str(c.stats.n), *_mean_ci(c), c.verdict) for c in comparisons]
        out += _html_table(["A", "B", "metric", "n", "mean A − B", f"{LEVEL:.0%} CI", "reading"], rows, 3)
    for caption, path in figures:
        svg = path.read_text(encoding="utf-8")
        out += ["<figure>", svg[svg.index("<svg"):], f"<figcaption>{html.escape(caption)}</figcaption>", "</figure>"]
    if table.reference:
        caption, headers, rows = table.reference
        out += [f"<h2>{html.escape(caption)}</h2>"] + _html_table(list(headers), rows, 1)
    return "\n".join(out + ["</body>", "</html>"]) + "\n"
