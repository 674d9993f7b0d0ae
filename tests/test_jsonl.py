"""JSONL export/import: round trips, and every kind of bad input names file, line and field."""
import json

import pytest

from course_utils import world
from course_utils.jsonl import JSONLError, read_jsonl, write_jsonl

GOOD = {"task": "add", "prompt": "What is 2 plus 3?", "response": "5"}


def test_round_trip(tmp_path):
    ds = world.make_instruction_data(n_train=5, n_test=3, n_open_train=2)["test"]
    path = write_jsonl(tmp_path / "test.jsonl", ds)
    assert read_jsonl(path).to_list() == ds.to_list()


def _write(tmp_path, text):
    p = tmp_path / "bad.jsonl"
    p.write_text(text, encoding="utf-8")
    return p


BAD_CASES = {
    "malformed json": (json.dumps(GOOD) + "\n{\"task\": \"add\", \"prompt\": \n", r"bad\.jsonl:2: not valid JSON"),
    "missing field": (json.dumps({"task": "add", "prompt": "x"}) + "\n", r":1: missing field 'response'"),
    "empty file": ("", r"bad\.jsonl: the file holds no rows \(empty data set\)"),
    "only blank lines": ("\n\n  \n", r"empty data set"),
    "array not object": ("[1, 2, 3]\n", r":1: expected a JSON object, got list"),
    "wrong type": (json.dumps({**GOOD, "response": 5}) + "\n", r":1: field 'response' must be a string, got 5"),
    "null field": (json.dumps({**GOOD, "prompt": None}) + "\n", r":1: field 'prompt' must be a string, got null"),
    "empty string": (json.dumps({**GOOD, "prompt": "  "}) + "\n", r":1: field 'prompt' is empty"),
    "bad third line": ("\n".join([json.dumps(GOOD)] * 2 + ["not json"]) + "\n", r"bad\.jsonl:3: not valid JSON"),
    "truncated last line": (json.dumps(GOOD) + "\n" + json.dumps(GOOD)[:20], r":2: not valid JSON"),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_raises_a_clear_error(tmp_path, case):
    text, message = BAD_CASES[case]
    with pytest.raises(JSONLError, match=message):
        read_jsonl(_write(tmp_path, text))


def test_missing_file(tmp_path):
    with pytest.raises(JSONLError, match="no such file"):
        read_jsonl(tmp_path / "nope.jsonl")


def test_custom_schema(tmp_path):
    p = _write(tmp_path, json.dumps({"prompt": "p", "chosen": "a", "rejected": "b", "margin": 1}) + "\n")
    assert read_jsonl(p, {"prompt": str, "chosen": str, "rejected": str, "margin": float})[0]["margin"] == 1
    with pytest.raises(JSONLError, match="field 'margin' must be a number, got true"):
        read_jsonl(_write(tmp_path, json.dumps({"margin": True}) + "\n"), {"margin": float})


def test_write_is_atomic(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [GOOD])

    def rows():
        yield GOOD
        raise RuntimeError("crash while writing")

    with pytest.raises(RuntimeError):
        write_jsonl(path, rows())
    assert read_jsonl(path).to_list() == [GOOD]  # the old file is intact
    assert [p.name for p in tmp_path.iterdir()] == ["d.jsonl"]  # no temporary file left
