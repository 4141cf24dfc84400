"""One self-contained HTML page per study: table, provenance, findings, comparisons, figures.

Everything is inline (CSS, the figures as SVG): the page makes no request, so it can be mailed,
archived or opened offline, and it reflows on a phone (the table scrolls sideways in its own
box, figures scale to the screen). The output depends only on its inputs.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

from .tables import Table

CSS = """
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
"""
_CSS = re.sub(r"\s*\n\s*", "", CSS)


def _svg_inline(path: Path) -> str:
    """An SVG file's ``<svg>`` element (no XML prolog or doctype), to embed in the page."""
    text = path.read_text(encoding="utf-8")
    return text[text.index("<svg"):]


def _table_html(headers: list[str], rows: list[list[tuple[str, bool]]], keys: int, row_attr: str = "") -> list[str]:
    def attr(i: int) -> str:
        return " class=key" if i < keys else ""

    head = "".join(f"<th{attr(i)}>{html.escape(h)}</th>" for i, h in enumerate(headers))
    out = ['<div class="scroll"><table>', f"<thead><tr>{head}</tr></thead>", "<tbody>"]
    for row in rows:
        cells = "".join(f"<td{attr(i)}>" + (f"<b>{html.escape(t)}</b>" if b else html.escape(t)) + "</td>"
                        for i, (t, b) in enumerate(row))
        out.append(f"<tr{row_attr}>{cells}</tr>")
    return out + ["</tbody></table></div>"]


def study_html(table: Table, comparisons: list, figures: list[tuple[str, Path]]) -> str:
    """The page: ``table`` (with provenance, notes, findings, the published reference block), the
    paired ``comparisons`` (:class:`~.compare.Comparison`) and ``figures`` (caption, SVG file)."""
    title = html.escape(table.title)
    out = ["<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">', f"<title>{title}</title>",
           f"<style>{_CSS}</style>", "</head>", "<body>", f"<h1>{title}</h1>",
           '<ul class="prov">' + "".join(f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>"
                                         for k, v in table.provenance) + "</ul>"]
    out += _table_html(table.headers, [[(c.text, c.bold) for c in r] for r in table.rows], table.keys,
                       ' class="result"')
    out += ["<ul>"] + [f"<li>{html.escape(n)}</li>" for n in table.notes] + ["</ul>"]
    if table.findings:
        out += ["<h2>The known study's directions, on these results</h2>", "<ul>"]
        out += [f"<li>{html.escape(f)}</li>" for f in table.findings] + ["</ul>"]
    if comparisons:
        out += ["<h2>Paired comparisons</h2>",
                "<p>Mean of per-seed differences (A − B) over shared completed seeds and its paired t 95% "
                "interval; a direction is read only from 3 or more shared seeds.</p>"]
        rows = [[(c.row_a, False), (c.row_b, False), (c.metric, False), (str(c.n), False),
                 ("–" if c.n == 0 else f"{c.mean:+.4f}", False),
                 ("–" if c.interval is None else f"[{c.interval[0]:+.4f}, {c.interval[1]:+.4f}]", False),
                 (c.verdict, False)] for c in comparisons]
        out += _table_html(["A", "B", "metric", "n", "mean A − B", "95% CI", "reading"], rows, 3)
    for caption, path in figures:
        out += ["<figure>", _svg_inline(path), f"<figcaption>{html.escape(caption)}</figcaption>", "</figure>"]
    if table.reference:
        caption, headers, rows = table.reference
        out += [f"<h2>{html.escape(caption)}</h2>"]
        out += _table_html(list(headers), [[(t, False) for t in r] for r in rows], 1)
    return "\n".join(out + ["</body>", "</html>"]) + "\n"


__all__ = ["study_html"]
