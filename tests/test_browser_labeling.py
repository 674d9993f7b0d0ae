"""The preference widget in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Clicks through several pairs (including an undo and a keyboard shortcut), then checks the
JSONL file row by row; then reloads the page on a fresh kernel and checks that labeling
resumes at the first unjudged pair without duplicating any label.
"""

import json

import nbformat

from browser_support import chromium_page, jupyter_lab, processes_mentioning, run_all_in_lab

PAIRS = [{"pair_id": f"p{i}", "prompt": f"Write a sentence about a {s}.",
          "a": f"The happy {s} runs.", "b": f"The sad {s} sleeps."}
         for i, s in enumerate(["dog", "cat", "cup", "bird", "boat"])]


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from course_utils.alignment.feedback import PreferenceStore\n"
        "from course_utils.alignment.labeling import PreferenceWidget\n"
        f"pairs = {json.dumps(PAIRS)}\n"
        "PreferenceWidget(pairs, PreferenceStore('labels.jsonl', labeler='tester'))")]
    nbformat.write(nb, path)


def _open_and_run(page, server):
    run_all_in_lab(page, server, "label.ipynb")
    page.get_by_role("button", name="A is better").wait_for(timeout=90_000)


def _progress(page):
    return page.locator(".preference-progress").inner_text()


def _wait_progress(page, text):
    page.locator(".preference-progress", has_text=text).wait_for(timeout=30_000)


def _wait_prompt(page, pair_id):
    """The prompt shown is pair ``pair_id``'s. The progress count and the prompt are separate
    widgets, updated by separate messages: wait for this one too, do not read it at once."""
    page.locator(".preference-prompt", has_text=f"({pair_id})").wait_for(timeout=30_000)


def test_widget_in_jupyterlab(tmp_path):
    _notebook(tmp_path / "label.ipynb")
    labels = tmp_path / "labels.jsonl"
    with jupyter_lab(tmp_path) as server, chromium_page() as page:
        _open_and_run(page, server)
        _wait_progress(page, "0 of 5 judged")
        _wait_prompt(page, "p0")

        page.get_by_role("button", name="A is better").click()      # p0: A
        _wait_progress(page, "1 of 5 judged")
        page.get_by_role("button", name="B is better").click()      # p1: B
        _wait_progress(page, "2 of 5 judged")
        page.get_by_role("button", name="Undo").click()             # take p1 back
        _wait_progress(page, "1 of 5 judged")
        _wait_prompt(page, "p1")
        page.get_by_role("button", name="Tie").click()              # p1: tie
        _wait_progress(page, "2 of 5 judged")
        keys = page.locator(".preference-keys input")
        keys.click()
        keys.press("s")                                              # p2: skip, from the keyboard
        _wait_progress(page, "3 of 5 judged")
        keys.press("b")                                              # p3: B, from the keyboard
        _wait_progress(page, "4 of 5 judged")
        _wait_prompt(page, "p4")

        rows = [json.loads(line) for line in labels.read_text().splitlines()]
        got = [(r["pair_id"], r["judgement"], r["chosen"]) for r in rows]
        assert got == [("p0", "prefer", PAIRS[0]["a"]), ("p1", "prefer", PAIRS[1]["b"]),
                       ("p1", "undo", PAIRS[1]["b"]), ("p1", "tie", PAIRS[1]["a"]),
                       ("p2", "skip", PAIRS[2]["a"]), ("p3", "prefer", PAIRS[3]["b"])]
        assert {r["labeler"] for r in rows} == {"tester"} and {r["source"] for r in rows} == {"human"}
        assert rows[0]["rejected"] == PAIRS[0]["b"] and rows[-1]["rejected"] == PAIRS[3]["a"]

        # Resume: restart the kernel, run again -> the widget opens at p4, nothing is rewritten
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs')")
        page.locator(".preference-widget").wait_for(state="detached", timeout=30_000)
        page.evaluate("async () => { const ctx = window.jupyterapp.shell.currentWidget.sessionContext;"
                      " await ctx.session.kernel.restart(); await ctx.ready; }")
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        _wait_progress(page, "4 of 5 judged")
        _wait_prompt(page, "p4")
        page.get_by_role("button", name="A is better").click()      # p4: A
        _wait_progress(page, "5 of 5 judged")
        rows = [json.loads(line) for line in labels.read_text().splitlines()]
        assert len(rows) == 7 and rows[-1]["pair_id"] == "p4"
    assert not processes_mentioning(str(tmp_path)), "a process started by the test is still running"
