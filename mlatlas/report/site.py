"""`mlatlas report`: the guide and the latest run of every lab as a static site.

    site/index.html              the map: sections, topics with their status, the graph
    site/claims.html             every claim in one sortable table
    site/landscape.html          the four combinations and the trends
    site/tracks/<track>.html     each learning track's ordered path
    site/topics/<topic>.html     explanation, insights, labs with claims, figures, tables
    site/source/<file>.html      the implementation's source files
    site/figures/...             PNG figures copied from the runs

Works from the file system (relative links only) and from `mlatlas serve`.
"""

from __future__ import annotations

import importlib
import inspect
import shutil
from pathlib import Path

from mlatlas.core.claims import summarize, summary_line
from mlatlas.core.runner import discover, has_code, latest_runs
from mlatlas.guide import (
    LANDSCAPE,
    SECTIONS,
    TOPICS,
    TRACKS,
    TRENDS,
    Topic,
    get_topic,
    path,
    topics_in,
)
from mlatlas.report.graph import prerequisite_svg
from mlatlas.report.render import esc, fmt, markdown_with_math, page, table, verdict


def _status(topic: Topic, runs: dict) -> tuple[str, str]:
    """(short HTML status, graph colour key) from the topic's latest runs."""
    labs = discover(topic)
    if not labs:
        return '<span class="none">planned</span>', "none"
    ran_runs = [runs[(topic.slug, s.name)] for s in labs if (topic.slug, s.name) in runs]
    if not ran_runs:
        return f'<span class="none">{len(labs)} labs, not yet run</span>', "none"
    k = summarize(c for r in ran_runs for c in r.claims)
    clean = k["refuted"] == 0 and k["checks_passed"] == k["checks"]
    key = "ok" if clean and k["inconclusive"] == 0 else "mixed"
    text = (
        f"{len(ran_runs)}/{len(labs)} labs run; experiments: "
        f'<span class="ok">{k["supported"]} supported</span>, '
        f'<span class="bad">{k["refuted"]} refuted</span>, '
        f'<span class="unsure">{k["inconclusive"]} inconclusive</span>; '
        f"checks: {k['checks_passed']} of {k['checks']} pass"
    )
    return text, key


CLAIM_COLUMNS = ["claim", "kind", "estimate", "95% interval", "n", "verdict"]


def _claim_rows(claims: list[dict], lab_cell: str = "") -> list[list[str]]:
    rows = []
    for c in claims:
        interval = c.get("interval")
        iv = f"[{fmt(interval[0])}, {fmt(interval[1])}]" if interval else "-"
        value = c.get("estimate")
        n = f"{c.get('n', 1)}"
        if c.get("n_failed"):
            n += f" (+{c['n_failed']} failed)"
        if c.get("reached"):
            n += " · reached " + ", ".join(f"{k}: {v:.0%}" for k, v in c["reached"].items())
        why = f'<br><span class="muted">why: {esc(c["reason"])}</span>' if c.get("reason") else ""
        cells = [
            esc(c["statement"])
            + f'<br><span class="muted">{esc(c.get("quantity", ""))}</span>'
            + why,
            esc(c.get("kind", "")),
            f'<span data-v="{esc(value)}">{esc(fmt(value))}</span>',
            esc(iv),
            esc(n),
            verdict(c.get("verdict")),
        ]
        rows.append(([lab_cell] if lab_cell else []) + cells)
    return rows


def _source_pages(topic: Topic, out: Path) -> list[str]:
    """Write each of the topic's .py files as an HTML page; return their site paths."""
    module = importlib.import_module(topic.module)
    folder = Path(inspect.getfile(module)).parent
    links = []
    for f in sorted(folder.glob("*.py")) + sorted(folder.glob("labs/*.py")):
        name = f.name if f.parent == folder else f"labs.{f.name}"
        rel = f"source/{topic.slug}/{name}.html"
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        code = esc(f.read_text())
        dotted = name.removesuffix(".py")
        body = f"<h1>{esc(topic.module)}.{esc(dotted)}</h1><pre><code>{code}</code></pre>"
        target.write_text(page(f"{name} ({topic.slug})", body, "../../"))
        links.append(rel)
    return links


