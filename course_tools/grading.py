"""Graded labs with nbgrader: generate the student labs, and grade a folder of submissions.

``solutions/<lab>/<lab>.ipynb`` is the single source of each lab (nbgrader's *source*
folder); ``labs/<lab>/<lab>.ipynb`` is generated from it (nbgrader's *release* folder)::

    python -m course_tools.grading labs                     # = make labs
    python -m course_tools.grading grade SUBMISSIONS        # = make grade SUBMISSIONS=...

How grading holds against a student who attacks it
--------------------------------------------------
A check that runs inside the student's process cannot be trusted: the student's code runs
first and can patch modules, shadow builtins, rebind the names a test computes its
reference from, or hand back objects whose ``__eq__`` always says yes. So a submission's
score is decided outside that process:

1. **Sandbox.** Every run of notebook code happens in :mod:`course_tools.sandbox`
   (bubblewrap): no network, an unprivileged uid in its own user and PID namespaces (every
   process it starts dies with it), a read-only view of the Python environment and of
   ``course_utils/`` only, and one private writable folder holding that run's input. The
   repository's ``solutions/``, the grading folder (gradebook, source, other students),
   the private source and the home folder are not in it. CPU time, memory, file size,
   wall time and kept output are limited.
2. **Probes, not verdicts, and no expected value beside the student's code.** Each test
   cell (visible and hidden part) is rewritten once per lab from the source by
   :func:`course_tools.probes.probe_lab`: every ``assert E`` keeps only the parts of ``E``
   that the student's code returned or changed, recorded as plain data (numbers, strings,
   nested lists); what the test compares them with, and statements that only compute such
   values, are left out; a call that must raise records the name of what it raised. The
   lab runs once per submission in the sandbox with the student's cells and the rewritten
   test cells (:func:`_run_cells`, in the sandbox) and returns these records as JSON.
3. **Reference.** The same rewritten notebook runs once per lab with the source's own
   solution cells (never with student code), giving the reference records; before it, the
   source runs as written (asserts and all) and must pass.
4. **Judgement in the harness.** A test cell earns its points when every record of the
   student's run equals the reference's (:func:`same`: numbers to a relative 1e-4 and an
   absolute 1e-6, exactly for integers, booleans and strings), and the cell ran to its end.
   Patching, fake modules, always-equal objects or rebound setup names change only the
   student's own records, which then differ from the reference; reading the caller's frame
   or the job file finds the inputs, never an expected value; a student can only write
   records whose values it knows, and the hidden ones it knows only by solving the lab.
5. **nbgrader for the rest.** ``generate_assignment`` records each lab and its grade cells
   in the gradebook; the harness writes the scores into it (``nbgrader.api.Gradebook``);
   ``generate_feedback`` writes the feedback HTML (made self-contained by
   :func:`offline_feedback`), and :func:`export_grades` writes ``grades.csv`` from the
   gradebook (nbgrader's ``export`` columns, and whether each lab was submitted).
   Learners keep the visible tests in their notebook.

Feedback keeps secrets: it holds the student's own cells, the handed-out (visible) test
cells, and after each test cell its result: each failed visible check by its code, and for
hidden checks only whether any failed, with the hints (constant ``assert`` messages) of all
the cell's hidden checks, so a submission cannot spell a secret out one check at a time
(:func:`_result_cell`). No output of a run, no hidden code, input or reference value
reaches it; output goes to the instructor's log only, truncated. Its body is sanitised
(:func:`sanitize_feedback`); names and notes are escaped for the terminal and CSV
(:func:`safe_text`, :func:`csv_cell`); the submissions folder is read without trusting it
(:func:`find_submissions`, :func:`read_submission`, :func:`parse_submission`).

Honest work is kept: cells are matched to the source by ``grade_id``, else by the cell's
id (metadata edited), and their role (solution, test, locked) always comes from the
source; a copied test cell is left out with a note; locked and test cells are restored;
cells the student added run where they were. Submission files and folders are matched
to labs ignoring case and separators (``Lab1-SFT.ipynb``); anything not graded is listed
in ``report.csv`` with the reason.
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import math
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course_tools import sandbox
from course_tools.probes import HIDDEN_BEGIN, HIDDEN_END, Check, plain, probe_lab, same

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path.home() / "course-grading"
#: largest records file of one test cell the harness reads (bytes)
MAX_RECORDS = 32 << 20
#: largest submitted notebook the harness reads (bytes)
MAX_NOTEBOOK = 16 << 20
#: seconds a sandboxed run is given on top of its cells' timeouts (interpreter and torch start-up)
START_S = 120


# ---------------------------------------------------------------------------------
# The static check: advice for a manual look, no longer a condition of scoring
# ---------------------------------------------------------------------------------
#: Calls worth a look in a student's cell.
FORBIDDEN_CALLS = {"exit", "quit", "exec", "eval", "compile", "__import__", "setattr",
                   "getattr", "delattr", "globals", "vars", "breakpoint", "sys.exit", "os._exit", "os.kill",
                   "os.abort", "os.system", "os.killpg", "importlib.reload",
                   "importlib.import_module", "signal.signal", "signal.alarm"}
FORBIDDEN_NAMES = {"builtins", "__builtins__", "get_ipython", "__loader__", "__spec__"}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _import_bindings(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """``{name: what it is bound to}`` for one import statement (``np: numpy``)."""
    out = {}
    for alias in node.names:
        if isinstance(node, ast.ImportFrom):
            out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        else:
            out[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    return out


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Names bound by ``import`` statements in ``tree``, with what they are bound to."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(_import_bindings(node))
    return names


def check_student_code(source: str, protected: dict[str, str] | set[str]) -> list[str]:
    """Reasons why a student-written cell deserves a manual look (empty when none).

    Patching a module, rebinding a name a locked cell imports (``protected``), exiting the
    process, ``exec``/``eval``/``getattr``/``builtins``, dunder attributes. This is advice
    in ``report.csv``: the score does not depend on it (see the module docstring).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # null bytes, absurd nesting
        return []
    if not isinstance(protected, dict):
        protected = {name: "" for name in protected}
    modules = set(protected) | set(_imported_names(tree))
    reasons = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS:
                reasons.append(f"line {node.lineno}: calls {name}()")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            reasons.append(f"line {node.lineno}: uses {node.id}")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("__")
              and node.attr.endswith("__") and node.attr != "__init__"):
            reasons.append(f"line {node.lineno}: uses {_dotted(node) or '...' + node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(m.split(".")[0] in FORBIDDEN_NAMES | {"ctypes", "gc", "inspect"} for m in mods):
                reasons.append(f"line {node.lineno}: imports {', '.join(mods)}")
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        while targets:
            t = targets.pop()
            if isinstance(t, (ast.Tuple, ast.List)):
                targets += t.elts
            elif isinstance(t, ast.Starred):
                targets.append(t.value)
            elif isinstance(t, ast.Attribute):
                name = _dotted(t)
                if name and name.split(".")[0] in modules:
                    reasons.append(f"line {node.lineno}: assigns to {name}")
            elif isinstance(t, ast.Name) and t.id in protected:
                reasons.append(f"line {node.lineno}: rebinds {t.id}, which a locked cell imports")
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in protected:
            reasons.append(f"line {node.lineno}: rebinds {node.name}, which a locked cell imports")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, target in _import_bindings(node).items():
                if name in protected and protected[name] not in ("", target):
                    reasons.append(f"line {node.lineno}: rebinds {name}, which a locked cell imports")
    return sorted(set(reasons), key=lambda r: int(r.split()[1].rstrip(":")))


# ---------------------------------------------------------------------------------
# Inside the sandbox: run the cells and write the records
# ---------------------------------------------------------------------------------
class CellTimeoutError(BaseException):
    """A cell ran past the per-cell timeout (a BaseException, so no probe records it as a value)."""


def _run_cells(job_path: Path) -> None:
    """Run a job (``job.json``: cells, per-cell timeout) in one IPython shell, in the sandbox.

    Writes ``test-<index>.json`` when a test cell ends (``{"key": grade_id, "records": {key:
    [values]}, "error": exception name or None}``) and ``cells.json`` after every cell
    (``{index: exception name}`` for the cells that raised). A test cell's probes
    (:mod:`course_tools.probes`) are ``__probe_try__(key, thunk)`` (the thunk's value as
    plain data, or ``{"raised": name}``), ``__probe_raises__(key, thunk)`` (only the name of
    what the call raised, or None) and ``__probe_rec__(key, value)`` (records and returns).
    """
    import signal
    import warnings

    from IPython.core.interactiveshell import InteractiveShell

    job = json.loads(job_path.read_text())
    folder = job_path.parent
    errors: dict[str, str] = {}
    shell = InteractiveShell.instance(colors="nocolor")

    def save(name: str, data: Any) -> None:
        tmp = folder / f"{name}.tmp"
        tmp.write_text(json.dumps(data))
        os.replace(tmp, folder / name)

    def on_alarm(signum, frame):  # noqa: ARG001
        raise CellTimeoutError(f"ran past {job['timeout']} s")

    for cell in job["cells"]:
        current: dict[str, Any] = {"key": cell["key"], "records": {}, "error": None}

        def rec(key: str, value: Any, _r=current["records"]) -> Any:
            _r.setdefault(key, []).append(plain(value))
            return value

        def attempt(key: str, thunk: Any, _r=current["records"]) -> None:
            try:
                value = plain(thunk())
            except Exception as e:  # noqa: BLE001  (a part that raises is recorded, as in the reference)
                value = {"raised": type(e).__name__[:100]}
            _r.setdefault(key, []).append(value)

        def raises(key: str, thunk: Any, _r=current["records"]) -> None:
            try:
                thunk()
                name = None
            except Exception as e:  # noqa: BLE001
                name = type(e).__name__[:100]
            _r.setdefault(key, []).append({"raised": name})

        if cell["test"]:
            shell.user_ns.update(__probe_rec__=rec, __probe_try__=attempt, __probe_raises__=raises)
        signal.signal(signal.SIGALRM, on_alarm)
        signal.alarm(int(job["timeout"]))
        try:
            with warnings.catch_warnings():
                result = shell.run_cell(cell["source"], store_history=False)
        except CellTimeoutError:
            result = None
        finally:
            signal.alarm(0)
        err = None if result is None else (result.error_in_exec or result.error_before_exec)
        if result is None or err is not None:
            name = "CellTimeoutError" if result is None else type(err).__name__
            errors[str(cell["index"])] = name
            current["error"] = name
        if cell["test"]:
            save(f"test-{cell['index']}.json", current)
        save("cells.json", errors)


# ---------------------------------------------------------------------------------
# Building the run of a submission from the source and the student's notebook
# ---------------------------------------------------------------------------------
def _meta(cell) -> dict:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def _role(cell) -> str:
    meta = _meta(cell)
    if meta.get("solution"):
        return "solution"
    if meta.get("grade"):
        return "test"
    return "locked"


def _is_locked(cell) -> bool:
    meta = _meta(cell)
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


@dataclass
class Plan:
    """A notebook's run and its feedback form: what the sandbox executes, what the student sees."""
    cells: list[dict]              #: {"index", "source", "test", "key"} for the runner
    checks: dict[str, list[Check]] #: test cell grade_id -> its asserts
    points: dict[str, float]       #: test cell grade_id -> points
    feedback: Any                  #: nbformat notebook: student's cells + handed-out tests, no outputs
    notes: list[str] = field(default_factory=list)


def _strip_hidden(source: str) -> str:
    return re.sub(rf"^[ \t]*{HIDDEN_BEGIN}.*?^[ \t]*{HIDDEN_END}[^\n]*\n?", "", source, flags=re.M | re.S).rstrip()


#: where :func:`record_release` keeps the handed-out versions: ``<source>/.released/<lab>.json``
RELEASED = ".released"


def cell_hash(source: str) -> str:
    """A short checksum of a locked cell as handed out (hidden tests stripped)."""
    import hashlib
    return hashlib.sha256(_strip_hidden(source).strip().encode()).hexdigest()[:16]


def record_release(release_nb, history: Path) -> None:
    """Add the locked cells of a handed-out lab to ``history`` (``{grade_id: [checksum,
    ...]}``, every version ever generated; written atomically), so grading can tell a
    student's copy of an earlier version from an edit."""
    seen = json.loads(history.read_text()) if history.exists() else {}
    for c in release_nb.cells:
        gid = _meta(c).get("grade_id")
        if gid and _is_locked(c):
            h = cell_hash(c.source)
            if h not in seen.setdefault(gid, []):
                seen[gid].append(h)
    tmp = history.with_name(history.name + ".tmp")
    tmp.write_text(json.dumps(dict(sorted(seen.items())), indent=1) + "\n")
    os.replace(tmp, history)


def released_versions(source: Path, lab: str) -> dict[str, set[str]]:
    """The checksums of every handed-out version of each locked cell of ``lab`` in the
    solutions folder ``source`` (see :func:`record_release`)."""
    path = source / RELEASED / f"{lab}.json"
    try:
        data = json.loads(path.read_text())
        return {str(k): {str(h) for h in v} for k, v in data.items() if isinstance(v, list)}
    except (OSError, ValueError, AttributeError):
        return {}


def plan(source_nb, student_nb=None, release_nb=None, history: dict[str, set[str]] | None = None) -> Plan:
    """The run of ``student_nb`` against ``source_nb`` (the reference run when None).

    Cells are matched by ``grade_id``, else by cell id; roles come from the source. A locked
    cell that differs from ``release_nb`` but matches a version in ``history`` (from
    :func:`released_versions`) was handed out before the instructor changed it: noted as
    such, not as an edit. Test and locked cells always hold the source's code (test cells instrumented); solution
    cells the student's; cells the student added run before the next matched cell.
    """
    src = [c for c in source_nb.cells]
    by_gid = {_meta(c).get("grade_id"): c for c in src if _meta(c).get("grade_id")}
    by_id = {c.get("id"): _meta(c)["grade_id"] for c in src if c.get("id") and _meta(c).get("grade_id")}
    release = {_meta(c).get("grade_id"): c for c in (release_nb.cells if release_nb else src) if _meta(c).get("grade_id")}
    notes: list[str] = []
    mine: dict[str, Any] = {}
    before: dict[str | None, list] = {}   # extra cells, by the matched cell they precede (None: at the end)
    pending: list = []
    if student_nb is None:
        mine = {gid: c for gid, c in by_gid.items()}
    else:
        for i, c in enumerate(student_nb.cells):
            gid = _meta(c).get("grade_id")
            if gid not in by_gid:
                if c.get("id") in by_id and by_id[c.get("id")] not in mine:
                    gid = by_id[c.get("id")]
                    notes.append(f"cell {i}: its nbgrader metadata was edited; matched to {gid!r} by its cell id")
                else:
                    gid = None
            if gid is not None and gid in mine:
                if _role(by_gid[gid]) == "solution":
                    notes.append(f"cell {i}: a second copy of answer cell {gid!r}; run where it stands")
                    pending.append(c)
                else:
                    notes.append(f"cell {i}: a copy of locked cell {gid!r}; left out")
                continue
            if gid is None:
                if c.cell_type == "code" and _meta(c):
                    notes.append(f"cell {i}: nbgrader metadata matches no cell of the lab; run as the student's own cell")
                pending.append(c)
                continue
            mine[gid] = c
            before[gid], pending = pending, []
        before[None] = pending
    cells: list[dict] = []
    checks: dict[str, list[Check]] = {}
    points: dict[str, float] = {}
    fb = nbformat.v4.new_notebook(metadata=source_nb.metadata)
    code = [c for c in src if c.cell_type == "code"]
    probed = probe_lab([(_role(c), c.source) for c in code])
    probes = {id(code[i]): probed[i] for i in probed}

    def add_code(c, test_key: str | None = None, source: str | None = None) -> None:
        cells.append({"index": len(cells), "source": source if source is not None else c.source,
                      "test": test_key is not None, "key": test_key})

    def add_extra(extra) -> None:
        shown = nbformat.from_dict(json.loads(json.dumps(extra)))
        shown.get("metadata", {}).pop("nbgrader", None)  # the student's own cell: no grade id twice
        if shown.get("cell_type") == "code":
            shown.outputs, shown.execution_count = [], None
            add_code(extra)
        fb.cells.append(shown)

    for c in src:
        gid = _meta(c).get("grade_id")
        for extra in before.get(gid, []):
            add_extra(extra)
        role = _role(c)
        if role == "solution":
            got = mine.get(gid)
            if got is None:
                if student_nb is not None:
                    notes.append(f"answer cell {gid!r} is missing")
                continue
            fcell = nbformat.from_dict(dict(release.get(gid, c)))
            fcell.source = got.source
            if c.cell_type == "code":
                fcell.outputs, fcell.execution_count = [], None
                add_code(got)
            fb.cells.append(fcell)
            continue
        if student_nb is not None and gid not in mine:
            kind = "test" if role == "test" else "locked"
            notes.append(f"{kind} cell {gid!r} was missing and was put back")
        elif student_nb is not None and gid in mine and _strip_hidden(mine[gid].source) != _strip_hidden(
                release.get(gid, c).source):
            if cell_hash(mine[gid].source) in (history or {}).get(gid, set()):
                notes.append(f"locked cell {gid!r} is from an earlier version of the lab (changed after it was "
                             "handed out, not by the student); the current version was run")
            else:
                notes.append(f"locked cell {gid!r} was edited; the original was put back")
        shown = nbformat.from_dict(dict(release.get(gid, c)))
        if shown.cell_type == "code":
            shown.outputs, shown.execution_count = [], None
        fb.cells.append(shown)
        if c.cell_type != "code":
            continue
        if role == "test":
            rewritten, checks[gid] = probes[id(c)]
            points[gid] = float(_meta(c).get("points", 0))
            add_code(c, test_key=gid, source=rewritten)
        else:
            add_code(c)
    for extra in before.get(None, []):
        add_extra(extra)
    return Plan(cells, checks, points, fb, notes)


# ---------------------------------------------------------------------------------
# Running and judging
# ---------------------------------------------------------------------------------
@dataclass
class Run:
    """What the harness keeps of one sandboxed run."""
    tests: dict[str, dict]
    cells: dict[str, str]
    result: sandbox.Result


def submission_wall_s(reference: Plan, timeout: int) -> float:
    """Wall-clock seconds for one whole run of a lab: each of the *source's* cells its
    ``timeout``, and :data:`START_S`. A submission's own extra cells share this budget."""
    return timeout * (len(reference.cells) + 2) + START_S


def execute(p: Plan, folder: Path, timeout: int, unsafe: bool = False,
            limits: sandbox.Limits | None = None, wall_s: float | None = None) -> Run:
    """Run ``p`` in a sandbox whose only writable folder is ``folder`` (emptied first), for at
    most ``wall_s`` seconds (default: :func:`submission_wall_s` of ``p``)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    (folder / "job.json").write_text(json.dumps({"cells": p.cells, "timeout": timeout}))
    wall = wall_s if wall_s is not None else submission_wall_s(p, timeout)
    limits = limits or sandbox.Limits(wall_s=wall, cpu_s=int(wall * 2))
    res = sandbox.run([str(Path(sys.prefix) / "bin" / "python"), "-m", "course_tools.grading", "_run",
                       f"{sandbox.INSIDE}/job.json"], folder, limits, unsafe=unsafe)
    def read(name: str) -> Any:
        path = folder / name
        try:
            if path.is_file() and not path.is_symlink() and path.stat().st_size <= MAX_RECORDS:
                return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
        return None

    tests: dict[str, dict] = {}
    for c in p.cells:  # only the files of this plan's test cells, under the key the plan gave them
        got = read(f"test-{c['index']}.json") if c["test"] else None
        if isinstance(got, dict) and got.get("key") == c["key"]:
            tests[c["key"]] = got
    cells = read("cells.json")
    cells = cells if isinstance(cells, dict) else {}
    shutil.rmtree(folder, ignore_errors=True)
    return Run(tests, {str(k): str(v)[:100] for k, v in cells.items()}, res)


def judge(reference: dict, student: Any, checks: list[Check]) -> tuple[bool, list[Check], list[Check]]:
    """Whether a test cell passes, its failed checks and the checks that never ran: every
    reference record must be matched by the student's (:func:`same`), and the student's
    cell must have run to its end. A check with no record at all in a cell that stopped
    with an error did not run (the error came first); any other mismatch is a failure."""
    ref = reference.get("records", {})
    got = student.get("records") if isinstance(student, dict) else None
    got = got if isinstance(got, dict) else {}
    ran = isinstance(student, dict) and student.get("error") is None
    failed: set[int] = set()
    missing: set[int] = set()
    for key, values in ref.items():
        theirs = got.get(key)
        number = int(key.split(".")[0])
        if theirs is None and not ran:
            missing.add(number)
        elif not isinstance(theirs, list) or len(theirs) != len(values) or not all(
                same(a, b) for a, b in zip(theirs, values)):
            failed.add(number)
    not_run = missing - failed
    return (not failed and not missing and ran), [c for c in checks if c.number in failed], \
        [c for c in checks if c.number in not_run]


#: errors feedback may name (a fixed list: a student's own exception class could carry a
#: message in its name)
NAMED_ERRORS = {"NotImplementedError", "AssertionError", "TypeError", "ValueError", "IndexError", "KeyError",
                "AttributeError", "NameError", "RuntimeError", "ZeroDivisionError", "CellTimeoutError",
                "RecursionError", "MemoryError", "UnboundLocalError", "SyntaxError", "ImportError",
                "ModuleNotFoundError", "OverflowError", "StopIteration"}


def _result_cell(gid: str, ok: bool, earned: float, points: float, failed: list[Check], ran: bool,
                 checks: list[Check] | None = None, not_run: list[Check] | None = None,
                 error: str | None = None) -> Any:
    """The feedback under a test cell: its score, the error it stopped with (named when it
    is one of :data:`NAMED_ERRORS`), each failed visible check, each visible check that did
    not run because of that error, and for hidden checks only whether any failed or did
    not run, with the hints of *all* the cell's hidden checks. Which hidden check failed is
    never said: a student's code could choose it, one bit per check."""
    lines = [f"**Grading of `{gid}`: {earned:g} / {points:g}**" + (" (every check passed)" if ok else "")]
    if not ran:
        what = f"`{error}`" if error in NAMED_ERRORS else "an error"
        hint = " (a part not written yet?)" if error == "NotImplementedError" else ""
        lines.append(f"- the test cell stopped with {what}{hint}: run it in your notebook to see where")
    for c in failed:
        if not c.hidden:
            lines.append(f"- visible check {c.number} failed: `{c.text}`")
    for c in not_run or []:
        if not c.hidden:
            lines.append(f"- visible check {c.number} did not run (the error came first): `{c.text}`")
    if any(c.hidden for c in not_run or []) and not any(c.hidden for c in failed):
        lines.append("- hidden checks did not run (the error came first)")
    if any(c.hidden for c in failed):
        hints = [c.text for c in checks or failed if c.hidden and c.text]
        lines.append("- hidden checks failed (they are not named one by one)"
                     + (f"; they test: {'; '.join(dict.fromkeys(hints))}" if hints else ""))
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"grading_result": True})


