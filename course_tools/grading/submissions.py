"""The submissions folder, read without trusting it.

:func:`find_submissions` maps ``<student>/<lab>/<lab>.ipynb`` (and names that match a lab
ignoring case and separators) to the labs, with a report row for whatever is not graded
and why; :func:`_scan` and :func:`read_submission` refuse links, FIFOs, devices, sockets,
hard-linked and oversized notebooks (:class:`Refused`); :func:`parse_submission` checks a
notebook cell by cell before nbformat reads it.

Imports: nbformat and :mod:`course_tools.grading.reports`
(:class:`~course_tools.grading.reports.Result`).
"""

from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any

import nbformat

from course_tools.grading.reports import Result

#: largest submitted notebook the harness reads (bytes)
MAX_NOTEBOOK = 16 << 20


def _norm(name: str) -> str:
    """A name for matching: lower case, no spaces, dashes, underscores or dots."""
    return re.sub(r"[\s_.\-]+", "", name.lower())


class Refused(ValueError):
    """A submitted path the harness does not read; the message says why."""


def _what(mode: int) -> str | None:
    """Why a file of this mode is not read (None for a regular file or a folder)."""
    for test, name in ((stat.S_ISLNK, "a symbolic link (links are not followed)"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else "not a regular file"


def _scan(student_dir: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The notebooks under ``student_dir`` (hidden names skipped) and the entries refused,
    with the reason: links, FIFOs, devices, sockets, and notebooks with more than one hard link."""
    nbs: list[Path] = []
    refused: list[tuple[Path, str]] = []
    for top, dirs, files in os.walk(student_dir, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in [*dirs, *sorted(files)]:
            if name.startswith("."):
                continue
            path = Path(top) / name
            st = os.lstat(path)
            why = _what(st.st_mode)
            if why is None and stat.S_ISREG(st.st_mode) and name.endswith(".ipynb") and st.st_nlink != 1:
                why = f"a file with {st.st_nlink} hard links (one of them elsewhere)"
            if why:
                refused.append((path, why))
            elif stat.S_ISREG(st.st_mode) and name.endswith(".ipynb"):
                nbs.append(path)
    return sorted(nbs), refused  # os.walk does not enter a linked folder: it is listed, not followed


def read_submission(path: Path, root: Path, limit: int = MAX_NOTEBOOK) -> bytes:
    """The bytes of the submitted file ``path`` under ``root``, read without trusting the
    file system: every folder below ``root`` is opened without following links, the file
    must be a regular file with one hard link and at most ``limit`` bytes, and it is opened
    without following links or blocking (a FIFO) and checked again once open. Raises
    :class:`Refused` with the reason."""
    rel = path.relative_to(root)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NOCTTY
    fd = os.open(root, flags | os.O_DIRECTORY)
    try:
        for part in rel.parts[:-1]:
            try:
                nxt = os.open(part, flags | os.O_DIRECTORY, dir_fd=fd)
            except OSError as e:
                raise Refused(f"{part} is not a plain folder ({e.strerror})") from None
            os.close(fd)
            fd = nxt
        before = os.stat(rel.name, dir_fd=fd, follow_symlinks=False)
        why = _what(before.st_mode)
        if why is None and stat.S_ISDIR(before.st_mode):
            why = "a folder"
        if why is None and before.st_nlink != 1:
            why = f"a file with {before.st_nlink} hard links (one of them elsewhere)"
        if why is None and before.st_size > limit:
            why = f"larger than {limit >> 20} MiB ({before.st_size} bytes)"
        if why:
            raise Refused(f"{rel} is {why}")
        try:
            nb_fd = os.open(rel.name, flags | os.O_NONBLOCK, dir_fd=fd)
        except OSError as e:
            raise Refused(f"{rel} could not be opened ({e.strerror})") from None
        try:
            now = os.fstat(nb_fd)
            if (now.st_ino, now.st_dev) != (before.st_ino, before.st_dev) or not stat.S_ISREG(now.st_mode):
                raise Refused(f"{rel} changed while it was read")
            chunks, size = [], 0
            while chunk := os.read(nb_fd, 1 << 20):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raise Refused(f"{rel} is larger than {limit >> 20} MiB")
            return b"".join(chunks)
        finally:
            os.close(nb_fd)
    finally:
        os.close(fd)


_CELL_TYPES = {"code", "markdown", "raw"}


def parse_submission(data: bytes) -> Any:
    """A submitted notebook from its bytes, checked cell by cell: every cell a mapping with a
    known ``cell_type``, text ``source``, a mapping ``metadata`` and text ids. Raises
    ``ValueError`` (or whatever ``json``/``nbformat`` raise) naming what is wrong."""
    raw = json.loads(data.decode("utf-8"))
    if not isinstance(raw, dict) or not isinstance(raw.get("cells"), list):
        raise ValueError("no list of cells")
    for i, c in enumerate(raw["cells"]):
        if not isinstance(c, dict):
            raise ValueError(f"cell {i} is not a mapping")
        if c.get("cell_type") not in _CELL_TYPES:
            raise ValueError(f"cell {i}: unknown cell_type")
        src = c.get("source", "")
        if not (isinstance(src, str) or isinstance(src, list) and all(isinstance(x, str) for x in src)):
            raise ValueError(f"cell {i}: its source is {type(src).__name__}, not text")
        meta = c.get("metadata", {})
        if not isinstance(meta, dict) or not isinstance(meta.get("nbgrader", {}), dict):
            raise ValueError(f"cell {i}: its metadata is not a mapping")
        gid = meta.get("nbgrader", {}).get("grade_id")
        if not (gid is None or isinstance(gid, str)) or not (c.get("id") is None or isinstance(c.get("id"), str)):
            raise ValueError(f"cell {i}: its id or grade_id is not text")
    raw.setdefault("metadata", {})
    if not isinstance(raw["metadata"], dict):
        raise ValueError("its metadata is not a mapping")
    return nbformat.reads(json.dumps(raw), as_version=4)


def find_submissions(submissions: Path, labs_here: list[str]) -> tuple[list[tuple[str, str, Path, list[str]]], list[Result]]:
    """``(student, lab, notebook, notes)`` to grade, and report rows for what is not graded.

    ``<student>/<lab>/<lab>.ipynb`` is the layout; a folder or file whose name equals a
    lab's ignoring case, spaces, dashes, underscores and dots is taken, with a note.
    Links, FIFOs, devices and hard-linked notebooks are refused with the reason (:func:`_scan`).
    """
    found: list[tuple[str, str, Path, list[str]]] = []
    skipped: list[Result] = []
    keys = {_norm(lab): lab for lab in labs_here}
    for entry in sorted(p for p in submissions.iterdir() if not p.name.startswith(".")):
        why = _what(os.lstat(entry).st_mode)
        if why:
            skipped.append(Result(entry.name, "", notes=[f"not graded: the student's folder is {why}"]))
    for student_dir in sorted(p for p in submissions.iterdir()
                              if stat.S_ISDIR(os.lstat(p).st_mode) and not p.name.startswith(".")):
        student = student_dir.name
        nbs, refused = _scan(student_dir)
        for path, why in refused:
            rel = path.relative_to(student_dir)
            lab = keys.get(_norm(path.stem)) or keys.get(_norm(rel.parts[0])) or ""
            skipped.append(Result(student, lab, notes=[f"not graded: {rel} is {why}"]))
        if not nbs and not refused:
            skipped.append(Result(student, "", notes=["not graded: no notebook in this folder"]))
        best: dict[str, tuple[int, Path]] = {}
        unmatched: list[Path] = []
        for nb in nbs:
            rel = nb.relative_to(student_dir)
            folder = rel.parts[0] if len(rel.parts) > 1 else ""
            exact = len(rel.parts) == 2 and folder == nb.stem and folder in labs_here
            lab = nb.stem if exact else keys.get(_norm(nb.stem)) or keys.get(_norm(folder))
            if lab is None:
                unmatched.append(nb)
                continue
            rank = 0 if exact else 1 if _norm(nb.stem) == _norm(lab) and _norm(folder) == _norm(lab) else 2
            if lab in best and best[lab][0] <= rank:
                skipped.append(Result(student, lab, notes=[
                    f"not graded: {rel} (another file, {best[lab][1].relative_to(student_dir)}, was graded for {lab})"]))
                continue
            if lab in best:
                skipped.append(Result(student, lab, notes=[
                    f"not graded: {best[lab][1].relative_to(student_dir)} (another file, {rel}, was graded for {lab})"]))
            best[lab] = (rank, nb)
        for lab, (rank, nb) in sorted(best.items()):
            rel = nb.relative_to(student_dir)
            notes = [] if rank == 0 else [f"graded {rel} as {lab}/{lab}.ipynb (name matched ignoring case and separators)"]
            found.append((student, lab, nb, notes))
        for nb in unmatched:
            skipped.append(Result(student, "", notes=[
                f"not graded: {nb.relative_to(student_dir)} matches no lab ({', '.join(labs_here)})"]))
    return found, skipped
