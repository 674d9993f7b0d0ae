"""Running a plan in the sandbox: the job file, the run, the records read back.

:func:`execute` writes a :class:`~course_tools.grading.plan.Plan`'s cells as ``job.json``
in an emptied folder, runs :mod:`course_tools.grading.runner` on it in
:mod:`course_tools.sandbox` (that folder is the only one it can write) within one
wall-clock budget per lab (:func:`submission_wall_s`), and reads back only the records
files of the plan's own test cells, each at most :data:`MAX_RECORDS` bytes.

Imports: :mod:`course_tools.sandbox` and :mod:`course_tools.grading.plan`.
"""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from course_tools import sandbox
from course_tools.grading.plan import Plan

#: largest records file of one test cell the harness reads (bytes)
MAX_RECORDS = 32 << 20
#: seconds a sandboxed run is given on top of its cells' timeouts (interpreter and torch start-up)
START_S = 120


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
    res = sandbox.run([str(Path(sys.prefix) / "bin" / "python"), "-m", "course_tools.grading.runner",
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
