"""The graded labs: labs/ is generated from solutions/, and grading cannot be fooled.

Every lab in solutions/ is checked the same way (no per-lab test code): the solution
earns full marks, the untouched student version earns 0, a half-done one earns partial
marks. The tamper cases run on lab1_sft.
"""

import csv
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest

from course_tools import grading
from course_tools.grading.checks import check_student_code
from course_tools.grading.feedback import WRAP_CSS, offline_feedback
from course_tools.grading.generate import finish_lab

REPO = Path(__file__).resolve().parent.parent
LABS = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))
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


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Every student lab generated afresh from its solution, once for all the tests below."""
    out = tmp_path_factory.mktemp("generated")
    grading.labs(out=out)
    return out


@pytest.mark.parametrize("lab", LABS)
def test_committed_lab_is_generated_from_its_solution(lab, generated):
    fresh = generated / lab / f"{lab}.ipynb"
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
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    stubs = re.findall(r"raise NotImplementedError\(.*\)", code)
    assert stubs, f"{lab}: no stub left in the student version"
    prose = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert not re.search(r"\$[^$\n]+\$", prose), f"{lab}: write formulas in Unicode (feedback pages load no MathJax)"
    for stub in stubs:  # every stub names the part and what to write (issue 20)
        assert re.fullmatch(r'raise NotImplementedError\("Part [0-9]+[a-z]?: write `[\w.]+` '
                            r'\(see the instructions above its cell\)"\)', stub), (lab, stub)
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


# The oracle (issue 33): a stub whose functions read their caller's test cell
# (sys._getframe, linecache) and return whatever the test compares their result with, or
# raise whatever exception the test expects. It earned 4/0 on a stub and 10/6 on a partial
# while the test cells ran unchanged in the student's process. It also forges its records
# at exit, claiming every test cell ran to its end.
ORACLE = r'''
import ast, atexit, json, linecache, os, sys

def _forge():
    for name in os.listdir("."):
        if name.startswith("test-") and name.endswith(".json"):
            data = json.load(open(name))
            data["error"] = None
            json.dump(data, open(name, "w"))
atexit.register(_forge)

def _oracle_unprobe(node):
    class U(ast.NodeTransformer):
        def visit_Call(self, n):
            self.generic_visit(n)
            if isinstance(n.func, ast.Name) and n.func.id.startswith("__probe") and len(n.args) == 2:
                return n.args[1]
            return n
    return U().visit(node)

def _oracle_find(fr, name):
    src = "".join(linecache.getlines(fr.f_code.co_filename))
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return None, None
    line = fr.f_lineno
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and node.body[0].lineno <= line <= node.body[-1].end_lineno:
            for h in node.handlers:
                if h.type is not None:
                    return "raise", h.type
    targets = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and node.lineno <= line <= node.end_lineno:
            targets |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    def mentions(n):
        return any((isinstance(m, ast.Call) and getattr(m.func, "id", None) == name
                    and m.lineno <= line <= m.end_lineno) or (isinstance(m, ast.Name) and m.id in targets)
                   for m in ast.walk(n))
    def is_mine(n):  # the result itself, not its shape or one of its items
        n = _oracle_unprobe(n)
        return ((isinstance(n, ast.Call) and getattr(n.func, "id", None) == name and n.lineno <= line <= n.end_lineno)
                or (isinstance(n, ast.Name) and n.id in targets))
    for node in ast.walk(tree):
        pairs = []
        if isinstance(node, ast.Compare) and len(node.comparators) == 1:
            pairs = [(node.left, node.comparators[0]), (node.comparators[0], node.left)]
        elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Sub):
            pairs = [(node.left, node.right), (node.right, node.left)]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") in ("allclose", "equal", "isclose") and len(node.args) >= 2:
            pairs = [(node.args[0], node.args[1]), (node.args[1], node.args[0])]
        for mine, other in pairs:
            if is_mine(mine) and not mentions(other):
                return "value", other
    return None, None

def __oracle__(name):
    def oracle(*args, **kwargs):
        fr = sys._getframe(1)
        kind, node = _oracle_find(fr, name)
        if kind is None:
            raise NotImplementedError(name)
        expr = ast.fix_missing_locations(ast.Expression(_oracle_unprobe(node)))
        value = eval(compile(expr, "<oracle>", "eval"), fr.f_globals, fr.f_locals)
        if kind == "raise":
            raise value("oracle")
        return value
    oracle.__name__ = name
    return oracle
'''


def _oracle(lab: str, base=None):
    """``base`` (default: the untouched lab) with every function still raising
    NotImplementedError replaced by the oracle."""
    import ast as _ast
    nb = base if base is not None else _lab(lab)
    cells = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution") and c.cell_type == "code"]
    for c in cells:
        names = [n.name for n in _ast.parse(c.source).body
                 if isinstance(n, _ast.FunctionDef) and "NotImplementedError" in _ast.unparse(n)]
        c.source += "".join(f"\n{n} = __oracle__({n!r})" for n in names)
    nb.cells.insert(nb.cells.index(cells[0]), nbformat.v4.new_code_cell(ORACLE))
    return nb


def _half_done():
    """The honest base of the attacks: parts 1-2 solved, parts 3-4 return a wrong value."""
    nb = _solved(TAMPER_LAB, 2)
    for c in nb.cells:
        if c.metadata.get("nbgrader", {}).get("solution"):
            c.source = re.sub(r"raise NotImplementedError\(.*\)", "return 0.0", c.source)
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
        put("oracle", lab, _oracle(lab))
    put("half-done-oracle", TAMPER_LAB, _oracle(TAMPER_LAB, _solved(TAMPER_LAB, 2)))
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
    assert r.max_score > 0 and r.score == r.max_score, (
        f"{lab}: the solution earns {r.score:g} of {r.max_score:g}; cells that lost points: "
        + "; ".join(f"{gid} {why}" for gid, why in r.lost.items()) + f" (notes: {r.notes})")


@pytest.mark.parametrize("lab", LABS)
def test_untouched_lab_earns_nothing(graded, lab):
    r = graded[0][("untouched", lab)]
    assert r.score == 0, (r.score, r.notes)


@pytest.mark.parametrize("lab", LABS)
def test_half_done_lab_earns_partial_marks(graded, lab):
    r = graded[0][("partial", lab)]
    assert 0 < r.score < r.max_score, (r.score, r.max_score, r.notes)
    # the result names each test cell that lost points, with its points (issue 20)
    tests = [c.metadata["nbgrader"]["grade_id"] for c in _lab(lab).cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert set(r.lost) == set(tests[1:]), (lab, r.lost)
    for gid, why in r.lost.items():
        assert re.match(r"0 / [0-9.]+: ", why) and ("check" in why or "stopped with" in why), (gid, why)


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
    check = check_student_code
    assert check("def f(x):\n    return x + 1\n", {"np", "torch"}) == []
    assert check("x = torch.zeros(3)\nx[0] = 1\n", {"torch"}) == []
    assert check("np = None", {"np"}) == ["line 1: rebinds np, which a locked cell imports"]
    assert check("torch.nn.functional.cross_entropy = f", {"torch"}) == [
        "line 1: assigns to torch.nn.functional.cross_entropy"]
    assert check("exec('1')", set()) == ["line 1: calls exec()"]
    assert check("x.__class__", set()) == ["line 1: uses x.__class__"]
    assert check("super().__init__()", set()) == []


def test_guard_allows_reimporting_the_same_module():
    check = check_student_code
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


@pytest.mark.parametrize("lab", LABS)
def test_an_oracle_reading_its_tests_earns_nothing(graded, lab):
    """Expected values never run in the student's process (course_tools.grading.probes), so a
    function that reads its caller's test cell finds nothing to return."""
    r = graded[0][("oracle", lab)]
    assert r.score == 0, (lab, r.score, r.lost, r.notes)


