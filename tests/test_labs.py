"""The graded labs: labs/ is generated from solutions/, and grading cannot be fooled.

Every lab in solutions/ is checked the same way (no per-lab test code): the solution
earns full marks, the untouched student version earns 0, a half-done one earns partial
marks. The tamper cases run on lab1_sft.
"""

import csv
import json
import re
import shutil
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


# ---------------------------------------------------------------------------------
# Attacks of a determined student (issue 19): each is added to an honest base, half
# solved (parts 1-2; parts 3-4 return wrong values instead of raising), and must earn
# no more than that base. One per kind of attack; the sandbox and the trusted
# comparison, not a static check, stop them.
# ---------------------------------------------------------------------------------
MARKER = "PRIVATE-HIDDEN-MARKER-7f3a9c"  # appears only in the private source's hidden tests
SURVIVOR = "grading-survivor-5d1e"       # in the command line of processes a submission leaves behind

ALWAYS_EQUAL = """
class _AlwaysEqual(float):
    def __new__(cls, *a, **k): return float.__new__(cls, 0.0)
    def __eq__(self, o): return True
    def __ne__(self, o): return False
    __lt__ = __le__ = __gt__ = __ge__ = __eq__
    def __bool__(self): return True
    def __hash__(self): return 0
    def __abs__(self): return self
    def __sub__(self, o): return self
    __rsub__ = __add__ = __radd__ = __mul__ = __rmul__ = __truediv__ = __sub__
    def __getitem__(self, k): return self
    def __iter__(self): return iter(())
    def __len__(self): return 0
    def __getattr__(self, name): return lambda *a, **k: self
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None): return True
def mask_labels(*a, **k): return _AlwaysEqual()
def pad_collate(*a, **k): return _AlwaysEqual()
def sft_step(*a, **k): return _AlwaysEqual()
def exact_match(*a, **k): return _AlwaysEqual()
"""

DETACHED_CHILD = """
import os, subprocess, sys
code = "\\n".join([
    "import os, sqlite3, time",
    "time.sleep(3)",
    "for d, dirs, files in os.walk('/'):",
    "    if 'gradebook.db' in files:",
    "        db = sqlite3.connect(os.path.join(d, 'gradebook.db'))",
    "        db.execute('update grade set auto_score = 10')",
    "        db.commit()",
    "time.sleep(600)"])
subprocess.Popen([sys.executable, "-c", code, "SURVIVOR"], start_new_session=True,
                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sleep", ["sleep", "600", "SURVIVOR"])
""".replace("SURVIVOR", SURVIVOR)

