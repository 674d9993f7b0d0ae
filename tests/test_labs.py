"""The graded labs: labs/ is generated from solutions/, and grading cannot be fooled.

Every lab in solutions/ is checked the same way (no per-lab test code): the solution
earns full marks, the untouched student version earns 0, a half-done one earns partial
marks. The tamper cases run on lab1_sft.
"""

import json
import re
from pathlib import Path

import nbformat
import pytest

from course_utils import grading

REPO = Path(__file__).resolve().parent.parent
LABS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir())
TAMPER_LAB = "lab1_sft"  # explicit: sorting would put lab10_* first


def _cells(path: Path) -> list[tuple]:
    """What matters in a notebook: cell types, sources and nbgrader metadata."""
    nb = nbformat.read(path, as_version=4)
    return [(c.cell_type, c.source, json.dumps(c.metadata.get("nbgrader", {}), sort_keys=True))
            for c in nb.cells]


def test_there_are_labs():
    assert len(LABS) >= 2, LABS
    for lab in LABS:
        assert (REPO / "solutions" / lab / f"{lab}.ipynb").exists()


@pytest.mark.parametrize("lab", LABS)
def test_committed_lab_is_generated_from_its_solution(lab, tmp_path):
    grading.labs(out=tmp_path)
    fresh = tmp_path / lab / f"{lab}.ipynb"
    committed = REPO / "labs" / lab / f"{lab}.ipynb"
    assert committed.exists(), f"run `make labs`: {committed.relative_to(REPO)} is missing"
    assert _cells(fresh) == _cells(committed), f"labs/{lab} differs from solutions/{lab}: run `make labs`"


@pytest.mark.parametrize("lab", LABS)
def test_lab_opens_with_what_how_long_and_how_to_check(lab):
    nb = nbformat.read(REPO / "labs" / lab / f"{lab}.ipynb", as_version=4)
    intro = nb.cells[0].source
    for words in ("What you practise", "Time", "How to check your work", "Points"):
        assert words in intro, f"{lab}: the first cell should say {words!r}"
    text = "\n".join(c.source for c in nb.cells)
    assert "BEGIN HIDDEN TESTS" not in text and "BEGIN SOLUTION" not in text
    assert "raise NotImplementedError()" in text
    sol = "\n".join(c.source for c in nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4).cells)
    assert "### BEGIN HIDDEN TESTS" in sol and "### BEGIN SOLUTION" in sol
    points = [c.metadata["nbgrader"]["points"] for c in nb.cells
              if c.metadata.get("nbgrader", {}).get("grade")]
    assert points and all(p > 0 for p in points)


# ---------------------------------------------------------------------------------
# Submissions: built from the solution and the generated lab, then graded once
# ---------------------------------------------------------------------------------
def _strip_solution(source: str) -> str:
    return re.sub(r"^\s*### (BEGIN|END) SOLUTION\n", "", source, flags=re.M)


def _lab(lab: str):
    return nbformat.read(REPO / "labs" / lab / f"{lab}.ipynb", as_version=4)


def _solution_sources(lab: str) -> dict[str, str]:
    nb = nbformat.read(REPO / "solutions" / lab / f"{lab}.ipynb", as_version=4)
    return {c.metadata["nbgrader"]["grade_id"]: _strip_solution(c.source) for c in nb.cells
            if c.metadata.get("nbgrader", {}).get("solution")}


