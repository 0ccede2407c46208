"""Checks of the built book in a real browser (Debian's Chromium, driven by Playwright), as readers see it.

Run after ``make book``. Every page is served from loopback and opened with every other request refused
(no network: MathJax or anything else from a CDN does not load), once on a desktop (1366x768) and once on
a phone (390x844), both at device scale factor 2. What each page shows is measured once (``survey``) and
the tests below each check one thing readers complained about (issue 14):

* no JavaScript exception; no ipywidgets view; every explorable slider changes its figure and readout;
* no raw markdown table (``| a | b |``) in a paragraph; no raw TeX (``$x$``, ``\\(``, ``\\frac``) in text;
* every raster figure has at least 1.5 image pixels per CSS pixel (sharp on a 2x display), and alt text
  that is not its file path;
* no page, printed output or explorable wider than a 390 px phone; printed lines are not cut off;
* every explorable's text is readable on a phone (>= 9 CSS px at 390 px) and every explorable fills the
  column on a desktop (>= 95% at 1366 px), sharp at both widths, its text <= 20 CSS px there;
* the primary and secondary sidebar toggles open their sidebars on a phone (and the primary one hides
  the sidebar on a desktop); one search box on a desktop; no part twice in the sidebar;
* no broken relative link or anchor; no two pages with the same title; no authoring markers visible.

Where no browser is installed these checks skip with a message, except under OPTBOOK_REQUIRE_BROWSER=1
(set by .ci/run), where a missing browser fails.
"""

import functools
import html.parser
import http.server
import os
import re
import shutil
import threading
import urllib.parse
from pathlib import Path

import pytest
from conftest import ROOT

pytestmark = pytest.mark.browser
HTML = Path(os.environ.get("OPTBOOK_HTML", ROOT / "_build" / "html"))  # another build can be checked too
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
DESKTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
# What a reader must never see: scaffolding of the exercise generator and notes meant for the authors.
MARKERS = ["BEGIN SOLUTION", "END SOLUTION", "# stub:", "content brief", "TODO", "FIXME", "XXX "]
# a table's rule row (commonmark turns its --- into dashes), or a row of three or more cells
RAW_TABLE = re.compile(r"\|\s*:?[-\u2013\u2014]+:?\s*\||(\|[^|\n]+){3,}\|")
PATH_LIKE = re.compile(r"\.(png|jpe?g|webp|svg)$|_images/|jupyter_execute|^\.\./")  # an alt that is a file path
RAW_TEX = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\)|\\\[|\\\]|\\(frac|sqrt|begin|hat|theta|alpha|beta|epsilon)\b")


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


def content_pages():
    """Pages with content: not Sphinx's generated index, search and redirect pages."""
    return [p for p in pages() if p not in ("genindex.html", "search.html", "index.html")]


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


def open_page(browser, server, name, viewport=DESKTOP):
    context = browser.new_context(viewport=viewport, device_scale_factor=2)
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # the book is checked offline: anything not served from loopback (a CDN) is refused at once
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(server) else route.abort())
    page.goto(server + name, wait_until="load")
    # wait for MathJax to typeset, when the book serves it (from a CDN it never loads here)
    page.evaluate(
        "() => (window.MathJax && MathJax.startup && MathJax.startup.promise) ? MathJax.startup.promise : null"
    )
    page.wait_for_timeout(100)
    return page, errors


