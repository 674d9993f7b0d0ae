"""Self-check questions: a small quiz widget that says right or wrong and explains why.

A chapter ends with a few :class:`Question` objects shown by :class:`SelfCheck`::

    SelfCheck([
        Question("Which tokens does masked SFT learn from?", choices=[
            Choice("every token", False, "The prompt tokens get the label -100 and add nothing."),
            Choice("the response tokens", True, "Only they have labels other than -100."),
        ]),
        Question("exp(0) = ?", answer=1.0, why="Any number to the power 0 is 1."),
    ])

A question has either ``choices`` (one or more of them correct) or a numeric ``answer``
(right when within ``tolerance``). Every choice carries its own explanation, shown when it
is picked; after a right answer the explanations of all choices are shown. The choices are
shown in an order shuffled once per question (seeded by its text, so the same on every run
and in the website), so the right answer is not always the first one written.

Each chapter's questions are data, in ``chapters/questions/NN.yaml`` beside the chapters:
:func:`load_questions` reads and checks one file, :func:`quiz` (``quiz("03")``, the last code
cell of chapter 03) shows it. A file that breaks the schema is refused with its name, the
question's number and what is wrong.

In JupyterLab the widget is live. Its display also carries a static HTML form of the same
questions, with the answers in collapsed ``<details>`` blocks: the course website
(:mod:`course_tools.book`) shows that form, and so does a notebook opened without a kernel.
"""

from __future__ import annotations

import hashlib
import html
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from pathlib import Path

import ipywidgets as widgets
import yaml

LETTERS = "ABCDEFGHIJ"


@dataclass(frozen=True)
class Choice:
    """One option of a multiple-choice question and why it is right or wrong."""
    text: str
    correct: bool
    why: str


@dataclass(frozen=True)
class Question:
    """A multiple-choice question (``choices``) or a numeric one (``answer`` ± ``tolerance``)."""
    prompt: str
    choices: Sequence[Choice] = field(default_factory=tuple)
    answer: float | None = None
    tolerance: float = 0.0
    why: str = ""  # the explanation of a numeric answer

    def __post_init__(self) -> None:
        start = f"question {self.prompt[:50]!r}"
        if not self.prompt.strip():
            raise ValueError("a question needs a prompt")
        if bool(self.choices) == (self.answer is not None):
            raise ValueError(f"{start}: give either choices or a numeric answer, not both or neither")
        if self.choices:
            if not 2 <= len(self.choices) <= len(LETTERS):
                raise ValueError(f"{start}: needs 2 to {len(LETTERS)} choices, got {len(self.choices)}")
            if not any(c.correct for c in self.choices):
                raise ValueError(f"{start}: no choice is marked correct")
            missing = [LETTERS[i] for i, c in enumerate(self.choices) if not c.why.strip()]
            if missing:
                raise ValueError(f"{start}: choice(s) {', '.join(missing)} have no explanation")
        else:
            if not math.isfinite(self.answer) or not self.tolerance >= 0:
                raise ValueError(f"{start}: the answer must be finite and the tolerance >= 0")
            if not self.why.strip():
                raise ValueError(f"{start}: a numeric answer needs an explanation (why)")

    def order(self) -> list[int]:
        """The order in which the choices are shown: a fixed shuffle seeded by the prompt."""
        seed = int.from_bytes(hashlib.sha256(self.prompt.encode()).digest()[:8], "big")
        order = list(range(len(self.choices)))
        random.Random(seed).shuffle(order)
        return order

    def check(self, response: int | float | str) -> tuple[bool, str]:
        """Grade one response: a choice's index in ``choices``, or a number (a string is parsed).

        Returns ``(correct, explanation)``; a response that cannot be graded raises ``ValueError``.
        """
        if self.choices:
            if isinstance(response, bool) or not isinstance(response, int) \
                    or not 0 <= response < len(self.choices):
                raise ValueError(f"pick one of the {len(self.choices)} choices")
            choice = self.choices[response]
            return choice.correct, choice.why
        try:
            value = float(str(response).strip().replace(",", ""))
        except ValueError:
            raise ValueError(f"type a number, e.g. 0.25 (got {response!r})") from None
        return abs(value - self.answer) <= self.tolerance, self.why


