"""Class mode in a real browser: chapter 09's widget in JupyterLab, labelling through the class server.

A class server runs in its own process; a notebook points the widget at it with a ClassStore;
headless Chromium clicks through pairs (an undo included); the room's store must then hold
exactly those labels, under the participant's name.
"""

import json

import nbformat

from browser_support import chromium_page, jupyter_lab, processes_mentioning, run_all_in_lab
from course_tools.classroom.dashboard import Room
from course_tools.classroom.simulate import ServerProcess, synthetic_pairs

PAIRS = synthetic_pairs(4)
CODE = "otter-2468"


def _notebook(path, url, state):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(
        "from course_utils.alignment.class_store import ClassStore\n"
        "from course_utils.alignment.labeling import PreferenceWidget\n"
        f"store = ClassStore({url!r}, labeler='ana', code={CODE!r}, state_dir={str(state)!r})\n"
        "PreferenceWidget(store.pairs(), store)")]
    nbformat.write(nb, path)


def _wait_progress(page, text):
    page.locator(".preference-progress", has_text=text).wait_for(timeout=30_000)


def test_the_widget_labels_for_the_class_in_jupyterlab(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    with ServerProcess(tmp_path / "room", CODE, tmp_path / "pairs.jsonl") as server:
        _notebook(tmp_path / "class.ipynb", server.url, tmp_path / "ana")
        with jupyter_lab(tmp_path) as lab, chromium_page() as page:
            run_all_in_lab(page, lab, "class.ipynb")
            page.get_by_role("button", name="A is better").wait_for(timeout=90_000)
            _wait_progress(page, "0 of 4 judged")
            page.get_by_role("button", name="A is better").click()      # sim0000: A
            _wait_progress(page, "1 of 4 judged")
            page.get_by_role("button", name="B is better").click()      # sim0001: B
            _wait_progress(page, "2 of 4 judged")
            page.get_by_role("button", name="Undo").click()             # take sim0001 back
            _wait_progress(page, "1 of 4 judged")
            page.get_by_role("button", name="Tie").click()              # sim0001: tie
            _wait_progress(page, "2 of 4 judged")
    room = Room.open(tmp_path / "room")
    assert [(r["labeler"], r["pair_id"], r["judgement"]) for r in room.rows] == [
        ("ana", "sim0000", "prefer"), ("ana", "sim0001", "prefer"), ("ana", "sim0001", "undo"),
        ("ana", "sim0001", "tie")]
    assert room.rows[1]["chosen"] == PAIRS[1]["b"] and room.rows[0]["chosen"] == PAIRS[0]["a"]
    assert not processes_mentioning(str(tmp_path)), "a process started by the test is still running"
