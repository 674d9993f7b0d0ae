"""Issue 33: grading never trusts the submissions folder, escapes what students name and
write, and its feedback carries no side channel for hidden checks.

One grading of lab 1 (against a one-lab copy of the source, so one reference run) with an
honest complete and half-done submission beside one poisoned submission per attack: each
attack earns at most its honest points, and the honest ones are still graded.
"""

import csv
import json
import os
import re
import shutil
import stat
import time
from pathlib import Path

import nbformat
import pytest

from course_tools import grading, sandbox
from course_tools.grading import execute
from course_tools.grading.feedback import _result_cell
from course_tools.grading.plan import plan
from course_tools.grading.probes import Check
from course_tools.grading.reports import summary
from course_tools.grading.submissions import MAX_NOTEBOOK
from test_labs import REPO, TAMPER_LAB, _half_done, _lab, _solved, _two_part_lab

pytestmark = pytest.mark.skipif(sandbox.available() is not None, reason=f"{sandbox.available()} (make sandbox)")

LAB = TAMPER_LAB
NAME_ATTACK = '=HYPERLINK("x")\x1b]0;owned\x07\x1b[2J'  # a formula and escape sequences in a folder name
HTML_ATTACK = ('<script>document.title="PWNED-1"</script><img src="http://evil.example/x.png" onerror="alert(2)">'
               '<a href="https://evil.example/">link</a><iframe src="https://evil.example/"></iframe>'
               '<style>body{background:url(https://evil.example/bg.png)}</style><b onmouseover="alert(3)">bold</b>')


def _nb_json(nb) -> dict:
    return json.loads(nbformat.writes(nb))


