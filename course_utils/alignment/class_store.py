"""The class mode of chapter 09's labeling: a :class:`PreferenceStore` whose labels go to the room.

:class:`ClassStore` has the interface of :class:`~course_utils.alignment.feedback.PreferenceStore`
(``add``, ``undo``, ``labels``, ``done_ids``, ``preferences``), so the labeling widget needs
one setting to label for the class instead of alone::

    store = ClassStore("http://192.168.1.20:8765", labeler="ana", code="TULIP-42")  # a room
    store = ClassStore("/srv/class/room1", labeler="ana")          # one machine: a shared folder
    PreferenceWidget(store.pairs(), store)

or, with the setting in the environment (a JupyterHub sets it for every user),
``label_store("data/my_preferences.jsonl")`` returns a ClassStore when ``COURSE_CLASS`` is
set and the chapter's own PreferenceStore otherwise.

**Nothing is lost, nothing counts twice.** Every label gets a random ``label_id`` and is
first appended to a local journal (``journal.jsonl``, written and fsync-ed as the
PreferenceStore writes). It is then sent; when the server acknowledges it (after its
SQLite commit), its id is appended to ``acked.txt``. A label that could not be sent (no
network, server restarting, rate limit) stays queued: journal minus acknowledged. The
queue is re-sent in order at the next label, by :meth:`ClassStore.flush`, and every
``retry_every`` seconds by a background thread; the server recognises a label id it
already stored and changes nothing. A label the server refuses for good (an unknown pair,
a pair judged already) is recorded in ``rejected.jsonl`` and dropped from the view.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import sqlite3
import threading
import urllib.error
import urllib.request
import uuid
import warnings
from pathlib import Path

from course_utils.alignment.feedback import PreferenceStore
from course_utils.alignment.label_db import LabelDB, LabelError

#: The environment's one setting: a class server URL or a shared room folder.
ENV_WHERE, ENV_CODE, ENV_NAME = "COURSE_CLASS", "COURSE_CLASS_CODE", "COURSE_CLASS_NAME"


class Unreachable(Exception):
    """The label could not be delivered now (network, server down, rate limit): it stays queued."""


class JoinError(ValueError):
    """The room refused to let this participant join (wrong join code, name taken, no code)."""


def _append_line(path: Path, text: str) -> None:
    """Append one line and fsync it (one ``write`` call, as the journal is written)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, (text + "\n").encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text``: write a temporary file, fsync, rename."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _complete_lines(path: Path) -> list[str]:
    """The lines of ``path`` that end with a newline (a half-written last one is ignored)."""
    if not path.exists():
        return []
    data = path.read_text(encoding="utf-8")
    return [line for line in data.split("\n")[:-1] if line.strip()]


class _Local:
    """The embedded store: the room folder's SQLite file, written directly."""

    def __init__(self, folder: str, labeler: str):
        self.db, self.labeler = LabelDB(folder), labeler

    def send(self, event: dict) -> dict:
        try:
            return self.db.record(event, self.labeler)[0]
        except sqlite3.OperationalError as e:  # the file stayed locked past the 30 s timeout, a full disk
            raise Unreachable(f"the room's store {self.db.path} cannot be written now ({e})") from None

    def pairs(self) -> list[dict]:
        return self.db.pairs()


class _Http:
    """The class server's HTTP interface (stdlib ``urllib``; proxies are never used in a room)."""

    def __init__(self, url: str, code: str | None, labeler: str, state: Path, timeout: float):
        self.url, self.code, self.labeler, self.timeout = url.rstrip("/"), code, labeler, timeout
        self.token_file = state / "token.json"
        self.opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        saved = json.loads(self.token_file.read_text()) if self.token_file.exists() else {}
        self.token: str | None = saved.get("token") if saved.get("url") == self.url else None

    def _call(self, method: str, path: str, body: object = None, auth: bool = True) -> object:
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self._join()}"
        data = None if body is None else json.dumps(body).encode("utf-8")
        req = urllib.request.Request(self.url + path, data=data, headers=headers, method=method)
        try:
            with self.opener.open(req, timeout=self.timeout) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            try:
                detail = json.loads(e.read()).get("error", "")
            except (ValueError, AttributeError, OSError):
                detail = ""
            if e.code in (408, 429) or e.code >= 500:
                raise Unreachable(f"the class server answered {e.code} {detail}".strip()) from None
            if e.code == 401:
                raise Unreachable(f"the class server does not know this participant ({detail}); "
                                  f"was the room reset? delete {self.token_file} to join again") from None
            raise LabelError(e.code, detail or f"HTTP {e.code}") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            # HTTPException: the answer was cut off (a server killed mid-reply); the label may be
            # stored: re-sending its id is harmless
            raise Unreachable(f"the class server at {self.url} is unreachable ({e})") from None

    def _join(self) -> str:
        if self.token is None:
            if not self.code:
                raise JoinError("joining the class needs its join code (code=... or $COURSE_CLASS_CODE)")
            try:
                out = self._call("POST", "/join", {"code": self.code, "name": self.labeler}, auth=False)
            except LabelError as e:
                raise JoinError(f"could not join the class at {self.url}: {e}") from None
            self.token = out["token"]
            _write_atomic(self.token_file, json.dumps({"url": self.url, "name": self.labeler, "token": self.token}))
        return self.token

    def send(self, event: dict) -> dict:
        return self._call("POST", "/labels", event)["label"]

    def pairs(self) -> list[dict]:
        return self._call("GET", "/pairs")["pairs"]


def default_state_dir(where: str, labeler: str) -> Path:
    """``~/.cache/course-class/<room>/<labeler>``: this machine's journal and queue for a room."""
    room = hashlib.sha256(where.encode()).hexdigest()[:12]
    return Path.home() / ".cache" / "course-class" / room / hashlib.sha256(labeler.encode()).hexdigest()[:12]


