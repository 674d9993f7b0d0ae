"""A reward-model benchmark of the tiny world: pairs that differ in one gold component.

RewardBench (Lambert et al., 2024) scores a reward model by its accuracy on (chosen,
rejected) pairs grouped by category, so that a model accurate on average but blind to one
kind of error shows it. The tiny world can build such pairs exactly, because its gold
reward is a sum of named components (:func:`course_utils.world.gold_breakdown`). Starting
from an answer, each category applies one edit that lowers exactly one component and
leaves the other four unchanged (checked with the breakdown; an edit that moves any other
component is discarded):

================  ===========================================================  =====================
category          edit to the chosen answer                                   component it lowers
================  ===========================================================  =====================
``subject``       the prompt's subject word replaced by another subject       ``mentions_subject``
``tone``          a positive word made negative (or a negative word added)    ``tone``
``repetition``    one content word said twice                                 ``repetition``
``length``        a tail of new words that takes the answer past 12 words     ``length``
``ending``        the final full stop removed                                 ``ending``
================  ===========================================================  =====================

:func:`accuracy_by_category` then gives, per category, the share of pairs a scorer puts
the right way round, with a Wilson 95% interval; :func:`judge_accuracy_by_category` does the
same for a pairwise judge (:mod:`course_utils.evaluation.judges`), asked in both orders.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
from datasets import Dataset

from course_utils import world
from course_utils.evaluation.judges import Judge, swap_averaged
from course_utils.evaluation.uncertainty import Interval, wilson

CATEGORIES = {"subject": "mentions_subject", "tone": "tone", "repetition": "repetition",
              "length": "length", "ending": "ending"}


def _words(text: str) -> list[str]:
    return re.findall(r"[A-Za-z]+", text)


def _replace_word(text: str, old: str, new: str) -> str:
    """Replace the first whole-word, case-insensitive occurrence of ``old`` by ``new``."""
    return re.sub(rf"\b{re.escape(old)}\b", new, text, count=1, flags=re.IGNORECASE)


def _edit_subject(subject: str, text: str, rng: random.Random) -> str | None:
    present = {w.lower() for w in _words(text)}
    if subject.lower() not in present:
        return None
    other = rng.choice([s for s in world.SUBJECTS if s not in present])
    return re.sub(rf"\b{re.escape(subject)}\b", other, text, flags=re.IGNORECASE)


def _edit_tone(subject: str, text: str, rng: random.Random) -> str | None:
    present = {w.lower() for w in _words(text)}
    negative = rng.choice([w for w in world.NEGATIVE if w not in present])
    positives = [w for w in _words(text) if w.lower() in world.POSITIVE]
    if positives:
        return _replace_word(text, rng.choice(positives), negative)
    if subject.lower() in present:
        return _replace_word(text, subject, f"{negative} {subject}")
    return None


def _edit_repetition(subject: str, text: str, rng: random.Random) -> str | None:
    content = [w for w in _words(text) if w.lower() not in world.FUNCTION_WORDS]
    if not content:
        return None
    w = rng.choice(content)
    return re.sub(rf"\b{re.escape(w)}\b", f"{w} {w}", text, count=1)


def _edit_length(subject: str, text: str, rng: random.Random) -> str | None:
    if not text.rstrip().endswith("."):
        return None
    present = {w.lower() for w in _words(text)}
    fresh = [w for w in world.NAMES + world.PLACES + world.COLOURS + world.OBJECTS
             if w.lower() not in present and w.lower() != subject.lower()]
    rng.shuffle(fresh)
    tail: list[str] = []
    while len(_words(text)) + len(tail) <= 12 + rng.randint(1, 3) and fresh:
        tail += ["and", fresh.pop()]
    return text.rstrip()[:-1] + " " + " ".join(tail) + "."


def _edit_ending(subject: str, text: str, rng: random.Random) -> str | None:
    t = text.rstrip()
    return t[:-1] if t.endswith(".") else None


EDITS: dict[str, Callable[[str, str, random.Random], str | None]] = {
    "subject": _edit_subject, "tone": _edit_tone, "repetition": _edit_repetition,
    "length": _edit_length, "ending": _edit_ending}


def one_component_pair(prompt: str, answer: str, category: str, rng: random.Random) -> dict | None:
    """``{prompt, chosen, rejected, category, gold_chosen, gold_rejected}``, or None.

    ``rejected`` is ``answer`` with the category's edit; None when the edit does not apply
    or moves any gold component other than the category's own (or fails to lower it).
    """
    if category not in EDITS:
        raise ValueError(f"unknown category {category!r}; choose from {sorted(EDITS)}")
    subject = world.subject_of(prompt)
    rejected = EDITS[category](subject, answer, rng)
    if rejected is None or rejected == answer:
        return None
    before = world.gold_breakdown(subject, answer)
    after = world.gold_breakdown(subject, rejected)
    field = CATEGORIES[category]
    for name in CATEGORIES.values():
        b, a = getattr(before, name), getattr(after, name)
        if (name == field and not a < b) or (name != field and a != b):
            return None
    return {"prompt": prompt, "chosen": answer, "rejected": rejected, "category": category,
            "gold_chosen": round(before.total, 6), "gold_rejected": round(after.total, 6)}


def make_benchmark(answers: Iterable[Mapping], per_category: int = 100, seed: int = 0) -> Dataset:
    """Up to ``per_category`` one-component pairs per category from ``{prompt, response}`` rows.

    Rows are tried in a shuffled order (seeded); each row yields at most one pair per
    category. Raises if any category ends up empty.
    """
    rows = [dict(r) for r in answers]
    if not rows:
        raise ValueError("make_benchmark needs at least one {prompt, response} row")
    for k, r in enumerate(rows):
        missing = {"prompt", "response"} - set(r)
        if missing:
            raise ValueError(f"row {k} lacks field(s) {sorted(missing)}")
    rng = random.Random(f"rewardbench-{seed}")
    order = list(range(len(rows)))
    rng.shuffle(order)
    out: list[dict] = []
    for category in CATEGORIES:
        made = 0
        for k in order:
            if made == per_category:
                break
            pair = one_component_pair(rows[k]["prompt"], rows[k]["response"], category, rng)
            if pair is not None:
                out.append(pair)
                made += 1
        if made == 0:
            raise ValueError(f"no answer admits a one-component {category!r} pair")
    return Dataset.from_list(out)


def accuracy_by_category(score: Callable[[list[str], list[str]], Sequence[float]],
                         bench: Dataset) -> dict[str, Interval]:
    """Per category (and ``"all"``), the share of pairs with ``score(chosen) > score(rejected)``.

    ``score(prompts, responses)`` returns one number per response (a reward model's score,
    or the gold reward). A tie counts as wrong. Wilson 95% intervals.
    """
    prompts = list(bench["prompt"])
    s_c = np.asarray(score(prompts, list(bench["chosen"])), dtype=float)
    s_r = np.asarray(score(prompts, list(bench["rejected"])), dtype=float)
    return _by_category(s_c > s_r, list(bench["category"]))


def judge_accuracy_by_category(judge: Judge, bench: Dataset) -> dict[str, Interval]:
    """As :func:`accuracy_by_category` for a pairwise judge, asked in both orders and averaged."""
    p = swap_averaged(judge)(list(bench["prompt"]), list(bench["chosen"]), list(bench["rejected"]))
    return _by_category(p > 0.5, list(bench["category"]))


def _by_category(right: np.ndarray, categories: list[str]) -> dict[str, Interval]:
    cats = np.asarray(categories)
    out = {c: wilson(int(right[cats == c].sum()), int((cats == c).sum()))
           for c in CATEGORIES if (cats == c).any()}
    out["all"] = wilson(int(right.sum()), int(right.size))
    return out