def test_an_oracle_on_a_partial_solution_earns_only_the_solved_part(graded):
    honest = graded[0][("half-done", TAMPER_LAB)].score  # the same two parts solved
    r = graded[0][("half-done-oracle", TAMPER_LAB)]
    assert 0 < honest and r.score <= honest, (r.score, honest, r.lost)


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
    from course_tools import sandbox
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


# ---------------------------------------------------------------------------------
# Issue 20: what a newcomer meets (stub messages, grades.csv, feedback pages, a read-only course)
# ---------------------------------------------------------------------------------
def _two_part_lab(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny source and its generated-looking release: Part 1 writes `f` and a class, Part 2
    writes `g` (which calls f) and its test calls g only."""
    def md(text):
        return nbformat.v4.new_markdown_cell(text, metadata={"nbgrader": {"grade_id": text[:6], "locked": True}})

    def sol(gid, code):
        return nbformat.v4.new_code_cell(code, metadata={"nbgrader": {"grade_id": gid, "solution": True,
                                                                      "grade": False, "locked": False}})

    def test(gid, code):
        return nbformat.v4.new_code_cell(code, metadata={"nbgrader": {"grade_id": gid, "grade": True, "points": 1,
                                                                      "solution": False, "locked": True}})
    src = nbformat.v4.new_notebook(cells=[
        md("## Part 1 (1 point): f"),
        sol("f", "def f(x):\n    ### BEGIN SOLUTION\n    return x\n    ### END SOLUTION\n\n"
                 "class C:\n    def m(self):\n        ### BEGIN SOLUTION\n        return 1\n        ### END SOLUTION"),
        test("test_f", "assert f(1) == 1"),
        md("## Part 2a (1 point): g"),
        sol("g", "def g(x):\n    ### BEGIN SOLUTION\n    return f(x) + 1\n    ### END SOLUTION"),
        test("test_g", "assert g(1) == 2"),
    ])
    rel = nbformat.from_dict(json.loads(json.dumps(src)))
    for c in rel.cells:
        c.source = re.sub(r"( *)### BEGIN SOLUTION\n.*?### END SOLUTION", r"\1# YOUR CODE HERE\n\1raise NotImplementedError()",
                          c.source, flags=re.S)
    paths = tmp_path / "source.ipynb", tmp_path / "release.ipynb"
    nbformat.write(src, paths[0])
    nbformat.write(rel, paths[1])
    return paths


def test_finish_lab_names_the_part_and_the_earlier_parts_a_test_uses(tmp_path):
    source, release = _two_part_lab(tmp_path)
    finish_lab(release, source)
    finish_lab(release, source)  # a second pass changes nothing
    cells = {c.metadata["nbgrader"]["grade_id"]: c for c in nbformat.read(release, as_version=4).cells}
    assert 'raise NotImplementedError("Part 1: write `f` (see the instructions above its cell)")' in cells["f"].source
    assert 'raise NotImplementedError("Part 1: write `C.m` (see the instructions above its cell)")' in cells["f"].source
    assert 'raise NotImplementedError("Part 2a: write `g` (see the instructions above its cell)")' in cells["g"].source
    assert cells["test_g"].source == ("# This test also uses your `f` from Part 1: if it fails there, fix that part "
                                      "first.\nassert g(1) == 2")
    assert cells["test_f"].source == "assert f(1) == 1"
    from nbgrader.utils import compute_checksum
    for c in cells.values():  # Validate compares these with the cells
        if "checksum" in c.metadata["nbgrader"]:
            assert c.metadata["nbgrader"]["checksum"] == compute_checksum(c)


def test_an_untouched_lab_says_which_part_to_write():
    lab = "lab3_value_iteration_q_learning"
    cells = {c.metadata.get("nbgrader", {}).get("grade_id"): c.source for c in _lab(lab).cells}
    assert 'NotImplementedError("Part 2: write `value_iteration`' in cells["value_iteration"]
    assert cells["test_value_iteration"].startswith("# This test also uses your `bellman_backup` from Part 1")
    assert not cells["test_bellman_backup"].startswith("# This test also uses")
    intro = _lab("lab1_sft").cells[0].source + "\n".join(c.source for c in _lab("lab1_sft").cells)
    assert "the source's example forgot." not in intro and "chapter 04" in intro


def test_grades_csv_tells_a_lab_not_submitted_from_a_zero(graded):
    work = graded[1]
    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(open(work / "grades.csv"))}
    zero = rows[("untouched", TAMPER_LAB)]
    assert zero["submitted"] == "yes" and float(zero["score"]) == 0.0, zero
    missing = rows[("half-done", "lab2_lora")]  # half-done submitted lab 1 only
    assert missing["submitted"] == "no" and missing["score"] == missing["raw_score"] == "", missing
    assert rows[("not-json", TAMPER_LAB)]["submitted"] == "yes"  # handed in, unreadable: a real 0
    assert float(rows[("not-json", TAMPER_LAB)]["score"]) == 0.0


# a resource a page would load: src of any element, href of <link>, CSS url() and @import
_LOADED = re.compile(r"""<[a-z]+\b[^>]*?\bsrc\s*=\s*["']?([^"'\s>]+)|<link\b[^>]*?\bhref\s*=\s*["']?([^"'\s>]+)"""
                     r"""|url\(\s*["']?([^"')\s]+)|@import\s+(?:url\()?\s*["']?([^"')\s;]+)""", re.I)


def test_feedback_pages_load_nothing_from_outside_the_grading_folder(graded):
    work = graded[1]
    pages = list((work / "feedback").rglob("*.html"))
    assert len(pages) > 20
    for page in pages:
        html = page.read_text(errors="replace")
        assert "//cdn" not in html.lower(), page
        for ref in ("".join(m) for m in _LOADED.findall(html)):
            if ref.startswith(("#", "data:")):
                continue
            assert not re.match(r"([a-z][a-z0-9+.-]*:)?//", ref, re.I), (page, ref)
            assert (page.parent / ref.split("#")[0].split("?")[0]).resolve().is_relative_to(work), (page, ref)
        assert WRAP_CSS in html, page


def test_offline_feedback_removes_what_a_page_would_load_from_the_network():
    page = ('<html><head><script src="https://cdn.example/mathjax.js"> </script>\n'
            '<script type="text/x-mathjax-config">init_mathjax = 1;</script>'
            "<link rel=stylesheet href=//cdn.example/x.css><style>@font-face{font-family:x;src:url(../f.woff)}</style>"
            '</head><body><img src="http://example.org/cat.png" alt="cat"><a href="#top">top</a>'
            '<span class="c1"># see src=https://example.org</span></body></html>')
    out = offline_feedback(page)
    assert not [m for m in _LOADED.findall(out) if "".join(m)], out
    assert "mathjax" not in out.lower() and "//cdn" not in out
    assert '<img src="" alt="cat">' in out and '<a href="#top">' in out and "# see src=https://example.org" in out
    assert offline_feedback(out) == out and out.count("pre-wrap") == 1


def test_feedback_wraps_long_lines_in_a_browser(graded):
    from browser_support import chromium_page
    page_path = graded[1] / "feedback" / "full" / "lab10_best_of_n" / "lab10_best_of_n.html"
    assert max(len(line) for line in page_path.read_text().splitlines()) > 200
    with chromium_page() as page:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.set_viewport_size({"width": 800, "height": 900})
        page.goto(page_path.as_uri())
        cut = page.evaluate("() => [...document.querySelectorAll('pre')]"
                            ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.slice(0, 80))")
        assert cut == [], cut  # a line wider than its box would be cut at the right edge
        assert [u for u in requests if not u.startswith("file:")] == []


def _unshare_ok() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(shutil.which("make") is None or not _unshare_ok(),
                    reason="needs make and unshare (a mount namespace) to make the course read-only")
def test_make_grade_works_on_a_read_only_course(tmp_path):
    """`make grade` with the course (venv included) mounted read-only, as in the container:
    it must write nothing into the course tree. The mount is read-only for root too."""
    lab = "lab3_value_iteration_q_learning"
    subs = tmp_path / "submissions" / "ann" / lab
    subs.mkdir(parents=True)
    nbformat.write(_solved(lab), subs / f"{lab}.ipynb")
    source = tmp_path / "source"  # one lab, so that only one reference run is needed
    shutil.copytree(REPO / "solutions" / lab, source / lab)
    probe = REPO / f".read-only-probe-{tmp_path.name}"
    script = (f'mount --bind "{REPO}" "{REPO}" && mount -o remount,bind,ro "{REPO}" || exit 90\n'
              f'touch "{probe}" 2>/dev/null && exit 91\n'
              f'exec make -C "{REPO}" -o .venv/.installed grade SUBMISSIONS="{tmp_path / "submissions"}" '
              f'GRADING_DIR="{tmp_path / "work"}" SOURCE="{source}" TIMEOUT=60\n')
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True)
    assert proc.returncode not in (90, 91), f"could not make the course read-only ({proc.returncode})"
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
    rows = list(csv.DictReader(open(tmp_path / "work" / "report.csv")))
    assert [(r["student"], float(r["score"]), float(r["max_score"])) for r in rows] == [("ann", 10.0, 10.0)], rows
    assert not probe.exists()


def _script_command(text: str) -> str:
    """The `docker run ...` command of docker/grade.sh, continuation lines joined."""
    joined = re.sub(r"\\\n\s*", " ", text)
    line = next(l for l in joined.splitlines() if "docker}" in l and " run " in l)
    return " ".join(line.split(" run ", 1)[1].split())


def test_the_documented_container_command_is_the_one_in_the_repo():
    script = (REPO / "docker" / "grade.sh").read_text()
    doc = (REPO / "docs" / "instructor.md").read_text()
    command = _script_command(script)
    for part in ("--network none", "--read-only", '"$COURSE":/course:ro', '"$SUBMISSIONS":/subs:ro',
                 '"$GRADING_DIR":/grading ', "make -C /course grade VENV=/opt/venv"):
        assert part in command, part
    assert re.findall(r" -v (\S+)", command) == ['"$COURSE":/course:ro', '"$SUBMISSIONS":/subs:ro', '"$GRADING_DIR":/grading']
    shown = [" ".join(re.sub(r"\\\n\s*", " ", block).split()) for block in re.findall(r"```bash\n(.*?)```", doc, re.S)]
    assert any(block == "docker run " + command for block in shown), "docs/instructor.md must show docker/grade.sh's command"
    assert "docker build -t course-grading -f docker/grading.Dockerfile ." in doc
    dockerfile = (REPO / "docker" / "grading.Dockerfile").read_text()
    assert "make setup VENV=/opt/venv" in dockerfile  # the stack comes from the course's own set-up, at build time


def _container_engine() -> str | None:
    for engine in ("docker", "podman"):
        if shutil.which(engine) and subprocess.run([engine, "info"], capture_output=True).returncode == 0:
            return engine
    return None


@pytest.mark.skipif(_container_engine() is None, reason="no Docker or Podman daemon here: the container path is untested")
def test_grading_in_the_container_offline(tmp_path):
    engine = _container_engine()
    build = subprocess.run([engine, "build", "-t", "course-grading-test", "-f", "docker/grading.Dockerfile", "."],
                           cwd=REPO, capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    lab = "lab3_value_iteration_q_learning"
    for student, nb in (("ann", _solved(lab)), ("bob", _lab(lab))):
        (tmp_path / "subs" / student / lab).mkdir(parents=True)
        nbformat.write(nb, tmp_path / "subs" / student / lab / f"{lab}.ipynb")
    run = subprocess.run(["docker/grade.sh", str(tmp_path / "subs"), str(tmp_path / "work"), "course-grading-test"],
                         cwd=REPO, capture_output=True, text=True, env={**os.environ, "DOCKER": engine})
    assert run.returncode == 0, (run.stdout[-3000:], run.stderr[-3000:])
    rows = {(r["student"], r["lab"]): float(r["score"]) for r in csv.DictReader(open(tmp_path / "work" / "report.csv"))}
    assert rows[("ann", lab)] == 10.0 and rows[("bob", lab)] == 0.0, rows
