"""Scoring: a test cell's records from a student's run judged against the reference's.

:func:`judge` runs in the harness, on parsed JSON only: a test cell earns its points when
every record of the reference run is matched by the student's
(:func:`course_tools.grading.records.same`) and the student's cell ran to its end.

Imports: :mod:`course_tools.grading.records` and :mod:`course_tools.grading.probes`
(:class:`~course_tools.grading.probes.Check`).
"""

from __future__ import annotations

from typing import Any

from course_tools.grading.probes import Check
from course_tools.grading.records import same


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
