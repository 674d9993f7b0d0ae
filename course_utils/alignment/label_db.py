"""A room's shared label store: one SQLite file (WAL mode) that many labelers write at once.

The class mode of chapter 09's labeling widget pools every participant's judgements here,
either directly (every kernel on one machine opens the same folder: the embedded mode, no
set-up) or through the class server (``python -m course_tools.classroom serve``), which is
the only writer of the file and wraps this module in HTTP.

**Events, never updates.** Each judgement is one row of ``labels`` and is never changed or
deleted; an ``undo`` is a new row whose ``undoes`` names the label it retracts. A row has a
``label_id`` chosen by the client: re-sending the same label (after a timeout, a restart,
a dropped Wi-Fi) finds the stored row and changes nothing, so nothing is counted twice.

**Durable before acknowledged.** :meth:`LabelDB.record` returns only after the transaction
has committed with ``synchronous=FULL`` (the WAL is fsync-ed), so a label the caller was
told about survives a killed process or a power cut.

**Rules** (each refusal is a :class:`LabelError` with an HTTP status and a message naming
the problem, and changes nothing): the pair must be one of the room's; a labeler has at most
one live judgement of a pair (undo first); an undo retracts only the same labeler's live
label; a label id belongs to the labeler who first used it.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Mapping
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

#: The file a room folder holds.
DB_NAME = "labels.sqlite"
#: A label's judgement, as in :mod:`course_utils.alignment.feedback`; ``undo`` retracts the label named by ``undoes``.
JUDGEMENTS = ("prefer", "tie", "skip", "undo")
_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
_NAME = re.compile(r"^[\w .'-]{1,40}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pairs (
    pair_id TEXT PRIMARY KEY, prompt TEXT NOT NULL, a TEXT NOT NULL, b TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    name TEXT PRIMARY KEY, token_hash TEXT NOT NULL UNIQUE, joined TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, label_id TEXT NOT NULL UNIQUE,
    pair_id TEXT NOT NULL REFERENCES pairs(pair_id), labeler TEXT NOT NULL,
    judgement TEXT NOT NULL, chosen TEXT NOT NULL, rejected TEXT NOT NULL,
    undoes TEXT, time TEXT NOT NULL, source TEXT NOT NULL, received TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS labels_by_pair ON labels(labeler, pair_id);
CREATE INDEX IF NOT EXISTS labels_by_undo ON labels(undoes);
"""
_ROW = "label_id, pair_id, labeler, judgement, chosen, rejected, undoes, time, source, seq"