# ---------------------------------------------------------------------------------
# Labs and nbgrader
# ---------------------------------------------------------------------------------
def labs(out: Path | None = None, only: list[str] | None = None) -> list[Path]:
    """Generate every lab (or the labs named in ``only``) in ``labs/`` (or ``out``) from
    ``solutions/``, finished by :func:`finish_lab`; returns the notebooks."""
    names = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))
    if only:
        unknown = sorted(set(only) - set(names))
        if unknown:
            raise FileNotFoundError(f"no lab {', '.join(unknown)} in solutions/ (labs: {', '.join(names)})")
        names = [n for n in names if n in only]
    if not names:
        raise FileNotFoundError("no labs in solutions/ (expected solutions/<lab>/<lab>.ipynb)")
    release = ["--CourseDirectory.release_directory=" + str(out)] if out else []
    written = []
    for name in names:
        _nbgrader(["generate_assignment", name, "--force", "--no-db", *release], cwd=REPO)
        path = (out or REPO / "labs") / name / f"{name}.ipynb"
        finish_lab(path, REPO / "solutions" / name / f"{name}.ipynb")
        if out is None:  # the course's own release: remember this version of its locked cells
            (REPO / "solutions" / RELEASED).mkdir(exist_ok=True)
            record_release(nbformat.read(path, as_version=4), REPO / "solutions" / RELEASED / f"{name}.json")
        written += sorted(((out or REPO / "labs") / name).glob("*.ipynb"))
    return written


