"""Who has the ball? The tiny world's reasoning task, where writing the steps down helps.

Four children pass a thing around by swapping what they hold; the question is who holds it
at the end::

    Mia has the ball. Mia and Tom swap. Ben and Sam swap. Tom and Ben swap. Who has the ball?

A **worked** answer follows the swaps in order, one sentence each, saying who holds the thing
after it; a **direct** answer gives only the name::

    worked:  Mia and Tom swap: Tom has it. Ben and Sam swap: Tom has it. Tom and Ben swap: Ben has it.
             Answer: Ben.
    direct:  Answer: Ben.

Each worked sentence copies the next swap of the prompt and applies one rule to the holder
named just before it: if the holder is one of the two, the other one holds the thing now,
otherwise nothing changes. A direct answer must compose all the swaps inside one forward pass.
(Sums are no such task for the tiny model: fine-tuned for 400 steps on direct answers, it
answered every held-out sum of four to nine numbers from 1 to 3 right, seed 0.)

Splits (:func:`make_reasoning_data`): ``train`` and ``test`` hold 2 to 6 swaps, and no *pattern*
of swaps in ``test`` occurs in ``train`` (:func:`pattern`: the problem up to the children's names
and the order of the two names in a swap, so a test problem is not a train problem with other
names);
``test_longer`` holds problems of 8 swaps, a length training never shows; ``rl`` (on request)
holds problems of new patterns for RL. Every row has
``prompt``, ``response`` (worked or direct), ``answer`` (the name), ``start`` (who holds the
thing first), ``swaps`` (the pairs, in order) and ``n_swaps``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence

from datasets import Dataset, DatasetDict

from course_utils.world import HELDOUT_COPY_WORDS, NAMES, OBJECTS

N_CHILDREN = 4                    # children in every problem
TRAIN_SWAPS = (2, 3, 4, 5, 6)     # swaps in a problem of train and test
LONGER_SWAPS = 8                  # in test_longer (never trained on)
ANSWER_PREFIX = "Answer:"
CHILDREN = [n for n in NAMES if n not in HELDOUT_COPY_WORDS]
THINGS = [o for o in OBJECTS if o not in HELDOUT_COPY_WORDS]


def holder_after(holder: str, a: str, b: str) -> str:
    """Who holds the thing after ``a`` and ``b`` swap: the other one if ``holder`` is one of them."""
    return b if holder == a else a if holder == b else holder


def holders(start: str, swaps: Sequence[Sequence[str]]) -> list[str]:
    """The holder after each swap, in order (``len(swaps)`` names)."""
    out, h = [], start
    for a, b in swaps:
        h = holder_after(h, a, b)
        out.append(h)
    return out


def worked_steps(start: str, swaps: Sequence[Sequence[str]]) -> list[str]:
    """One sentence per swap: the swap, then who holds the thing after it."""
    return [f"{a} and {b} swap: {h} has it." for (a, b), h in zip(swaps, holders(start, swaps))]


def pattern(start: str, swaps: Sequence[Sequence[str]]) -> tuple[tuple[int, int], ...]:
    """The problem up to names: the first holder is 0, the other children are numbered 1, 2, 3
    in the way that gives the smallest key, and each swap is its pair of numbers, smaller first
    (so "Mia and Tom swap" and "Tom and Mia swap" are one swap)."""
    others: list[str] = []
    for pair in swaps:
        others += [n for n in pair if n != start and n not in others]
    keys = []
    for numbers in itertools.permutations(range(1, len(others) + 1)):
        number = {start: 0, **dict(zip(others, numbers))}
        keys.append(tuple(tuple(sorted((number[a], number[b]))) for a, b in swaps))
    return min(keys)


def sample_swaps(rng: random.Random, children: Sequence[str], n_swaps: int) -> list[tuple[str, str]]:
    """``n_swaps`` pairs of two different children, each pair and its order uniform."""
    return [tuple(rng.sample(list(children), 2)) for _ in range(n_swaps)]


def make_problem(rng: random.Random, n_swaps: int, worked: bool = True) -> dict:
    """One row with ``n_swaps`` swaps among :data:`N_CHILDREN` children (fields: module docstring)."""
    children = rng.sample(CHILDREN, N_CHILDREN)
    thing = rng.choice(THINGS)
    start = children[0]
    swaps = sample_swaps(rng, children, n_swaps)
    prompt = " ".join([f"{start} has the {thing}."] + [f"{a} and {b} swap." for a, b in swaps]
                      + [f"Who has the {thing}?"])
    answer = holders(start, swaps)[-1]
    final = f"{ANSWER_PREFIX} {answer}."
    response = " ".join(worked_steps(start, swaps) + [final]) if worked else final
    return {"prompt": prompt, "response": response, "answer": answer, "start": start,
            "swaps": [list(s) for s in swaps], "n_swaps": n_swaps}


def make_reasoning_data(seed: int = 0, n_train: int = 5000, n_test: int = 300, n_longer: int = 200,
                        worked: bool = True, test_fraction: float = 0.25, n_rl: int = 0,
                        worked_share: float | None = None) -> DatasetDict:
    """The splits described in the module docstring (and ``rl``, below).

    Each draw has a number of swaps uniform in TRAIN_SWAPS. A share ``test_fraction`` of the
    distinct patterns drawn goes to ``test`` only, each pattern once; the other draws go to
    ``train``. Short problems have few patterns, so ``test`` holds mostly long ones (seed 0,
    300 problems: 1, 10, 49, 106 and 134 of 2 to 6 swaps), while ``train`` is roughly uniform
    (seed 0: 934 to 1,228 problems per number of swaps). A
    request that ten draws per problem cannot fill is refused, naming the split.
    The same ``seed`` gives the same problems whether ``worked`` is true or false, so the two
    arms of an experiment differ only in their answers.

    With ``n_rl > 0`` a fourth split ``rl`` holds problems for reinforcement learning, each of
    a pattern found in neither ``train`` nor ``test`` (nor elsewhere in ``rl``). RL with a
    verifier needs only the answer, so it can practise on problems no worked answer was ever
    written for. Draws have 2 to 6 swaps, but ``train`` and ``test`` use up the short patterns,
    so ``rl`` is longer still than ``test`` (seed 0, ``n_rl=1000``: 2, 249 and 749 problems of
    4, 5 and 6 swaps; with 3,000: 2, 474 and 2,524); its accuracies compare with ``test``'s at
    the same number of swaps, not with ``train``'s. These are drawn after the other splits,
    which stay the same with or without them.

    ``worked_share`` (with ``worked=True``) mixes the two styles in ``train``: each row keeps its
    worked answer with this probability and gets the direct one otherwise, drawn from a stream
    of its own, so the problems are the same as without it. A model fine-tuned on the mix writes
    either style and picks one at its first token; RL with a verifier can then learn which
    style gets answers right (chapter 17). The other splits keep worked answers.
    """
    if worked_share is not None and not (worked and 0.0 <= worked_share <= 1.0):
        raise ValueError(f"worked_share must be in [0, 1] and needs worked=True, got {worked_share} "
                         f"with worked={worked}")
    if n_train < 1 or n_test < 1 or n_longer < 1:
        raise ValueError("every split needs at least one problem")
    rng = random.Random(seed)
    held: set[tuple] = set()
    seen: set[tuple] = set()
    train, test = [], []
    for _ in range(10 * (n_train + n_test)):
        if len(train) >= n_train and len(test) >= n_test:
            break
        row = make_problem(rng, rng.choice(TRAIN_SWAPS), worked)
        key = pattern(row["start"], row["swaps"])
        if key not in seen:
            seen.add(key)
            if rng.random() < test_fraction:
                held.add(key)
                if len(test) < n_test:
                    test.append(row)
                continue
        if key not in held and len(train) < n_train:
            train.append(row)
    if len(test) < n_test:
        raise ValueError(f"cannot draw {n_test} test problems of distinct patterns in {10 * (n_train + n_test)} "
                         f"draws (got {len(test)}): lower n_test or raise test_fraction")
    if len(train) < n_train:
        raise ValueError(f"cannot draw {n_train} train problems in {10 * (n_train + n_test)} draws "
                         f"(got {len(train)}): lower test_fraction")
    longer = [make_problem(rng, LONGER_SWAPS, worked) for _ in range(n_longer)]
    if worked_share is not None:
        styles = random.Random(f"styles-{seed}")
        train = [row if styles.random() < worked_share else {**row, "response": f"{ANSWER_PREFIX} {row['answer']}."}
                 for row in train]
    splits = {"train": train, "test": test, "test_longer": longer}
    if n_rl > 0:
        rl = []
        for _ in range(10 * n_rl):
            if len(rl) >= n_rl:
                break
            row = make_problem(rng, rng.choice(TRAIN_SWAPS), worked)
            key = pattern(row["start"], row["swaps"])
            if key not in seen:
                seen.add(key)
                rl.append(row)
        if len(rl) < n_rl:
            raise ValueError(f"cannot draw {n_rl} rl problems of new patterns in {10 * n_rl} draws "
                             f"(got {len(rl)}): lower n_rl")
        splits["rl"] = rl
    return DatasetDict({name: Dataset.from_list(rows) for name, rows in splits.items()})