def _answer_html(q: Question) -> str:
    if q.choices:
        items = "".join(f"<li><strong>{LETTERS[pos]}: {'right' if q.choices[i].correct else 'wrong'}.</strong> "
                        f"{html.escape(q.choices[i].why)}</li>" for pos, i in enumerate(q.order()))
        return f"<ul>{items}</ul>"
    tol = f" (±{q.tolerance:g})" if q.tolerance else ""
    return f"<p><strong>{q.answer:g}{tol}.</strong> {html.escape(q.why)}</p>"


def static_html(questions: Sequence[Question], title: str = "Self-check") -> str:
    """The questions as plain HTML, each answer hidden in a ``<details>`` block until opened."""
    parts = [f"<div class='selfcheck-static'><p><strong>{html.escape(title)}</strong></p>"]
    for n, q in enumerate(questions, 1):
        parts.append(f"<div class='selfcheck-static-question'><p>{n}. {html.escape(q.prompt)}</p>")
        if q.choices:
            parts.append("<ol type='A'>" + "".join(f"<li>{html.escape(q.choices[i].text)}</li>"
                                                    for i in q.order()) + "</ol>")
        else:
            parts.append("<p><em>(a number)</em></p>")
        parts.append(f"<details><summary>Show the answer</summary>{_answer_html(q)}</details></div>")
    parts.append("</div>")
    return "".join(parts)


class SelfCheck(widgets.VBox):
    """The questions as a live widget: pick or type an answer, press *Check*, read why."""

    def __init__(self, questions: Sequence[Question], title: str = "Self-check"):
        if not questions:
            raise ValueError("SelfCheck needs at least one question")
        self.questions = list(questions)
        self.title = title
        self.feedback: list[widgets.HTML] = []
        self.inputs: list[widgets.Widget] = []
        boxes = [widgets.HTML(f"<strong>{html.escape(title)}</strong>")]
        for n, q in enumerate(self.questions, 1):
            boxes.append(self._question_box(n, q))
        super().__init__(boxes)
        self.add_class("selfcheck")

    def _question_box(self, n: int, q: Question) -> widgets.VBox:
        prompt = widgets.HTML(f"<p>{n}. {html.escape(q.prompt)}</p>")
        if q.choices:
            entry = widgets.RadioButtons(options=[(f"{LETTERS[pos]}. {q.choices[i].text}", i)
                                                  for pos, i in enumerate(q.order())],
                                         value=None, layout=widgets.Layout(width="auto"))
        else:
            entry = widgets.Text(placeholder="a number", layout=widgets.Layout(width="12em"))
        button = widgets.Button(description="Check", tooltip=f"check question {n}")
        feedback = widgets.HTML("")
        feedback.add_class("selfcheck-feedback")
        button.on_click(lambda _, i=n - 1: self.answer(i, self.inputs[i].value))
        self.inputs.append(entry)
        self.feedback.append(feedback)
        box = widgets.VBox([prompt, entry, button, feedback])
        box.add_class("selfcheck-question")
        return box

    def answer(self, i: int, response) -> bool | None:
        """Grade ``response`` (a choice's index in ``choices``, or a number) to question ``i``.

        Shows the feedback under the question; returns whether it was right (``None`` when the
        response cannot be graded).
        """
        q = self.questions[i]
        if response is None or response == "":
            self.feedback[i].value = "<p>Pick or type an answer first.</p>"
            return None
        try:
            right, why = q.check(response)
        except ValueError as err:
            self.feedback[i].value = f"<p>{html.escape(str(err))}</p>"
            return None
        verdict = "✓ Right." if right else "✗ Not quite. Try again."
        text = f"<p><strong>{verdict}</strong> {html.escape(why)}</p>"
        if right and q.choices:
            others = [(pos, q.choices[i]) for pos, i in enumerate(q.order()) if i != response]
            text += "<p>The other choices:</p><ul>" + "".join(
                f"<li>{LETTERS[pos]} ({'also right' if c.correct else 'wrong'}): {html.escape(c.why)}</li>"
                for pos, c in others) + "</ul>"
        self.feedback[i].value = text
        return right

    def _repr_mimebundle_(self, **kwargs):
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None:
            return None
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data["text/html"] = static_html(self.questions, self.title)
        return bundle


