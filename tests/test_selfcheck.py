"""The self-check widget: grading, feedback, clear errors, and its static form for the website."""
import nbformat
import pytest

from course_tools.book import WIDGET_VIEW, static_widgets
from course_tools.selfcheck import LETTERS, Choice, Question, SelfCheck, static_html

MC = Question("Which tokens does masked SFT learn from?", choices=[
    Choice("every token", False, "The prompt tokens are labelled -100 & add nothing."),
    Choice("the response tokens", True, "Only they carry labels."),
    Choice("the padding", False, "Padding is labelled -100 too."),
])
NUM = Question("log 2 to two decimals?", answer=0.69, tolerance=0.005, why="ln 2 = 0.693...")


def test_multiple_choice_grading_explains_the_chosen_option():
    assert MC.check(1) == (True, "Only they carry labels.")
    assert MC.check(2) == (False, "Padding is labelled -100 too.")
    with pytest.raises(ValueError, match="pick one of the 3 choices"):
        MC.check(3)
    with pytest.raises(ValueError, match="pick one"):
        MC.check(True)


def test_numeric_grading_uses_the_tolerance_and_parses_text():
    assert NUM.check("0.69")[0] and NUM.check(0.694)[0]
    assert not NUM.check("0.70")[0]
    assert Question("How many?", answer=1500, why="1,500 steps.").check("1,500")[0]
    with pytest.raises(ValueError, match="type a number"):
        NUM.check("about 0.7")


@pytest.mark.parametrize("kwargs, message", [
    ({"prompt": " ", "answer": 1.0, "why": "x"}, "needs a prompt"),
    ({"prompt": "q", "answer": 1.0, "why": "x", "choices": [Choice("a", True, "y"), Choice("b", False, "z")]},
     "either choices or a numeric answer"),
    ({"prompt": "q"}, "either choices or a numeric answer"),
    ({"prompt": "q", "choices": [Choice("a", True, "y")]}, "needs 2 to"),
    ({"prompt": "q", "choices": [Choice("a", False, "y"), Choice("b", False, "z")]}, "no choice is marked correct"),
    ({"prompt": "q", "choices": [Choice("a", True, "y"), Choice("b", False, " ")]}, r"choice\(s\) B have no explanation"),
    ({"prompt": "q", "answer": float("nan"), "why": "x"}, "must be finite"),
    ({"prompt": "q", "answer": 1.0}, "needs an explanation"),
])
def test_malformed_questions_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Question(**kwargs)


def test_widget_feedback_wrong_then_right():
    quiz = SelfCheck([MC, NUM])
    assert quiz.answer(0, None) is None and "Pick or type" in quiz.feedback[0].value
    assert quiz.answer(0, 0) is False
    assert "Not quite" in quiz.feedback[0].value and "&amp; add nothing" in quiz.feedback[0].value
    assert quiz.answer(0, 1) is True
    fb = quiz.feedback[0].value
    assert "Right" in fb and "Only they carry labels." in fb
    shown = MC.order()                                       # after a right answer every option is explained,
    assert f"{LETTERS[shown.index(0)]} (wrong)" in fb and f"{LETTERS[shown.index(2)]} (wrong)" in fb  # by its letter
    assert quiz.answer(1, "seven") is None and "type a number" in quiz.feedback[1].value
    assert quiz.answer(1, "0.69") is True
    with pytest.raises(ValueError, match="at least one question"):
        SelfCheck([])


def test_static_form_hides_every_answer_in_details():
    page = static_html([MC, NUM], title="Check yourself")
    assert page.count("<details>") == 2 and page.count("Show the answer") == 2
    head, answers = page.split("<details>", 1)
    assert "Only they carry labels." not in head                 # no answer before it is opened
    assert f"<strong>{LETTERS[MC.order().index(1)]}: right.</strong>" in answers and "0.69 (±0.005)" in answers
    listed = head[head.index("<ol"):head.index("</ol>")]
    assert [listed.index(MC.choices[i].text) for i in MC.order()] == sorted(
        listed.index(c.text) for c in MC.choices)                  # the static form lists the shown order
    assert "-100 &amp; add nothing" in page                     # text is escaped


def test_the_display_carries_the_static_form_and_the_website_keeps_it():
    quiz = SelfCheck([MC, NUM])
    data = quiz._repr_mimebundle_()
    assert WIDGET_VIEW in data and data["text/html"] == static_html([MC, NUM])
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("quiz")
    cell.outputs = [nbformat.v4.new_output("display_data", data=data)]
    nb.cells = [cell]
    assert static_widgets(nb) == 1
    assert cell.outputs[0]["data"] == {"text/html": static_html([MC, NUM])}