#: the stub nbgrader puts in place of a solution (``ClearSolutions.code_stub`` in nbgrader_config.py)
STUB = "raise NotImplementedError()"
_PART = re.compile(r"^#{1,4}\s*(Part\s+[0-9]+[a-z]?)\b", re.M)


def _defined(source: str) -> list[str]:
    """Names of the functions and classes a cell defines at its top level."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    return [n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]


def _stub_message(source: str, part: str | None, fallback: str) -> str:
    """``source`` with each bare stub ``raise NotImplementedError()`` replaced by one whose
    message names the part and the function (or method) to write."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source
    where: dict[int, str] = {}  # line of a stub -> the qualified name of the def around it

    def visit(node: ast.AST, prefix: str, inside: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, prefix + child.name + ".", prefix + child.name)
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".", inside)
            else:
                if isinstance(child, ast.Raise) and ast.unparse(child).strip() == STUB:
                    where[child.lineno] = inside or fallback
                visit(child, prefix, inside)

    visit(tree, "", None)
    lines = source.split("\n")
    for lineno, name in where.items():
        what = f"{part}: write `{name}`" if part else f"write `{name}`"
        lines[lineno - 1] = lines[lineno - 1].replace(
            STUB, f'raise NotImplementedError("{what} (see the instructions above its cell)")')
    return "\n".join(lines)