# One pass over the page in the browser: everything the tests below look at.
SURVEY = r"""() => {
  const article = document.querySelector('main') || document.body;
  const visible = el => { const r = el.getBoundingClientRect(); const s = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && s.visibility !== 'hidden' && s.display !== 'none'; };
  const skip = 'pre, code, script, style, mjx-container, .MathJax, .highlight, textarea';
  const texts = [];
  const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) { const n = walker.currentNode; const p = n.parentElement;
    if (!p || p.closest(skip) || !visible(p)) continue; texts.push(n.textContent); }
  const textOf = (el, skipSel) => { const out = []; const w = document.createTreeWalker(el, NodeFilter.SHOW_TEXT);
    while (w.nextNode()) { const p = w.currentNode.parentElement;
      if (p && !p.closest(skipSel)) out.push(w.currentNode.textContent); }
    return out.join(''); };
  // a paragraph's own text, math aside (|x| in a formula is not a table)
  const paragraphs = [...article.querySelectorAll('p')].filter(visible)
    .map(p => textOf(p, 'mjx-container, .math, script, style, code'));
  const allText = article.innerText;
  const images = [...article.querySelectorAll('img')].filter(visible).filter(i => !/\.svg|image\/svg/.test(i.src))
    .map(i => ({src: i.src.slice(0, 80), alt: i.getAttribute('alt') || '', natural: i.naturalWidth,
                css: i.getBoundingClientRect().width, naturalHeight: i.naturalHeight,
                cssHeight: i.getBoundingClientRect().height}));
  const outputs = [...article.querySelectorAll('div.cell_output pre, div.output pre')].filter(visible)
    .filter(o => o.scrollWidth > o.clientWidth + 1).map(o => o.innerText.slice(0, 60));
  const W = window.innerWidth;
  const explorables = [...document.querySelectorAll('.optbook-explorable')].map(e => {
    // the explorable's parts against the column that holds it (its parent) and the viewport
    const parts = [e, ...e.querySelectorAll('img, input, output, label, span, div')].filter(visible);
    const right = Math.max(...parts.map(p => p.getBoundingClientRect().right));
    // the frame shown (desktop or phone frames; not a delta frame over it) and the text size it records
    const frame = [...e.querySelectorAll('img')].filter(i => visible(i) && !i.classList.contains('ob-delta'))[0];
    const view = frame ? frame.closest('[data-text-px]') : null;
    const text = view ? view.dataset.textPx.split(' ').map(Number) : null;
    return {right, column: e.parentElement.getBoundingClientRect().right, scroll: e.scrollWidth - e.clientWidth,
            columnWidth: e.parentElement.getBoundingClientRect().width,
            css: frame ? frame.getBoundingClientRect().width : 0, natural: frame ? frame.naturalWidth : 0, text}; });
  const searchSel = 'button[class*=search-button], .search-button, form.bd-search, input[type=search]';
  const searches = [...document.querySelectorAll(searchSel)].filter(visible)
    .filter(el => !el.parentElement.closest(searchSel));
  const sidebar = document.querySelector('.bd-sidebar-primary');
  return {texts, paragraphs, allText, images, outputs, W, explorables,
          pageWidth: document.documentElement.scrollWidth, searches: searches.length,
          sidebar: sidebar ? sidebar.innerText : '', title: document.title};
}"""

_surveys = {}

# What an explorable shows: the sources of its images that are displayed (a frame, and a delta frame over it)
SHOWN_FRAME = "e => [...e.querySelectorAll('img')].filter(i => i.getClientRects().length).map(i => i.src).join(' ')"
# The smallest text an explorable may show on a phone, in CSS px. Body text is 16 px; 9 px is the floor for
# tick labels and legends (18 device pixels on a 2x phone, the size of a printed figure's 7 pt labels held
# at reading distance). Explorables aim at 10 px in a 390 px phone's column, so a 360 px phone keeps 9.
MIN_TEXT_PX = 9
MAX_TEXT_PX = 20  # the largest text of an explorable on a desktop (body text: 16 px)


@pytest.fixture(scope="module")
def survey(browser, server):
    """name -> {"desktop": ..., "phone": ..., "errors": [...]} for every page (measured once, on first use)."""
    if not _surveys:
        for name in content_pages():
            _surveys[name] = {"errors": []}
            for label, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
                page, errors = open_page(browser, server, name, viewport)
                try:
                    _surveys[name][label] = page.evaluate(SURVEY)
                finally:
                    page.context.close()
                _surveys[name]["errors"] += errors
    return _surveys


def test_book_has_pages():
    if not HTML.exists():
        _missing("the book is not built: run `make book` first")
    assert "index.html" in pages() and len(pages()) > 3


