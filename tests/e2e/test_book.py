"""The course as a book (``make book`` -> build/book/_build/html/), read in headless Chromium.

The built site is served over HTTP on 127.0.0.1, as GitHub Pages would serve it, and crawled from
its landing page through every link to a page of the site. On each page: it loads (HTTP 200),
every image has rendered (``naturalWidth > 0`` once decoded), every request to the site succeeds,
nothing is requested from anywhere else (the book stands alone), and every internal link names a
page of the site and, where it has one, an anchor on that page. A damaged copy (one image file
removed, one link pointed at a missing page) shows that the checks fail.
Run with `make e2e` (it builds the book first); not part of `make test`.
"""
from __future__ import annotations

import functools
import http.server
import re
import shutil
import threading
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urldefrag, urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
SITE = ROOT / "build" / "book" / "_build" / "html"
CHAPTERS = ["notebooks/01_baseline.html", "notebooks/02_batchnorm.html", "notebooks/03_dropout.html",
            "notebooks/04_gap.html", "notebooks/05_augmentation.html", "docs/reproducibility.html",
            "results/tuning.html"]
LOAD_S = 30


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no access log on the test's output
        pass


@contextmanager
def served(folder: Path):
    """``folder`` over HTTP on a free port of 127.0.0.1; the base URL (ending in /)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=str(folder)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def page_report(page, url: str, base: str) -> dict:
    """Load ``url``; what it requested, its images, its links and its ids."""
    requests, outside = [], []

    def route(r):
        if r.request.url.startswith(base):
            r.continue_()
        else:  # the book must not need anything from elsewhere
            outside.append(r.request.url)
            r.abort()

    page.route("**/*", route)
    page.on("response", lambda resp: requests.append((resp.url, resp.status)))
    response = page.goto(url, wait_until="load", timeout=LOAD_S * 1000)
    images = page.evaluate("""async () => {
        const imgs = [...document.images];
        imgs.forEach(i => { i.loading = "eager"; });
        await Promise.all(imgs.map(i => i.decode().catch(() => null)));
        return imgs.map(i => ({src: i.currentSrc || i.src, width: i.naturalWidth}));
    }""")
    links = page.eval_on_selector_all("a[href]", "els => els.map(a => a.href)")
    ids = page.eval_on_selector_all("[id]", "els => els.map(e => e.id)")
    return {"status": response.status if response else None, "requests": requests, "outside": outside,
            "images": images, "links": links, "ids": set(ids)}


def book_problems(browser, base: str) -> tuple[list[str], dict]:
    """Crawl the site at ``base`` from index.html; (what is wrong, the report of each page by path)."""
    problems, reports, queue = [], {}, [urljoin(base, "index.html")]
    context = browser.new_context()
    try:
        while queue:
            url = queue.pop(0)
            path = urlparse(url).path.lstrip("/")
            if path in reports:
                continue
            page = context.new_page()
            try:
                report = reports[path] = page_report(page, url, base)
            finally:
                page.close()
            if report["status"] != 200:
                problems.append(f"{path}: HTTP {report['status']}")
                continue
            problems += [f"{path}: {u} answered {s}" for u, s in report["requests"] if s >= 400]
            problems += [f"{path}: requests {u} from outside the book" for u in report["outside"]]
            problems += [f"{path}: image {i['src']} did not render" for i in report["images"] if not i["width"]]
            for link in report["links"]:
                target, _ = urldefrag(link)
                if target.startswith(base) and urlparse(target).path.endswith((".html", "/")) and \
                        urlparse(target).path.lstrip("/") not in reports:
                    queue.append(target)
        for path, report in reports.items():  # every internal link: a page that loaded, and its anchor there
            for link in report["links"]:
                target, anchor = urldefrag(link)
                if not target.startswith(base):
                    continue
                goal = urlparse(target).path.lstrip("/")
                if goal.endswith(".html"):
                    if reports.get(goal, {}).get("status") != 200:
                        problems.append(f"{path}: link to {goal}, which does not load")
                    elif anchor and anchor not in reports[goal]["ids"]:
                        problems.append(f"{path}: link to {goal}#{anchor}, an anchor not on that page")
                elif not answers(target):
                    problems.append(f"{path}: link to {goal}, which is not in the site")
    finally:
        context.close()
    return problems, reports


def answers(url: str) -> bool:
    """Whether the site serves ``url`` (a link to a file that is not a page: an image, a download)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status == 200
    except urllib.error.URLError:
        return False


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "index.html").is_file():
        raise RuntimeError(f"{SITE.relative_to(ROOT)} has no index.html: run `make book` (make e2e does)")
    return SITE


def test_every_page_loads_every_image_renders_every_internal_link_resolves(site, browser):
    with served(site) as base:
        problems, reports = book_problems(browser, base)
    assert problems == []
    assert set(CHAPTERS) | {"index.html"} <= set(reports), sorted(reports)
    for chapter in CHAPTERS[:5]:  # each notebook: its stored figures and its Colab badge
        images = [i["src"] for i in reports[chapter]["images"]]
        assert sum("colab-badge" in src for src in images) == 1, chapter
        assert len(images) >= 4, f"{chapter}: {len(images)} images"
        assert any(link.startswith("https://colab.research.google.com/github/") for link in reports[chapter]["links"])
    landing = reports["index.html"]
    assert all(f"{base}{c}" in landing["links"] for c in CHAPTERS), "the landing page links every chapter"


def test_the_checks_fail_on_a_missing_image_and_a_broken_link(site, browser, tmp_path):
    damaged = tmp_path / "html"
    shutil.copytree(site, damaged)
    figure = next((damaged / "_images").glob("*.png"))
    figure.unlink()
    page = damaged / "docs" / "reproducibility.html"
    text = page.read_text()
    link = re.search(r'<a [^>]*href="\.\./results/tuning\.html"', text)  # the page's link to the next chapter
    assert link, "docs/reproducibility.html links results/tuning.html"
    page.write_text(text[:link.start()] + link.group(0).replace("tuning.html", "no-such-page.html")
                    + text[link.end():])
    with served(damaged) as base:
        problems, _ = book_problems(browser, base)
    assert any(f"image {base}_images/{figure.name} did not render" in p for p in problems), problems
    assert any("results/no-such-page.html" in p for p in problems), problems
