"""The prerequisite graph as an SVG: one node per topic, layered by the guide's order.

A topic's layer is the length of the longest prerequisite chain below it (so every edge
points to a higher layer); within a layer topics sit in guide order. Each node is a link
to its topic page.
"""

from __future__ import annotations

from mlatlas.guide import TOPICS
from mlatlas.report.render import esc

NODE_W, NODE_H, GAP_X, GAP_Y = 175, 34, 40, 18


def layers() -> dict[str, int]:
    depth: dict[str, int] = {}
    for t in TOPICS:  # guide order is topological: prerequisites come first
        depth[t.slug] = 1 + max((depth[p] for p in t.topic_prerequisites), default=-1)
    return depth


def prerequisite_svg(href: str = "topics/{slug}.html", status: dict[str, str] | None = None) -> str:
    depth = layers()
    columns: dict[int, list] = {}
    for t in TOPICS:
        columns.setdefault(depth[t.slug], []).append(t)
    pos = {}
    for col, topics in columns.items():
        for row, t in enumerate(topics):
            pos[t.slug] = (20 + col * (NODE_W + GAP_X), 20 + row * (NODE_H + GAP_Y))
    width = 40 + len(columns) * (NODE_W + GAP_X)
    height = 40 + max(len(c) for c in columns.values()) * (NODE_H + GAP_Y)
    edges = []
    for t in TOPICS:
        x2, y2 = pos[t.slug]
        for p in t.topic_prerequisites:
            x1, y1 = pos[p]
            edges.append(
                f'<line x1="{x1 + NODE_W}" y1="{y1 + NODE_H / 2}" x2="{x2}" y2="{y2 + NODE_H / 2}" '
                'stroke="#8c959f" stroke-width="1.2" marker-end="url(#arrow)"/>'
            )
    colors = {"ok": "#dafbe1", "mixed": "#fff8c5", "run": "#ddf4ff", "none": "#ffffff"}
    nodes = []
    for t in TOPICS:
        x, y = pos[t.slug]
        fill = colors[(status or {}).get(t.slug, "none")]
        label = f"{t.number}. {t.slug}"
        nodes.append(
            f'<a href="{esc(href.format(slug=t.slug))}" class="node">'
            f"<title>{esc(t.title)}</title>"
            f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" '
            'stroke="#57606a"/>'
            f'<text x="{x + 8}" y="{y + 22}" font-size="13">{esc(label)}</text></a>'
        )
    return (
        f'<svg class="graph" viewBox="0 0 {width} {height}" role="img" '
        'aria-labelledby="graph-title" xmlns="http://www.w3.org/2000/svg">'
        '<title id="graph-title">Prerequisite graph of the 22 topics; arrows point from a '
        "prerequisite to the topic that needs it</title>"
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="#8c959f"/></marker>'
        "</defs>" + "".join(edges) + "".join(nodes) + "</svg>"
    )
