"""The course's machinery: what runs the course, not what it teaches.

Chapters and labs import the teaching package, :mod:`course_utils`; this package builds,
checks and grades them, and may import :mod:`course_utils`, never the other way round.

* :mod:`course_tools.grading` — nbgrader labs: generate the student labs, grade submissions
  (``make labs``, ``make grade``), in stages (:mod:`course_tools.grading.probes`: the test
  cells rewritten into records), with :mod:`course_tools.sandbox` (bubblewrap, limits) for
  untrusted code;
* :mod:`course_tools.selfcheck` — the chapters' self-check widget and its static form; the
  questions are data in ``chapters/questions/NN.yaml``;
* :mod:`course_tools.notebooks` — executing and storing notebooks (``make execute``);
* :mod:`course_tools.prose_check` — every number in a chapter's prose against its outputs
  (``make prose``);
* :mod:`course_tools.book` — the static website (``make book``);
* :mod:`course_tools.bench` — ``make bench``: the course's loops against TRL's trainers and
  the machine's matmul peak.
"""
