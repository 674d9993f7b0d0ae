"""Human feedback as data: a preference store that never loses a label, and simulated labelers.

**The store.** Every judgement a labeler makes on a pair of completions (A, B) is one line
of an append-only JSON Lines file, written, flushed and ``fsync``-ed before the call returns::

    {"pair_id": "p0007", "prompt": "Write a sentence about a dog.",
     "chosen": "The happy dog runs in the park.", "rejected": "The dog dog dog.",
     "judgement": "prefer", "labeler": "you", "time": "2026-11-29T12:00:00+00:00",
     "source": "human"}

``judgement`` is ``"prefer"`` (``chosen`` was judged better than ``rejected``), ``"tie"``,
``"skip"`` (for these two, ``chosen``/``rejected`` are simply A/B as shown) or ``"undo"``,
which retracts that labeler's latest live judgement of the same pair. Nothing is ever
rewritten, so a crash can cost at most the line being written: on opening, a half-written
last line is reported, moved to ``<file>.partial`` and cut off; every complete line is kept.

**Simulated labelers.** A labeler who prefers A over B with probability

    P(A > B) = sigma(beta * (g(A) - g(B)))                      (Bradley-Terry)

where ``g`` is the tiny world's hidden gold reward (:func:`world.gold_reward`); ``1 / beta``
is the labeler's noise. Their agreement with the gold preference, ``E[sigma(beta |dg|)]``,
is the best accuracy any predictor can reach against *their* held-out labels.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from datasets import Dataset

from course_utils import world
from course_utils.jsonl import JSONLError, json_lines, validate_row

#: The fields of one line of a preference file, with their types.
PREFERENCE_SCHEMA: dict[str, type] = {
    "pair_id": str, "prompt": str, "chosen": str, "rejected": str,
    "judgement": str, "labeler": str, "time": str, "source": str}
#: What a labeler can say about a pair (``undo`` retracts the previous judgement).
JUDGEMENTS = ("prefer", "tie", "skip", "undo")
#: Completions may be empty (a model can stop at once); every other field must not be.
_MAY_BE_EMPTY = ("chosen", "rejected")


class PartialLineWarning(UserWarning):
    """The last line of a preference file was half-written (a crash while writing)."""


def now() -> str:
    """The current time in UTC as an ISO 8601 string."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def validate_preference(row: object, where: str) -> dict:
    """Check one preference row against :data:`PREFERENCE_SCHEMA` and :data:`JUDGEMENTS`."""
    row = validate_row(row, PREFERENCE_SCHEMA, where, allow_empty=_MAY_BE_EMPTY)
    if row["judgement"] not in JUDGEMENTS:
        raise JSONLError(f"{where}: field 'judgement' must be one of {', '.join(JUDGEMENTS)}, "
                         f"got {row['judgement']!r}")
    return row