#: where the chapters' question files live: ``NN.yaml`` for chapter ``NN``
QUESTIONS_DIR = Path(__file__).resolve().parent.parent / "chapters" / "questions"
_QUESTION_KEYS = {"prompt", "choices", "answer", "tolerance", "why"}
_CHOICE_KEYS = {"text", "correct", "why"}


def _text(value, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} must be text, got {type(value).__name__}")
    return value


def _question(d, where: str) -> Question:
    """One question of a file, from its mapping; ``where`` names it in errors."""
    if not isinstance(d, dict):
        raise ValueError(f"{where}: a question is a mapping with a prompt, got {type(d).__name__}")
    unknown = set(d) - _QUESTION_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {sorted(unknown)}; a question has {sorted(_QUESTION_KEYS)}")
    if "prompt" not in d:
        raise ValueError(f"{where}: no prompt")
    choices = []
    for j, c in enumerate(d.get("choices") or [], 1):
        cw = f"{where}, choice {j}"
        if not isinstance(c, dict) or set(c) != _CHOICE_KEYS:
            raise ValueError(f"{cw}: a choice has exactly the fields {sorted(_CHOICE_KEYS)}, got "
                             f"{sorted(c) if isinstance(c, dict) else type(c).__name__}")
        if not isinstance(c["correct"], bool):
            raise ValueError(f"{cw}: correct must be true or false, got {c['correct']!r}")
        choices.append(Choice(_text(c["text"], f"{cw}: text"), c["correct"], _text(c["why"], f"{cw}: why")))
    answer = d.get("answer")
    if answer is not None and (isinstance(answer, bool) or not isinstance(answer, (int, float))):
        raise ValueError(f"{where}: answer must be a number, got {answer!r}")
    try:
        return Question(_text(d["prompt"], f"{where}: prompt"), choices=tuple(choices),
                        answer=None if answer is None else float(answer),
                        tolerance=float(d.get("tolerance", 0.0)), why=_text(d.get("why", ""), f"{where}: why"))
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None


def load_questions(chapter: str, folder: Path = QUESTIONS_DIR) -> list[Question]:
    """The questions of chapter ``chapter`` (``"03"``) from ``folder/03.yaml``, checked."""
    path = Path(folder) / f"{chapter}.yaml"
    if not path.exists():
        have = ", ".join(chapters_with_questions(folder)) or "none"
        raise KeyError(f"no self-check questions for chapter {chapter!r} (no {path.name} in {path.parent}); "
                       f"chapters with questions: {have}")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise ValueError(f"{path.name} is not valid YAML: {e}") from None
    if not isinstance(data, list) or not data:
        raise ValueError(f"{path.name}: expected a non-empty list of questions")
    return [_question(d, f"{path.name}, question {i}") for i, d in enumerate(data, 1)]


def chapters_with_questions(folder: Path = QUESTIONS_DIR) -> list[str]:
    """The chapters that have a question file, sorted (``["00", "01", ...]``)."""
    return sorted(p.stem for p in Path(folder).glob("[0-9][0-9].yaml"))


def quiz(chapter: str) -> SelfCheck:
    """The self-check widget of chapter ``chapter`` (``"04"``, ``"08"``, ...)."""
    return SelfCheck(load_questions(chapter), title=f"Self-check, chapter {chapter}")
