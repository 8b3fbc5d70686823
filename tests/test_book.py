"""The rendered book: tools/book.py builds it offline, and every page works in headless Chromium.

The book is built into a temporary folder (Sphinx + myst-nb, the notebooks as committed, never
executed), served on a free localhost port, and each HTML page (the landing page, every notebook,
the docs, the API reference) is opened in Debian's Chromium driven by Playwright, the set-up of
tests/test_browser.py. Every request that leaves localhost is refused and recorded, so a page that
needs a CDN fails here. Per page: no console error, no failed request, every <img> loaded
(naturalWidth > 0), every link inside the site points to a file that exists, and, where the page
has math, MathJax typeset it (its mjx-container output is in the page, no TeX left as text). A screenshot of
notebook 01 goes to test-artifacts/book_01_natural_gradient.png.
"""
from __future__ import annotations

import functools
import http.server
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urljoin, urlparse, unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "tests"))

from test_browser import CHROMIUM_FLAGS, chromium_executable  # noqa: E402

# myst-parser's use of a Sphinx attribute that Sphinx 11 removes: not this kit's business
pytestmark = pytest.mark.filterwarnings("ignore:.*Check CHANGES for Sphinx API modifications")

ARTIFACTS = REPO / "test-artifacts"
SCREENSHOT_PAGE = "notebooks/01_natural_gradient.html"
MATH_SECONDS = 60

# After load: the page's images, its links and its math. MathJax 3 typesets asynchronously, after the
# load event: wait for MathJax.startup.promise.
PAGE_STATE = r"""async () => {
    if (window.MathJax && MathJax.startup) {
        await MathJax.startup.promise;  // resolved once the page's first typesetting is over
    }
    await document.fonts.ready;  // MathJax's web fonts, loaded after the typesetting
    const images = [...document.images].map(img => ({src: img.currentSrc || img.src,
                                                     ok: img.complete && img.naturalWidth > 0}));
    const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
    const mathSpans = document.querySelectorAll('.math').length;
    const typeset = document.querySelectorAll('mjx-container').length;
    const rawTex = [...document.querySelectorAll('.math')].filter(
        el => /\\\(|\\\[/.test(el.textContent)).length;
    return {images, links, mathSpans, typeset, rawTex, hasMathJax: !!window.MathJax};
}"""


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    pytest.importorskip("sphinx", reason="the book extra (sphinx, myst-nb, sphinx-mathjax-offline) is not installed")
    pytest.importorskip("myst_nb")
    from importlib.metadata import PackageNotFoundError, distribution
    try:
        distribution("sphinx-mathjax-offline")
    except PackageNotFoundError:
        pytest.skip("the book extra: sphinx-mathjax-offline (MathJax for offline pages) is not installed")
    
    import book as book_tool

    out = tmp_path_factory.mktemp("book") / "site"
    start = time.perf_counter()
    book_tool.build(out)
    print(f"book built in {time.perf_counter() - start:.0f} s")
    return out


@pytest.fixture(scope="module")
def server(book):
    handler = functools.partial(_QuietHandler, directory=str(book))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests: the playwright package is not installed")
    executable = chromium_executable()
    if executable is None:
        pytest.skip("browser tests: no Chromium at /usr/bin/chromium (python3 kit.py test installs Debian's)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def html_pages(site: Path) -> list[str]:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob("*.html")
                  if not p.relative_to(site).parts[0].startswith("_"))


def test_build_has_every_page(book):
    pages = set(html_pages(book))
    expected = {"index.html", "notebooks/README.html", "docs/design.html", "docs/notation.html"}
    expected |= {f"notebooks/{p.stem}.html" for p in (REPO / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    expected |= {f"api/rlkit.{m}.html" for m in ("fisher", "kfac", "critic", "trust_region", "vmpo", "agents",
                                                  "experiments")}
    assert expected <= pages, f"missing pages: {sorted(expected - pages)}"
    # the API pages carry the docstrings
    assert "natural_gradient" in (book / "api" / "rlkit.fisher.html").read_text() or \
        "Fisher" in (book / "api" / "rlkit.fisher.html").read_text()
    # the book is offline: MathJax is served from the site itself
    assert (book / "_static" / "mathjax" / "tex-chtml.js").is_file()


@pytest.mark.slow
def test_every_page_renders_offline(book, server, browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    blocked: list[str] = []

    def route(r):
        if urlparse(r.request.url).hostname in ("127.0.0.1", "localhost"):
            r.continue_()
        else:
            blocked.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page = context.new_page()
    problems: dict[str, list[str]] = {}
    current: list[str] = []
    page.on("console", lambda msg: msg.type == "error" and current.append(f"console: {msg.text}"))
    page.on("pageerror", lambda error: current.append(f"page error: {error}"))
    page.on("requestfailed", lambda request: current.append(f"request failed: {request.url} ({request.failure})"))
    # the site's index.html sends the browser to the landing page (the syllabus)
    page.goto(server, wait_until="load")
    page.wait_for_url("**/notebooks/README.html", timeout=15_000)
    math_pages = 0
    for name in html_pages(book):
        if name == "index.html":
            continue
        current.clear()
        blocked.clear()
        response = page.goto(urljoin(server, name), wait_until="load")
        if response is None or not response.ok:
            current.append(f"HTTP {response.status if response else 'no response'}")
        state = page.evaluate(PAGE_STATE)
        page.wait_for_load_state("networkidle")
        for image in state["images"]:
            if not image["ok"]:
                current.append(f"image not loaded: {image['src']}")
        for link in state["links"]:
            parsed = urlparse(link)
            if parsed.hostname not in ("127.0.0.1", "localhost"):
                continue
            target = book / unquote(parsed.path).lstrip("/")
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                current.append(f"broken link: {link}")
        if state["mathSpans"]:
            math_pages += 1
            if not state["hasMathJax"] or state["typeset"] == 0:
                current.append(f"{state['mathSpans']} math elements, none typeset by MathJax")
            if state["rawTex"]:
                current.append(f"{state['rawTex']} math elements left as TeX")
        current.extend(f"request outside the site: {url}" for url in blocked)
        if name == SCREENSHOT_PAGE:
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "book_01_natural_gradient.png"), full_page=False)
        if current:
            problems[name] = sorted(set(current))
    context.close()
    assert not problems, "\n".join(f"{name}: {p}" for name, ps in problems.items() for p in ps[:10])
    assert math_pages >= 10, f"only {math_pages} pages have math"
    assert (ARTIFACTS / "book_01_natural_gradient.png").is_file()