class LabelError(Exception):
    """A write the store refuses; ``status`` is the HTTP status the server answers with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_name(name: object) -> str:
    """A participant's name: 1-40 letters, digits, spaces, ``. ' - _``."""
    if not isinstance(name, str) or not _NAME.match(name.strip()):
        raise LabelError(422, "a name is 1-40 letters, digits, spaces or . ' - _")
    return name.strip()


class LabelDB:
    """The SQLite file ``<folder>/labels.sqlite`` (created with its folder if missing).

    Thread-safe: one connection, used under a lock. Several processes may open the same
    folder on one machine (SQLite's WAL locking); not on a network file system.
    """

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path = self.folder / DB_NAME
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA busy_timeout = 30000")
        mode = self._db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode ({mode}); use a local disk, not a network share")
        self._db.execute("PRAGMA synchronous = FULL")
        with self._lock:  # executescript commits on its own; every statement is IF NOT EXISTS
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self):
        """One write transaction (``BEGIN IMMEDIATE`` takes the write lock at once); committed on exit."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _read(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- pairs and participants -----------------------------------------------------
    def add_pairs(self, pairs: Iterable[Mapping]) -> int:
        """Add the room's pairs (``pair_id``, ``prompt``, ``a``, ``b``); ids already present are kept. Returns the number added."""
        rows = [(str(p["pair_id"]), str(p["prompt"]), str(p["a"]), str(p["b"])) for p in pairs]
        bad = [r[0] for r in rows if not _ID.match(r[0])]
        if bad:
            raise ValueError(f"pair ids must be 1-64 letters, digits or _.:- ; not {bad[:3]}")
        with self._write() as db:
            before = db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0]
            db.executemany("INSERT OR IGNORE INTO pairs VALUES (?, ?, ?, ?)", rows)
            return db.execute("SELECT COUNT(*) FROM pairs").fetchone()[0] - before

    def pairs(self) -> list[dict]:
        """The room's pairs in the order they were added."""
        return [dict(r) for r in self._read("SELECT pair_id, prompt, a, b FROM pairs ORDER BY rowid")]

    def register(self, name: str) -> str:
        """Add participant ``name``; return their secret token (only its hash is stored)."""
        name, token = check_name(name), secrets.token_urlsafe(24)
        with self._write() as db:
            if db.execute("SELECT 1 FROM participants WHERE name = ?", (name,)).fetchone():
                raise LabelError(409, f"the name {name!r} is taken in this room: pick another, "
                                      "or label from the machine that joined with it")
            db.execute("INSERT INTO participants VALUES (?, ?, ?)", (name, _hash(token), _now()))
        return token

    def participant(self, token: str) -> str | None:
        """The name the token was given to, or None."""
        rows = self._read("SELECT name FROM participants WHERE token_hash = ?", (_hash(token),))
        return rows[0]["name"] if rows else None

    def participants(self) -> list[str]:
        return [r["name"] for r in self._read("SELECT name FROM participants ORDER BY joined")]

    # -- writing --------------------------------------------------------------------
    def record(self, event: Mapping, labeler: str) -> tuple[dict, bool]:
        """Store one label of ``labeler``; return ``(row, duplicate)``.

        ``event`` has ``label_id``, ``pair_id``, ``judgement`` (one of :data:`JUDGEMENTS`),
        for ``prefer`` the ``chosen`` text (the pair's A or B), for ``undo`` the id it
        ``undoes``, and optionally ``time`` and ``source``. ``duplicate`` is True when this
        label id was already stored: the stored row is returned and nothing changes.
        """
        if not isinstance(event, Mapping):
            raise LabelError(422, "a label is a JSON object")
        label_id, pair_id, judgement = event.get("label_id"), event.get("pair_id"), event.get("judgement")
        for field, value in (("label_id", label_id), ("pair_id", pair_id)):
            if not isinstance(value, str) or not _ID.match(value):
                raise LabelError(422, f"field {field!r} must be 1-64 letters, digits or _.:-")
        if judgement not in JUDGEMENTS:
            raise LabelError(422, f"field 'judgement' must be one of {', '.join(JUDGEMENTS)}")
        time, source = event.get("time") or _now(), event.get("source") or "human"
        if not isinstance(time, str) or not isinstance(source, str) or len(time) > 40 or len(source) > 60:
            raise LabelError(422, "fields 'time' and 'source' are strings of at most 40 and 60 characters")
        with self._write() as db:
            old = db.execute(f"SELECT {_ROW} FROM labels WHERE label_id = ?", (label_id,)).fetchone()
            if old is not None:
                if old["labeler"] != labeler:
                    raise LabelError(409, f"label id {label_id!r} belongs to another participant")
                if old["pair_id"] != pair_id or old["judgement"] != judgement:
                    raise LabelError(409, f"label id {label_id!r} was already used for another label")
                return self._with_prompt(db, old), True
            pair = db.execute("SELECT * FROM pairs WHERE pair_id = ?", (pair_id,)).fetchone()
            if pair is None:
                raise LabelError(404, f"unknown pair id {pair_id!r}: not one of this room's pairs")
            live = db.execute(
                "SELECT label_id, chosen, rejected FROM labels l WHERE labeler = ? AND pair_id = ? "
                "AND judgement != 'undo' AND NOT EXISTS (SELECT 1 FROM labels u WHERE u.undoes = l.label_id)",
                (labeler, pair_id)).fetchone()
            undoes = None
            if judgement == "undo":
                undoes = event.get("undoes")
                if live is None or undoes != live["label_id"]:
                    raise LabelError(409, f"nothing to undo: {undoes!r} is not a live label of yours for pair {pair_id!r}")
                chosen, rejected = live["chosen"], live["rejected"]
            else:
                if live is not None:
                    raise LabelError(409, f"pair {pair_id!r} is already judged by {labeler!r}; undo first")
                chosen, rejected = pair["a"], pair["b"]
                if judgement == "prefer":
                    if event.get("chosen") not in (pair["a"], pair["b"]):
                        raise LabelError(422, f"field 'chosen' must be the text of pair {pair_id!r}'s A or B")
                    if event["chosen"] == pair["b"]:
                        chosen, rejected = pair["b"], pair["a"]
            db.execute("INSERT INTO labels (label_id, pair_id, labeler, judgement, chosen, rejected, undoes, "
                       "time, source, received) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (label_id, pair_id, labeler, judgement, chosen, rejected, undoes, time, source, _now()))
            row = db.execute(f"SELECT {_ROW} FROM labels WHERE label_id = ?", (label_id,)).fetchone()
            return self._with_prompt(db, row), False

    @staticmethod
    def _with_prompt(db: sqlite3.Connection, row: sqlite3.Row) -> dict:
        out = dict(row)
        out["prompt"] = db.execute("SELECT prompt FROM pairs WHERE pair_id = ?", (row["pair_id"],)).fetchone()[0]
        return out

    # -- reading --------------------------------------------------------------------
    def rows(self, labeler: str | None = None) -> list[dict]:
        """Every stored label (undos included) in the order they were stored, with the prompt."""
        sql = (f"SELECT {', '.join('l.' + c for c in _ROW.split(', '))}, p.prompt FROM labels l "
               "JOIN pairs p USING (pair_id)")
        args: tuple = ()
        if labeler is not None:
            sql, args = sql + " WHERE l.labeler = ?", (labeler,)
        return [dict(r) for r in self._read(sql + " ORDER BY l.seq", args)]

    def live(self, labeler: str | None = None) -> list[dict]:
        """Judgements not undone (no undo rows), in the order they were stored."""
        rows = self.rows(labeler)
        undone = {r["undoes"] for r in rows if r["judgement"] == "undo"}
        return [r for r in rows if r["judgement"] != "undo" and r["label_id"] not in undone]

    def count(self) -> int:
        """The number of stored rows (undos included)."""
        return self._read("SELECT COUNT(*) FROM labels")[0][0]
