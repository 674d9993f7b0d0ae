"""The course website (`make book`): built offline, then opened page by page in headless Chromium.

Every page is checked for typeset math (MathJax containers, no TeX error, no TeX source
left in the text), its figures (each PNG output of the notebook loaded as an image), the
navigation (every chapter, by title, in the sidebar), the static progress bars, no
JavaScript error, and no request to anything but the local server.
"""

import functools
import http.server
import re
import threading
from pathlib import Path

import nbformat
import pytest

from browser_support import chromium_page, free_port
from course_tools.book import WIDGET_VIEW, build, static_widgets

ROOT = Path(__file__).resolve().parent.parent
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


def _title(nb) -> str:
    for cell in nb.cells:
        for line in cell.source.splitlines() if cell.cell_type == "markdown" else []:
            if line.startswith("# "):
                return line[2:].strip()
    raise AssertionError("a chapter without a '# ' title")


def _expected(path: Path) -> dict:
    """What the page of the notebook at ``path`` must show, counted from the notebook."""
    nb = nbformat.read(path, as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    views = [o["data"][WIDGET_VIEW]["model_id"] for o in outputs if WIDGET_VIEW in o.get("data", {})]
    states = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json",
                                                  {}).get("state", {})
    bars = sum(1 for m in views if states.get(m, {}).get("model_name") == "HBoxModel"
               and len(states[m]["state"].get("children", [])) == 3)
    return {"title": _title(nb),
            "display_math": markdown.count("$$") // 2,
            "has_math": "$" in markdown,
            "figures": sum("image/png" in o.get("data", {}) for o in outputs),
            "bars": bars,
            "quiz_questions": sum(o["data"]["text/html"].count("<details>") for o in outputs
                                  if "selfcheck-static" in str(o.get("data", {}).get("text/html", "")))}


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site") / "book"
    index = build(out, src=out.parent / "book-src")
    return index.parent


@pytest.fixture(scope="module")
def server(site):
    """The built site served on 127.0.0.1 (how an instructor would host it)."""
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(site))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_static_widgets_turns_a_tqdm_bar_into_html():
    nb = nbformat.v4.new_notebook()
    state = {
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "PPO: 100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 50.0, "max": 50.0}},
        "r": {"model_name": "HTMLModel", "state": {"value": " 50/50 [00:37&lt;00:00]"}},
        "slider": {"model_name": "FloatSliderModel", "state": {}},
    }
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": state}}
    view = lambda mid: nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"model_id": mid, "version_major": 2}, "text/plain": "HBox(...)"})
    cell = nbformat.v4.new_code_cell("x")
    cell.outputs = [view("bar"), view("slider"), view("gone")]
    nb.cells = [cell]
    assert static_widgets(nb) == 3
    bar, slider, gone = (o["data"] for o in cell.outputs)
    assert set(bar) == {"text/html"}
    assert "<progress value='50.0' max='50.0'>" in bar["text/html"]
    assert "PPO: 100%" in bar["text/html"] and "00:37&lt;00:00" in bar["text/html"]
    assert "interactive FloatSlider widget" in slider["text/html"]
    assert "run the notebook" in gone["text/html"]
    assert "widgets" not in nb.metadata


def test_the_site_has_every_chapter_and_no_remote_asset(site):
    pages = sorted((site / "chapters").glob("*.html"))
    assert [p.stem for p in pages] == [c.stem for c in CHAPTERS]
    for page in pages:
        text = page.read_text()
        remote = re.findall(r'<(?:script|link|img)[^>]+(?:src|href)="(https?://[^"]+)"', text)
        assert not remote, f"{page.name} loads {remote}"
        assert "application/vnd.jupyter.widget-view+json" not in text
    assert (site / "_static" / "mathjax" / "tex-chtml.js").is_file()


def test_folded_exercise_outputs_stay_folded_on_the_site(site):
    """A predict-then-run reveal and a measured answer (tag ``hide-output``) sit behind a toggle."""
    for chapter in CHAPTERS:
        nb = nbformat.read(chapter, as_version=4)
        folded = sum("hide-output" in c.metadata.get("tags", []) for c in nb.cells)
        page = (site / "chapters" / f"{chapter.stem}.html").read_text()
        assert len(re.findall(r'class="[^"]*\btag_hide-output\b', page)) == folded, chapter.name
        assert folded == 0 or "togglebutton" in page, f"{chapter.name}: no toggle script"