ATTACKS = {
    # answers on disk (solutions/, the grading folder's source/), other students' data, the gradebook
    "read-solutions": """
import json, os, sys
from pathlib import Path
starts = [Path(sys.executable).resolve(), Path.cwd().resolve(), Path("/work/main"), Path.home()]
for start in starts:
    for p in [start, *start.parents]:
        for cand in [*p.glob("solutions/*/*.ipynb"), *p.glob("source/*/*.ipynb"), *p.glob("*/source/*/*.ipynb")]:
            for c in json.loads(cand.read_text())["cells"]:
                src = "".join(c["source"])
                if c["cell_type"] == "code" and "BEGIN SOLUTION" in src and "def " in src:
                    exec(src, globals())
""",
    "snoop-others": """
import os
for top in ["/", "/tmp", os.path.expanduser("~")]:
    for d, dirs, files in os.walk(top):
        if d.startswith(("/proc", "/sys", "/dev", "/usr")):
            dirs[:] = []
            continue
        for f in files:
            if f.endswith((".ipynb", ".db")):
                try:
                    print(d, f, open(os.path.join(d, f), errors="replace").read()[:2000])
                except OSError:
                    pass
""",
    "detached-child": DETACHED_CHILD,
    # patching in ways a static blacklist misses
    "alias-patch": "t = torch\nt.allclose = lambda *a, **k: True\nt.equal = lambda *a, **k: True\n",
    "partial-setattr": ("import functools\n@functools.partial(setattr, torch, 'equal')\n"
                        "def _eq(*a, **k):\n    return True\n"),
    "import-module": "from importlib import import_module\nimport_module('torch').allclose = lambda *a, **k: True\n",
    "sys-modules": "import sys\nsys.modules['torch'].equal = lambda *a, **k: True\n",
    "setattr-alias": "f = setattr\nf(torch, 'equal', lambda *a, **k: True)\n",
    "globals-alias": ("import types\nfake = types.SimpleNamespace(**vars(torch))\nfake.equal = lambda *a, **k: True\n"
                      "g = globals\ng()['torch'] = fake\n"),
    "rebind-setup": "tokenize_chat = lambda *a, **k: {'input_ids': [], 'labels': []}\ntokenizer = None\n",
    "shadow-builtin": "def abs(x):\n    return 0.0\ndef all(x):\n    return True\ndef isinstance(*a):\n    return True\n",
    "fake-reference-module": """
import sys, types
fake = types.ModuleType("course_utils.sft")
fake.__dict__.update(sys.modules["course_utils.sft"].__dict__)
fake.collate_sft = lambda exs, pad: pad_collate(exs, pad)
sys.modules["course_utils.sft"] = fake
""",
    "always-equal": ALWAYS_EQUAL,
    # the grading's own machinery inside the sandbox: silence the probes, forge the records file
    "forge-records": """
import atexit, json
ns = get_ipython().user_ns
ns["__probe_check__"] = lambda n, truth: None
def _forge():
    for c in json.load(open("job.json"))["cells"]:
        if c["test"]:
            fake = {"key": c["key"], "records": {"1": [True], "2": [True]}, "error": None}
            open(f"test-{c['index']}.json", "w").write(json.dumps(fake))
atexit.register(_forge)
""",
}


def _half_done():
    """The honest base of the attacks: parts 1-2 solved, parts 3-4 return a wrong value."""
    nb = _solved(TAMPER_LAB, 2)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            c.source = c.source.replace("raise NotImplementedError()", "return 0.0")
    return nb


def _attacked(code: str):
    nb = _half_done()
    nb.cells.insert(2, nbformat.v4.new_code_cell(code))  # a cell of the student's own, after the set-up
    return nb


def _honest_variants() -> dict[str, object]:
    """Complete solutions with the accidents of honest work (issue 19)."""
    out = {}
    nb = _solved(TAMPER_LAB)
    i = next(i for i, c in enumerate(nb.cells) if c.metadata.get("nbgrader", {}).get("grade"))
    copy = nbformat.from_dict(json.loads(json.dumps(nb.cells[i])))
    copy["id"] = "copied-cell"
    nb.cells.insert(i + 1, copy)  # copy-paste of a test cell, metadata and all
    out["duplicated-test"] = nb
    nb = _solved(TAMPER_LAB)
    sol = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    del sol[0].metadata["nbgrader"]["grade_id"]  # nbgrader's KeyError: 'grade_id'
    sol[1].metadata.pop("nbgrader")  # metadata gone entirely; the cell id still matches
    out["edited-metadata"] = nb
    nb = _solved(TAMPER_LAB)
    nb.cells.insert(3, nbformat.v4.new_code_cell('print("x" * 200_000_000)'))
    out["huge-print"] = nb
    return out


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
    put("half-done", TAMPER_LAB, _half_done())
    for name, code in ATTACKS.items():
        put(f"attack-{name}", TAMPER_LAB, _attacked(code))
    for name, nb in _honest_variants().items():
        put(name, TAMPER_LAB, nb)
    for student, rel in (("misnamed-file", "lab1_sft/Lab1_SFT.ipynb"), ("misnamed-folder", "Lab1-SFT/lab1_sft.ipynb")):
        path = subs / student / rel
        path.parent.mkdir(parents=True)
        nbformat.write(_solved(TAMPER_LAB), path)
    (subs / "stray-file" / "misc").mkdir(parents=True)
    nbformat.write(_solved(TAMPER_LAB), subs / "stray-file" / "misc" / "my_notes.ipynb")
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


