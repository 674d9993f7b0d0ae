"""What runs inside the sandbox: a job's cells in one IPython shell, writing the records.

:mod:`course_tools.grading.execute` starts ``python -m course_tools.grading.runner
<job.json>`` in :mod:`course_tools.sandbox`; :func:`_run_cells` runs the job's cells (a
student's, or the source's, and the test cells rewritten into probes) with a per-cell
timeout and writes what each test cell's probes recorded beside the job. The student's code
runs in this process: nothing here decides a score or holds an expected value; the harness
reads the files back as data and judges them.

Imports: the standard library, IPython and :mod:`course_tools.grading.records`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from course_tools.grading.records import plain


class CellTimeoutError(BaseException):
    """A cell ran past the per-cell timeout (a BaseException, so no probe records it as a value)."""


def _run_cells(job_path: Path) -> None:
    """Run a job (``job.json``: cells, per-cell timeout) in one IPython shell, in the sandbox.

    Writes ``test-<index>.json`` when a test cell ends (``{"key": grade_id, "records": {key:
    [values]}, "error": exception name or None}``) and ``cells.json`` after every cell
    (``{index: exception name}`` for the cells that raised). A test cell's probes
    (:mod:`course_tools.grading.probes`) are ``__probe_try__(key, thunk)`` (the thunk's value as
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


if __name__ == "__main__":
    _run_cells(Path(sys.argv[1]))
