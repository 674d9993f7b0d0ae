"""The sandbox that grading runs student code in (course_tools.sandbox): what it hides and limits."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from course_tools import sandbox

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
for package in ("course_utils", "course_tools"):
    try:
        open(os.path.join({str(REPO)!r}, package, "x.txt"), "w")
        print(package, "writable")
    except OSError:
        print(package, "read-only")
import course_tools.sandbox
print("imports ok")
""", tmp_path)
    out = r.output
    assert r.returncode == 0, out
    assert "uid 65534" in out and "own mine" in out and "imports ok" in out
    assert "repo ['.venv', 'course_tools', 'course_utils']" in out, out   # the two packages, nothing else
    assert "solutions False" in out and "home False" in out
    assert "network no" in out and "course_utils read-only" in out and "course_tools read-only" in out


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


# ---------------------------------------------------------------------------------
# Issue 33: a clean sandbox (environment, uid, /proc, process count, tmpfs sizes)
# ---------------------------------------------------------------------------------
def test_no_variable_of_the_grading_shell_reaches_the_sandbox(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_GRADER_TOKEN", "token-6b1f0e")
    r = _py("""
import os
for pid in ["1", "self", *os.listdir("/proc")]:
    try:
        print(pid, open(f"/proc/{pid}/environ", "rb").read())
    except OSError as e:
        print(pid, "unreadable", type(e).__name__)
""", tmp_path)
    assert r.returncode == 0, r.output
    assert "token-6b1f0e" not in r.output and "COURSE_GRADER_TOKEN" not in r.output, r.output


def test_the_sandbox_user_is_not_host_root(tmp_path):
    r = _py("""
import os
print("ids", os.getuid(), os.geteuid(), os.getgid(), os.getgroups())
try:
    open("/etc/shadow").read()
    print("shadow readable")
except OSError as e:
    print("shadow", type(e).__name__)
open("mine", "w").write("x")
""", tmp_path)
    assert "ids 65534 65534 65534 []" in r.output, r.output
    assert "shadow PermissionError" in r.output or "shadow FileNotFoundError" in r.output, r.output
    # the file it wrote belongs to nobody on the host (grading as root) or to the grader, never to root
    owner = (tmp_path / "mine").stat().st_uid
    assert owner == (65534 if os.getuid() == 0 else os.getuid()), owner


def test_proc_shows_only_the_sandboxs_processes_and_no_bind_paths(tmp_path):
    r = _py("""
import os
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print("pids", pids)
print("cmdline1", open("/proc/1/cmdline", "rb").read())
""", tmp_path)
    assert r.returncode == 0, r.output
    pids = eval(r.output.split("pids ", 1)[1].splitlines()[0])
    assert max(pids) < 10, pids  # bwrap as pid 1, the command, nothing of the host
    cmdline = r.output.split("cmdline1 ", 1)[1].splitlines()[0]
    # bwrap's options (every bind, the grading folder) come through a pipe: pid 1 shows only the command
    assert str(tmp_path) not in cmdline and "--ro-bind" not in cmdline and "/etc" not in cmdline, cmdline


def test_a_fork_bomb_meets_the_process_limit(tmp_path):
    r = _py("""
import os, time
n = 0
try:
    for _ in range(200):
        if os.fork() == 0:
            time.sleep(30)
            os._exit(0)
        n += 1
except OSError as e:
    print("refused after", n, type(e).__name__)
""", tmp_path, processes=40, wall_s=20)
    assert "refused after" in r.output, r.output
    assert int(r.output.split("refused after ")[1].split()[0]) < 40


def test_tmp_and_shm_are_size_limited(tmp_path):
    r = _py("""
for d in ("/tmp", "/dev/shm"):
    try:
        with open(f"{d}/big", "wb") as f:
            for _ in range(64):
                f.write(b"x" * (1 << 20))
        print(d, "filled")
    except OSError as e:
        print(d, "full", e.errno)
""", tmp_path, tmpfs_bytes=16 << 20)
    assert "/tmp full" in r.output and "/dev/shm full" in r.output, r.output


TREE = """
import os, sys, time
MB = 1 << 20
for i in range({shm} // 100):  # files of 100 MB: each under the file-size limit
    with open(f"/dev/shm/fill{{i}}", "wb") as f:
        for _ in range(100):
            f.write(b"s" * MB)
kids = []
for _ in range({children}):
    pid = os.fork()
    if pid == 0:
        block = b"x" * ({each} * MB)  # written, so every page is really used
        time.sleep(3)
        os._exit(0)
    kids.append(pid)
codes = [os.waitpid(p, 0)[1] for p in kids]
print("children", codes)
"""


def _tree_limits() -> bool:
    group = sandbox.TreeGroup.make(sandbox.Limits(), f"course-sandbox-probe-{os.getpid()}")
    if group is not None:
        group.remove()
    return group is not None


@pytest.mark.skipif(not _tree_limits(), reason="this process may not create a cgroup (v1 memory+pids, or a "
                                               "delegated v2 subtree): only per-process limits hold here")
def test_memory_holds_for_the_whole_process_tree_and_its_tmpfs(tmp_path):
    """Per-process limits let many processes, or files in /dev/shm, add up (issue 33: 11.6 GB
    of a 23.6 GB host); the run's cgroup counts them together."""
    limit = 400 << 20
    before = set(sandbox.TreeGroup.ROOT.glob("*/**/course-sandbox-*"))
    small = _py(TREE.format(shm=0, children=1, each=150), tmp_path, tree_memory_bytes=limit)
    assert small.tree_limited and not small.out_of_memory and "children [0]" in small.output, small
    many = _py(TREE.format(shm=0, children=4, each=150), tmp_path, tree_memory_bytes=limit)
    assert many.out_of_memory, many  # 600 MB in four processes of 150 MB, each far below RLIMIT_AS
    shm = _py(TREE.format(shm=300, children=1, each=150), tmp_path, tree_memory_bytes=limit)
    assert shm.out_of_memory, shm    # 300 MB of /dev/shm pages and 150 MB in a process
    left = sorted(set(sandbox.TreeGroup.ROOT.glob("*/**/course-sandbox-*")) - before)
    assert left == [], left  # every run's cgroup is removed


@pytest.mark.skipif(not _tree_limits(), reason="this process may not create a cgroup")
def test_groups_left_by_a_killed_grader_are_removed_by_the_next_run(tmp_path):
    """A grader killed with SIGKILL cannot remove its cgroups; the next run removes them."""
    dead = subprocess.Popen(["true"])
    dead.wait()                                   # a pid that no longer runs
    stale = sandbox.TreeGroup.make(sandbox.Limits(), f"course-sandbox-{dead.pid}-1")
    assert stale is not None and all(d.exists() for d in stale.dirs)
    _py("print('ok')", tmp_path)
    assert not any(d.exists() for d in stale.dirs)