def finish_lab(release: Path, source: Path) -> None:
    """Finish a generated lab in place (``make labs`` and grading both call it).

    * Each stub nbgrader left (:data:`STUB`) raises with a message naming the part (the
      ``## Part N`` heading above its cell) and the function or method to write, so an
      untouched lab says ``NotImplementedError: Part 2: write `dpo_loss` (see the
      instructions above its cell)``.
    * A test cell that calls a function written in an earlier part (directly, or through
      this part's reference solution) starts with a comment saying so
      (``# This test also uses your `bellman_backup` from Part 1.``).

    Changed cells get a fresh nbgrader checksum, so *Validate* accepts them.
    """
    from nbgrader.utils import compute_checksum

    nb = nbformat.read(release, as_version=4)
    src = {_meta(c).get("grade_id"): c for c in nbformat.read(source, as_version=4).cells if _meta(c).get("grade_id")}
    part: str | None = None
    written: dict[str, str] = {}        # function or class name -> the part that writes it
    part_solution: dict[str, str] = {}  # part -> the reference solution code of that part
    for cell in nb.cells:
        meta = _meta(cell)
        if cell.cell_type == "markdown":
            m = _PART.search(cell.source)
            part = m.group(1) if m else part
            continue
        gid = meta.get("grade_id")
        old = cell.source
        if meta.get("solution") and cell.cell_type == "code":
            reference = src[gid].source if gid in src else ""
            for name in _defined(reference):
                written.setdefault(name, part or "")
            part_solution[part or ""] = part_solution.get(part or "", "") + "\n" + reference
            cell.source = _stub_message(cell.source, part, gid or "this cell")
        elif meta.get("grade") and cell.cell_type == "code" and part:
            used: list[str] = []
            for code in (_strip_hidden(cell.source), part_solution.get(part, "")):
                try:
                    tree = ast.parse(code)
                except SyntaxError:
                    continue
                used += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)]
            earlier = [n for n in dict.fromkeys(used) if written.get(n) not in (None, "", part)]
            if earlier:
                which = ", ".join(f"`{n}` from {written[n]}" for n in earlier)
                note = f"# This test also uses your {which}: if it fails there, fix that part first.\n"
                if not cell.source.startswith(note):
                    cell.source = note + cell.source
        if cell.source != old:
            meta["checksum"] = compute_checksum(cell)
    from course_tools.notebooks import write
    write(nb, release)  # as JupyterLab saves it: opening the lab changes nothing