class PreferenceStore:
    """An append-only JSONL file of preference judgements (see the module docstring).

    >>> store = PreferenceStore("labels.jsonl", labeler="you")          # doctest: +SKIP
    >>> store.add({"pair_id": "p1", "prompt": ..., "a": ..., "b": ...}, "a")  # doctest: +SKIP
    >>> store.preferences()          # a datasets.Dataset of (prompt, chosen, rejected)  # doctest: +SKIP

    Opening an existing file reads and validates every line; a malformed line that is not
    the last raises :class:`JSONLError` naming the line (something other than a crash
    damaged the file, and the store refuses to guess). ``recovered`` holds the text of a
    half-written last line, if one was cut off.
    """

    def __init__(self, path: str | os.PathLike, labeler: str = "you", source: str = "human"):
        if not labeler.strip() or not source.strip():
            raise ValueError("labeler and source must be non-empty names")
        self.path, self.labeler, self.source = Path(path), labeler, source
        self.recovered: str | None = None
        self.rows: list[dict] = []
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.exists():
            self._recover_partial_tail()
            self._read()

    # -- reading ------------------------------------------------------------------
    def _recover_partial_tail(self) -> None:
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        cut = data.rfind(b"\n") + 1  # 0 when the only line is partial
        tail = data[cut:]
        lineno = data[:cut].count(b"\n") + 1
        side = self.path.with_name(self.path.name + ".partial")
        with open(side, "ab") as f:  # keep the fragment for inspection
            f.write(tail + b"\n")
            f.flush()
            os.fsync(f.fileno())
        with open(self.path, "r+b") as f:
            f.truncate(cut)
            f.flush()
            os.fsync(f.fileno())
        self.recovered = tail.decode("utf-8", errors="replace")
        warnings.warn(f"{self.path}:{lineno}: the last line was half-written (a crash while "
                      f"writing?); it was skipped and saved to {side.name}. "
                      "Every complete label is kept.", PartialLineWarning, stacklevel=3)

    def _read(self) -> None:
        for where, row in json_lines(self.path, hint="; only a half-written *last* line is skipped"):
            self.rows.append(validate_preference(row, where))

    # -- writing ------------------------------------------------------------------
    def _append(self, row: dict) -> dict:
        validate_preference(row, f"{self.path}:new")
        line = (json.dumps(row, ensure_ascii=False) + "\n").encode("utf-8")
        new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one write of the whole line
            os.fsync(fd)
        finally:
            os.close(fd)
        if new:  # make the new directory entry durable too
            dfd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        self.rows.append(row)
        return row

    def add(self, pair: Mapping, choice: str, labeler: str | None = None,
            source: str | None = None) -> dict:
        """Record ``choice`` (``"a"``, ``"b"``, ``"tie"`` or ``"skip"``) for ``pair``.

        ``pair`` has ``pair_id``, ``prompt``, ``a`` and ``b``. Raises ``ValueError`` if this
        labeler already judged the pair (undo first), so a resumed session never duplicates.
        """
        labeler, source = labeler or self.labeler, source or self.source
        missing = [k for k in ("pair_id", "prompt", "a", "b") if k not in pair]
        if missing:
            raise ValueError(f"a pair needs the fields pair_id, prompt, a, b; missing {missing}")
        if choice not in ("a", "b", "tie", "skip"):
            raise ValueError(f"choice must be 'a', 'b', 'tie' or 'skip', not {choice!r}")
        if pair["pair_id"] in self.done_ids(labeler):
            raise ValueError(f"pair {pair['pair_id']!r} is already judged by {labeler!r}; undo first")
        chosen, rejected = (pair["b"], pair["a"]) if choice == "b" else (pair["a"], pair["b"])
        return self._append({
            "pair_id": str(pair["pair_id"]), "prompt": pair["prompt"], "chosen": chosen,
            "rejected": rejected, "judgement": "prefer" if choice in ("a", "b") else choice,
            "labeler": labeler, "time": now(), "source": source})

    def undo(self, labeler: str | None = None) -> dict | None:
        """Retract ``labeler``'s latest live judgement (appending an ``undo`` line); return it."""
        live = self.labels(labeler or self.labeler)
        if not live:
            return None
        last = live[-1]
        self._append({**last, "judgement": "undo", "time": now()})
        return last

    # -- views --------------------------------------------------------------------
    def labels(self, labeler: str | None = None) -> list[dict]:
        """Live judgements in the order they were made (undone ones removed; no undo lines).

        Only ``labeler``'s when given; every labeler's when ``None``.
        """
        live: list[dict] = []
        for row in self.rows:
            if labeler is not None and row["labeler"] != labeler:
                continue
            if row["judgement"] == "undo":
                for i in range(len(live) - 1, -1, -1):
                    if live[i]["pair_id"] == row["pair_id"] and live[i]["labeler"] == row["labeler"]:
                        del live[i]
                        break
            else:
                live.append(row)
        return live

    def done_ids(self, labeler: str | None = None) -> set[str]:
        """The pair ids ``labeler`` (default: this store's) has a live judgement for."""
        return {r["pair_id"] for r in self.labels(labeler or self.labeler)}

    def preferences(self, labeler: str | None = None) -> Dataset:
        """The live ``prefer`` judgements as a :class:`datasets.Dataset` (ties and skips dropped)."""
        rows = [{k: r[k] for k in PREFERENCE_SCHEMA if k != "judgement"}
                for r in self.labels(labeler) if r["judgement"] == "prefer"]
        return Dataset.from_list(rows) if rows else Dataset.from_dict(
            {k: [] for k in PREFERENCE_SCHEMA if k != "judgement"})

    def __len__(self) -> int:
        return len(self.labels())


# ---------------------------------------------------------------------------------
# Simulated labelers
# ---------------------------------------------------------------------------------
def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def gold_of(prompt: str, response: str) -> float:
    """Gold reward of ``response`` to an open-ended prompt of the tiny world."""
    return world.gold_reward(world.subject_of(prompt), response)