class ClassStore(PreferenceStore):
    """A PreferenceStore that delivers every label to a room (see the module docstring).

    ``where`` is the class server's URL (``http://host:port``) or a room folder on this
    machine. ``code`` is the room's join code (a server only). ``state_dir`` holds the local
    journal and queue (default :func:`default_state_dir`). ``retry_every`` seconds between
    background re-sends of queued labels (0: only at the next label or :meth:`flush`).
    """

    def __init__(self, where: str | os.PathLike, labeler: str, code: str | None = None,
                 source: str = "human", state_dir: str | os.PathLike | None = None,
                 timeout: float = 5.0, retry_every: float = 10.0):
        where = str(where)
        state = Path(state_dir) if state_dir is not None else default_state_dir(where, labeler)
        state.mkdir(parents=True, exist_ok=True)
        self.where, self._lock = where, threading.RLock()
        self._acked_path, self._rejected_path = state / "acked.txt", state / "rejected.jsonl"
        self._acked = set(_complete_lines(self._acked_path))
        self.rejected = [json.loads(line) for line in _complete_lines(self._rejected_path)]
        super().__init__(state / "journal.jsonl", labeler=labeler, source=source)
        gone = {r["label_id"] for r in self.rejected}
        self.rows = [r for r in self.rows if r["label_id"] not in gone]
        remote = where.startswith(("http://", "https://"))
        self._transport = _Http(where, code, labeler, state, timeout) if remote else _Local(where, labeler)
        self.last_error: str | None = None
        self._stop = threading.Event()
        if remote:
            try:  # a wrong join code or a taken name is said now, not at the first label
                self._transport._join()
            except Unreachable as e:
                self.last_error = str(e)
        self.flush()
        if retry_every > 0:
            threading.Thread(target=self._retry, args=(retry_every,), daemon=True,
                             name=f"class-store-{labeler}").start()

    # -- delivery -------------------------------------------------------------------
    @property
    def queued(self) -> list[dict]:
        """Labels written locally that the room has not acknowledged yet, oldest first."""
        with self._lock:
            return [r for r in self.rows if r["label_id"] not in self._acked]

    @property
    def pending(self) -> int:
        return len(self.queued)

    def flush(self) -> int:
        """Send the queued labels in order; return how many the room acknowledged now.

        Stops at the first one that cannot be delivered (it is tried again later).
        """
        sent = 0
        with self._lock:
            for row in self.queued:
                event = {k: row.get(k) for k in ("label_id", "pair_id", "judgement", "chosen",
                                                  "undoes", "time", "source")}
                try:
                    self._transport.send(event)
                except Unreachable as e:
                    self.last_error = str(e)
                    break
                except LabelError as e:
                    self._reject(row, e)
                    continue
                _append_line(self._acked_path, row["label_id"])
                self._acked.add(row["label_id"])
                sent += 1
            else:
                self.last_error = None
        return sent

    def _reject(self, row: dict, error: LabelError) -> None:
        note = {"label_id": row["label_id"], "pair_id": row["pair_id"], "status": error.status,
                "error": str(error)}
        _append_line(self._rejected_path, json.dumps(note, ensure_ascii=False))
        self.rejected.append(note)
        self.rows = [r for r in self.rows if r["label_id"] != row["label_id"]]
        warnings.warn(f"the class refused label {row['label_id']} (pair {row['pair_id']}): {error}",
                      stacklevel=3)

    def _retry(self, every: float) -> None:
        while not self._stop.wait(every):
            if self.pending:
                try:
                    self.flush()
                except Exception as e:  # never let the background thread die silently
                    self.last_error = f"{type(e).__name__}: {e}"

    def close(self) -> None:
        """Stop the background re-sends (queued labels stay in the journal for next time)."""
        self._stop.set()

    def _append(self, row: dict) -> dict:
        """Journal the label (fsync), then deliver it; raise ValueError if the room refuses it."""
        row = dict(row)
        if row["judgement"] == "undo":  # PreferenceStore.undo passes a copy of the label it retracts
            row["undoes"] = row["label_id"]
        row["label_id"] = uuid.uuid4().hex
        with self._lock:
            super()._append(row)
            self.flush()
            refused = [r for r in self.rejected if r["label_id"] == row["label_id"]]
        if refused:
            raise ValueError(f"the class refused this label: {refused[0]['error']}")
        return row

    def pairs(self) -> list[dict]:
        """The room's pairs to label (``pair_id``, ``prompt``, ``a``, ``b``)."""
        return self._transport.pairs()


def label_store(path: str | os.PathLike, labeler: str | None = None, **kwargs) -> PreferenceStore:
    """The one setting: a :class:`ClassStore` for ``$COURSE_CLASS`` (a URL or room folder) when it
    is set, else the learner's own :class:`PreferenceStore` at ``path``.

    The class mode takes the join code from ``$COURSE_CLASS_CODE`` and the name from
    ``labeler``, else ``$COURSE_CLASS_NAME``, else ``$JUPYTERHUB_USER``, else ``$USER``.
    """
    where = os.environ.get(ENV_WHERE, "").strip()
    if not where:
        return PreferenceStore(path, labeler=labeler or "you")
    name = labeler or os.environ.get(ENV_NAME) or os.environ.get("JUPYTERHUB_USER") or os.environ.get("USER")
    if not name:
        raise ValueError(f"class mode needs a name: labeler=... or ${ENV_NAME}")
    return ClassStore(where, labeler=name, code=kwargs.pop("code", os.environ.get(ENV_CODE)), **kwargs)


__all__ = ["ClassStore", "JoinError", "Unreachable", "default_state_dir", "label_store"]