def test_every_chapter_quiz_exists_and_has_at_least_three_questions():
    import re
    from pathlib import Path

    from course_tools.selfcheck import chapters_with_questions, load_questions, quiz

    root = Path(__file__).resolve().parents[1]
    used = {}
    for path in sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        for ch in re.findall(r"""\bquiz\(\s*["'](\d\d)["']\s*\)""", code):
            used[ch] = path.stem
            assert path.stem.startswith(ch), f"{path.stem} shows the questions of chapter {ch}"
    assert sorted(used) == chapters_with_questions(), (sorted(used), chapters_with_questions())
    for ch in chapters_with_questions():
        assert len(load_questions(ch)) >= 3, ch
        assert quiz(ch).title.endswith(ch)
    with pytest.raises(KeyError, match="no self-check questions for chapter '99'"):
        quiz("99")


def test_choices_are_shown_in_a_fixed_shuffled_order():
    from course_tools.selfcheck import chapters_with_questions, load_questions

    assert MC.order() == MC.order() and sorted(MC.order()) == [0, 1, 2]
    quiz = SelfCheck([MC])
    assert [v for _, v in quiz.inputs[0].options] == MC.order()          # the widget shows that order
    positions = [q.order().index(next(i for i, c in enumerate(q.choices) if c.correct))
                 for ch in chapters_with_questions() for q in load_questions(ch) if q.choices]
    assert len(set(positions)) >= 3, "the right answer sits in the same place in almost every question"


def test_each_chapter_stores_the_current_questions():
    """The website shows the static form stored in the notebook's output: it must be the one
    chapters/questions/NN.yaml gives now (re-run the quiz cell after editing a question)."""
    from pathlib import Path

    from course_tools.selfcheck import chapters_with_questions, load_questions

    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "chapters").glob("[0-9][0-9]_*.ipynb")):
        ch = path.name[:2]
        if ch not in chapters_with_questions():
            continue
        stored = [o["data"]["text/html"] for c in nbformat.read(path, as_version=4).cells
                  for o in c.get("outputs", []) if "selfcheck-static" in str(o.get("data", {}).get("text/html", ""))]
        assert stored == [static_html(load_questions(ch), title=f"Self-check, chapter {ch}")], \
            f"{path.name}: the stored self-check differs from chapters/questions/{ch}.yaml; re-execute it"


@pytest.mark.parametrize("text, message", [
    ("- prompt: q\n  answer: 1\n", "question 1: question .q.: a numeric answer needs an explanation"),
    ("- prompt: q\n  answr: 1\n  why: x\n", r"question 1: unknown field\(s\) \['answr'\]"),
    ("- prompt: q\n  answer: 1\n  why: x\n- why: y\n", "question 2: no prompt"),
    ("- prompt: q\n  choices:\n  - {text: a, correct: yes please, why: y}\n  - {text: b, correct: false, why: z}\n",
     "question 1, choice 1: correct must be true or false"),
    ("- prompt: q\n  choices:\n  - {text: a, correct: true}\n  - {text: b, correct: false, why: z}\n",
     "question 1, choice 1: a choice has exactly the fields"),
    ("- prompt: q\n  answer: seven\n  why: x\n", "question 1: answer must be a number"),
    ("prompt: q\n", "expected a non-empty list of questions"),
    ("- prompt: [q\n", "not valid YAML"),
])
def test_a_malformed_question_file_is_refused_with_its_name_and_question(tmp_path, text, message):
    from course_tools.selfcheck import load_questions

    (tmp_path / "42.yaml").write_text(text)
    with pytest.raises(ValueError, match=message) as err:
        load_questions("42", folder=tmp_path)
    assert "42.yaml" in str(err.value)


def test_a_question_file_round_trips_into_the_widget(tmp_path):
    from course_tools.selfcheck import chapters_with_questions, load_questions

    (tmp_path / "07.yaml").write_text("- prompt: exp(0)?\n  answer: 1\n  tolerance: 0.01\n  why: e to the 0.\n"
                                      "- prompt: Pick b.\n  choices:\n  - {text: a, correct: false, why: nope}\n"
                                      "  - {text: b, correct: true, why: right}\n")
    qs = load_questions("07", folder=tmp_path)
    assert chapters_with_questions(tmp_path) == ["07"]
    assert qs[0].check("1.005") == (True, "e to the 0.") and qs[1].check(1) == (True, "right")
    with pytest.raises(KeyError, match="chapters with questions: 07"):
        load_questions("08", folder=tmp_path)