@pytest.mark.parametrize("name", [p for p in content_pages() if p.startswith("chapters/")] or ["none"])
def test_widgets_and_explorables(browser, server, name):
    if name == "none":
        _missing("the book is not built: run `make book` first")
    page, errors = open_page(browser, server, name)
    try:
        widgets = page.locator(".jupyter-widgets, .widget-area, .jupyter-widgets-view, .widget-output")
        visible = [i for i in range(widgets.count()) if widgets.nth(i).is_visible()]
        assert not visible, f"{name}: {len(visible)} ipywidgets view(s) visible in the static book"
        assert page.locator('script[type="application/vnd.jupyter.widget-view+json"]').count() == 0

        for e in range(page.locator(".optbook-explorable").count()):
            explorable = page.locator(".optbook-explorable").nth(e)
            sliders = explorable.locator('input[type="range"]')
            assert sliders.count() >= 1
            for s in range(sliders.count()):
                slider = sliders.nth(s)
                readout = explorable.locator("output").nth(s)
                before_src, before_text = explorable.evaluate(SHOWN_FRAME), readout.text_content()
                current, top = int(slider.input_value()), int(slider.get_attribute("max"))
                target = current + 1 if current < top else current - 1
                slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(target))
                assert explorable.evaluate(SHOWN_FRAME) != before_src, (
                    f"{name}: slider {s} of explorable {e} did nothing"
                )
                assert readout.text_content() != before_text, f"{name}: slider {s} does not show its value"
                assert not re.search(r"#\d+ of \d+", readout.text_content()), f"{name}: readout is not a value"
                slider.evaluate("(el, v) => { el.value = v; el.dispatchEvent(new Event('input')); }", str(current))
                assert explorable.evaluate(SHOWN_FRAME) == before_src
        assert not errors, f"{name}: JavaScript exceptions: {errors}"
    finally:
        page.context.close()


def _each(survey, check):
    """Every (page, problem) that ``check(name, measured)`` reports, as one message."""
    found = [f"{name}: {problem}" for name, measured in survey.items() for problem in check(name, measured)]
    return f"{len(found)} problem(s):\n" + "\n".join(found[:40])


def test_no_javascript_exceptions(survey):
    message = _each(survey, lambda name, m: [str(e)[:200] for e in m["errors"]])
    assert message.startswith("0 "), message


def test_tables_render_as_tables(survey):
    message = _each(survey, lambda n, m: [p[:100] for p in m["desktop"]["paragraphs"] if RAW_TABLE.search(p)])
    assert message.startswith("0 "), message


def test_math_renders_offline(survey):
    def raw(name, m):
        text = "\n".join(m["desktop"]["texts"])
        return [text[max(0, hit.start() - 30) : hit.end() + 30].replace("\n", " ") for hit in RAW_TEX.finditer(text)]

    message = _each(survey, raw)
    assert message.startswith("0 "), message


def test_figures_are_sharp_on_a_2x_display(survey):
    def blurry(name, m):
        return [
            f"{i['natural']} px shown at {i['css']:.0f} CSS px ({i['src']})"
            for view in ("desktop", "phone")
            for i in m[view]["images"]
            if i["css"] > 48 and i["natural"] < 1.5 * i["css"]  # icons and logos aside
        ]

    message = _each(survey, blurry)
    assert message.startswith("0 "), message


def test_figures_keep_their_shape(survey):
    """A figure narrower than its width attribute keeps its aspect ratio (myst-nb writes the width and height
    inline: a column narrower than the width squeezed wide figures sideways, on a desktop and on a phone)."""

    def squeezed(name, m):
        return [
            f"{i['natural']}x{i['naturalHeight']} px shown at {i['css']:.0f}x{i['cssHeight']:.0f} CSS px ({i['src']})"
            for view in ("desktop", "phone")
            for i in m[view]["images"]
            if i["css"] > 48
            and i["cssHeight"] > 0
            and i["naturalHeight"] > 0
            and abs((i["css"] / i["cssHeight"]) / (i["natural"] / i["naturalHeight"]) - 1) > 0.03
        ]

    message = _each(survey, squeezed)
    assert message.startswith("0 "), message


def test_figures_have_alt_text_that_describes_them(survey):
    def bad(name, m):
        return [
            f"alt={i['alt']!r} ({i['src']})"
            for i in m["desktop"]["images"]
            if i["css"] > 48 and (not i["alt"].strip() or PATH_LIKE.search(i["alt"].strip()))
        ]

    message = _each(survey, bad)
    assert message.startswith("0 "), message


def test_nothing_wider_than_a_phone(survey):
    def wide(name, m):
        phone = m["phone"]
        out = [f"page is {phone['pageWidth']} px wide"] if phone["pageWidth"] > phone["W"] else []
        out += [
            f"explorable {k} reaches {e['right']:.0f} px, its column ends at {e['column']:.0f} px"
            for k, e in enumerate(phone["explorables"])
            if e["right"] > min(phone["W"], e["column"]) + 0.5 or e["scroll"] > 0
        ]
        return out

    message = _each(survey, wide)
    assert message.startswith("0 "), message


