"""The plan of a run: what the sandbox executes for a submission, and what its feedback shows.

A cell's role (solution, test, locked) always comes from the source's nbgrader metadata
(:func:`_role`, :func:`_is_locked`). :func:`plan` matches a student's cells to the
source's (by ``grade_id``, else by cell id), puts back the source's locked and test cells
(the test cells rewritten into probes by :func:`course_tools.grading.probes.probe_lab`) and
notes what it put back or left out. :func:`record_release` and :func:`released_versions`
keep every handed-out version of each locked cell, so a copy of an earlier version is not
taken for an edit.

Imports: nbformat and :mod:`course_tools.grading.probes`.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from course_tools.grading.probes import HIDDEN_BEGIN, HIDDEN_END, Check, probe_lab


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


def _grade_ids(nb) -> list[str]:
    """The grade ids of a lab's graded cells."""
    return [_meta(c)["grade_id"] for c in nb.cells if _meta(c).get("grade") and _meta(c).get("grade_id")]


def _max_points(path: Path) -> float:
    nb = nbformat.read(path, as_version=4)
    return float(sum(_meta(c).get("points", 0) for c in nb.cells if _meta(c).get("grade")))
