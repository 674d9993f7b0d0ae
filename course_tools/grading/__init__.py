"""Graded labs with nbgrader: generate the student labs, and grade a folder of submissions.

``solutions/<lab>/<lab>.ipynb`` is the single source of each lab (nbgrader's *source*
folder); ``labs/<lab>/<lab>.ipynb`` is generated from it (nbgrader's *release* folder)::

    python -m course_tools.grading labs                     # = make labs
    python -m course_tools.grading grade SUBMISSIONS        # = make grade SUBMISSIONS=...

The stages
----------
Prepare, run the untrusted code, score, report. Each module below imports only modules
listed above it (and :mod:`course_tools.sandbox`, :mod:`course_tools.notebooks`):

* :mod:`.records` — the records of a run as plain data (:func:`~.records.plain`, inside
  the sandbox) and their comparison (:func:`~.records.same`, in the harness);
* :mod:`.taint` — which names and expressions of a test cell the student's code may have
  made or changed;
* :mod:`.probes` — the test cells rewritten into probes that record, never judge
  (:func:`~.probes.probe_lab`);
* :mod:`.checks` — the static scan of a student's cells (advice in ``report.csv``);
* :mod:`.reports` — gradebook scores, ``grades.csv``, ``report.csv``, the terminal summary;
* :mod:`.runner` — what runs inside the sandbox: a job's cells, writing the records;
* :mod:`.submissions` — the submissions folder, read without trusting it;
* :mod:`.plan` — cell roles, and the run of a submission against the source
  (:class:`~.plan.Plan`);
* :mod:`.score` — a test cell's records judged against the reference's;
* :mod:`.feedback` — the result under each test cell, the feedback pages made offline and
  sanitised;
* :mod:`.execute` — a plan run in the sandbox, its records read back;
* :mod:`.generate` — the student labs generated from ``solutions/`` (``make labs``);
* :mod:`.orchestrate` — :func:`grade`, a whole grading run (``make grade``);
* :mod:`.cli` — the command line (``__main__`` runs it).

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
   :func:`.probes.probe_lab`: every ``assert E`` keeps only the parts of ``E`` that the
   student's code returned or changed, recorded as plain data (numbers, strings, nested
   lists); what the test compares them with, and statements that only compute such
   values, are left out; a call that must raise records the name of what it raised. The
   lab runs once per submission in the sandbox with the student's cells and the rewritten
   test cells (:func:`.runner._run_cells`, in the sandbox) and returns these records as
   JSON.
3. **Reference.** The same rewritten notebook runs once per lab with the source's own
   solution cells (never with student code), giving the reference records; before it, the
   source runs as written (asserts and all) and must pass.
4. **Judgement in the harness.** A test cell earns its points when every record of the
   student's run equals the reference's (:func:`.score.judge`, :func:`.records.same`:
   numbers to a relative 1e-4 and an absolute 1e-6, exactly for integers, booleans and
   strings), and the cell ran to its end.
   Patching, fake modules, always-equal objects or rebound setup names change only the
   student's own records, which then differ from the reference; reading the caller's frame
   or the job file finds the inputs, never an expected value; a student can only write
   records whose values it knows, and the hidden ones it knows only by solving the lab.
5. **nbgrader for the rest.** ``generate_assignment`` records each lab and its grade cells
   in the gradebook; the harness writes the scores into it (``nbgrader.api.Gradebook``);
   ``generate_feedback`` writes the feedback HTML (made self-contained by
   :func:`.feedback.offline_feedback`), and :func:`.reports.export_grades` writes
   ``grades.csv`` from the gradebook (nbgrader's ``export`` columns, and whether each lab
   was submitted).
   Learners keep the visible tests in their notebook.

Feedback keeps secrets: it holds the student's own cells, the handed-out (visible) test
cells, and after each test cell its result: each failed visible check by its code, and for
hidden checks only whether any failed, with the hints (constant ``assert`` messages) of all
the cell's hidden checks, so a submission cannot spell a secret out one check at a time
(:func:`.feedback._result_cell`). No output of a run, no hidden code, input or reference
value reaches it; output goes to the instructor's log only, truncated. Its body is
sanitised (:func:`.feedback.sanitize_feedback`); names and notes are escaped for the
terminal and CSV (:func:`.reports.safe_text`, :func:`.reports.csv_cell`); the submissions
folder is read without trusting it (:func:`.submissions.find_submissions`,
:func:`.submissions.read_submission`, :func:`.submissions.parse_submission`).

Honest work is kept: cells are matched to the source by ``grade_id``, else by the cell's
id (metadata edited), and their role (solution, test, locked) always comes from the
source (:func:`.plan.plan`); a copied test cell is left out with a note; locked and test
cells are restored; cells the student added run where they were. Submission files and
folders are matched to labs ignoring case and separators (``Lab1-SFT.ipynb``); anything
not graded is listed in ``report.csv`` with the reason.
"""

from course_tools.grading.cli import main
from course_tools.grading.generate import labs
from course_tools.grading.orchestrate import grade

__all__ = ["grade", "labs", "main"]
