"""The self-check widget in a real browser: JupyterLab + headless Chromium, driven by Playwright.

Answers one question wrong, then right, and a numeric question right, and reads the feedback
the learner sees; checks that the live widget, not its static fallback, is what JupyterLab shows.
"""

import re

import nbformat

from browser_support import chromium_page, jupyter_lab, processes_mentioning, run_all_in_lab

QUIZ = '''from course_tools.selfcheck import Choice, Question, SelfCheck
SelfCheck([
    Question("Which tokens does masked SFT learn from?", choices=[
        Choice("every token", False, "The prompt tokens are labelled -100."),
        Choice("the response tokens", True, "Only they carry labels."),
    ]),
    Question("How many choices had the first question?", answer=2, why="Two: A and B."),
])'''


def _notebook(path):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(QUIZ)]
    nbformat.write(nb, path)


def test_selfcheck_in_jupyterlab(tmp_path):
    _notebook(tmp_path / "quiz.ipynb")
    with jupyter_lab(tmp_path) as server, chromium_page() as page:
        run_all_in_lab(page, server, "quiz.ipynb")
        questions = page.locator(".selfcheck .selfcheck-question")
        questions.first.wait_for(timeout=90_000)
        assert questions.count() == 2
        assert page.locator(".selfcheck-static").count() == 0     # the live widget, not the fallback

        first, second = questions.nth(0), questions.nth(1)
        first.get_by_role("button", name="Check").click()
        first.locator(".selfcheck-feedback", has_text="Pick or type an answer first").wait_for(timeout=30_000)
        first.get_by_label(re.compile(r"^[AB]\. every token$")).check()
        first.get_by_role("button", name="Check").click()
        first.locator(".selfcheck-feedback", has_text="Not quite").wait_for(timeout=30_000)
        assert "labelled -100" in first.locator(".selfcheck-feedback").inner_text()

        first.get_by_label(re.compile(r"^[AB]\. the response tokens$")).check()
        first.get_by_role("button", name="Check").click()
        first.locator(".selfcheck-feedback", has_text="Right").wait_for(timeout=30_000)
        feedback = first.locator(".selfcheck-feedback").inner_text()
        assert "Only they carry labels." in feedback and re.search(r"[AB] \(wrong\): The prompt tokens", feedback)

        second.locator("input").fill("2")
        second.get_by_role("button", name="Check").click()
        second.locator(".selfcheck-feedback", has_text="Right").wait_for(timeout=30_000)
    assert not processes_mentioning(str(tmp_path)), "a process started by the test is still running"
