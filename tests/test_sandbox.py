"""The sandbox that grading runs student code in (course_utils.sandbox): what it hides and limits."""

import sys
from pathlib import Path

import pytest

from course_utils import sandbox

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(sandbox.available() is not None,
                                reason=f"{sandbox.available()} (make sandbox)")


def _py(code: str, folder: Path, **limits) -> sandbox.Result:
    return sandbox.run([sys.executable, "-c", code], folder, sandbox.Limits(**{"wall_s": 60, **limits}))


def test_sandbox_sees_only_the_environment_and_its_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("mine")
    secret = REPO / "solutions"
    r = _py(f"""
import os, socket
print("uid", os.getuid())
print("own", open("mine.txt").read())
print("repo", sorted(os.listdir({str(REPO)!r})))
print("solutions", os.path.exists({str(secret)!r}))
print("home", os.path.exists({str(Path.home() / '.bashrc')!r}))
try:
    socket.create_connection(("1.1.1.1", 80), timeout=2)
    print("network yes")
except OSError:
    print("network no")
try:
    open({str(REPO / 'course_utils' / 'x.txt')!r}, "w")
    print("package writable")
except OSError:
    print("package read-only")
import course_utils.sandbox
print("imports ok")
""", tmp_path)
    out = r.output
    assert r.returncode == 0, out
    assert "uid 65534" in out and "own mine" in out and "imports ok" in out
    assert "repo ['.venv', 'course_utils']" in out, out
    assert "solutions False" in out and "home False" in out
    assert "network no" in out and "package read-only" in out


def test_processes_a_run_starts_are_gone_when_it_ends(tmp_path):
    token = f"sandbox-survivor-{tmp_path.name}"
    r = _py(f"""
import subprocess, os
subprocess.Popen(["sleep", "300", {token!r}], start_new_session=True)
if os.fork() == 0:
    os.setsid()
    os.execv("/bin/sleep", ["sleep", "300", {token!r}])
print("started")
""", tmp_path)
    assert "started" in r.output
    alive = []
    for p in Path("/proc").iterdir():
        try:
            if p.name.isdigit() and token.encode() in (p / "cmdline").read_bytes():
                alive.append(p.name)
        except OSError:
            pass
    assert alive == []


def test_output_is_truncated_and_counted(tmp_path):
    r = _py("import sys\nsys.stdout.write('x' * 5_000_000)\nprint('done')", tmp_path, output_bytes=1000)
    assert r.returncode == 0
    assert len(r.output) == 1000 and r.output_dropped == 5_000_000 + len("done\n") - 1000


def test_wall_clock_and_memory_limits(tmp_path):
    r = _py("import time\ntime.sleep(60)", tmp_path, wall_s=2)
    assert r.timed_out
    r = _py("x = bytearray(3 << 30)\nprint('allocated')", tmp_path, memory_bytes=1 << 30)
    assert r.returncode != 0 and "allocated" not in r.output and "MemoryError" in r.output


def test_files_outside_its_folder_are_not_written(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    inside = tmp_path / "inside"
    inside.mkdir()
    r = _py(f"""
for path in [{str(outside / 'x')!r}, "/etc/x", "/tmp/x", "y"]:
    try:
        open(path, "w").write("1")
        print("wrote", path)
    except OSError as e:
        print("refused", path, type(e).__name__)
""", inside)
    assert f"refused {outside / 'x'}" in r.output and "refused /etc/x" in r.output
    assert not (outside / "x").exists() and (inside / "y").exists()