@dataclass(frozen=True)
class SimulatedLabeler:
    """A labeler who prefers A with probability ``sigma(beta * (gold(A) - gold(B)))``.

    The same labeler (name, seed) always gives the same answer to the same pair, as a
    person asked twice would not, but as a reproducible course needs.
    """
    name: str
    beta: float = 2.0
    seed: int = 0

    def prob_a(self, prompt: str, a: str, b: str) -> float:
        """P(this labeler prefers ``a``) under the Bradley-Terry model."""
        return sigmoid(self.beta * (gold_of(prompt, a) - gold_of(prompt, b)))

    def choose(self, pair: Mapping) -> str:
        """``"a"`` or ``"b"`` for a pair with ``pair_id``, ``prompt``, ``a``, ``b``."""
        key = f"{self.name}|{self.seed}|{pair['pair_id']}|{pair['a']}|{pair['b']}"
        u = random.Random(hashlib.sha256(key.encode()).digest()).random()
        return "a" if u < self.prob_a(pair["prompt"], pair["a"], pair["b"]) else "b"


def default_labelers(betas: Sequence[float] = (1.5, 2.0, 3.0), seed: int = 0) -> list[SimulatedLabeler]:
    """Several labelers of different care (noise ``1/beta``)."""
    return [SimulatedLabeler(f"labeler{i + 1}", b, seed) for i, b in enumerate(betas)]


def simulate_labels(pairs: Iterable[Mapping], labelers: Sequence[SimulatedLabeler],
                    store: PreferenceStore | None = None, every_labeler: bool = False) -> Dataset:
    """Label ``pairs`` with the simulated ``labelers``.

    Each pair goes to one labeler in turn (round robin, as annotation work is shared out),
    or to every labeler with ``every_labeler=True`` (to measure agreement). Returns the
    preference rows as a Dataset; with a ``store`` they are also appended to its file.
    """
    rows = []
    for i, pair in enumerate(pairs):
        for lab in (labelers if every_labeler else [labelers[i % len(labelers)]]):
            choice = lab.choose(pair)
            chosen, rejected = (pair["a"], pair["b"]) if choice == "a" else (pair["b"], pair["a"])
            row = {"pair_id": str(pair["pair_id"]), "prompt": pair["prompt"], "chosen": chosen,
                   "rejected": rejected, "judgement": "prefer", "labeler": lab.name,
                   "time": now(), "source": f"simulated (beta={lab.beta:g})"}
            if store is not None:
                if pair["pair_id"] in store.done_ids(lab.name):
                    continue
                store._append(row)
            rows.append({k: v for k, v in row.items() if k != "judgement"})
    return Dataset.from_list(rows)


def gold_agreement(rows: Iterable[Mapping]) -> float:
    """Fraction of preference rows whose ``chosen`` has the higher gold reward.

    Pairs whose two responses have equal gold reward carry no gold preference and are left out.
    """
    hits = total = 0
    for r in rows:
        d = gold_of(r["prompt"], r["chosen"]) - gold_of(r["prompt"], r["rejected"])
        if d != 0:
            total += 1
            hits += d > 0
    if not total:
        raise ValueError("no row has a gold preference (every pair is a gold tie)")
    return hits / total


def expected_gold_agreement(pairs: Iterable[Mapping], beta: float) -> float:
    """``E[sigma(beta |g(A) - g(B)|)]`` over pairs with a gold preference: a labeler's expected agreement."""
    ps = [sigmoid(beta * abs(gold_of(p["prompt"], p["a"]) - gold_of(p["prompt"], p["b"])))
          for p in pairs if gold_of(p["prompt"], p["a"]) != gold_of(p["prompt"], p["b"])]
    if not ps:
        raise ValueError("no pair has a gold preference")
    return sum(ps) / len(ps)


def inter_labeler_agreement(rows: Iterable[Mapping]) -> float:
    """How often two labelers who judged the same pair chose the same response (all pairs of labelers)."""
    by_pair: dict[str, list[str]] = {}
    for r in rows:
        by_pair.setdefault(r["pair_id"], []).append(r["chosen"])
    same = total = 0
    for choices in by_pair.values():
        for i in range(len(choices)):
            for j in range(i + 1, len(choices)):
                total += 1
                same += choices[i] == choices[j]
    if not total:
        raise ValueError("no pair was judged by two labelers")
    return same / total
