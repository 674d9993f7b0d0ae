"""A simulated class: many participants label at once while the server is killed and restarted.

:func:`simulate_class` starts a class server in a fresh room (a separate process, as in a
workshop), lets ``n`` simulated labelers (threads, each with its own :class:`ClassStore`
and journal, as each laptop has) label the same pairs, kills the server with SIGKILL when
a third of the labels are in, restarts it, waits until every queue has drained, and audits
the room against every client's journal: a label acknowledged or journalled but not in the
room is *lost*; a label id stored twice, or a second live judgement of one pair by one
participant, is *duplicated*. Both must be 0. The report has the timings too.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

from course_utils.alignment.class_store import ClassStore
from course_utils.alignment.feedback import SimulatedLabeler
from course_utils.alignment.label_db import LabelDB

REPO = Path(__file__).resolve().parents[2]
_ANSWERS = ("The happy {s} runs in the park.", "The sad {s} sleeps.", "The {s} is kind and bright.",
            "Tom has an awful {s}.", "The nice {s} is nice and nice.", "{s}", "The happy cat runs.")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def synthetic_pairs(n: int) -> list[dict]:
    """``n`` pairs of the tiny world's prompts with hand-written answers (no model needed)."""
    from course_utils import world
    out = []
    for i in range(n):
        s = world.SUBJECTS[i % len(world.SUBJECTS)]
        a, b = _ANSWERS[i % len(_ANSWERS)], _ANSWERS[(i // len(_ANSWERS) + i + 1) % len(_ANSWERS)]
        if a == b:
            b = _ANSWERS[(_ANSWERS.index(a) + 1) % len(_ANSWERS)]
        out.append({"pair_id": f"sim{i:04d}", "prompt": f"Write a sentence about a {s}.",
                    "a": a.format(s=s), "b": b.format(s=s)})
    return out


def wait_until(check, timeout: float, what: str, every: float = 0.05):
    """Poll ``check()`` until it returns something truthy; raise TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = check()
        if out:
            return out
        time.sleep(every)
    raise TimeoutError(f"{what} did not happen within {timeout:g} s")


class ServerProcess:
    """``python -m course_tools.classroom serve`` in a subprocess, on 127.0.0.1 and a free port."""

    def __init__(self, room: Path, code: str, pairs_file: Path | None = None, label_rate: float = 1000.0):
        self.room, self.code, self.port = Path(room), code, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.cmd = [sys.executable, "-m", "course_tools.classroom", "serve", "--room", str(room),
                    "--code", code, "--port", str(self.port), "--label-rate", str(label_rate)]
        if pairs_file is not None:
            self.cmd += ["--pairs", str(pairs_file)]
        self.proc: subprocess.Popen | None = None

    def healthy(self) -> dict | None:
        try:
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(self.url + "/health", timeout=1) as r:
                return json.loads(r.read())
        except OSError:
            return None

    def start(self, timeout: float = 60) -> float:
        """Start the server and wait until it answers; return the seconds that took."""
        t0 = time.monotonic()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
        log = open(self.room.parent / f"server-{self.port}.log", "ab")
        self.proc = subprocess.Popen(self.cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        log.close()

        def up():
            if self.proc.poll() is not None:
                raise RuntimeError(f"the class server exited with {self.proc.returncode}; see {log.name}")
            return self.healthy()
        wait_until(up, timeout, "the class server's start")
        return time.monotonic() - t0

    def kill(self) -> None:
        """SIGKILL: no clean shutdown, as a crash or a pulled plug."""
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def __enter__(self) -> "ServerProcess":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def audit(room_rows: list[dict], stores: list[ClassStore]) -> dict:
    """Compare the room's stored labels with every client's journal (see the module docstring)."""
    ids = Counter(r["label_id"] for r in room_rows)
    stored = set(ids)
    journalled = {r["label_id"] for s in stores for r in s.rows}
    acked = set().union(*(s._acked for s in stores))
    undone = {r["undoes"] for r in room_rows if r["judgement"] == "undo"}
    live = Counter((r["labeler"], r["pair_id"]) for r in room_rows
                   if r["judgement"] != "undo" and r["label_id"] not in undone)
    mismatch = sum(
        sorted((r["pair_id"], r["judgement"], r["chosen"]) for r in s.labels(s.labeler))
        != sorted((r["pair_id"], r["judgement"], r["chosen"]) for r in room_rows
                  if r["labeler"] == s.labeler and r["judgement"] != "undo" and r["label_id"] not in undone)
        for s in stores)
    return {"stored": len(room_rows), "acknowledged": len(acked), "lost_acknowledged": len(acked - stored),
            "lost": len(journalled - stored), "duplicated": sum(c - 1 for c in ids.values())
            + sum(c - 1 for c in live.values()), "not_journalled": len(stored - journalled),
            "participants_whose_view_differs": mismatch,
            "rejected": sum(len(s.rejected) for s in stores)}


def _participant(i: int, url: str, code: str, state: Path, pairs: list[dict], start: threading.Barrier,
                 latencies: list[float], stores: list[ClassStore | None], errors: list[str]) -> None:
    try:
        _label(i, url, code, state, pairs, start, latencies, stores)
    except Exception as e:  # reported, and the audit then fails
        errors.append(f"participant {i}: {type(e).__name__}: {e}")
        start.abort()


def _label(i: int, url: str, code: str, state: Path, pairs: list[dict], start: threading.Barrier,
           latencies: list[float], stores: list[ClassStore | None]) -> None:
    store = ClassStore(url, labeler=f"participant{i:02d}", code=code, state_dir=state / f"p{i:02d}",
                       retry_every=0.25, timeout=5)
    stores[i] = store
    labeler = SimulatedLabeler(store.labeler, beta=(1.0, 1.5, 2.0, 3.0, 5.0)[i % 5], seed=i)
    start.wait()
    for k, pair in enumerate(pairs):
        t0 = time.perf_counter()
        store.add(pair, labeler.choose(pair))
        if k % 7 == 3:  # a change of mind: undo, then judge again
            store.undo()
            store.add(pair, labeler.choose(pair))
        latencies.append(time.perf_counter() - t0)


def simulate_class(n_participants: int = 30, pairs_each: int = 20, kill: bool = True,
                   root: Path | None = None, drain_timeout: float = 120) -> dict:
    """Run a simulated class (see the module docstring); return its audit and timings."""
    tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="class-sim-")
    root = Path(root if root is not None else tmp.name)
    pairs, code = synthetic_pairs(pairs_each), "sim-1234"
    pairs_file = root / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(p) + "\n" for p in pairs))
    server = ServerProcess(root / "room", code, pairs_file)
    stores: list[ClassStore | None] = [None] * n_participants
    try:
        first_start = server.start()
        latencies: list[float] = []
        errors: list[str] = []
        start = threading.Barrier(n_participants + 1)
        threads = [threading.Thread(target=_participant, args=(i, server.url, code, root / "clients", pairs,
                                                               start, latencies, stores, errors))
                   for i in range(n_participants)]
        for t in threads:
            t.start()
        try:
            start.wait()
        except threading.BrokenBarrierError:
            for t in threads:
                t.join()
            raise RuntimeError("simulated participants failed:\n" + "\n".join(errors)) from None
        t0 = time.monotonic()
        killed = {}
        expected = n_participants * (pairs_each + 2 * len(range(3, pairs_each, 7)))
        if kill:
            wait_until(lambda: sum(len(s._acked) for s in stores if s) >= expected // 3, 300, "a third of the labels")
            killed["at_labels"] = sum(len(s._acked) for s in stores if s)
            server.kill()
            # restart once some participant has queued a label (or everyone is done): the queue is exercised
            down = time.monotonic()
            wait_until(lambda: any(s.pending for s in stores if s) or not any(t.is_alive() for t in threads),
                       60, "a label queued while the server is down")
            killed["max_queued"] = max(s.pending for s in stores if s)
            killed["down_s"] = round(time.monotonic() - down + server.start(), 2)
        for t in threads:
            t.join()
        if errors:
            raise RuntimeError("simulated participants failed:\n" + "\n".join(errors))
        labelled = time.monotonic() - t0
        t1 = time.monotonic()
        wait_until(lambda: all(s.flush() >= 0 and s.pending == 0 for s in stores), drain_timeout, "the queues' drain")
        drained = time.monotonic() - t1
        server.stop()
        report = audit(LabelDB(root / "room").rows(), [s for s in stores if s])
        lat = sorted(latencies)
        report.update({
            "participants": n_participants, "labels_sent": expected, "seconds_labelling": round(labelled, 2),
            "labels_per_s": round(expected / labelled, 1), "drain_s_after_last_label": round(drained, 2),
            "server_start_s": round(first_start, 2),
            "judge_latency_ms": {"median": round(1000 * statistics.median(lat), 1),
                                 "p95": round(1000 * lat[int(0.95 * (len(lat) - 1))], 1),
                                 "max": round(1000 * lat[-1], 1)}, "kill": killed or None})
        return report
    finally:
        for s in stores:
            if s is not None:
                s.close()
        server.stop()
        if tmp is not None:
            tmp.cleanup()


def fill_room(folder: str | os.PathLike, pairs: list[dict], n_participants: int = 30,
              betas: tuple[float, ...] = (1.0, 1.5, 2.0, 3.0, 5.0)) -> LabelDB:
    """A room in ``folder`` where ``n_participants`` simulated labelers (noise ``1/beta``, in turn)
    judged every pair: the dashboard's demonstration when no class has labelled yet."""
    db = LabelDB(folder)
    db.add_pairs(pairs)
    for i in range(n_participants):
        labeler = SimulatedLabeler(f"participant{i:02d}", beta=betas[i % len(betas)], seed=i)
        for pair in pairs:
            choice = labeler.choose(pair)
            db.record({"label_id": f"{labeler.name}-{pair['pair_id']}", "pair_id": pair["pair_id"],
                       "judgement": "prefer", "chosen": pair[choice], "source": f"simulated (beta={labeler.beta:g})"},
                      labeler.name)
    return db
