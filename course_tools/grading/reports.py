"""Reports: the gradebook's scores, ``grades.csv``, ``report.csv`` and the terminal's summary.

:class:`Result` is one row of ``report.csv``. :func:`_write_scores` writes a submission's
scores into nbgrader's gradebook, :func:`export_grades` writes ``grades.csv`` from it and
:func:`write_report` writes ``report.csv``; :func:`labs_to_grade` picks the labs a run
grades, in natural order (:func:`natural_key`). Every string a student controls goes
through :func:`safe_text` (terminal) or :func:`csv_cell` (spreadsheet).

Imports: the standard library and nbgrader's gradebook.
"""

from __future__ import annotations

import csv
import os
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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


def write_report(results: list[Result], dest: Path) -> None:
    """Write ``report.csv``: one row per result (graded or not), with its notes. Written atomically."""
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", "lab", "score", "max_score", "notes", "seconds"])
        for r in results:
            w.writerow([csv_cell(r.student), csv_cell(r.lab), r.score, r.max_score, csv_cell(" | ".join(r.notes)),
                        f"{r.seconds:.1f}"])
    os.replace(tmp, dest)


def summary(results: list[Result]) -> str:
    """One line per result for the terminal, every student-controlled string through :func:`safe_text`."""
    width = max([len(safe_text(r.student)) for r in results] + [7])
    return "\n".join(f"{safe_text(r.student):<{width}} {safe_text(r.lab):<32} {r.score:5.1f} / {r.max_score:<5.1f} "
                     f"{safe_text(' | '.join(r.notes))}" for r in results)
