"""Graded labs with nbgrader: generate the student labs, and grade a folder of submissions.

``solutions/<lab>/<lab>.ipynb`` is the single source of each lab (nbgrader's *source*
folder); ``labs/<lab>/<lab>.ipynb`` is generated from it (nbgrader's *release* folder)::

    python -m course_utils.grading labs                     # = make labs
    python -m course_utils.grading grade SUBMISSIONS        # = make grade SUBMISSIONS=...

``SUBMISSIONS`` is laid out ``<student>/<lab>/<lab>.ipynb``. Grading runs in its own
course folder (``--workdir``, default ``~/course-grading``, outside the repository) with
the standard nbgrader commands: ``generate_assignment``, ``autograde``, ``export``
(``grades.csv``) and ``generate_feedback`` (``feedback/<student>/<lab>/<lab>.html``).

Autograding runs student code. nbgrader already restores test cells that a student
edited or deleted; :class:`GuardSolutionCells` adds a static check of the cells a student
wrote: code that patches a module (``numpy.testing.assert_allclose = ...``), rebinds a
name imported by a locked cell, exits the kernel (``sys.exit``, ``os._exit``) or reaches
for ``exec``/``eval``/``builtins`` is not run; the cell raises ``GradingGuardError`` instead,
with the reason, which the feedback shows. A cell that runs past the timeout is
interrupted. None of this is a sandbox: run grading as an unprivileged user or in a
container (``docs/instructor.md``).
"""

from __future__ import annotations

import argparse
import ast
import csv
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.preprocessors import NbGraderPreprocessor

REPO = Path(__file__).resolve().parent.parent
DEFAULT_WORKDIR = Path.home() / "course-grading"

#: Calls that end or escape the grading kernel, or run code the check cannot see.
FORBIDDEN_CALLS = {"exit", "quit", "exec", "eval", "compile", "__import__", "setattr",
                   "getattr", "delattr", "globals", "vars", "breakpoint", "sys.exit", "os._exit", "os.kill",
                   "os.abort", "os.system", "os.killpg", "importlib.reload",
                   "importlib.import_module", "signal.signal", "signal.alarm"}
#: Names a student cell may not use at all.
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
    """Reasons why a student-written cell must not run under grading (empty when fine).

    ``protected`` holds the names that locked cells import (``np``, ``torch``, ...), with
    what they are bound to: a student cell may use them, and import them again as the same
    thing, but may not assign to them or to their attributes.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []  # the cell fails on its own when it runs
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
            targets = node.targets
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = node.targets
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


def _is_locked(cell) -> bool:
    meta = cell.metadata.get("nbgrader", {})
    return bool(meta.get("locked") or (meta.get("grade") and not meta.get("solution")))


class GuardSolutionCells(NbGraderPreprocessor):
    """nbgrader preprocessor: replace unsafe student cells by a cell that raises the reason.

    Runs after nbgrader's ``OverwriteCells``, so locked cells hold the instructor's code.
    """

    def preprocess(self, nb, resources):
        protected: dict[str, str] = {}
        for cell in nb.cells:
            if cell.cell_type == "code" and _is_locked(cell):
                try:
                    protected.update(_imported_names(ast.parse(cell.source)))
                except SyntaxError:
                    pass
        for cell in nb.cells:
            if cell.cell_type != "code" or _is_locked(cell):
                continue
            reasons = check_student_code(cell.source, protected)
            if reasons:
                why = "; ".join(reasons)
                self.log.warning("not running a cell: %s", why)
                cell.source = ("class GradingGuardError(Exception):\n    pass\n"
                               f"raise GradingGuardError({('this cell was not run: ' + why)!r})")
        return nb, resources


def labs(out: Path | None = None) -> list[Path]:
    """Generate every lab in ``labs/`` (or ``out``) from ``solutions/``; returns the notebooks."""
    names = sorted(p.name for p in (REPO / "solutions").iterdir() if p.is_dir() and not p.name.startswith("."))
    if not names:
        raise FileNotFoundError("no labs in solutions/ (expected solutions/<lab>/<lab>.ipynb)")
    release = ["--CourseDirectory.release_directory=" + str(out)] if out else []
    written = []
    for name in names:
        _nbgrader(["generate_assignment", name, "--force", "--no-db", *release], cwd=REPO)
        written += sorted(((out or REPO / "labs") / name).glob("*.ipynb"))
    return written


def _nbgrader(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    # nbgrader runs the `alembic` command of its own environment: put that environment first
    env = {**os.environ, "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "nbgrader", *args, "--log-level=WARN"],
                          cwd=cwd, capture_output=True, text=True, env=env)
    if check and proc.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


GRADING_CONFIG = """\
# Written by python -m course_utils.grading; edit the command line, not this file.
c = get_config()  # noqa: F821
c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = "instruction-tuning-rlhf"
c.CourseDirectory.db_url = {db!r}
c.Execute.timeout = {timeout}
c.OverwriteCells.add_missing_cells = True
from nbgrader.preprocessors import ClearOutput, DeduplicateIds, OverwriteKernelspec, OverwriteCells, CheckCellMetadata
from course_utils.grading import GuardSolutionCells
c.Autograde.sanitize_preprocessors = [ClearOutput, DeduplicateIds, OverwriteKernelspec,
                                      OverwriteCells, GuardSolutionCells, CheckCellMetadata]
