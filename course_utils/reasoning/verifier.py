"""Checkers for *who has the ball?*: a reward from a program instead of a reward model.

An answer is **well-formed** when it is zero or more step sentences followed by exactly one
final ``"Answer: Name."`` (the full stop optional) and nothing after it. A step sentence is
``"A and B swap: C has it."`` with three capitalised names::

    Mia and Tom swap: Tom has it. Ben and Sam swap: Tom has it. Tom and Ben swap: Ben has it. Answer: Ben.

:func:`verify` sorts every response into exactly one class, as CS336's ``math_baseline``
analysis sorts a model's failures into *format* and *answer* errors:

==================  ==========  ==================================================================
class               kind        what went wrong
==================  ==========  ==================================================================
``correct``         --          well-formed and the name is the right one
``wrong_answer``    answer      well-formed, but the name is not the right one
``no_answer``       format      no ``"Answer:"`` at all (e.g. cut off at the length limit)
``bad_answer``      format      ``"Answer:"`` followed by nothing, or by something not a name
``extra_text``      format      more text after the answer's name and full stop, or a second ``"Answer:"``
``bad_steps``       format      text before the answer that is not step sentences
==================  ==========  ==================================================================

The rewards are one function each, ``reward(response, problem)`` with ``problem`` a row of
:func:`course_utils.reasoning.tasks.make_reasoning_data` (its ``answer``, ``start`` and
``swaps``); every one is a float in [0, 1], and none raises on any string:

* :func:`correctness_reward` -- 1 if the class is ``correct``: the reward of RL with verifiable rewards;
* :func:`format_reward` -- 1 if well-formed, whatever the name (R1-Zero's format reward);
* :func:`step_reward` -- the share of the problem's swaps that the steps state and resolve
  right, in order (partial credit; 0 without steps; an answer cut off or malformed after its
  steps still gets credit for them);
* :func:`combined_reward` -- ``correctness + format_weight * format``, scaled back into [0, 1].
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from course_utils.reasoning.tasks import holders

ANSWER_PREFIX = "Answer:"
FORMAT_FAILURES = ("no_answer", "bad_answer", "extra_text", "bad_steps")
CLASSES = ("correct", "wrong_answer") + FORMAT_FAILURES
_NAME = r"[A-Z][a-z]{1,15}"

_STEP = re.compile(rf"({_NAME}) and ({_NAME}) swap: ({_NAME}) has it\.")
# "Answer:", spaces, a name (or not), a full stop (or not), and whatever follows
_FINAL = re.compile(rf"Answer:\s*({_NAME}\b)?(\.?)(.*)$", re.S)


@dataclass(frozen=True)
class Verdict:
    """What :func:`verify` found: the class, the parsed name (None if none), the steps."""

    label: str                       # one of CLASSES
    answer: str | None               # the name after "Answer:", when it is one name
    steps: tuple[tuple[str, str, str], ...] = ()   # (A, B, C) of every step "A and B swap: C has it."

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


def parse_steps(text: str) -> tuple[tuple[tuple[str, str, str], ...], str]:
    """Read step sentences from the start of ``text``: their ``(A, B, C)``, and what is left
    after the last one (stripped)."""
    steps, rest = [], text.strip()
    while m := _STEP.match(rest):
        steps.append((m.group(1), m.group(2), m.group(3)))
        rest = rest[m.end():].lstrip()
    return tuple(steps), rest


def verify(response: str, answer: str) -> Verdict:
    """Sort ``response`` into one of :data:`CLASSES` against the right name ``answer``."""
    if not isinstance(response, str):
        raise TypeError(f"response must be a string, not {type(response).__name__}")
    text = response.strip()
    where = text.find(ANSWER_PREFIX)
    if where < 0:
        return Verdict("no_answer", None, parse_steps(text)[0])
    steps, before = parse_steps(text[:where])
    m = _FINAL.match(text[where:])
    name, rest = m.group(1), m.group(3).strip()
    if text.count(ANSWER_PREFIX) > 1:
        return Verdict("extra_text", name, steps)
    if name is None:
        return Verdict("bad_answer", None, steps)
    if rest:
        return Verdict("extra_text", name, steps)
    if before:
        return Verdict("bad_steps", name, steps)
    return Verdict("correct" if name == answer else "wrong_answer", name, steps)


def correctness_reward(response: str, problem: Mapping) -> float:
    """1.0 if ``response`` is well-formed and names ``problem["answer"]``, else 0.0."""
    return float(verify(response, problem["answer"]).correct)


def format_reward(response: str, problem: Mapping | None = None) -> float:
    """1.0 if ``response`` is well-formed (steps, then one ``"Answer: Name."``), whatever the name."""
    return float(verify(response, "").well_formed)


def step_reward(response: str, problem: Mapping) -> float:
    """The share of ``problem["swaps"]`` whose step is right: step i states swap i and the holder
    after it (0.0 without steps; steps beyond the problem's swaps count against it)."""
    steps = verify(response, problem["answer"]).steps
    if not steps:
        return 0.0
    truth = [(a, b, h) for (a, b), h in zip(problem["swaps"], holders(problem["start"], problem["swaps"]))]
    right = sum(s == t for s, t in zip(steps, truth))
    return right / max(len(truth), len(steps))


def combined_reward(response: str, problem: Mapping, format_weight: float = 0.2) -> float:
    """``(correctness + format_weight * format) / (1 + format_weight)``: 1 for a right answer, a
    little for a well-formed wrong one, 0 for a malformed one."""
    v = verify(response, problem["answer"])
    return (float(v.correct) + format_weight * float(v.well_formed)) / (1 + format_weight)


def failure_table(responses: list[str], answers: list[str]) -> dict[str, float]:
    """The share of ``responses`` in each class of :data:`CLASSES` (the shares sum to 1)."""
    if len(responses) != len(answers):
        raise ValueError(f"{len(responses)} responses but {len(answers)} answers")
    if not responses:
        raise ValueError("no responses to classify")
    labels = [verify(r, a).label for r, a in zip(responses, answers)]
    return {c: labels.count(c) / len(labels) for c in CLASSES}
