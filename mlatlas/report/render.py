"""HTML building blocks for the static site: the page shell, escaping, Markdown with LaTeX.

Every page is self-contained: the stylesheet is inline, there are no fonts, scripts or images
from elsewhere, and the optional sorting script is inline too (the tables read fine without
it). Math in docstrings ($...$ and $$...$$) becomes MathML, which browsers render natively.
"""

from __future__ import annotations

import html
import re

import markdown
from latex2mathml.converter import convert as latex_to_mathml

CSS = """
:root { --fg: #1b1f24; --muted: #59636e; --line: #d0d7de; --ok: #1a7f37; --bad: #cf222e;
        --none: #8c959f; --bg2: #f6f8fa; --link: #0969da; }
* { box-sizing: border-box; }
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg);
       margin: 0 auto; max-width: 72rem; padding: 1rem; line-height: 1.5; }
a { color: var(--link); }
nav { display: flex; flex-wrap: wrap; gap: 1rem; border-bottom: 1px solid var(--line);
      padding-bottom: .5rem; margin-bottom: 1rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; font-size: .9rem; }
th, td { border: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
         vertical-align: top; }
th { background: var(--bg2); }
.table-wrap { overflow-x: auto; }
.ok { color: var(--ok); font-weight: 600; }
.bad { color: var(--bad); font-weight: 600; }
.none { color: var(--none); }
.unsure { color: #9a6700; font-weight: 600; }
.sections { display: grid; grid-template-columns: repeat(auto-fit, minmax(20rem, 1fr));
            gap: 1rem; }
.card { border: 1px solid var(--line); border-radius: .4rem; padding: .6rem .8rem; }
.card h2 { font-size: 1.05rem; margin: 0 0 .4rem; }
.card ul { margin: 0; padding-left: 1.1rem; }
figure { margin: 1rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption, .muted { color: var(--muted); font-size: .9rem; }
pre { background: var(--bg2); padding: .6rem; overflow-x: auto; font-size: .85rem; }
svg.graph { width: 100%; height: auto; }
svg.graph a text { fill: var(--fg); }
@media (max-width: 40rem) { body { padding: .5rem; } th, td { padding: .2rem .3rem; } }
"""

SORT_JS = """
document.querySelectorAll("table.sortable th").forEach(function (th, i) {
  th.style.cursor = "pointer";
  th.title = "sort";
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var dir = th.dataset.dir === "asc" ? -1 : 1;
    th.dataset.dir = dir === 1 ? "asc" : "desc";
    rows.sort(function (a, b) {
      var x = a.cells[i].dataset.v || a.cells[i].textContent;
      var y = b.cells[i].dataset.v || b.cells[i].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      if (!isNaN(nx) && !isNaN(ny)) return dir * (nx - ny);
      return dir * x.localeCompare(y);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def esc(x: object) -> str:
    return html.escape(str(x), quote=True)


def fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if v is None:
        return "-"
    if isinstance(v, (list, tuple)):
        return ", ".join(fmt(x) for x in v)
    return str(v)


def page(title: str, body: str, root: str, sortable: bool = False) -> str:
    """A whole HTML page; `root` is the relative path back to the site root ('' or '../')."""
    nav = " ".join(
        f'<a href="{root}{href}">{esc(label)}</a>'
        for href, label in (
            ("index.html", "Map"),
            ("claims.html", "All claims"),
            ("landscape.html", "Landscape"),
            ("tracks/index.html", "Tracks"),
        )
    )
    script = f"<script>{SORT_JS}</script>" if sortable else ""
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)} · mlatlas</title><style>{CSS}</style></head>"
        f'<body><nav aria-label="site">{nav}</nav><main>{body}</main>{script}</body></html>\n'
    )


_MATH = re.compile(r"\$\$(.+?)\$\$|\$(.+?)\$", re.S)


def markdown_with_math(text: str) -> str:
    """Markdown to HTML, with $...$ and $$...$$ converted to MathML first (kept out of
    Markdown's way behind placeholders)."""
    found: list[str] = []

    def stash(m: re.Match) -> str:
        display = m.group(1) is not None
        tex = m.group(1) if display else m.group(2)
        found.append(latex_to_mathml(tex.strip(), display="block" if display else "inline"))
        return f"MATHPLACEHOLDER{len(found) - 1}X"

    body = markdown.markdown(_MATH.sub(stash, text), extensions=["tables"])
    for i, mathml in enumerate(found):
        body = body.replace(f"MATHPLACEHOLDER{i}X", mathml)
    return body


def table(
    columns: list[str], rows: list[list[str]], sortable: bool = False, caption: str = ""
) -> str:
    """Cells are given as HTML already (escape them before)."""
    cls = ' class="sortable"' if sortable else ""
    cap = f'<caption class="muted">{esc(caption)}</caption>' if caption else ""
    head = "".join(f'<th scope="col">{esc(c)}</th>' for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f'<div class="table-wrap"><table{cls}>{cap}<thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


VERDICT_CLASS = {
    "supported": "ok",
    "pass": "ok",
    "refuted": "bad",
    "fail": "bad",
    "inconclusive": "unsure",
}


def verdict(v: str | None) -> str:
    """A verdict (supported / refuted / inconclusive, or a check's pass / fail) as a badge."""
    if v is None:
        return '<span class="none">not yet run</span>'
    return f'<span class="{VERDICT_CLASS.get(v, "none")}">{esc(v)}</span>'