"""


@dataclass
class Result:
    """One row of the grading report."""
    student: str
    lab: str
    score: float = 0.0
    max_score: float = 0.0
    notes: list[str] = field(default_factory=list)


def _notes_from_autograded(path: Path) -> list[str]:
    """Why points were lost for reasons other than a wrong answer (guard, timeout, dead kernel)."""
    notes = []
    nb = nbformat.read(path, as_version=4)
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.get("output_type") == "error" and out.get("ename") in (
                    "GradingGuardError", "CellTimeoutError", "DeadKernelError"):
                notes.append(f"cell {i}: {out['ename']}: {out.get('evalue') or 'timed out'}")
        if cell.source.startswith("# This cell (id:"):
            notes.append(f"cell {i}: a test cell was missing and was put back")
    return notes


def _edited_locked_cells(submitted: Path, released: Path) -> list[str]:
    """Locked cells (instructions, tests) whose source differs from the handed-out lab."""
    def locked(path: Path) -> dict[str, str]:
        nb = nbformat.read(path, as_version=4)
        return {c.metadata["nbgrader"]["grade_id"]: c.source for c in nb.cells if _is_locked(c)}
    given, got = locked(released), locked(submitted)
    return [f"locked cell {gid!r} was edited; the original was put back"
            for gid in given if gid in got and got[gid] != given[gid]]


def grade(submissions: Path, workdir: Path = DEFAULT_WORKDIR, source: Path | None = None,
          timeout: int = 60) -> list[Result]:
    """Autograde ``submissions/<student>/<lab>/<lab>.ipynb``; write ``grades.csv``, ``report.csv``
    and per-student feedback HTML under ``workdir``. ``source`` (default ``solutions/``) may
    be a private copy of the solutions with the instructor's own hidden tests."""
    submissions, workdir = Path(submissions).resolve(), Path(workdir).resolve()
    source = Path(source or REPO / "solutions").resolve()
    if not submissions.is_dir():
        raise FileNotFoundError(f"no submissions folder at {submissions}")
    if workdir == REPO or REPO in workdir.parents:
        raise ValueError("grade outside the repository (the gradebook holds student data)")
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "nbgrader_config.py").write_text(GRADING_CONFIG.format(
        root=str(workdir), db=f"sqlite:///{workdir / 'gradebook.db'}", timeout=timeout))
    labs_here = sorted(p.name for p in source.iterdir() if (p / f"{p.name}.ipynb").exists())
    shutil.rmtree(workdir / "source", ignore_errors=True)
    for lab in labs_here:
        shutil.copytree(source / lab, workdir / "source" / lab)
        _nbgrader(["generate_assignment", lab, "--force"], cwd=workdir)
    results: list[Result] = []
    shutil.rmtree(workdir / "submitted", ignore_errors=True)
    for student_dir in sorted(p for p in submissions.iterdir() if p.is_dir()):
        for lab in labs_here:
            nb_path = student_dir / lab / f"{lab}.ipynb"
            if not nb_path.exists():
                continue
            res = Result(student_dir.name, lab)
            results.append(res)
            try:
                nbformat.read(nb_path, as_version=4)
            except Exception as e:  # noqa: BLE001  (any unreadable file is reported, not fatal)
                res.notes.append(f"not a valid notebook ({type(e).__name__}): not graded")
                continue
            res.notes += _edited_locked_cells(nb_path, workdir / "release" / lab / nb_path.name)
            dest = workdir / "submitted" / res.student / lab
            dest.mkdir(parents=True)
            shutil.copy(nb_path, dest / nb_path.name)
            proc = _nbgrader(["autograde", lab, "--student", res.student, "--force"],
                             cwd=workdir, check=False)
            graded = workdir / "autograded" / res.student / lab / nb_path.name
            if proc.returncode != 0 or not graded.exists():
                tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
                res.notes.append(f"autograding failed: {tail[0]}")
                continue
            res.notes += _notes_from_autograded(graded)
    for lab in labs_here:
        _nbgrader(["generate_feedback", lab, "--force"], cwd=workdir, check=False)
    _nbgrader(["export", "--to", str(workdir / "grades.csv")], cwd=workdir)
    _fill_scores(workdir / "grades.csv", results, source, labs_here)
    with open(workdir / "report.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "lab", "score", "max_score", "notes"])
        for r in results:
            w.writerow([r.student, r.lab, r.score, r.max_score, " | ".join(r.notes)])
    return results


def _fill_scores(grades_csv: Path, results: list[Result], source: Path, labs_here: list[str]) -> None:
    """Copy scores from nbgrader's export into ``results`` (missing submission = 0)."""
    rows = {(r["student_id"], r["assignment"]): r for r in csv.DictReader(open(grades_csv))}
    for res in results:
        row = rows.get((res.student, res.lab))
        res.max_score = float(row["max_score"]) if row else _max_points(source / res.lab / f"{res.lab}.ipynb")
        res.score = float(row["score"]) if row and row.get("score") else 0.0


def _max_points(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    return float(sum(c.metadata.get("nbgrader", {}).get("points", 0) for c in nb.cells
                     if c.metadata.get("nbgrader", {}).get("grade")))


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("labs", help="regenerate labs/ from solutions/")
    g = sub.add_parser("grade", help="autograde a folder <student>/<lab>/<lab>.ipynb")
    g.add_argument("submissions", type=Path)
    g.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="grading folder with the gradebook, grades.csv, feedback/ (default %(default)s)")
    g.add_argument("--source", type=Path, default=None,
                   help="solutions folder to grade against (default: the course's solutions/)")
    g.add_argument("--timeout", type=int, default=60, help="seconds per cell (default %(default)s)")
    args = ap.parse_args(argv)
    if args.cmd == "labs":
        for p in labs():
            print("wrote", p.relative_to(REPO))
        return
    results = grade(args.submissions, args.workdir, args.source, args.timeout)
    width = max([len(r.student) for r in results] + [7])
    for r in results:
        print(f"{r.student:<{width}} {r.lab:<24} {r.score:5.1f} / {r.max_score:<5.1f} {' | '.join(r.notes)}")
    print(json.dumps({"graded": len(results), "grades_csv": str(args.workdir / "grades.csv"),
                      "report_csv": str(args.workdir / "report.csv"),
                      "feedback": str(args.workdir / "feedback")}))


if __name__ == "__main__":
    main()