def test_explorable_text_is_readable_on_a_phone(survey):
    """At 390 px, the smallest text of every explorable's frame is >= MIN_TEXT_PX CSS px, and the frame has
    >= 1.5 pixels per CSS pixel. Each frame set records its smallest and largest text, in its own pixels,
    in data-text-px (measured from the figure's text when it was drawn)."""

    def small(name, m):
        out = []
        for k, e in enumerate(m["phone"]["explorables"]):
            if not e["text"]:
                out.append(f"explorable {k} records no text size (data-text-px)")
                continue
            text = e["text"][0] * e["css"] / e["natural"]
            if text < MIN_TEXT_PX:
                out.append(f"explorable {k}: smallest text {text:.1f} CSS px")
            if e["natural"] < 1.5 * e["css"]:
                out.append(f"explorable {k}: {e['natural']} px shown at {e['css']:.0f} CSS px")
        return out

    message = _each(survey, small)
    assert message.startswith("0 "), message


def test_explorables_fill_the_column_on_a_desktop(survey):
    """At 1366 px, every explorable's frame is >= 95% of its column wide, with >= 1.5 pixels per CSS pixel,
    and its largest text is <= MAX_TEXT_PX CSS px."""

    def narrow(name, m):
        out = []
        for k, e in enumerate(m["desktop"]["explorables"]):
            if e["css"] < 0.95 * e["columnWidth"]:
                out.append(f"explorable {k} is {e['css']:.0f} CSS px wide in a {e['columnWidth']:.0f} px column")
            if e["natural"] < 1.5 * e["css"]:
                out.append(f"explorable {k}: {e['natural']} px shown at {e['css']:.0f} CSS px")
            if not e["text"]:
                out.append(f"explorable {k} records no text size (data-text-px)")
            elif e["text"][1] * e["css"] / e["natural"] > MAX_TEXT_PX:
                out.append(f"explorable {k}: largest text {e['text'][1] * e['css'] / e['natural']:.1f} CSS px")
        return out

    message = _each(survey, narrow)
    assert message.startswith("0 "), message


def test_printed_lines_are_not_cut_off(survey):
    def cut(name, m):
        return [f"{v}: {text!r}" for v in ("desktop", "phone") for text in m[v]["outputs"]]

    message = _each(survey, cut)
    assert message.startswith("0 "), message


def test_one_search_box_on_a_desktop(survey):
    message = _each(
        survey, lambda n, m: [f"{m['desktop']['searches']} search boxes"] if m["desktop"]["searches"] > 1 else []
    )
    assert message.startswith("0 "), message


def test_no_part_twice_in_the_sidebar(survey):
    def twice(name, m):
        sidebar = m["desktop"]["sidebar"]
        return [
            f"{part!r} {sidebar.count(part)} times"
            for part in ("Part I:", "Part II:", "Part III:")
            if sidebar.count(part) > 1
        ]

    message = _each(survey, twice)
    assert message.startswith("0 "), message


def test_no_authoring_markers_visible(survey):
    """Fails until the exercise pages hide their scaffolding (issue 14, item 6: another branch)."""

    def markers(name, m):
        text = m["desktop"]["allText"]  # code cells included: that is where scaffolding shows
        return [marker for marker in MARKERS if marker in text]

    message = _each(survey, markers)
    assert message.startswith("0 "), message


def test_no_two_pages_with_the_same_title(survey):
    """Fails until exercises and solutions are titled apart (issue 14, item 6: another branch)."""
    titles = {}
    for name, m in survey.items():
        if name in content_pages():
            titles.setdefault(m["desktop"]["title"], []).append(name)
    same = {title: names for title, names in titles.items() if len(names) > 1}
    assert not same, f"{len(same)} titles used by several pages: " + "; ".join(f"{t!r}: {n}" for t, n in same.items())


