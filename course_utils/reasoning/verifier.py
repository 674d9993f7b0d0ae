"""Checkers for the multi-step sums: a reward from a program instead of a reward model.

An answer is **well-formed** when it is zero or more step sentences followed by exactly one
final ``"Answer: N."`` (the full stop optional) and nothing after it. A step sentence is a
look-up (``"Sam has 2 more than Mia."`` or ``"Tom has 3."``) or an addition (``"3 plus 4 is 7."``)::

    Sam has 2 more than Mia. Mia has 4 more than Tom. Tom has 3. 3 plus 4 is 7. 7 plus 2 is 9. Answer: 9.

:func:`verify` sorts every response into exactly one class, as CS336's ``math_baseline``
analysis sorts a model's failures into *format* and *answer* errors:

==================  ==========  ==================================================================
class               kind        what went wrong
==================  ==========  ==================================================================
``correct``         --          well-formed and the number is the total
``wrong_answer``    answer      well-formed, but the number is not the total
``no_answer``       format      no ``"Answer:"`` at all (e.g. cut off at the length limit)
``bad_answer``      format      ``"Answer:"`` not followed by a whole number
``extra_text``      format      more text after the answer, or a second ``"Answer:"``
``bad_steps``       format      text before the answer that is not step sentences
==================  ==========  ==================================================================

The rewards are one function each, every one a float in [0, 1], and none raises on any string:

* :func:`correctness_reward` -- 1 if the class is ``correct``: the reward of RL with verifiable rewards;
* :func:`format_reward` -- 1 if well-formed, whatever the number (R1-Zero's format reward);
* :func:`step_reward` -- the share of additions whose arithmetic is true (partial credit;
  0 without additions);
* :func:`combined_reward` -- ``correctness + format_weight * format``, scaled back into [0, 1].
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ANSWER_PREFIX = "Answer:"
FORMAT_FAILURES = ("no_answer", "bad_answer", "extra_text", "bad_steps")
CLASSES = ("correct", "wrong_answer") + FORMAT_FAILURES
MAX_DIGITS = 6                       # a longer "number" is a malformed answer, not an int to convert

_ADDITION = re.compile(r"(\d{1,%d}) plus (\d{1,%d}) is (\d{1,%d})\." % ((MAX_DIGITS,) * 3))
_LOOKUP = re.compile(r"[A-Z][a-z]+ has \d{1,%d}( more than [A-Z][a-z]+)?\." % MAX_DIGITS)
_FINAL = re.compile(r"Answer:[ ]?(\S*?)\.?$")


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: the class, the parsed number (None if none), the steps."""

    label: str                       # one of CLASSES
    answer: int | None               # the number after "Answer:", when it is a whole number
    steps: tuple[tuple[int, int, int], ...] = ()   # (a, b, c) of every addition "a plus b is c."

    @property
    def correct(self) -> bool:
        return self.label == "correct"

    @property
    def well_formed(self) -> bool:
        return self.label in ("correct", "wrong_answer")

    @property
    def kind(self) -> str:
        """``"correct"``, ``"answer"`` (well-formed but wrong) or ``"format"``."""
        return "correct" if self.correct else "answer" if self.label == "wrong_answer" else "format"


def parse_steps(text: str) -> tuple[tuple[tuple[int, int, int], ...], str]:
    """Read step sentences from the start of ``text``: the additions ``(a, b, c)`` among them, and
    what is left after the last step sentence (stripped)."""
    additions, rest = [], text.strip()
    while True:
        m = _ADDITION.match(rest)
        if m:
            additions.append((int(m.group(1)), int(m.group(2)), int(m.group(3))))
        else:
            m = _LOOKUP.match(rest)
            if not m:
                return tuple(additions), rest
        rest = rest[m.end():].lstrip()


def verify(response: str, answer: str | int) -> Verdict:
    """Sort ``response`` into one of :data:`CLASSES` against the true total ``answer``."""
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, not {type(response).__name__}")
    target = int(answer)
    text = response.strip()
    where = text.find(ANSWER_PREFIX)
    if where < 0:
        return Verdict("no_answer", None, parse_steps(text)[0])
    steps, before = parse_steps(text[:where])
    tail = text[where:]
    m = _FINAL.match(tail)
    if tail.count(ANSWER_PREFIX) > 1 or m is None:
        first = re.match(r"Answer:[ ]?(\d{1,%d})" % MAX_DIGITS, tail)
        return Verdict("extra_text", int(first.group(1)) if first else None, steps)
    token = m.group(1)
    if not (token.isascii() and token.isdigit() and len(token) <= MAX_DIGITS):
        return Verdict("bad_answer", None, steps)
    number = int(token)
    if before:
        return Verdict("bad_steps", number, steps)
    return Verdict("correct" if number == target else "wrong_answer", number, steps)


def correctness_reward(response: str, answer: str | int) -> float:
    """1.0 if ``response`` is well-formed and its number is ``answer``, else 0.0."""
    return float(verify(response, answer).correct)


def format_reward(response: str, answer: str | int = 0) -> float:
    """1.0 if ``response`` is well-formed (steps, then one ``"Answer: N."``), whatever N is."""
    return float(verify(response, answer).well_formed)


def step_reward(response: str, answer: str | int = 0) -> float:
    """The share of additions ``"a plus b is c."`` with ``a + b == c`` (0.0 without additions)."""
    steps = verify(response, answer).steps
    return sum(a + b == c for a, b, c in steps) / len(steps) if steps else 0.0


def combined_reward(response: str, answer: str | int, format_weight: float = 0.2) -> float:
    """``(correctness + format_weight * format) / (1 + format_weight)``: 1 for a right answer, a
    little for a well-formed wrong one, 0 for a malformed one."""
    v = verify(response, answer)
    return (float(v.correct) + format_weight * float(v.well_formed)) / (1 + format_weight)


def failure_table(responses: list[str], answers: list[str | int]) -> dict[str, float]:
    """The share of ``responses`` in each class of :data:`CLASSES` (the shares sum to 1)."""
    if len(responses) != len(answers):
        raise ValueError(f"{len(responses)} responses but {len(answers)} answers")
    if not responses:
        raise ValueError("no responses to classify")
    labels = [verify(r, a).label for r, a in zip(responses, answers)]
    return {c: labels.count(c) / len(labels) for c in CLASSES}