def test_every_page_in_a_browser(server):
    outside, errors, served, quizzed = [], [], [], []

    def route(r):
        url = r.request.url
        if url.startswith(server + "/") or url.startswith("data:"):
            served.append(url)
            r.continue_()
        else:  # anything else would leave the machine: record it and refuse it
            outside.append(url)
            r.abort()

    with chromium_page() as page:
        page.on("pageerror", lambda e: errors.append(f"{page.url}: {e}"))
        page.on("console", lambda m: m.type == "error" and errors.append(f"{page.url}: {m.text}"))
        page.route("**/*", route)
        page.goto(server + "/index.html")
        page.wait_for_url("**/chapters/00_welcome.html")
        for path in CHAPTERS:
            want = _expected(path)
            page.goto(f"{server}/chapters/{path.stem}.html")
            if want["has_math"]:  # Sphinx loads MathJax only on pages with math
                page.wait_for_function("() => window.MathJax?.startup?.promise")
            got = page.evaluate("""() => (window.MathJax?.startup?.promise ?? Promise.resolve()).then(() => {
                const article = document.querySelector('article');
                const clone = article.cloneNode(true);
                clone.querySelectorAll('pre, code, mjx-container').forEach(e => e.remove());
                return {
                    math: article.querySelectorAll('mjx-container').length,
                    display: article.querySelectorAll('mjx-container[display="true"]').length,
                    errors: article.querySelectorAll('mjx-merror').length,
                    tex_left: (clone.innerText.match(/\\$\\$|\\\\(frac|sum|theta|pi|beta|log|mathbb)\\b/g) || []),
                    images: [...article.querySelectorAll('img')].map(i => [i.src, i.naturalWidth]),
                    bars: article.querySelectorAll('progress').length,
                    quiz: [...article.querySelectorAll('.selfcheck-static details')]
                          .map(d => [d.open, d.querySelector('summary').checkVisibility(),
                                     [...d.children].filter(e => e.tagName !== 'SUMMARY')
                                                    .some(e => e.checkVisibility())]),
                    nav: [...document.querySelectorAll('nav.bd-docs-nav a.reference.internal')]
                          .map(a => [a.textContent.trim(), a.href]),
                };
            })""")
            name = path.stem
            if want["has_math"]:
                assert got["math"] > 0, f"{name}: no math typeset"
            assert got["display"] == want["display_math"], name
            assert got["errors"] == 0, f"{name}: MathJax could not typeset {got['errors']} formulas"
            assert got["tex_left"] == [], f"{name}: TeX source left on the page: {got['tex_left']}"
            assert len(got["images"]) == want["figures"], name
            assert all(width > 0 for _, width in got["images"]), f"{name}: a figure did not load"
            assert got["bars"] == want["bars"], name
            # the self-check questions in their static form: every answer closed, and hidden until opened
            assert len(got["quiz"]) == want["quiz_questions"], name
            assert all(q == [False, True, False] for q in got["quiz"]), f"{name}: an answer is visible: {got['quiz']}"
            if got["quiz"]:
                quizzed.append(name)
                answer = page.locator(".selfcheck-static details").first
                answer.locator("summary").click()
                assert answer.evaluate("d => d.open && [...d.children].some(e => e.tagName !== 'SUMMARY' "
                                       "&& e.checkVisibility())"), f"{name}: the answer does not open"
            titles = [t for t, _ in got["nav"]]
            assert titles == [_expected(c)["title"] for c in CHAPTERS], f"{name}: navigation"
            hrefs = [h.rsplit("/", 1)[-1].split("#")[0] for _, h in got["nav"]]
            assert hrefs == [c.stem + ".html" for c in CHAPTERS], f"{name}: navigation links"
    assert outside == [], f"requests that would leave the machine: {outside}"
    assert errors == []
    assert any("/_static/mathjax/output/chtml/fonts/" in u for u in served), "MathJax fonts not served"
    assert sum(want["figures"] for want in map(_expected, CHAPTERS)) >= 20
    assert quizzed == [c.stem for c in CHAPTERS if _expected(c)["quiz_questions"]] and quizzed


def test_the_site_opens_from_the_file_system(site):
    """Opened as files (double-click on index.html), math still typesets from local files."""
    urls = []
    with chromium_page() as page:
        page.on("request", lambda r: urls.append(r.url))
        page.goto((site / "index.html").as_uri())
        page.wait_for_url("**/chapters/00_welcome.html")
        page.goto((site / "chapters" / "01_core_concepts.html").as_uri())
        page.wait_for_function("() => window.MathJax?.startup?.promise")
        n = page.evaluate("() => MathJax.startup.promise.then(() => "
                          "document.querySelectorAll('mjx-container').length)")
    assert n > 0
    assert all(u.startswith(("file:", "data:")) for u in urls), [u for u in urls if "file:" not in u]
