"""Generating the student labs: nbgrader's release of ``solutions/``, finished.

:func:`labs` runs ``nbgrader generate_assignment`` for each lab (``make labs``) and
:func:`finish_lab` (grading calls it too) gives each stub a message naming its part and
the function to write, and each test cell that uses an earlier part's function a note
saying so; the course's own release is recorded
(:func:`course_tools.grading.plan.record_release`). :func:`_nbgrader` runs nbgrader's
command line; :data:`GRADING_CONFIG` is the nbgrader configuration of a grading folder.

Imports: nbformat, nbgrader, :mod:`course_tools.notebooks` and
:mod:`course_tools.grading.plan`.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat

from course_tools.grading.plan import RELEASED, _meta, _strip_hidden, record_release

REPO = Path(__file__).resolve().parents[2]


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
