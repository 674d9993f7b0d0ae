"""Multi-step sums: the tiny world's reasoning task, where writing the steps down helps.

A problem adds ``k`` whole numbers from 1 to 9 (``k`` from 2 to 5), asked in one of several
wordings, some of them small stories::

    Add 4, 7 and 9.
    Tom had 4 balls and found 7 more, then 9 more. How many balls does Tom have now?

A **worked** answer adds one number at a time, one sentence per step, then gives the answer;
a **direct** answer gives only the answer::

    worked:  4 plus 7 is 11. 11 plus 9 is 20. Answer: 20.
    direct:  Answer: 20.

Every step of a worked answer is a fact of the pretraining corpus's kind ("a plus b is c" with
``a`` and ``b`` at most 20; :data:`course_utils.world.MAX_ADD`): the running total before the last
step is kept at 20 or less. A direct answer must add ``k`` numbers in one go, which the corpus
never shows. That is why the steps help a model this small, and chapter 17 measures how much.

Splits (:func:`make_reasoning_data`): ``train`` and ``test`` hold problems with 2 to 4 numbers,
and no tuple of numbers of ``test`` occurs in ``train``; ``test_longer`` holds 5 numbers, a
difficulty that training never shows. Every row has ``prompt``, ``response`` (worked or direct),
``answer`` (the total, as text), ``terms`` (the numbers) and ``k``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from datasets import Dataset, DatasetDict

from course_utils.world import HELDOUT_COPY_WORDS, MAX_ADD, NAMES, OBJECTS

MAX_TERM = 9                     # each number is 1..MAX_TERM
TRAIN_KS = (2, 3, 4)             # numbers per problem in train and test
LONGER_K = 5                     # numbers per problem in test_longer (never trained on)
ANSWER_PREFIX = "Answer:"

LIST_TEMPLATES = ["Add {list}.", "What is the sum of {list}?", "Add up {list}."]
PLUS_TEMPLATES = ["What is {plus}?", "Compute {plus}."]
STORY_TEMPLATE = "{name} had {first} {things} and found {more}. How many {obj}s does {name} have now?"
STORY_NAMES = [n for n in NAMES if n not in HELDOUT_COPY_WORDS]
STORY_OBJECTS = [o for o in OBJECTS if o not in HELDOUT_COPY_WORDS]


def valid_terms(terms: Sequence[int]) -> bool:
    """Numbers in 1..MAX_TERM whose running total before the last one is at most MAX_ADD."""
    return (len(terms) >= 2 and all(1 <= t <= MAX_TERM for t in terms)
            and sum(terms[:-1]) <= MAX_ADD)


def sample_terms(rng: random.Random, k: int) -> tuple[int, ...]:
    """``k`` numbers drawn uniformly among the valid tuples (rejection sampling)."""
    while True:
        terms = tuple(rng.randint(1, MAX_TERM) for _ in range(k))
        if valid_terms(terms):
            return terms


def _listed(terms: Sequence[int]) -> str:
    return ", ".join(str(t) for t in terms[:-1]) + f" and {terms[-1]}"


def ask(rng: random.Random, terms: Sequence[int]) -> str:
    """The question for ``terms`` in a wording drawn from ``rng``."""
    style = rng.randrange(3)
    if style == 0:
        return rng.choice(LIST_TEMPLATES).format(list=_listed(terms))
    if style == 1:
        sep = " plus " if rng.random() < 0.5 else " + "
        return rng.choice(PLUS_TEMPLATES).format(plus=sep.join(str(t) for t in terms))
    more = ", then ".join(f"{t} more" for t in terms[1:])
    obj = rng.choice(STORY_OBJECTS)
    things = obj if terms[0] == 1 else obj + "s"
    return STORY_TEMPLATE.format(name=rng.choice(STORY_NAMES), first=terms[0], things=things, more=more, obj=obj)


def worked_steps(terms: Sequence[int]) -> list[str]:
    """One sentence per addition: ``"4 plus 7 is 11."``, then ``"11 plus 9 is 20."``."""
    steps, total = [], terms[0]
    for t in terms[1:]:
        steps.append(f"{total} plus {t} is {total + t}.")
        total += t
    return steps


def answer_text(terms: Sequence[int], worked: bool = True) -> str:
    """The demonstration answer: the steps (if ``worked``) and ``"Answer: N."``."""
    final = f"{ANSWER_PREFIX} {sum(terms)}."
    return " ".join(worked_steps(terms) + [final]) if worked else final


def _row(rng: random.Random, terms: tuple[int, ...], worked: bool) -> dict:
    return {"prompt": ask(rng, terms), "response": answer_text(terms, worked), "answer": str(sum(terms)),
            "terms": list(terms), "k": len(terms)}


def make_reasoning_data(seed: int = 0, n_train: int = 3000, n_test: int = 300, n_longer: int = 200,
                        worked: bool = True, test_fraction: float = 0.25) -> DatasetDict:
    """The three splits described in the module docstring, ``k`` drawn uniformly from TRAIN_KS.

    A share ``test_fraction`` of the distinct tuples seen while drawing goes to ``test`` only,
    and each of them appears there once (``train`` repeats tuples: there are only 81 with k = 2).
    The same ``seed`` gives the same problems and wordings whether ``worked`` is true or false,
    so the two arms of an experiment differ only in their answers.
    """
    if n_train < 1 or n_test < 1 or n_longer < 1:
        raise ValueError("every split needs at least one problem")
    rng = random.Random(seed)
    held: set[tuple[int, ...]] = set()
    seen: set[tuple[int, ...]] = set()
    train, test = [], []
    for _ in range(100 * (n_train + n_test)):
        if len(train) >= n_train and len(test) >= n_test:
            break
        terms = sample_terms(rng, rng.choice(TRAIN_KS))
        if terms not in seen:
            seen.add(terms)
            if rng.random() < test_fraction:
                held.add(terms)
                if len(test) < n_test:
                    test.append(_row(rng, terms, worked))
                continue
        if terms not in held and len(train) < n_train:
            train.append(_row(rng, terms, worked))
    else:
        raise ValueError(f"cannot draw {n_test} distinct test problems: lower n_test or raise test_fraction")
    longer = [_row(rng, sample_terms(rng, LONGER_K), worked) for _ in range(n_longer)]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test),
                        "test_longer": Dataset.from_list(longer)})
