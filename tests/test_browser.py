"""The site in a real browser: Debian's Chromium driven by Playwright. Every page loads with no
console error and no failed request, from the file system and over `mlatlas serve`; images
have non-zero size; the graph has 22 nodes; a topic page shows its claims table; pages work
with JavaScript off. Screenshots of the map and a topic page are saved under
test-artifacts/."""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

import pytest
from conftest import IN_CI, REPO

from mlatlas.core.runner import get_lab, run_lab
from mlatlas.report import build_site
from mlatlas.report.serve import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]
ARTIFACTS = REPO / "test-artifacts"


def _browser_or_skip():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is None or not Path(CHROMIUM).exists():
        message = "Chromium (/usr/bin/chromium) and playwright are needed for the browser tests"
        if IN_CI:
            pytest.fail(message + "; .ci/run installs them")
        pytest.skip(message)
    return sync_playwright


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    for lab in ("gradient_flow", "engine_equals_torch"):
        assert run_lab(get_lab("backprop", lab), "smoke", 0, out=runs).ok
    out = tmp_path_factory.mktemp("site") / "site"
    build_site(runs, out)
    return out


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def _visit(browser, url: str, js: bool = True, width: int = 1200):
    ctx = browser.new_context(java_script_enabled=js, viewport={"width": width, "height": 900})
    page = ctx.new_page()
    errors, failed = [], []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("requestfailed", lambda r: failed.append(r.url))
    page.goto(url)
    page.wait_for_load_state("load")
    return ctx, page, errors, failed


def test_every_page_loads_cleanly_from_files(site, browser):
    pages = sorted(site.rglob("*.html"))
    assert len(pages) >= 32
    for p in pages:
        ctx, page, errors, failed = _visit(browser, p.as_uri())
        assert errors == [] and failed == [], (p, errors, failed)
        sizes = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert all(w > 0 for w in sizes), p
        ctx.close()


def test_map_graph_topic_claims_and_screenshots(site, browser):
    ARTIFACTS.mkdir(exist_ok=True)
    ctx, page, errors, _ = _visit(browser, (site / "index.html").as_uri())
    assert errors == []
    assert page.locator("svg.graph a.node").count() == 22
    assert page.title().startswith("The map")
    page.screenshot(path=str(ARTIFACTS / "home.png"), full_page=True)
    ctx.close()
    ctx, page, errors, _ = _visit(browser, (site / "topics" / "backprop.html").as_uri())
    assert errors == []
    table = page.locator("table", has_text="verdict").first
    assert table.is_visible() and table.locator("tbody tr").count() == 4
    assert page.locator("math").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "topic-backprop.png"), full_page=False)
    ctx.close()
    assert (ARTIFACTS / "home.png").stat().st_size > 10_000


def test_works_without_javascript_and_on_a_phone(site, browser):
    ctx, page, errors, failed = _visit(
        browser, (site / "claims.html").as_uri(), js=False, width=375
    )
    assert errors == [] and failed == []
    assert page.locator("tbody tr").count() == 6
    # the page itself does not scroll sideways on a phone; wide tables scroll in their box
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 1
    ctx.close()


def test_sorting_with_javascript(site, browser):
    ctx, page, _, _ = _visit(browser, (site / "claims.html").as_uri())
    cells = page.locator("tbody tr td:nth-child(7)")
    verdicts = [cells.nth(i).inner_text() for i in range(cells.count())]
    assert set(verdicts) <= {"supported", "refuted", "inconclusive", "pass", "fail"}
    page.locator("th", has_text="verdict").click()
    first = cells.first.inner_text()
    page.locator("th", has_text="verdict").click()
    last = cells.first.inner_text()
    assert {first, last} == {min(verdicts), max(verdicts)} and len(set(verdicts)) > 1
    ctx.close()


def test_served_site_has_no_failed_request(site, browser):
    server = make_server(site, 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        for path in ("/index.html", "/topics/backprop.html", "/tracks/nlp.html"):
            ctx, _, errors, failed = _visit(browser, base + path)
            assert errors == [] and failed == [], (path, errors, failed)
            ctx.close()
    finally:
        server.shutdown()
        server.server_close()
