"""The rewriting of test cells (course_tools.grading.probes): no expected value reaches the
student's process, every value the student's code returned or changed is recorded."""

import pytest

from course_tools.grading.probes import probe_lab
from course_tools.grading.records import plain, same

SOLUTION = "def f(x):\n    return [v * 2 for v in x]\n\ndef g(model, data):\n    model.append(sum(data))\n"


def _run(code: str, ns: dict) -> dict:
    """Execute rewritten code with the runner's three probes; the records it made."""
    records: dict = {}

    def rec(key, value):
        records.setdefault(key, []).append(plain(value))
        return value

    def attempt(key, thunk):
        try:
            value = plain(thunk())
        except Exception as e:  # noqa: BLE001
            value = {"raised": type(e).__name__}
        records.setdefault(key, []).append(value)

    def raises(key, thunk):
        try:
            thunk()
            name = None
        except Exception as e:  # noqa: BLE001
            name = type(e).__name__
        records.setdefault(key, []).append({"raised": name})

    exec(code, {**ns, "__probe_rec__": rec, "__probe_try__": attempt, "__probe_raises__": raises})
    return records


def _probe(test: str, setup: str = "model = []\n") -> tuple[str, list]:
    out = probe_lab([("locked", setup), ("solution", SOLUTION), ("test", test)])
    return out[2]


def test_a_constant_expected_value_is_left_out():
    code, checks = _probe("got = f([1, 2])\nassert got == [2, 4], 'doubles'\n### BEGIN HIDDEN TESTS\n"
                          "assert f([7]) == [14]\n### END HIDDEN TESTS\n")
    assert "[2, 4]" not in code and "14" not in code and "doubles" not in code
    assert "f([1, 2])" in code and "f([7])" in code  # the inputs stay
    assert [(c.number, c.hidden) for c in checks] == [(1, False), (2, True)]
    assert checks[1].text == ""  # a hidden check without a message has no hint


def test_a_reference_computation_is_left_out_and_its_inputs_kept():
    code, _ = _probe("import math\nx = [3.0, 4.0]\nwant = [math.sqrt(v) * 0 + v * 2 for v in x]\n"
                     "assert f(x) == want\nassert abs(f(x)[0] - math.hypot(3, 4) - 1) < 1e-9\n")
    assert "want" not in code and "hypot" not in code and "sqrt" not in code
    assert "x = [3.0, 4.0]" in code


def test_objects_handed_to_the_students_code_are_recorded():
    code, _ = _probe("snapshot = list(model)\ng(model, [1, 2])\nassert model != snapshot\n"
                     "assert len(model) == len(snapshot) + 1\n")
    assert "snapshot" not in code
    right = _run(code, {"model": [], "g": lambda m, d: m.append(sum(d))})
    wrong = _run(code, {"model": [], "g": lambda m, d: m.append(0)})
    assert right != wrong and not all(same(right[k], wrong[k]) for k in right)


def test_an_expected_exception_is_not_named_in_the_run():
    code, checks = _probe("try:\n    f(None)\nexcept TypeError:\n    pass\nelse:\n"
                          "    raise AssertionError('f(None) must raise')\n")
    assert "TypeError" not in code and "__probe_raises__" in code
    assert checks[0].text.startswith("try:")  # visible: its code
    assert _run(code, {"f": lambda x: [v for v in x]})["1.1"] == [{"raised": "TypeError"}]


def test_a_short_circuit_never_stops_the_cell():
    code, _ = _probe("r = f([1])\nassert r is None or r.count(2) == 1\n")
    records = _run(code, {"f": lambda x: None})
    assert any(v == [{"raised": "AttributeError"}] for v in records.values())


def test_an_expected_value_beside_a_student_call_is_refused():
    with pytest.raises(SyntaxError, match="same statement"):
        _probe("mine, ref = f([1]), sorted([2])\nassert mine == ref\n")


def test_the_same_behaviour_gives_the_same_records_and_another_does_not():
    code, _ = _probe("got = f([1, 2])\nassert got == [2, 4]\nassert all(v % 2 == 0 for v in got)\n")
    solution = _run(code, {"f": lambda x: [v * 2 for v in x]})
    again = _run(code, {"f": lambda x: [v + v for v in x]})
    off = _run(code, {"f": lambda x: [v * 2 + 1 for v in x]})
    assert solution.keys() == again.keys() and all(same(solution[k], again[k]) for k in solution)
    assert not all(same(solution[k], off.get(k)) for k in solution)


def test_a_student_value_inside_an_f_string_is_recorded_and_the_code_still_runs():
    """A tainted name in an f-string argument: the probe wraps the name, never the f-string's
    own formatted part (which ``ast.unparse`` cannot write back)."""
    code, _ = _probe("got = f([1])\nassert f([len(f'{got}')]) == [6], 'the text of got'\n")
    assert "[6]" not in code
    records = _run(code, {"f": lambda x: [v * 2 for v in x]})
    assert [6] in [v for vs in records.values() for v in vs]