def _topic_page(topic: Topic, runs: dict, out: Path) -> str:
    parts = [
        f"<h1>{topic.number}. {esc(topic.title)}</h1>",
        f"<p><em>{esc(topic.tagline)}</em></p>",
    ]
    section = next(s for s in SECTIONS if s.slug == topic.section)
    parts.append(f'<p class="muted">Section {section.number}: {esc(section.title)}</p>')
    doc = inspect.getdoc(importlib.import_module(topic.module)) if has_code(topic) else None
    parts.append("<h2>What it is</h2>")
    parts.append(markdown_with_math(doc) if doc else f"<p>{esc(topic.description)}</p>")
    parts.append(
        "<h2>Key insights</h2><ul>"
        + "".join(f"<li>{esc(i)}</li>" for i in topic.insights)
        + "</ul>"
    )
    pre = []
    for p in topic.prerequisites:
        if p.topic:
            t = get_topic(p.topic)
            pre.append(
                f"<li>{esc(p.as_written)}: "
                f'<a href="{t.slug}.html">{t.number}. {esc(t.title)}</a></li>'
            )
        else:
            pre.append(f"<li>{esc(p.as_written)} (background)</li>")
    parts.append("<h2>Prerequisites</h2><ul>" + "".join(pre) + "</ul>")
    labs = discover(topic)
    parts.append("<h2>Labs</h2>")
    if not labs:
        parts.append("<p>No labs yet: this topic's code is planned.</p>")
    for spec in labs:
        parts.append(f'<section><h3 id="{esc(spec.name)}">{esc(spec.name)}: {esc(spec.title)}</h3>')
        parts.append(
            f'<p class="muted">Insights: {esc(", ".join(spec.insights))} · '
            f'<a href="../source/{topic.slug}/labs.{esc(spec.name)}.py.html">source</a></p>'
        )
        r = runs.get((topic.slug, spec.name))
        if r is None:
            parts.append(
                '<p class="none">Not yet run. <code>mlatlas run '
                f"{topic.slug} {spec.name}</code></p></section>"
            )
            continue
        parts.append(
            f'<p class="muted">{esc(r.scale)} scale, seed {r.seed}, {esc(r.device)}, '
            f"{r.wall_time_s:.1f} s, peak RSS {r.memory.get('peak_rss_mb')} MB, "
            f"status {esc(r.status)}</p>"
        )
        if r.claims:
            parts.append(f"<p>{esc(summary_line(r.claims))}</p>")
            parts.append(table(CLAIM_COLUMNS, _claim_rows(r.claims), caption="Claims"))
        for name, fig in r.figures.items():
            png = next((f for f in fig["files"] if f.endswith(".png")), None)
            if png is None:
                continue
            rel = f"figures/{topic.slug}/{spec.name}/{png}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(Path(r.dir) / png, out / rel)
            caption = fig.get("caption") or name
            parts.append(
                f'<figure><img src="../{rel}" alt="{esc(caption)}">'
                f"<figcaption>{esc(caption)}</figcaption></figure>"
            )
        for name, t in r.tables.items():
            rows = [[esc(fmt(row.get(c))) for c in t["columns"]] for row in t["rows"]]
            parts.append(
                f"<h4>{esc(name)}</h4>" + table(t["columns"], rows, caption=t.get("note", ""))
            )
        for note in r.notes:
            parts.append(f'<p class="muted">{esc(note)}</p>')
        for d in r.divergences:
            who = f"members {d['members']}" if d.get("members") is not None else "the model"
            parts.append(
                f'<p class="muted">diverged: {esc(who)} of fit {esc(d.get("desc", ""))} at step '
                f"{esc(d['step'])}, last finite loss {esc(fmt(d['last_finite_loss']))}"
                f" (weights kept in {esc(d.get('checkpoint') or '-')})</p>"
            )
        parts.append("</section>")
    if has_code(topic):
        links = _source_pages(topic, out)
        parts.append(
            "<h2>Source</h2><ul>"
            + "".join(
                f'<li><a href="../{l}">{esc(Path(l).name.removesuffix(".py.html"))}</a></li>'
                for l in links
            )
            + "</ul>"
        )
    return page(topic.title, "".join(parts), "../")


