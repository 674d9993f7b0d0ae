"""Chains of "more than": the tiny world's reasoning task, where writing the steps down helps.

A problem states how many things some children have, in a shuffled order, and asks about
one of them. The child asked about is the end of a *chain* of ``hops`` comparisons; a second
chain about other children is there only to mislead::

    Mia has 4 more balls than Tom. Ben has 6 balls. Tom has 3 balls. Anna has 2 more balls
    than Ben. Sam has 2 more balls than Mia. How many balls does Sam have?

A **worked** answer follows the chain back to its start, one statement per sentence, then
adds forward, one sentence per addition, and gives the answer; a **direct** answer gives only
the answer::

    worked:  Sam has 2 more than Mia. Mia has 4 more than Tom. Tom has 3. 3 plus 4 is 7.
             7 plus 2 is 9. Answer: 9.
    direct:  Answer: 9.

Each sentence of a worked answer needs one look-up in the problem or one addition of the
corpus's kind ("a plus b is c" with ``a`` and ``b`` at most 20; :data:`course_utils.world.MAX_ADD`:
the running total before the last addition is kept at 20 or less). A direct answer must find
the chain among the distractors and add along it inside one forward pass of four layers.

Easier variants, for calibration (``distractors=False``: only the asked chain; ``shuffle=False``:
each chain's statements in chain order) keep a seed's chains, questions and worked answers.

Splits (:func:`make_reasoning_data`): ``train`` and ``test`` hold chains of 1 to 3 hops, and no
chain of numbers of ``test`` occurs in ``train``; ``test_longer`` holds chains of 4 hops, a length
that training never shows. Every row has ``prompt``, ``response`` (worked or direct), ``answer``
(the total, as text), ``terms`` (the start value, then each "more") and ``hops``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from datasets import Dataset, DatasetDict

from course_utils.world import HELDOUT_COPY_WORDS, MAX_ADD, NAMES, OBJECTS

MAX_TERM = 9                     # every number in a problem is 1..MAX_TERM
TRAIN_HOPS = (1, 2, 3)           # comparisons in the asked chain, train and test
LONGER_HOPS = 4                  # in test_longer (never trained on)
ANSWER_PREFIX = "Answer:"
CHILDREN = [n for n in NAMES if n not in HELDOUT_COPY_WORDS]
THINGS = [o for o in OBJECTS if o not in HELDOUT_COPY_WORDS]


def valid_terms(terms: Sequence[int]) -> bool:
    """A start value and at least one "more", each 1..MAX_TERM, the total before the last at most MAX_ADD."""
    return (len(terms) >= 2 and all(1 <= t <= MAX_TERM for t in terms)
            and sum(terms[:-1]) <= MAX_ADD)


def sample_terms(rng: random.Random, hops: int) -> tuple[int, ...]:
    """A start value and ``hops`` increments, uniform among the valid ones (rejection sampling)."""
    while True:
        terms = tuple(rng.randint(1, MAX_TERM) for _ in range(hops + 1))
        if valid_terms(terms):
            return terms


def _plural(thing: str, n: int) -> str:
    if n == 1:
        return thing
    return thing + "es" if thing.endswith(("s", "x", "ch", "sh")) else thing + "s"


def chain_statements(names: Sequence[str], terms: Sequence[int], thing: str) -> list[str]:
    """``names[0]`` has ``terms[0]``; each next child has ``terms[i]`` more than the one before."""
    out = [f"{names[0]} has {terms[0]} {_plural(thing, terms[0])}."]
    for i in range(1, len(terms)):
        out.append(f"{names[i]} has {terms[i]} more {_plural(thing, terms[i])} than {names[i - 1]}.")
    return out


def worked_steps(names: Sequence[str], terms: Sequence[int]) -> list[str]:
    """Back along the chain (one look-up per sentence), then forward (one addition per sentence)."""
    steps = [f"{names[i]} has {terms[i]} more than {names[i - 1]}." for i in range(len(terms) - 1, 0, -1)]
    steps.append(f"{names[0]} has {terms[0]}.")
    total = terms[0]
    for t in terms[1:]:
        steps.append(f"{total} plus {t} is {total + t}.")
        total += t
    return steps


def make_problem(rng: random.Random, terms: Sequence[int], worked: bool = True,
                 distractors: bool = True, shuffle: bool = True) -> dict:
    """One row: the asked chain ``terms``, a distractor chain as long, shuffled statements.

    ``distractors=False`` leaves out the second chain; ``shuffle=False`` keeps the statements
    of each chain in chain order (start value first), the asked chain first or second at random.
    """
    hops = len(terms) - 1
    names = rng.sample(CHILDREN, 2 * (hops + 1))
    asked, other = names[:hops + 1], names[hops + 1:]
    thing = rng.choice(THINGS)
    statements = chain_statements(asked, terms, thing) + chain_statements(other, sample_terms(rng, hops), thing)
    order = list(range(len(statements)))
    rng.shuffle(order)            # drawn whatever the flags, so they change no other draw of the seed
    if not shuffle:               # each chain in order, the asked one first or second (by the same draw)
        chains = [list(range(hops + 1)), list(range(hops + 1, 2 * hops + 2))]
        order = chains[0] + chains[1] if order[0] <= hops else chains[1] + chains[0]
    statements = [statements[i] for i in order if distractors or i <= hops]
    prompt = " ".join(statements) + f" How many {_plural(thing, 2)} does {asked[-1]} have?"
    final = f"{ANSWER_PREFIX} {sum(terms)}."
    response = " ".join(worked_steps(asked, terms) + [final]) if worked else final
    return {"prompt": prompt, "response": response, "answer": str(sum(terms)), "terms": list(terms), "hops": hops}


def make_reasoning_data(seed: int = 0, n_train: int = 3000, n_test: int = 300, n_longer: int = 200,
                        worked: bool = True, test_fraction: float = 0.25, distractors: bool = True,
                        shuffle: bool = True) -> DatasetDict:
    """The three splits described in the module docstring, ``hops`` drawn uniformly from TRAIN_HOPS.

    A share ``test_fraction`` of the distinct number chains seen while drawing goes to ``test``
    only, each once (``train`` repeats chains: there are only 81 with one hop). The same ``seed``
    gives the same problems whether ``worked`` is true or false, so the two arms of an experiment
    differ only in their answers. ``distractors`` and ``shuffle``: see :func:`make_problem` (the
    same seed gives the same asked chains and names whatever they are).
    """
    kw = {"distractors": distractors, "shuffle": shuffle}
    if n_train < 1 or n_test < 1 or n_longer < 1:
        raise ValueError("every split needs at least one problem")
    rng = random.Random(seed)
    held: set[tuple[int, ...]] = set()
    seen: set[tuple[int, ...]] = set()
    train, test = [], []
    for _ in range(100 * (n_train + n_test)):
        if len(train) >= n_train and len(test) >= n_test:
            break
        terms = sample_terms(rng, rng.choice(TRAIN_HOPS))
        if terms not in seen:
            seen.add(terms)
            if rng.random() < test_fraction:
                held.add(terms)
                if len(test) < n_test:
                    test.append(make_problem(rng, terms, worked, **kw))
                continue
        if terms not in held and len(train) < n_train:
            train.append(make_problem(rng, terms, worked, **kw))
    else:
        raise ValueError(f"cannot draw {n_test} distinct test problems: lower n_test or raise test_fraction")
    longer = [make_problem(rng, sample_terms(rng, LONGER_HOPS), worked, **kw) for _ in range(n_longer)]
    return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test),
                        "test_longer": Dataset.from_list(longer)})
