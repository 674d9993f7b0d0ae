"""The grading run: from a submissions folder to gradebook, feedback pages and reports.

:func:`grade` prepares the grading folder, records each lab's reference (the source run as
written, then with its test cells rewritten), grades each submission (:func:`_grade_one`:
plan, static scan, sandboxed run, judgement, feedback notebook, gradebook scores), then
writes the feedback pages, ``grades.csv`` and ``report.csv``. A submission the harness
cannot handle is reported, never stops the class.

Imports: :mod:`course_tools.sandbox` and the stages ``generate``, ``plan``, ``checks``,
``execute``, ``score``, ``feedback``, ``submissions`` and ``reports`` of
:mod:`course_tools.grading`; only ``cli`` (and the package, re-exporting :func:`grade`)
imports it.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import nbformat

from course_tools import sandbox
from course_tools.grading.checks import _imported_names, check_student_code
from course_tools.grading.execute import Run, execute, submission_wall_s
from course_tools.grading.feedback import _result_cell, offline_feedback, sanitize_feedback
from course_tools.grading.generate import GRADING_CONFIG, REPO, _nbgrader, finish_lab
from course_tools.grading.plan import Plan, _grade_ids, _is_locked, _max_points, _meta, plan, released_versions
from course_tools.grading.reports import (Result, _write_scores, export_grades, labs_to_grade, natural_key, safe_text,
                                          write_report)
from course_tools.grading.score import judge
from course_tools.grading.submissions import Refused, find_submissions, parse_submission, read_submission

DEFAULT_WORKDIR = Path.home() / "course-grading"


def grade(submissions: Path, workdir: Path = DEFAULT_WORKDIR, source: Path | None = None,
          timeout: int = 60, unsafe: bool = False, only: list[str] | None = None,
          progress: bool = True, all_labs: bool = False) -> list[Result]:
    """Grade ``submissions/<student>/<lab>/<lab>.ipynb`` (see :mod:`course_tools.grading`);
    write ``grades.csv``, ``report.csv`` and ``feedback/<student>/<lab>/<lab>.html`` under
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
    write_report(results, workdir / "report.csv")
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
