"""JSON Lines export and import, with validation that names the file, line and field.

Every data set of the course (instruction examples, preference labels) is a
:class:`datasets.Dataset`; on disk it is a JSONL file: one JSON object per line.

>>> rows = [{"task": "add", "prompt": "What is 2 plus 3?", "response": "5"}]
>>> write_jsonl("demo.jsonl", rows)                                  # doctest: +SKIP
>>> read_jsonl("demo.jsonl", {"task": str, "prompt": str, "response": str})  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from datasets import Dataset

#: The fields every instruction example carries, with their types.
INSTRUCTION_SCHEMA: dict[str, type] = {"task": str, "prompt": str, "response": str}


class JSONLError(ValueError):
    """A JSONL file could not be read: the message names the file, the line and the field."""


def write_jsonl(path: str | os.PathLike, rows: Iterable[Mapping] | Dataset) -> Path:
    """Write ``rows`` to ``path`` atomically: a temporary file in the same folder, then a rename.

    A crash half-way leaves the old file (or none) in place, never a half-written one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(dict(row), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _type_name(t: type) -> str:
    return {str: "a string", int: "an integer", float: "a number", bool: "true/false",
            list: "a list", dict: "an object"}.get(t, t.__name__)


def validate_row(row: object, schema: Mapping[str, type], where: str,
                 allow_empty: Iterable[str] = ()) -> dict:
    """Check one decoded row against ``schema`` ({field: type}); ``where`` is "file:line".

    String fields must not be blank, except those named in ``allow_empty``.
    """
    if not isinstance(row, dict):
        raise JSONLError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for field, typ in schema.items():
        if field not in row:
            raise JSONLError(f"{where}: missing field {field!r}")
        value = row[field]
        ok = isinstance(value, typ) and not (typ in (int, float) and isinstance(value, bool))
        if typ is float and isinstance(value, int) and not isinstance(value, bool):
            ok = True
        if not ok:
            raise JSONLError(f"{where}: field {field!r} must be {_type_name(typ)}, "
                             f"got {json.dumps(value)[:40]}")
        if typ is str and not value.strip() and field not in allow_empty:
            raise JSONLError(f"{where}: field {field!r} is empty")
    return row


def json_lines(path: str | os.PathLike, hint: str = "") -> Iterator[tuple[str, object]]:
    """``("file:line", decoded value)`` for every non-blank line of ``path``.

    Raises :class:`JSONLError` naming the line when one is not valid JSON (``hint`` is
    added to that message).
    """
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                raise JSONLError(f"{where}: not valid JSON ({e.msg} at column {e.colno}){hint}") from None


def read_jsonl(path: str | os.PathLike, schema: Mapping[str, type] | None = None) -> Dataset:
    """Read a JSONL file into a :class:`datasets.Dataset`, validating every line.

    Raises :class:`JSONLError` for a missing or empty file, a line that is not valid JSON,
    a line that is not an object, or a field that is missing, of the wrong type or empty.
    Blank lines are allowed and skipped.
    """
    path = Path(path)
    schema = INSTRUCTION_SCHEMA if schema is None else schema
    if not path.exists():
        raise JSONLError(f"{path}: no such file")
    rows = [validate_row(row, schema, where) for where, row in json_lines(path)]
    if not rows:
        raise JSONLError(f"{path}: the file holds no rows (empty data set)")
    return Dataset.from_list(rows)