@pytest.mark.parametrize("name", ["book/intro.html", "chapters/01_principles/03_adagrad.html"])
def test_sidebar_toggles_open_their_sidebars_on_a_phone(browser, server, name):
    if not (HTML / name).exists():
        _missing(f"{name} is not in the build")
    page, errors = open_page(browser, server, name, PHONE)
    try:
        on_screen = (
            "s => { const el = document.querySelector(s); if (!el) return false;"
            " const r = el.getBoundingClientRect(); const st = getComputedStyle(el);"
            " return st.visibility !== 'hidden' && st.display !== 'none' && r.width > 150 && r.left >= -1"
            " && r.left < window.innerWidth - 150; }"
        )
        for toggle, sidebar in (
            (".primary-toggle", ".bd-sidebar-primary"),
            (".secondary-toggle", ".bd-sidebar-secondary"),
        ):
            assert not page.evaluate(on_screen, sidebar), f"{name}: {sidebar} is open before its toggle is pressed"
            buttons = page.locator(toggle)
            shown = [i for i in range(buttons.count()) if buttons.nth(i).is_visible()]
            assert shown, f"{name}: no visible {toggle} on a phone"
            buttons.nth(shown[0]).click()
            page.wait_for_timeout(600)
            assert page.evaluate(on_screen, sidebar), f"{name}: pressing {toggle} does not open {sidebar}"
            page.keyboard.press("Escape")
            page.mouse.click(PHONE["width"] - 5, PHONE["height"] // 2)  # close it (click outside)
            page.wait_for_timeout(600)
        assert not errors, f"{name}: JavaScript exceptions: {errors}"
    finally:
        page.context.close()


def test_primary_toggle_hides_the_sidebar_on_a_desktop(browser, server):
    page, errors = open_page(browser, server, "book/intro.html", DESKTOP)
    try:
        width = (
            "() => { const el = document.querySelector('.bd-sidebar-primary');"
            " return el ? el.getBoundingClientRect().width * (getComputedStyle(el).visibility !== 'hidden') : 0; }"
        )
        assert page.evaluate(width) > 100
        buttons = page.locator(".primary-toggle")
        shown = [i for i in range(buttons.count()) if buttons.nth(i).is_visible()]
        assert shown, "no visible sidebar toggle on a desktop"
        buttons.nth(shown[0]).click()
        page.wait_for_timeout(600)
        assert page.evaluate(width) < 10, "pressing the sidebar toggle on a desktop does not hide the sidebar"
    finally:
        page.context.close()


class _Links(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        for key in ("href", "src") if tag in ("a", "img", "script", "link") else ():
            if attrs.get(key):
                self.hrefs.append(attrs[key])


@functools.cache
def _parse(path):
    parser = _Links()
    parser.feed(path.read_text(errors="replace"))
    return parser


def test_no_broken_relative_links_or_anchors():
    if not HTML.exists():
        _missing("the book is not built: run `make book` first")
    broken = []
    for name in pages():
        source = HTML / name
        for href in _parse(source).hrefs:
            url = urllib.parse.urlparse(href)
            if url.scheme or href.startswith(("//", "mailto:", "javascript:", "data:")):
                continue
            target = (source.parent / urllib.parse.unquote(url.path)).resolve() if url.path else source
            if target.is_dir():
                target = target / "index.html"
            if not target.exists():
                broken.append(f"{name}: {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in _parse(target).ids:
                broken.append(f"{name}: {href} (no such anchor)")
    assert not broken, f"{len(broken)} broken link(s):\n" + "\n".join(broken[:40])


AUTHOR_YEAR = re.compile(r"^[^\W\d][^,\[\]]*, (\d{4}[a-z]?|n\.d\.)$")


def test_one_citation_style_in_the_text_and_the_list():
    """The list's labels are the text's citations ("Kingma and Ba, 2015"), and every listed work is cited or
    under "Further reading"."""
    references = HTML / "book" / "references.html"
    if not references.exists():
        _missing("the book is not built: run `make book` first")
    source = references.read_text()
    labels = re.findall(r'<span class="label"><span class="fn-bracket">\[</span>(.*?)<span', source)
    assert labels, "no labelled references in the list"
    bad = [label for label in labels if not AUTHOR_YEAR.match(label)]
    assert not bad, f"labels not in the text's author-year style: {bad[:10]}"
    cited = set()
    for name in pages():
        cited |= set(re.findall(r'href="[^"]*references\.html#([\w-]+)"', (HTML / name).read_text()))
    further = source.find('id="further-reading"')
    listed = re.findall(r'<div class="citation" id="([\w-]+)"', source[: further if further > 0 else None])
    uncited = [anchor for anchor in listed if anchor not in cited]
    assert not uncited, f"{len(uncited)} works listed under References but cited nowhere: {uncited[:10]}"