def build_site(runs_dir: str | Path = "runs", out: str | Path = "site") -> list[Path]:
    """Write the site; return the HTML pages written."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "topics").mkdir(parents=True)
    (out / "tracks").mkdir()
    runs = latest_runs(runs_dir)
    pages: dict[str, str] = {}

    status = {t.slug: _status(t, runs) for t in TOPICS}
    cards = []
    for s in SECTIONS:
        items = "".join(
            f'<li><a href="topics/{t.slug}.html">{t.number}. {esc(t.title)}</a><br>'
            f'<span class="muted">{status[t.slug][0]}</span></li>'
            for t in topics_in(s.slug)
        )
        cards.append(
            f'<section class="card"><h2>{s.number}. {esc(s.title)}</h2><ul>{items}</ul></section>'
        )
    pages["index.html"] = page(
        "The map",
        "<h1>mlatlas: the map</h1><p>Six sections, 22 topics. Each topic is code proven equal to a "
        "reference; each key insight is a lab with claims measured on real data.</p>"
        f'<div class="sections">{"".join(cards)}</div>'
        "<h2>Prerequisite graph</h2>"
        + prerequisite_svg(status={k: v[1] for k, v in status.items()}),
        "",
    )

    all_claims = []
    for (topic, lab_name), r in sorted(
        runs.items(), key=lambda kv: (get_topic(kv[0][0]).number, kv[0][1])
    ):
        cell = f'<a href="topics/{topic}.html#{esc(lab_name)}">{esc(topic)} / {esc(lab_name)}</a>'
        all_claims += _claim_rows(r.claims, cell)
    every = [c for r in runs.values() for c in r.claims]
    pages["claims.html"] = page(
        "All claims",
        f"<h1>All claims</h1><p>{len(all_claims)} claims from the latest run of each lab: "
        f"{esc(summary_line(every))}. Experiments are decided by a t-interval over seeds "
        "(paired by seed id, Holm-corrected within a lab): supported when the 95% interval "
        "lies wholly on the claimed side of the margin, refuted when wholly on the other, "
        "inconclusive when it straddles. Checks are exact or by-construction results. "
        "Click a column header to sort.</p>"
        + table(["lab", *CLAIM_COLUMNS], all_claims, sortable=True),
        "",
        sortable=True,
    )

    combos = "".join(
        f"<li><strong>{esc(c.name)}</strong> = "
        + " + ".join(f'<a href="topics/{s}.html">{esc(get_topic(s).title)}</a>' for s in c.topics)
        + "".join(f" + {esc(e)}" for e in c.extra)
        + f'<br><span class="muted">{esc(c.summary)}</span></li>'
        for c in LANDSCAPE
    )
    trends = "".join(
        f"<li><strong>{esc(t.name)}</strong>: {esc(t.summary)} ("
        + ", ".join(f'<a href="topics/{s}.html">{esc(s)}</a>' for s in t.topics)
        + ")</li>"
        for t in TRENDS
    )
    pages["landscape.html"] = page(
        "Landscape",
        f"<h1>The modern landscape</h1><ul>{combos}</ul><h2>Trends</h2><ul>{trends}</ul>",
        "",
    )

    track_items = []
    for tr in TRACKS:
        p = path(tr)
        steps = "".join(
            f'<li><a href="../topics/{s.topic.slug}.html">'
            f"{s.topic.number}. {esc(s.topic.title)}</a>"
            + (' <span class="muted">(added prerequisite)</span>' if s.added else "")
            + "</li>"
            for s in p.steps
        )
        note = f'<p class="muted">{esc(tr.note)}</p>' if tr.note else ""
        pages[f"tracks/{tr.slug}.html"] = page(
            tr.title,
            f"<h1>{esc(tr.title)}</h1><p>{esc(tr.focus)}</p>{note}<ol>{steps}</ol>"
            f"<p>Background subjects: {esc(', '.join(p.subjects))}</p>",
            "../",
        )
        track_items.append(f'<li><a href="{tr.slug}.html">{esc(tr.title)}</a></li>')
    pages["tracks/index.html"] = page(
        "Tracks", f"<h1>Learning tracks</h1><ul>{''.join(track_items)}</ul>", "../"
    )

    for t in TOPICS:
        pages[f"topics/{t.slug}.html"] = _topic_page(t, runs, out)

    written = []
    for rel, text in pages.items():
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        written.append(target)
    return written + sorted(out.glob("source/*/*.html"))
