"""Checks of the built book in a real browser (Debian's Chromium, driven by Playwright).

Run after ``make book``: every page is opened from a server on loopback; on every page no JavaScript
exception is raised and no ipywidgets view is visible, and every explorable slider changes its figure.
Where no browser is installed these checks skip with a message, except under OPTBOOK_REQUIRE_BROWSER=1
(set by .ci/run), where a missing browser fails.
"""

import functools
import http.server
import os
import shutil
import threading

import pytest
from conftest import ROOT

pytestmark = pytest.mark.browser
HTML = ROOT / "_build" / "html"
REQUIRED = os.environ.get("OPTBOOK_REQUIRE_BROWSER") == "1"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing(reason):
    if REQUIRED:
        pytest.fail(reason)
    pytest.skip(reason)


def pages():
    if not HTML.exists():
        return []
    return sorted(
        str(p.relative_to(HTML)) for p in HTML.rglob("*.html") if "_static" not in p.parts and "_sources" not in p.parts
    )


@pytest.fixture(scope="module")
def server():
    if not HTML.exists():
        _missing("the book is not built: run `make book` first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.log_message = lambda *args: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _missing("no Chromium found (apt-get install chromium): the browser checks of the book did not run")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, server, name):
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the book is checked offline: anything not served from loopback (MathJax's CDN) is refused at once
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    page.goto(server + name, wait_until="load")
    return page, errors


def test_book_has_pages():
    if not HTML.exists():
        _missing("the book is not built: run `make book` first")
    assert "index.html" in pages() and len(pages()) > 3


@pytest.mark.parametrize("name", pages())
def test_page(browser, server, name):
    page, errors = open_page(browser, server, name)
    try:
        widgets = page.locator(".jupyter-widgets, .widget-area, .jupyter-widgets-view, .widget-output")
        visible = [i for i in range(widgets.count()) if widgets.nth(i).is_visible()]
        assert not visible, f"{name}: {len(visible)} ipywidgets view(s) visible in the static book"
        assert page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count() == 0

        for e in range(page.locator(".optbook-explorable").count()):
            explorable = page.locator(".optbook-explorable").nth(e)
            image = explorable.locator("img")
            sliders = explorable.locator('input[type="range"]')
            assert sliders.count() >= 1
            for s in range(sliders.count()):
                slider = sliders.nth(s)
                readout = explorable.locator("output").nth(s)
                before_src, before_text = image.get_attribute("src"), readout.text_content()
                current, top = int(slider.input_value()), int(slider.get_attribute("max"))
                target = current + 1 if current < top else current - 1
                slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(target))
                assert image.get_attribute("src") != before_src, f"{name}: slider {s} of explorable {e} did nothing"
                assert readout.text_content() != before_text, f"{name}: slider {s} does not show its value"
                slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(current))
                assert image.get_attribute("src") == before_src
        assert not errors, f"{name}: JavaScript exceptions: {errors}"
    finally:
        page.close()
