"""Issue 34: grading as a first-time instructor meets it. A solution edited after hand-out
is not student tampering; ``only`` grades one lab, with a line per submission; grades.csv
lists the graded labs in natural order; feedback names the error a test cell stopped with
and marks the checks after it as not run.

One grading of lab 1 (a two-lab source, ``only=[lab 1]``) whose intro text the instructor
changed after the students got it.
"""

import contextlib
import csv
import io
import os
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from course_tools import grading, sandbox
from course_tools.grading.plan import RELEASED, record_release
from course_tools.grading.reports import export_grades, labs_to_grade
from test_labs import REPO, TAMPER_LAB, _lab, _solved

pytestmark = pytest.mark.skipif(sandbox.available() is not None, reason=f"{sandbox.available()} (make sandbox)")

LAB, OTHER = TAMPER_LAB, "lab2_lora"
CHANGED = "part4-text"  # a locked markdown cell the instructor corrects after hand-out


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("instructor")
    source = root / "source"
    for lab in (LAB, OTHER):
        shutil.copytree(REPO / "solutions" / lab, source / lab)
    # the versions handed out so far, then a correction of one locked cell
    (source / RELEASED).mkdir()
    record_release(_lab(LAB), source / RELEASED / f"{LAB}.json")
    path = source / LAB / f"{LAB}.ipynb"
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == CHANGED)
    cell.source += "\n\n(Corrected after hand-out.)"
    nbformat.write(nb, path)
    subs = root / "subs"
    for student, lab, notebook in [("full", LAB, _solved(LAB)), ("untouched", LAB, _lab(LAB)),
                                   ("full", OTHER, _solved(OTHER))]:
        (subs / student / lab).mkdir(parents=True)
        nbformat.write(notebook, subs / student / lab / f"{lab}.ipynb")
    edited = _solved(LAB)
    next(c for c in edited.cells if c.metadata.get("nbgrader", {}).get("grade_id") == CHANGED).source = "mine now"
    (subs / "edited" / LAB).mkdir(parents=True)
    nbformat.write(edited, subs / "edited" / LAB / f"{LAB}.ipynb")
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        results = grading.grade(subs, workdir=root / "work", source=source, timeout=60, only=[LAB])
    return {(r.student, r.lab): r for r in results}, root / "work", err.getvalue()


def test_a_cell_changed_after_hand_out_is_not_tampering(graded):
    results = graded[0]
    full, edited = results[("full", LAB)], results[("edited", LAB)]
    assert full.score == full.max_score, full.notes
    assert not any("was edited" in n for n in full.notes), full.notes
    assert any(f"locked cell {CHANGED!r} is from an earlier version" in n for n in full.notes), full.notes
    assert any(f"locked cell {CHANGED!r} was edited" in n for n in edited.notes), edited.notes


def test_only_the_named_lab_is_graded_with_a_line_per_submission(graded):
    results, _, err = graded
    assert results[("full", OTHER)].notes == [f"not graded in this run (only {LAB})"]
    for student in ("full", "untouched", "edited"):
        assert any(line.startswith(f"{student} {LAB}: ") for line in err.splitlines()), err
    assert f"{LAB}: the source passes its tests" in err


def test_grades_csv_lists_only_the_graded_labs(graded):
    rows = list(csv.DictReader(open(graded[1] / "grades.csv")))
    assert {r["assignment"] for r in rows} == {LAB}
    assert [r["student_id"] for r in rows] == ["edited", "full", "untouched"]


def test_feedback_names_the_error_and_what_did_not_run(graded):
    html = (graded[1] / "feedback" / "untouched" / LAB / f"{LAB}.html").read_text()
    assert "the test cell stopped with <code>NotImplementedError</code>" in html
    assert "did not run (the error came first)" in html
    assert "visible check 1 failed" not in html  # nothing ran, so nothing failed


def test_grades_csv_sorts_labs_naturally(tmp_path, monkeypatch):
    from nbgrader.api import Gradebook

    # a new gradebook runs nbgrader's migrations with the `alembic` command of this environment
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")

    db = f"sqlite:///{tmp_path / 'gradebook.db'}"
    with Gradebook(db) as gb:
        for name in ("lab10_x", "lab2_x", "lab1_x"):
            gb.add_assignment(name)
        gb.add_student("s10")
        gb.add_student("s9")
    export_grades(db, tmp_path / "grades.csv")
    rows = list(csv.DictReader(open(tmp_path / "grades.csv")))
    assert [(r["assignment"], r["student_id"]) for r in rows] == [
        (a, s) for a in ("lab1_x", "lab2_x", "lab10_x") for s in ("s9", "s10")]
    assert all(r["submitted"] == "no" for r in rows)


def test_only_submitted_or_named_labs_are_graded():
    labs = ["lab10_x", "lab2_x", "lab1_x"]
    assert labs_to_grade(labs, {"lab2_x"}) == ["lab2_x"]  # nobody handed in lab1 or lab10
    assert labs_to_grade(labs, set(), all_labs=True) == ["lab1_x", "lab2_x", "lab10_x"]
    assert labs_to_grade(labs, {"lab2_x"}, only=["lab10_x", "lab1_x"]) == ["lab1_x", "lab10_x"]
    with pytest.raises(FileNotFoundError, match="no lab lab3_x .*labs: lab1_x, lab2_x, lab10_x"):
        labs_to_grade(labs, set(), only=["lab3_x"])