@pytest.fixture(scope="module")
def poisoned(tmp_path_factory):
    root = tmp_path_factory.mktemp("poisoned")
    source = root / "source"
    shutil.copytree(REPO / "solutions" / LAB, source / LAB)
    subs = root / "subs"

    def folder(student: str) -> Path:
        d = subs / student / LAB
        d.mkdir(parents=True)
        return d / f"{LAB}.ipynb"

    nbformat.write(_solved(LAB), folder("full"))
    nbformat.write(_half_done(), folder("half"))
    full_nb = subs / "full" / LAB / f"{LAB}.ipynb"
    # links: to another student's notebook, to their folder, to the instructor's source, to /dev/zero
    folder("link-other").symlink_to(full_nb)
    (subs / "link-folder").mkdir()
    (subs / "link-folder" / LAB).symlink_to(subs / "full" / LAB, target_is_directory=True)
    folder("link-source").symlink_to(source / LAB / f"{LAB}.ipynb")
    folder("link-dev-zero").symlink_to("/dev/zero")
    (subs / "link-student").symlink_to(subs / "full", target_is_directory=True)
    os.mkfifo(folder("fifo"))
    hard_target = root / "elsewhere.ipynb"
    nbformat.write(_solved(LAB), hard_target)
    os.link(hard_target, folder("hard-link"))
    try:
        os.mknod(folder("device"), stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero's numbers
    except OSError:
        shutil.rmtree(subs / "device")  # needs root (CAP_MKNOD)
    # malformed notebooks: a null source, wrong types, a huge file
    bad = _nb_json(_half_done())
    bad["cells"][3]["source"] = None
    folder("null-source").write_text(json.dumps(bad))
    bad = _nb_json(_half_done())
    bad["cells"][2]["metadata"] = ["not", "a", "mapping"]
    bad["cells"][4]["source"] = 12
    folder("wrong-types").write_text(json.dumps(bad))
    huge = _half_done()
    huge.cells.append(nbformat.v4.new_markdown_cell("x" * (MAX_NOTEBOOK + 10)))
    nbformat.write(huge, folder("huge"))
    # names and content
    nb = _half_done()
    nb.cells.insert(1, nbformat.v4.new_markdown_cell(HTML_ATTACK))
    nbformat.write(nb, folder("html-injection"))
    nbformat.write(_half_done(), folder(NAME_ATTACK))
    results = grading.grade(subs, workdir=root / "work", source=source, timeout=60)
    return results, root / "work"


def _rows(results, student: str) -> list:
    return [r for r in results if r.student == student]


def test_the_class_is_graded_beside_the_poisoned_submissions(poisoned):
    results, work = poisoned
    [full], [half] = _rows(results, "full"), _rows(results, "half")
    assert full.score == full.max_score == 10, full.notes
    assert half.score == 5, half.notes
    grades = {r["student_id"]: r for r in csv.DictReader(open(work / "grades.csv"))}
    assert float(grades["full"]["score"]) == 10.0 and float(grades["half"]["score"]) == 5.0
    assert (work / "feedback" / "full" / LAB / f"{LAB}.html").exists()
    assert (work / "feedback" / "half" / LAB / f"{LAB}.html").exists()


@pytest.mark.parametrize("student, reason", [
    ("link-other", "is a symbolic link"),
    ("link-folder", "is a symbolic link"),
    ("link-source", "is a symbolic link"),
    ("link-dev-zero", "is a symbolic link"),
    ("link-student", "folder is a symbolic link"),
    ("fifo", "is a FIFO"),
    ("hard-link", "hard links"),
    ("device", "character device"),
    ("null-source", "source is NoneType, not text"),
    ("wrong-types", "metadata is not a mapping"),
    ("huge", "larger than 16 MiB"),
])
def test_a_poisoned_submission_earns_nothing_and_is_reported(poisoned, student, reason):
    results, work = poisoned
    if student == "device" and not _rows(results, student):
        pytest.skip("making a device node needs root")
    rows = _rows(results, student)
    assert rows and all(r.score == 0 for r in rows), [(r.score, r.notes) for r in rows]
    assert any(reason in n for r in rows for n in r.notes), [r.notes for r in rows]
    assert not (work / "feedback" / student).exists()  # nobody's work (or the source) shown as theirs
    report = [r for r in csv.DictReader(open(work / "report.csv")) if r["student"] == student]
    assert report and all(float(r["score"]) == 0 for r in report)


def test_the_source_never_reaches_a_students_feedback(poisoned):
    work = poisoned[1]
    for page in (work / "feedback").rglob("*.html"):
        assert "BEGIN SOLUTION" not in page.read_text(errors="replace"), page


def test_html_in_a_students_markdown_is_sanitised(poisoned):
    results, work = poisoned
    [r] = _rows(results, "html-injection")
    assert r.score <= 5, r.notes
    html = (work / "feedback" / "html-injection" / LAB / f"{LAB}.html").read_text()
    body = html[html.index("<body"):]
    for bad in ("PWNED-1", "<script", "onerror", "onmouseover", "evil.example", "<iframe", "<img", "<style"):
        assert bad not in body, bad
    assert "<b>bold</b>" in body and "link" in body  # the harmless rest is kept


def test_html_feedback_runs_no_script_in_a_browser(poisoned):
    from browser_support import chromium_page
    page_path = poisoned[1] / "feedback" / "html-injection" / LAB / f"{LAB}.html"
    with chromium_page() as page:
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.on("dialog", lambda d: (requests.append("dialog " + d.message), d.dismiss()))
        page.goto(page_path.as_uri())
        assert "PWNED" not in page.title()
        assert [u for u in requests if not u.startswith("file:")] == []


def test_a_hostile_folder_name_is_data(poisoned):
    results, work = poisoned
    [r] = _rows(results, NAME_ATTACK)
    assert r.score <= 5, r.notes
    report = (work / "report.csv").read_bytes() + (work / "grades.csv").read_bytes()
    assert b"\x1b" not in report and b"\x07" not in report
    for name in ("report.csv", "grades.csv"):
        for row in csv.reader(open(work / name)):
            assert not [c for c in row if c[:1] in ("=", "+", "@", "\t", "\r")], (name, row)
            assert not [c for c in row if c.startswith("-") and not re.fullmatch(r"-[0-9.]+", c)], (name, row)
    line = summary([r])
    assert "\x1b" not in line and "\x07" not in line and "\\x1b" in line


def test_feedback_does_not_say_which_hidden_check_failed(poisoned):
    work = poisoned[1]
    for page in (work / "feedback").rglob("*.html"):
        text = page.read_text(errors="replace")
        assert not re.search(r"hidden check \d", text), page
    half = (work / "feedback" / "half" / LAB / f"{LAB}.html").read_text()
    assert "hidden checks failed (they are not named one by one)" in half


def test_result_cell_is_the_same_whichever_hidden_checks_failed():
    checks = [Check(1, False, 1, "assert f(1) == 1"), Check(2, True, 3, "ties"),
              Check(3, True, 4, "")]
    cells = {_result_cell("t", False, 0, 2, failed, True, checks).source
             for failed in ([checks[1]], [checks[2]], checks[1:])}
    assert len(cells) == 1, cells  # one content-free line, with every hint of the cell
    assert "they test: ties" in cells.pop()


def test_padding_cells_buys_no_wall_clock_time(tmp_path, monkeypatch):
    """A submission that ignores SIGALRM and adds many slow cells is stopped by one budget
    per lab, computed from the source's cells, not from the submission's."""
    monkeypatch.setattr(execute, "START_S", 8)
    source_path, _ = _two_part_lab(tmp_path)
    src = nbformat.read(source_path, as_version=4)
    for i, c in enumerate(src.cells):
        meta = c.metadata["nbgrader"]
        meta["grade_id"] = f"intro-{i}" if c.cell_type == "markdown" else meta["grade_id"]  # unique, valid ids
        meta.update({k: meta.get(k, False) for k in ("grade", "solution", "locked")}, schema_version=3)
    lab = "tiny"
    (tmp_path / "src" / lab).mkdir(parents=True)
    nbformat.write(src, tmp_path / "src" / lab / f"{lab}.ipynb")
    nb = nbformat.reads(nbformat.writes(src), as_version=4)
    for c in nb.cells:  # the honest, complete solution
        c.source = re.sub(r"^\s*### (BEGIN|END) SOLUTION\n?", "", c.source, flags=re.M)
    nb.cells.insert(0, nbformat.v4.new_code_cell("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)"))
    nb.cells[1:1] = [nbformat.v4.new_code_cell("time.sleep(0.9)") for _ in range(60)]
    (tmp_path / "subs" / "pad" / lab).mkdir(parents=True)
    nbformat.write(nb, tmp_path / "subs" / "pad" / lab / f"{lab}.ipynb")
    start = time.perf_counter()
    [r] = grading.grade(tmp_path / "subs", workdir=tmp_path / "work", source=tmp_path / "src", timeout=1)
    budget = execute.submission_wall_s(plan(src), 1)
    assert budget < 20 and r.seconds <= budget + 5, (budget, r.seconds)
    assert any("wall-clock limit" in n for n in r.notes), r.notes
    assert r.score == 0 and time.perf_counter() - start < 120