def _nbgrader(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    # nbgrader runs the `alembic` command of its own environment: put that environment first
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"],
                          cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


GRADING_CONFIG = """\
# Written by python -m course_tools.grading; edit the command line, not this file.
# Code is never executed by nbgrader here: the harness runs it in a sandbox.
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "instruction-tuning-rlhf"
c.CourseDirectory.db_url = {db!r}
"""


@dataclass
class Result:
    """One row of the grading report."""
    student: str
    lab: str
    score: float = 0.0
    max_score: float = 0.0
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0  #: wall time of the sandboxed run
    #: test cells that lost points: grade id -> "earned / points" and why (failed checks, an error)
    lost: dict[str, str] = field(default_factory=dict)


def _norm(name: str) -> str:
    """A name for matching: lower case, no spaces, dashes, underscores or dots."""
    return re.sub(r"[\s_.\-]+", "", name.lower())


# ---------------------------------------------------------------------------------
# The submissions folder is not trusted: no links, no special files, bounded reads
# ---------------------------------------------------------------------------------
class Refused(ValueError):
    """A submitted path the harness does not read; the message says why."""


def _what(mode: int) -> str | None:
    """Why a file of this mode is not read (None for a regular file or a folder)."""
    for test, name in ((stat.S_ISLNK, "a symbolic link (links are not followed)"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a regular file"


def _scan(student_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The notebooks under ``student_dir`` (hidden names skipped) and the entries refused,
    with the reason: links, FIFOs, devices, sockets, and notebooks with more than one hard link."""
    nbs: list[Path] = []
    refused: list[tuple[Path, str]] = []
    for top, dirs, files in os.walk(student_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in [*dirs, *sorted(files)]:
            if name.startswith("."):
                continue
            path = Path(top) / name
            st = os.lstat(path)
            why = _what(st.st_mode)
            if why is None and stat.S_ISREG(st.st_mode) and name.endswith(".ipynb") and st.st_nlink != 1:
                why = f"a file with {st.st_nlink} hard links (one of them elsewhere)"
            if why:
                refused.append((path, why))
            elif stat.S_ISREG(st.st_mode) and name.endswith(".ipynb"):
                nbs.append(path)
    return sorted(nbs), refused  # os.walk does not enter a linked folder: it is listed, not followed


def read_submission(path: Path, root: Path, limit: int = MAX_NOTEBOOK) -> bytes:
    """The bytes of the submitted file ``path`` under ``root``, read without trusting the
    file system: every folder below ``root`` is opened without following links, the file
    must be a regular file with one hard link and at most ``limit`` bytes, and it is opened
    without following links or blocking (a FIFO) and checked again once open. Raises
    :class:`Refused` with the reason."""
    rel = path.relative_to(root)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    fd = os.open(root, flags | os.O_DIRECTORY)
    try:
        for part in rel.parts[:-1]:
            try:
                nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            except OSError as e:
                raise Refused(f"{part} is not a plain folder ({e.strerror})") from None
            os.close(fd)
            fd = nxt
        before = os.stat(rel.name, dir_fd=fd, follow_symlinks=False)
        why = _what(before.st_mode)
        if why is None and stat.S_ISDIR(before.st_mode):
            why = "a folder"
        if why is None and before.st_nlink != 1:
            why = f"a file with {before.st_nlink} hard links (one of them elsewhere)"
        if why is None and before.st_size > limit:
            why = f"larger than {limit >> 20} MiB ({before.st_size} bytes)"
        if why:
            raise Refused(f"{rel} is {why}")
        try:
            nb_fd = os.open(rel.name, flags | os.O_NONBLOCK, dir_fd=fd)
        except OSError as e:
            raise Refused(f"{rel} could not be opened ({e.strerror})") from None
        try:
            now = os.fstat(nb_fd)
            if (now.st_ino, now.st_dev) != (before.st_ino, before.st_dev) or not stat.S_ISREG(now.st_mode):
                raise Refused(f"{rel} changed while it was read")
            chunks, size = [], 0
            while chunk := os.read(nb_fd, 1 << 20):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise Refused(f"{rel} is larger than {limit >> 20} MiB")
            return b"".join(chunks)
        finally:
            os.close(nb_fd)
    finally:
        os.close(fd)


_CELL_TYPES = {"code", "markdown", "raw"}


def parse_submission(data: bytes) -> Any:
    """A submitted notebook from its bytes, checked cell by cell: every cell a mapping with a
    known ``cell_type``, text ``source``, a mapping ``metadata`` and text ids. Raises
    ``ValueError`` (or whatever ``json``/``nbformat`` raise) naming what is wrong."""
    raw = json.loads(data.decode("utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ValueError("no list of cells")
    for i, c in enumerate(raw["cells"]):
        if not isinstance(c, dict):
            raise ValueError(f"cell {i} is not a mapping")
        if c.get("cell_type") not in _CELL_TYPES:
            raise ValueError(f"cell {i}: unknown cell_type")
        src = c.get("source", "")
        if not (isinstance(src, str) or isinstance(src, list) and all(isinstance(x, str) for x in src)):
            raise ValueError(f"cell {i}: its source is {type(src).__name__}, not text")
        meta = c.get("metadata", {})
        if not isinstance(meta, dict) or not isinstance(meta.get("nbgrader", {}), dict):
            raise ValueError(f"cell {i}: its metadata is not a mapping")
        gid = meta.get("nbgrader", {}).get("grade_id")
        if not (gid is None or isinstance(gid, str)) or not (c.get("id") is None or isinstance(c.get("id"), str)):
            raise ValueError(f"cell {i}: its id or grade_id is not text")
    raw.setdefault("metadata", {})
    if not isinstance(raw["metadata"], dict):
        raise ValueError("its metadata is not a mapping")
    return nbformat.reads(json.dumps(raw), as_version=4)


def find_submissions(submissions: Path, labs_here: list[str]) -> tuple[list[tuple[str, str, Path, list[str]]], list[Result]]:
    """``(student, lab, notebook, notes)`` to grade, and report rows for what is not graded.

    ``<student>/<lab>/<lab>.ipynb`` is the layout; a folder or file whose name equals a
    lab's ignoring case, spaces, dashes, underscores and dots is taken, with a note.
    Links, FIFOs, devices and hard-linked notebooks are refused with the reason (:func:`_scan`).
    """
    found: list[tuple[str, str, Path, list[str]]] = []
    skipped: list[Result] = []
    keys = {_norm(lab): lab for lab in labs_here}
    for entry in sorted(p for p in submissions.iterdir() if not p.name.startswith(".")):
        why = _what(os.lstat(entry).st_mode)
        if why:
            skipped.append(Result(entry.name, "", notes=[f"not graded: the student's folder is {why}"]))
    for student_dir in sorted(p for p in submissions.iterdir()
                              if stat.S_ISDIR(os.lstat(p).st_mode) and not p.name.startswith(".")):
        student = student_dir.name
        nbs, refused = _scan(student_dir)
        for path, why in refused:
            rel = path.relative_to(student_dir)
            lab = keys.get(_norm(path.stem)) or keys.get(_norm(rel.parts[0])) or ""
            skipped.append(Result(student, lab, notes=[f"not graded: {rel} is {why}"]))
        if not nbs and not refused:
            skipped.append(Result(student, "", notes=["not graded: no notebook in this folder"]))
        best: dict[str, tuple[int, Path]] = {}
        unmatched: list[Path] = []
        for nb in nbs:
            rel = nb.relative_to(student_dir)
            folder = rel.parts[0] if len(rel.parts) > 1 else ""
            exact = len(rel.parts) == 2 and folder == nb.stem and folder in labs_here
            lab = nb.stem if exact else keys.get(_norm(nb.stem)) or keys.get(_norm(folder))
            if lab is None:
                unmatched.append(nb)
                continue
            rank = 0 if exact else 1 if _norm(nb.stem) == _norm(lab) and _norm(folder) == _norm(lab) else 2
            if lab in best and best[lab][0] <= rank:
                skipped.append(Result(student, lab, notes=[
                    f"not graded: {rel} (another file, {best[lab][1].relative_to(student_dir)}, was graded for {lab})"]))
                continue
            if lab in best:
                skipped.append(Result(student, lab, notes=[
                    f"not graded: {best[lab][1].relative_to(student_dir)} (another file, {rel}, was graded for {lab})"]))
            best[lab] = (rank, nb)
        for lab, (rank, nb) in sorted(best.items()):
            rel = nb.relative_to(student_dir)
            notes = [] if rank == 0 else [f"graded {rel} as {lab}/{lab}.ipynb (name matched ignoring case and separators)"]
            found.append((student, lab, nb, notes))
        for nb in unmatched:
            skipped.append(Result(student, "", notes=[
                f"not graded: {nb.relative_to(student_dir)} matches no lab ({', '.join(labs_here)})"]))
    return found, skipped


def _write_scores(db_url: str, student: str, lab: str, scores: dict[str, float]) -> None:
    import warnings

    from nbgrader.api import Gradebook
    with warnings.catch_warnings(), Gradebook(db_url) as gb:
        warnings.simplefilter("ignore")  # SQLAlchemy's notes on nbgrader's own session handling
        gb.update_or_create_student(student)
        gb.update_or_create_submission(lab, student)
        for gid, score in scores.items():
            grade = gb.find_grade(gid, lab, lab, student)
            grade.auto_score, grade.manual_score = score, None
        gb.db.commit()


#: columns of grades.csv: nbgrader's ``export`` columns, then ``submitted``
GRADES_COLUMNS = ["assignment", "duedate", "timestamp", "student_id", "last_name", "first_name", "email",
                  "raw_score", "late_submission_penalty", "score", "max_score", "submitted"]


def export_grades(db_url: str, dest: Path, labs: list[str] | None = None) -> None:
    """Write ``grades.csv``: one row per student and lab of the gradebook (``labs`` only,
    when given), labs in natural order (lab2 before lab10), students by id, with nbgrader's
    ``export`` columns and ``submitted`` (``yes``/``no``). nbgrader's own export writes 0 for a
    lab nobody submitted, like a real zero; here a lab not submitted has ``submitted = no`` and
    empty ``raw_score``, ``late_submission_penalty`` and ``score`` cells. Written atomically."""
    import warnings

    from nbgrader.api import Gradebook, MissingEntry

    tmp = dest.with_name(dest.name + ".tmp")
    with warnings.catch_warnings(), Gradebook(db_url) as gb, open(tmp, "w", newline="") as f:
        warnings.simplefilter("ignore")
        w = csv.writer(f)
        w.writerow(GRADES_COLUMNS)
        assignments = sorted((a for a in gb.assignments if labs is None or a.name in labs),
                             key=lambda a: natural_key(a.name))
        for a in assignments:
            for s in sorted(gb.students, key=lambda s: natural_key(s.id)):
                try:
                    sub = gb.find_submission(a.name, s.id)
                except MissingEntry:
                    got = ["", "", "", "", "no"]
                else:
                    penalty = sub.late_submission_penalty or 0.0
                    got = [sub.timestamp or "", sub.score, penalty, max(0.0, sub.score - penalty), "yes"]
                w.writerow([csv_cell(a.name), a.duedate or "", got[0], csv_cell(s.id), csv_cell(s.last_name or ""),
                            csv_cell(s.first_name or ""), csv_cell(s.email or ""), *got[1:4], a.max_score, got[4]])
    os.replace(tmp, dest)


def natural_key(name: str) -> list:
    """Sort key putting ``lab2`` before ``lab10``."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def labs_to_grade(labs: list[str], submitted: set[str], only: list[str] | None = None, all_labs: bool = False,
                  source: Path | None = None) -> list[str]:
    """The labs a grading run grades, in natural order: those named in ``only`` (an
    unknown name raises ``FileNotFoundError`` listing the labs of ``source``), else every
    lab with ``all_labs``, else those someone ``submitted``."""
    labs = sorted(labs, key=natural_key)
    if only:
        unknown = sorted(set(only) - set(labs))
        if unknown:
            raise FileNotFoundError(f"no lab {', '.join(unknown)} in {source or 'the source'} (labs: {', '.join(labs)})")
        return [lab for lab in labs if lab in only]
    return labs if all_labs else [lab for lab in labs if lab in submitted]


def grade(submissions: Path, workdir: Path = DEFAULT_WORKDIR, source: Path | None = None,
          timeout: int = 60, unsafe: bool = False, only: list[str] | None = None,
          progress: bool = True, all_labs: bool = False) -> list[Result]:
    """Grade ``submissions/<student>/<lab>/<lab>.ipynb`` (see the module docstring); write
    ``grades.csv``, ``report.csv`` and ``feedback/<student>/<lab>/<lab>.html`` under
    ``workdir``. ``source`` (default ``solutions/``) may be a private copy of the solutions
    with the instructor's own hidden tests. ``only`` grades just the labs it names (the
    others' feedback in ``workdir`` is kept); without it, the labs someone submitted are
    graded, or every lab of the source with ``all_labs`` (then grades.csv has a row, maybe
    ``submitted = no``, for every lab and student). ``progress`` prints one line per reference
    run and per submission as it finishes, under a progress bar (stderr). Without a
    sandbox, raises :class:`course_tools.sandbox.SandboxUnavailable` unless ``unsafe``."""
    submissions, workdir = Path(submissions).resolve(), Path(workdir).resolve()
    source = Path(source or REPO / "solutions").resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder at {submissions}")
    if workdir == REPO or REPO in workdir.parents:
        raise ValueError("grade outside the repository (the gradebook holds student data)")
    why = sandbox.available()
    if why and not unsafe:
        raise sandbox.SandboxUnavailable(f"{why}, or pass --unsafe (make grade UNSAFE=1) to run student code "
                                         "without one")
    workdir.mkdir(parents=True, exist_ok=True)
    db_url = f"sqlite:///{workdir / 'gradebook.db'}"
    (workdir / "nbgrader_config.py").write_text(GRADING_CONFIG.format(root=str(workdir), db=db_url))
    labs_here = sorted((p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").exists()), key=natural_key)
    every_lab = list(labs_here)
    found, skipped = find_submissions(submissions, every_lab)
    labs_here = labs_to_grade(every_lab, {f[1] for f in found}, only, all_labs, source)
    shutil.rmtree(workdir / ".runs", ignore_errors=True)
    for sub in ("source", "release"):
        for lab in labs_here:
            shutil.rmtree(workdir / sub / lab, ignore_errors=True)
    for sub in ("submitted", "autograded", "feedback"):  # <sub>/<student>/<lab>: only the labs graded now
        for lab in labs_here:
            for old in (workdir / sub).glob(f"*/{lab}"):
                shutil.rmtree(old, ignore_errors=True)
    from tqdm import tqdm
    say = (lambda line: tqdm.write(line, file=sys.stderr)) if progress else (lambda line: None)
    runs = workdir / ".runs"
    references: dict[str, tuple[Any, Any, Run, float, dict[str, set[str]]]] = {}
    for lab in labs_here:
        t0 = time.perf_counter()
        shutil.copytree(source / lab, workdir / "source" / lab)
        _nbgrader(["generate_assignment", lab, "--force"], cwd=workdir)
        finish_lab(workdir / "release" / lab / f"{lab}.ipynb", source / lab / f"{lab}.ipynb")
        src_nb = nbformat.read(source / lab / f"{lab}.ipynb", as_version=4)
        rel_nb = nbformat.read(workdir / "release" / lab / f"{lab}.ipynb", as_version=4)
        ref_plan = plan(src_nb)
        # the source as written (asserts and all) must pass in the sandbox: the records are
        # only a reference if the solution they come from passes its own tests
        whole = execute(Plan([{"index": i, "source": c.source, "test": False, "key": None} for i, c in enumerate(
            c for c in src_nb.cells if c.cell_type == "code")], {}, {}, None), runs / f"source-{lab}", timeout,
            unsafe, wall_s=submission_wall_s(ref_plan, timeout))
        if whole.cells or whole.result.returncode != 0:
            raise RuntimeError(f"{lab}: the source's own solution fails in the sandbox (cells that raised: "
                               f"{whole.cells}; its output: {whole.result.output[-2000:]})")
        ref = execute(ref_plan, runs / f"reference-{lab}", timeout, unsafe)
        bad = [gid for gid in ref_plan.checks if gid not in ref.tests or ref.tests[gid]["error"] is not None]
        if bad:
            raise RuntimeError(f"{lab}: the source's solution stops in its rewritten test cells {bad} in the sandbox"
                               f" (its output: {ref.result.output[-2000:]})")
        # one wall-clock budget per lab, from the source's cells: padding a notebook with cells buys no time
        references[lab] = (src_nb, rel_nb, ref, submission_wall_s(ref_plan, timeout), released_versions(source, lab))
        say(f"{lab}: the source passes its tests; reference recorded ({time.perf_counter() - t0:.0f} s)")
    skipped += [Result(student, lab, notes=[f"not graded in this run (only {', '.join(labs_here)})"])
                for student, lab, _, _ in found if lab not in labs_here]
    found = [f for f in found if f[1] in labs_here]
    results: list[Result] = []
    bar = tqdm(found, desc="grading", unit="submission", file=sys.stderr, disable=not progress or not found)
    for student, lab, nb_path, notes in bar:
        src_nb = references[lab][0]
        res = Result(student, lab, max_score=_max_points(source / lab / f"{lab}.ipynb"), notes=list(notes))
        results.append(res)
        if unsafe:
            res.notes.append("graded WITHOUT a sandbox (--unsafe)")
        try:
            data = read_submission(nb_path, submissions)
        except (Refused, OSError) as e:
            res.notes.append(f"not graded: {e}")
            _write_scores(db_url, student, lab, {gid: 0.0 for gid in _grade_ids(src_nb)})
            continue
        try:
            student_nb = parse_submission(data)
        except Exception as e:  # noqa: BLE001  (any unreadable file is reported, not fatal)
            res.notes.append(f"not a valid notebook ({type(e).__name__}: {str(e)[:200]}): not graded")
            _write_scores(db_url, student, lab, {gid: 0.0 for gid in _grade_ids(src_nb)})
            continue
        try:
            _grade_one(res, student_nb, data, lab, references[lab], workdir, db_url, timeout, unsafe)
        except Exception as e:  # noqa: BLE001  (one submission the harness cannot handle never stops the class)
            res.score = 0.0
            res.notes.append(f"not graded: the harness failed on it ({type(e).__name__}: {str(e)[:200]})")
            _write_scores(db_url, student, lab, {gid: 0.0 for gid in _grade_ids(src_nb)})
        say(f"{safe_text(student)} {lab}: {res.score:g} / {res.max_score:g} ({res.seconds:.1f} s)"
            + ("; " + safe_text(res.notes[-1])[:120] if res.notes else ""))
    bar.close()
    shutil.rmtree(runs, ignore_errors=True)
    for lab in labs_here:
        _nbgrader(["generate_feedback", lab, "--force"], cwd=workdir, check=False)
    for page in (workdir / "feedback").rglob("*.html"):
        tmp = page.with_name(page.name + ".tmp")
        tmp.write_text(sanitize_feedback(offline_feedback(page.read_text())))
        os.replace(tmp, page)
    export_grades(db_url, workdir / "grades.csv", labs_here)
    results += skipped
    tmp = workdir / "report.csv.tmp"
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "lab", "score", "max_score", "notes", "seconds"])
        for r in results:
            w.writerow([csv_cell(r.student), csv_cell(r.lab), r.score, r.max_score, csv_cell(" | ".join(r.notes)),
                        f"{r.seconds:.1f}"])
    os.replace(tmp, workdir / "report.csv")
    return results


def _grade_one(res: Result, student_nb: Any, data: bytes, lab: str,
               reference: tuple[Any, Any, Run, float, dict[str, set[str]]],
               workdir: Path, db_url: str, timeout: int, unsafe: bool) -> None:
    """Grade one parsed submission into ``res``; write its scores, its copy and its feedback notebook."""
    src_nb, rel_nb, ref, wall_s, history = reference
    student = res.student
    runs = workdir / ".runs"
    p = plan(src_nb, student_nb, rel_nb, history)
    res.notes += p.notes
    protected: dict[str, str] = {}
    for c in src_nb.cells:
        if c.cell_type == "code" and _is_locked(c):
            try:
                protected.update(_imported_names(ast.parse(c.source)))
            except SyntaxError:
                pass
    for i, cell in enumerate(student_nb.cells):
        if cell.get("cell_type") == "code" and not _is_locked(cell):
            reasons = check_student_code(cell.get("source", ""), protected)
            if reasons:
                res.notes.append(f"cell {i}: worth a look (the score does not depend on it): {'; '.join(reasons)}")
    run = execute(p, runs / f"{student}-{lab}", timeout, unsafe, wall_s=wall_s)
    res.seconds = run.result.wall_s
    for idx, name in sorted(run.cells.items(), key=lambda kv: int(kv[0]) if kv[0].isdigit() else -1):
        if name in ("CellTimeoutError", "SystemExit", "KeyboardInterrupt"):
            res.notes.append(f"cell {idx}: {name}" + (f": ran past {timeout} s" if name == "CellTimeoutError" else ""))
    if run.result.out_of_memory:
        res.notes.append(f"the run ran out of memory ({sandbox.Limits().tree_memory_bytes / (1 << 30):g} GiB for all "
                         "its processes and its /tmp and /dev/shm together); a process was killed")
    if run.result.timed_out:
        res.notes.append(f"the run was stopped after {run.result.wall_s:.0f} s (wall-clock limit)")
    elif run.result.returncode != 0:
        res.notes.append(f"the run ended early (exit status {run.result.returncode}); later cells did not run")
    if run.result.output_dropped:
        total = len(run.result.output.encode()) + run.result.output_dropped
        res.notes.append(f"printed {total / 1e6:.1f} MB; output truncated to the first "
                         f"{len(run.result.output.encode()) / 1e6:.1f} MB")
    scores: dict[str, float] = {}
    fb = p.feedback
    for gid, checks in p.checks.items():
        ok, failed, not_run = judge(ref.tests[gid], run.tests.get(gid), checks)
        scores[gid] = p.points[gid] if ok else 0.0
        student_t = run.tests.get(gid)
        ran = isinstance(student_t, dict) and student_t.get("error") is None
        error = str(student_t.get("error"))[:100] if isinstance(student_t, dict) and student_t.get("error") else None
        if not ok:
            why = [f"{'hidden' if c.hidden else 'visible'} check {c.number}" for c in failed]
            if not_run:
                why.append("not run: " + ", ".join(f"{'hidden' if c.hidden else 'visible'} check {c.number}"
                                                   for c in not_run))
            if not ran:
                why.append("stopped with " + (str(student_t.get("error"))[:100] if isinstance(student_t, dict)
                                              else "no result (the run ended before it)"))
            res.lost[gid] = f"{scores[gid]:g} / {p.points[gid]:g}: " + (", ".join(why) or "failed")
        pos = next(i for i, c in enumerate(fb.cells) if _meta(c).get("grade_id") == gid)
        fb.cells.insert(pos + 1, _result_cell(gid, ok, scores[gid], p.points[gid], failed, ran, checks, not_run,
                                              error))
    res.score = sum(scores.values())
    dest = workdir / "submitted" / student / lab
    dest.mkdir(parents=True, exist_ok=True)
    (dest / f"{lab}.ipynb").write_bytes(data)  # what was read and graded, not the path again
    graded = workdir / "autograded" / student / lab
    graded.mkdir(parents=True, exist_ok=True)
    nbformat.write(fb, graded / f"{lab}.ipynb")
    _write_scores(db_url, student, lab, scores)


def _grade_ids(nb) -> list[str]:
    """The grade ids of a lab's graded cells."""
    return [_meta(c)["grade_id"] for c in nb.cells if _meta(c).get("grade") and _meta(c).get("grade_id")]


#: feedback pages wrap long lines (code, test lines, results) instead of cutting them at the right edge
WRAP_CSS = """<style type="text/css">
/* course: wrap long lines instead of cutting them at the right edge */
pre, code, .highlight pre, div.input_area pre, div.output_area pre, div.output_text pre {
  white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: break-word; overflow-x: visible;
}
div.input_area, div.highlight, div.output_subarea, div.inner_cell { overflow-x: visible; min-width: 0; }
</style>
"""
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>.*?</script>\s*", re.S | re.I)
_MATHJAX_CONFIG = re.compile(r"<script\b[^>]*type\s*=\s*[\"']text/x-mathjax-config[\"'][^>]*>.*?</script>\s*", re.S | re.I)
_EXTERNAL_SRC = re.compile(r"""(<[a-z][a-z0-9]*\b[^>]*?\bsrc\s*=\s*)(["']?)(?:https?:)?//[^"'\s>]*\2""", re.I)
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)  # bootstrap's icon font: a file the page lacks
_EXTERNAL_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*", re.S | re.I)


def offline_feedback(html: str) -> str:
    """A feedback page of ``nbgrader generate_feedback`` made self-contained and readable:
    scripts and style sheets it would load from the network (nbgrader's template loads
    MathJax from a CDN) are removed, any other ``src`` on the network (an image in a
    student's markdown) is emptied, and :data:`WRAP_CSS` makes long lines wrap. The labs
    write their formulas in Unicode, so nothing needs MathJax; bootstrap's icon font (a file
    the page lacks, and no icon is used) is dropped too: the page is one file that loads nothing."""
    html = _EXTERNAL_SCRIPT.sub("", html)
    html = _MATHJAX_CONFIG.sub("", html)
    html = _EXTERNAL_LINK.sub("", html)
    html = _FONT_FACE.sub("", html)
    html = _EXTERNAL_SRC.sub(r"\1\2\2", html)  # e.g. an image a student's markdown cell links to
    return html.replace("</head>", WRAP_CSS + "</head>", 1) if WRAP_CSS not in html else html


#: what a feedback page's body may hold after :func:`sanitize_feedback`
FEEDBACK_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
                 "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "samp", "span", "strong",
                 "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
FEEDBACK_ATTRIBUTES = {"*": {"class", "id", "name", "title"}, "a": {"href"}, "td": {"colspan", "rowspan"},
                       "th": {"colspan", "rowspan"}, "ol": {"start"}}


def _fragment_only(tag: str, attr: str, value: str) -> str | None:  # noqa: ARG001
    return value if attr != "href" or value.startswith("#") else None


def sanitize_feedback(html: str) -> str:
    """A feedback page with its body (where the student's cells are) cleaned by ``nh3``, a
    maintained HTML sanitiser: only the tags and attributes of :data:`FEEDBACK_TAGS` and
    :data:`FEEDBACK_ATTRIBUTES` stay (no script, style, image, form, iframe or event
    handler), links only to places in the page (``#...``). The head is nbgrader's template,
    made offline by :func:`offline_feedback`; nothing in it comes from a student."""
    import nh3

    start = html.find("<body")
    start = html.find(">", start) + 1 if start >= 0 else 0
    end = html.rfind("</body>")
    end = end if end >= start else len(html)
    body = nh3.clean(html[start:end], tags=FEEDBACK_TAGS, attributes=FEEDBACK_ATTRIBUTES,
                     attribute_filter=_fragment_only, url_schemes=set(), strip_comments=True, link_rel=None)
    return html[:start] + body + html[end:]


_ESCAPED = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}  # controls, format (bidi overrides), separators


def safe_text(text: str) -> str:
    """``text`` (a student's file name, a note quoting it) safe for a terminal: every control,
    format or separator character (escape sequences, bidi overrides, new lines) is written
    as a Python escape (``\\x1b``)."""
    return "".join(ch.encode("unicode_escape").decode("ascii") if unicodedata.category(ch) in _ESCAPED
                   else ch for ch in text)


def csv_cell(value: Any) -> Any:
    """A cell for ``report.csv``/``grades.csv``: text goes through :func:`safe_text`, and text
    a spreadsheet would take for a formula (leading ``=``, ``+``, ``-``, ``@``, tab or
    carriage return) gets a leading ``'``. Numbers pass unchanged."""
    if not isinstance(value, str):
        return value
    value = safe_text(value)
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def _max_points(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    return float(sum(_meta(c).get("points", 0) for c in nb.cells if _meta(c).get("grade")))


def summary(results: list[Result]) -> str:
    """One line per result for the terminal, every student-controlled string through :func:`safe_text`."""
    width = max([len(safe_text(r.student)) for r in results] + [7])
    return "\n".join(f"{safe_text(r.student):<{width}} {safe_text(r.lab):<32} {r.score:5.1f} / {r.max_score:<5.1f} "
                     f"{safe_text(' | '.join(r.notes))}" for r in results)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_run"]:  # inside the sandbox
        _run_cells(Path(argv[1]))
        return
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lb = sub.add_parser("labs", help="regenerate labs/ from solutions/")
    lb.add_argument("only", nargs="*", help="only these labs (default: every lab in solutions/)")
    g = sub.add_parser("grade", help="grade a folder <student>/<lab>/<lab>.ipynb")
    g.add_argument("submissions", type=Path)
    g.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="grading folder with the gradebook, grades.csv, feedback/ (default %(default)s)")
    g.add_argument("--source", type=Path, default=None,
                   help="solutions folder to grade against (default: the course's solutions/)")
    g.add_argument("--timeout", type=int, default=60, help="seconds per cell (default %(default)s)")
    g.add_argument("--lab", action="append", default=[], metavar="LAB",
                   help="grade only this lab (repeat for several; default: every lab in the source)")
    g.add_argument("--all-labs", action="store_true",
                   help="grade every lab of the source, not only those someone submitted (grades.csv then lists "
                        "them all)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument("--unsafe", action="store_true",
                   help="grade without a sandbox (student code runs with your rights); the report says so")
    args = ap.parse_args(argv)
    if args.cmd == "labs":
        for p in labs(only=args.only):
            print("wrote", p.relative_to(REPO))
        return
    start = time.perf_counter()
    try:
        results = grade(args.submissions, args.workdir, args.source, args.timeout, args.unsafe,
                        only=[x for lab in args.lab for x in lab.split()] or None, progress=not args.quiet,
                        all_labs=args.all_labs)
    except sandbox.SandboxUnavailable as e:
        sys.exit(f"make grade refuses: {e}.")
    except FileNotFoundError as e:
        sys.exit(f"make grade: {e}")
    print(summary(results))
    print(json.dumps({"graded": sum(1 for r in results if r.lab and not any(n.startswith("not ") for n in r.notes)),
                      "rows": len(results), "seconds": round(time.perf_counter() - start, 1),
                      "grades_csv": str(args.workdir / "grades.csv"),
                      "report_csv": str(args.workdir / "report.csv"),
                      "feedback": str(args.workdir / "feedback")}))


if __name__ == "__main__":
    main()
