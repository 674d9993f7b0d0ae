"""Graded labs with nbgrader: generate the student labs, and grade a folder of submissions.

The command line, run as ``python -m course_tools.grading`` (``__main__.py``): ``labs
[LAB ...]`` regenerates ``labs/`` from ``solutions/`` (``make labs``); ``grade SUBMISSIONS
[--workdir ...] [--source ...] [--timeout ...] [--lab ...] [--all-labs] [--quiet]
[--unsafe]`` grades (``make grade``) and prints a summary and one line of JSON. The first
paragraph of this docstring is the command's description.

Imports: :mod:`course_tools.sandbox`, :mod:`course_tools.grading.orchestrate`,
:mod:`course_tools.grading.generate` and :mod:`course_tools.grading.reports`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from course_tools import sandbox
from course_tools.grading.generate import REPO, labs
from course_tools.grading.orchestrate import DEFAULT_WORKDIR, grade
from course_tools.grading.reports import summary


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(prog="python -m course_tools.grading", description=(__doc__ or "").split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    lb = sub.add_parser("labs", help="regenerate labs/ from solutions/")
    lb.add_argument("only", nargs="*", help="only these labs (default: every lab in solutions/)")
    g = sub.add_parser("grade", help="grade a folder <student>/<lab>/<lab>.ipynb")
    g.add_argument("submissions", type=Path)
    g.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR,
                   help="grading folder with the gradebook, grades.csv, feedback/ (default %(default)s)")
    g.add_argument("--source", type=Path, default=None,
                   help="solutions folder to grade against (default: the course's solutions/)")
    g.add_argument("--timeout", type=int, default=60, help="seconds per cell (default %(default)s)")
    g.add_argument("--lab", action="append", default=[], metavar="LAB",
                   help="grade only this lab (repeat for several; default: every lab in the source)")
    g.add_argument("--all-labs", action="store_true",
                   help="grade every lab of the source, not only those someone submitted (grades.csv then lists "
                        "them all)")
    g.add_argument("--quiet", action="store_true", help="no progress lines")
    g.add_argument("--unsafe", action="store_true",
                   help="grade without a sandbox (student code runs with your rights); the report says so")
    args = ap.parse_args(argv)
    if args.cmd == "labs":
        for p in labs(only=args.only):
            print("wrote", p.relative_to(REPO))
        return
    start = time.perf_counter()
    try:
        results = grade(args.submissions, args.workdir, args.source, args.timeout, args.unsafe,
                        only=[x for lab in args.lab for x in lab.split()] or None, progress=not args.quiet,
                        all_labs=args.all_labs)
    except sandbox.SandboxUnavailable as e:
        sys.exit(f"make grade refuses: {e}.")
    except FileNotFoundError as e:
        sys.exit(f"make grade: {e}")
    print(summary(results))
    print(json.dumps({"graded": sum(1 for r in results if r.lab and not any(n.startswith("not ") for n in r.notes)),
                      "rows": len(results), "seconds": round(time.perf_counter() - start, 1),
                      "grades_csv": str(args.workdir / "grades.csv"),
                      "report_csv": str(args.workdir / "report.csv"),
                      "feedback": str(args.workdir / "feedback")}))