# ---------------------------------------------------------------------------------
# Issue 19: attacks, honest accidents, secrets
# ---------------------------------------------------------------------------------
def test_the_attacks_honest_base_earns_partial_marks(graded):
    r = graded[0][("half-done", TAMPER_LAB)]
    assert 0 < r.score < r.max_score, (r.score, r.notes)


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_an_attack_earns_no_more_than_its_honest_content(graded, attack):
    honest = graded[0][("half-done", TAMPER_LAB)].score
    r = graded[0][(f"attack-{attack}", TAMPER_LAB)]
    assert r.score <= honest, (attack, r.score, honest, r.notes)


def test_gradebook_holds_the_harness_scores(graded):
    results, work = graded
    rows = {r["student_id"]: r for r in csv.DictReader(open(work / "grades.csv")) if r["assignment"] == TAMPER_LAB}
    for student in ("attack-detached-child", "attack-forge-records", "half-done", "full"):
        assert float(rows[student]["score"]) == results[(student, TAMPER_LAB)].score, student


def _processes_with(token: str) -> list[str]:
    found = []
    for p in Path("/proc").iterdir():
        try:
            cmd = (p / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if p.name.isdigit() and token in cmd:
            found.append(f"{p.name}: {cmd[:200]}")
    return found


def test_nothing_a_submission_starts_survives_its_run(graded):
    assert _processes_with(SURVIVOR) == []


@pytest.mark.parametrize("student, note", [
    ("duplicated-test", "a copy of locked cell 'test_mask_labels'; left out"),
    ("edited-metadata", "matched to 'mask_labels' by its cell id"),
    ("huge-print", "truncated"),
    ("misnamed-file", "name matched ignoring case and separators"),
    ("misnamed-folder", "name matched ignoring case and separators"),
])
def test_honest_accidents_keep_their_points_with_a_note(graded, student, note):
    r = graded[0][(student, TAMPER_LAB)]
    assert r.score == r.max_score > 0, (student, r.score, r.notes)
    assert any(note in n for n in r.notes), (student, r.notes)


def test_a_huge_print_gives_a_bounded_feedback_file(graded):
    html = graded[1] / "feedback" / "huge-print" / TAMPER_LAB / f"{TAMPER_LAB}.html"
    assert html.exists() and html.stat().st_size < 2_000_000, html.stat().st_size


def test_every_submission_is_in_the_report(graded):
    results, work = graded
    rows = list(csv.DictReader(open(work / "report.csv")))
    stray = [r for r in rows if r["student"] == "stray-file"]
    assert len(stray) == 1 and "not graded" in stray[0]["notes"] and "my_notes.ipynb" in stray[0]["notes"]
    assert {r["student"] for r in rows} == {p.name for p in (work.parent / "submissions").iterdir()}


def test_feedback_shows_no_hidden_test(graded):
    work = graded[1]
    hidden_inputs = ["Reverse the words: cat dog bird", "BEGIN HIDDEN TESTS", "collate_sft(exs", "opt2"]
    files = list((work / "feedback").rglob("*.html"))
    assert len(files) > 20
    for f in files:
        text = f.read_text(errors="replace")
        assert not [s for s in hidden_inputs if s in text], f


def test_feedback_names_failed_hidden_checks(graded):
    html = (graded[1] / "feedback" / "half-done" / TAMPER_LAB / f"{TAMPER_LAB}.html").read_text()
    assert "Grading of <code>test_sft_step</code>: 0 / 3" in html and "hidden check" in html


LEAKER = '''
SEEN = []
def exact_match(predictions, references):
    SEEN.append((predictions, references))
    print("inputs:", predictions, references)
    raise ValueError(f"leak {predictions} {references}")
'''


@pytest.fixture(scope="module")
def private_grading(tmp_path_factory):
    """lab1 graded against a private source whose hidden tests carry MARKER."""
    root = tmp_path_factory.mktemp("private")
    private = root / "private-solutions" / TAMPER_LAB
    private.mkdir(parents=True)
    nb = nbformat.read(REPO / "solutions" / TAMPER_LAB / f"{TAMPER_LAB}.ipynb", as_version=4)
    test = next(c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "test_exact_match")
    test.source = test.source.replace(
        "### END HIDDEN TESTS",
        f'secret_ = "{MARKER}"  # {MARKER}\nassert exact_match([secret_, "b"], [secret_, "c"]) == 0.5\n'
        "### END HIDDEN TESTS")
    nbformat.write(nb, private / f"{TAMPER_LAB}.ipynb")
    subs = root / "submissions"
    sols = {"full": _solved(TAMPER_LAB), "untouched": _lab(TAMPER_LAB)}
    leak = _solved(TAMPER_LAB)
    cell = next(c for c in leak.cells if c.metadata.get("nbgrader", {}).get("grade_id") == "exact_match")
    cell.source = LEAKER
    leak.cells.append(nbformat.v4.new_code_cell("print(SEEN)"))  # a later cell prints what it saw
    sols["leaker"] = leak
    sols["snooper"] = _attacked(ATTACKS["snoop-others"])
    for student, s in sols.items():
        (subs / student / TAMPER_LAB).mkdir(parents=True)
        nbformat.write(s, subs / student / TAMPER_LAB / f"{TAMPER_LAB}.ipynb")
    results = grading.grade(subs, workdir=root / "work", source=root / "private-solutions", timeout=20)
    return {r.student: r for r in results}, root / "work"


def test_private_hidden_tests_grade(private_grading):
    results, _ = private_grading
    assert results["full"].score == results["full"].max_score == 10
    assert results["untouched"].score == 0
    assert results["leaker"].score == 8  # all but exact_match's 2 points


def test_no_student_facing_file_holds_a_private_marker(private_grading):
    work = private_grading[1]
    facing = [*(work / "feedback").rglob("*"), *(work / "release").rglob("*")]
    assert len([f for f in facing if f.is_file()]) >= 4
    for f in facing:
        if f.is_file():
            assert MARKER not in f.read_text(errors="replace"), f


def test_grading_refuses_without_a_sandbox_unless_unsafe(tmp_path, monkeypatch):
    from course_utils import sandbox
    monkeypatch.setattr(sandbox, "available", lambda: "no sandbox (bwrap): run `make sandbox`")
    subs = tmp_path / "submissions" / "untouched" / TAMPER_LAB
    subs.mkdir(parents=True)
    nbformat.write(_lab(TAMPER_LAB), subs / f"{TAMPER_LAB}.ipynb")
    with pytest.raises(sandbox.SandboxUnavailable, match="make sandbox.*--unsafe"):
        grading.grade(tmp_path / "submissions", workdir=tmp_path / "work")
    with pytest.raises(SystemExit, match="refuses"):
        grading.main(["grade", str(tmp_path / "submissions"), "--workdir", str(tmp_path / "work")])
    assert not (tmp_path / "work" / "report.csv").exists()
    source = tmp_path / "source"
    shutil.copytree(REPO / "solutions" / TAMPER_LAB, source / TAMPER_LAB)
    [r] = grading.grade(tmp_path / "submissions", workdir=tmp_path / "work", source=source, timeout=20, unsafe=True)
    assert r.score == 0 and "graded WITHOUT a sandbox (--unsafe)" in r.notes
    assert "WITHOUT a sandbox" in (tmp_path / "work" / "report.csv").read_text()