def _solved(lab: str, how_many: int | None = None):
    """The student version with the first ``how_many`` solution cells filled in (all if None)."""
    nb, sol = _lab(lab), _solution_sources(lab)
    ids = [c.metadata["nbgrader"]["grade_id"] for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    for c in nb.cells:
        gid = c.metadata.get("nbgrader", {}).get("grade_id")
        if gid in ids[: how_many if how_many is not None else len(ids)] and gid in sol:
            c.source = sol[gid]
    return nb


def _first_solution_cell(nb):
    return next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution"))


def _tampered() -> dict[str, object]:
    """Submissions for TAMPER_LAB that try to earn points they have not earned."""
    subs: dict[str, object] = {}
    nb = _lab(TAMPER_LAB)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("grade"):
            c.source = "pass"
    subs["edited-tests"] = nb
    nb = _lab(TAMPER_LAB)
    nb.cells = [c for c in nb.cells if not c.metadata.get("nbgrader", {}).get("grade")]
    subs["deleted-tests"] = nb
    for name, code in {
        "patched-numpy": "import numpy.testing\nnumpy.testing.assert_allclose = lambda *a, **k: None\n",
        "patched-torch": "torch.equal = lambda *a, **k: True\ntorch.allclose = lambda *a, **k: True\n",
        "patched-assert": "import builtins\nbuiltins.AssertionError = KeyboardInterrupt\n",
        "sys-exit": "import sys\nsys.exit(0)\n",
        "os-exit": "import os\nos._exit(0)\n",
        "getattr-exit": "import os\ngetattr(os, '_exit')(0)\n",
        "infinite-loop": "while True:\n    pass\n",
    }.items():
        nb = _lab(TAMPER_LAB)
        cell = _first_solution_cell(nb)
        cell.source = code + cell.source
        subs[name] = nb
    return subs


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("grading")
    subs = root / "submissions"

    def put(student: str, lab: str, nb_or_text) -> None:
        d = subs / student / lab
        d.mkdir(parents=True, exist_ok=True)
        if isinstance(nb_or_text, str):
            (d / f"{lab}.ipynb").write_text(nb_or_text)
        else:
            nbformat.write(nb_or_text, d / f"{lab}.ipynb")

    for lab in LABS:
        put("full", lab, _solved(lab))
        put("untouched", lab, _lab(lab))
        put("partial", lab, _solved(lab, 1))
    for student, nb in _tampered().items():
        put(student, TAMPER_LAB, nb)
    put("not-json", TAMPER_LAB, '{"cells": [ this is not json')
    results = grading.grade(subs, workdir=root / "work", timeout=20)
    return {(r.student, r.lab): r for r in results}, root / "work"


@pytest.mark.parametrize("lab", LABS)
def test_solution_earns_full_marks(graded, lab):
    r = graded[0][("full", lab)]
    assert r.max_score > 0 and r.score == r.max_score, (r.score, r.max_score, r.notes)


@pytest.mark.parametrize("lab", LABS)
def test_untouched_lab_earns_nothing(graded, lab):
    r = graded[0][("untouched", lab)]
    assert r.score == 0, (r.score, r.notes)


@pytest.mark.parametrize("lab", LABS)
def test_half_done_lab_earns_partial_marks(graded, lab):
    r = graded[0][("partial", lab)]
    assert 0 < r.score < r.max_score, (r.score, r.max_score, r.notes)


@pytest.mark.parametrize("student, reason", [
    ("edited-tests", "was edited"),
    ("deleted-tests", "was missing"),
    ("patched-numpy", "assigns to numpy.testing.assert_allclose"),
    ("patched-torch", "assigns to torch.equal"),
    ("patched-assert", "builtins"),
    ("sys-exit", "calls sys.exit()"),
    ("os-exit", "calls os._exit()"),
    ("getattr-exit", "calls getattr()"),
    ("infinite-loop", "CellTimeoutError"),
    ("not-json", "not a valid notebook"),
])
def test_tampering_earns_nothing_and_the_report_says_why(graded, student, reason):
    r = graded[0][(student, TAMPER_LAB)]
    assert r.score == 0, (student, r.score, r.notes)
    assert any(reason in n for n in r.notes), (student, r.notes)


def test_grading_writes_csv_report_and_feedback(graded):
    results, work = graded
    grades = (work / "grades.csv").read_text()
    assert "full" in grades and "untouched" in grades
    report = (work / "report.csv").read_text()
    assert report.count("\n") == len(results) + 1
    html = work / "feedback" / "full" / TAMPER_LAB / f"{TAMPER_LAB}.html"
    assert html.exists() and "Score" in html.read_text()


def test_grading_refuses_a_workdir_inside_the_repo(tmp_path):
    with pytest.raises(ValueError, match="outside the repository"):
        grading.grade(tmp_path, workdir=REPO / "gradebook")


def test_guard_reasons():
    check = grading.check_student_code
    assert check("def f(x):\n    return x + 1\n", {"np", "torch"}) == []
    assert check("x = torch.zeros(3)\nx[0] = 1\n", {"torch"}) == []
    assert check("np = None", {"np"}) == ["line 1: rebinds np, which a locked cell imports"]
    assert check("torch.nn.functional.cross_entropy = f", {"torch"}) == [
        "line 1: assigns to torch.nn.functional.cross_entropy"]
    assert check("exec('1')", set()) == ["line 1: calls exec()"]
    assert check("x.__class__", set()) == ["line 1: uses x.__class__"]
    assert check("super().__init__()", set()) == []


def test_guard_allows_reimporting_the_same_module():
    check = grading.check_student_code
    locked = {"np": "numpy", "torch": "torch", "LoraConfig": "peft.LoraConfig"}
    assert check("import numpy as np\nimport torch\nfrom peft import LoraConfig\n", locked) == []
    assert check("import torch as np\n", locked) == ["line 1: rebinds np, which a locked cell imports"]
    assert check("def LoraConfig(**kw):\n    return kw\n", locked) == [
        "line 1: rebinds LoraConfig, which a locked cell imports"]
