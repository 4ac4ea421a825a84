"""The static site: every page has a title and one h1, every internal link and image
resolves, nothing is requested from elsewhere, the graph has 22 nodes, claims appear where
they should, and `serve` answers on 127.0.0.1."""

from __future__ import annotations

import html.parser
import re
import threading
import urllib.request
from pathlib import Path

import pytest

from mlatlas.core.runner import get_lab, run_lab
from mlatlas.report import build_site
from mlatlas.report.serve import make_server


class _Page(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.refs: list[tuple[str, str]] = []
        self.imgs: list[dict] = []
        self.h1 = 0
        self.title = ""
        self._in_title = False
        self.nodes = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h1":
            self.h1 += 1
        if tag == "title" and not self.title:
            self._in_title = True
        if tag == "img":
            self.imgs.append(a)
        if tag == "a" and a.get("class") == "node":
            self.nodes += 1
        for key in ("href", "src"):
            if key in a:
                self.refs.append((tag, a[key]))

    def handle_data(self, data):
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    for lab in ("gradient_flow", "engine_equals_torch"):
        assert run_lab(get_lab("backprop", lab), "smoke", 0, out=runs).ok
    out = tmp_path_factory.mktemp("site") / "site"
    pages = build_site(runs, out)
    return out, pages


def _parse(p: Path) -> _Page:
    parser = _Page()
    parser.feed(p.read_text())
    return parser


def test_every_page_is_titled_and_links_resolve(site):
    _, pages = site
    assert len(pages) >= 22 + 5 + 5  # topics, tracks, map/claims/landscape/track index
    for p in pages:
        doc = _parse(p)
        assert doc.title.strip() and doc.h1 == 1, p
        for tag, ref in doc.refs:
            assert not ref.startswith(("http:", "https:", "//")), f"{p}: external {ref}"
            if ref.startswith("#"):
                continue
            target = (p.parent / ref.split("#")[0]).resolve()
            assert target.is_file(), f"{p}: {tag} -> {ref} does not exist"
        for img in doc.imgs:
            assert img.get("alt"), f"{p}: image without alt"
            assert (p.parent / img["src"]).stat().st_size > 1000


def test_map_graph_and_claims(site):
    out, _ = site
    index = _parse(out / "index.html")
    assert index.nodes == 22
    topic = (out / "topics" / "backprop.html").read_text()
    verdicts = re.findall(
        r'<span class="(?:ok|bad|unsure)">(supported|refuted|inconclusive|pass|fail)</span>', topic
    )
    assert len(verdicts) == 4 + 2 and "<math" in topic  # every claim's verdict, and MathML
    assert "experiments: " in topic and "checks: " in topic  # counted apart
    assert "Not yet run" in topic  # the labs that did not run say so
    claims = (out / "claims.html").read_text()
    assert claims.count("<tr>") == 1 + 4 + 2  # header + gradient_flow's 4 + engine's 2
    assert "planned" in (out / "index.html").read_text()
    assert "(added prerequisite)" in (out / "tracks" / "nlp.html").read_text()


def test_serve_on_loopback(site):
    out, _ = site
    server = make_server(out, 0)
    assert server.server_address[0] == "127.0.0.1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        for path in ("/index.html", "/topics/backprop.html", "/claims.html"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                assert r.status == 200 and b"<!DOCTYPE html>" in r.read(200)
    finally:
        server.shutdown()
        server.server_close()


def test_serve_needs_a_built_site(tmp_path):
    with pytest.raises(FileNotFoundError, match="mlatlas report"):
        make_server(tmp_path)
