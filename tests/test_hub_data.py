"""Public data set schemas -> the course's rows, offline on small local JSONL files."""

import json

import pytest

from course_utils.real.hub_data import (DataFormatError, load_preference_rows, load_sft_rows, read_records,
                                   split_rows)
from course_utils.jsonl import write_jsonl

Q, A, B = "Name a fruit.", "An apple.", "A chair."
USER = [{"role": "user", "content": Q}]


def test_sft_conversations_and_prompt_completion(tmp_path):
    conv = [{"role": "system", "content": "Be brief."}, *USER, {"role": "assistant", "content": A}]
    path = write_jsonl(tmp_path / "sft.jsonl", [
        {"messages": conv, "source": "x"},                 # smoltalk / ultrachat style
        {"conversations": conv},
        {"prompt": Q, "completion": A},                    # prompt-completion strings
        {"prompt": Q, "response": A}])
    data = load_sft_rows(path)
    assert data.column_names == ["messages"]
    assert data[0]["messages"] == data[1]["messages"] == conv
    assert data[2]["messages"] == data[3]["messages"] == USER + [{"role": "assistant", "content": A}]


def test_preference_schemas_give_the_same_rows(tmp_path):
    chosen, rejected = [*USER, {"role": "assistant", "content": A}], [*USER, {"role": "assistant", "content": B}]
    path = write_jsonl(tmp_path / "pref.jsonl", [
        {"prompt": Q, "chosen": A, "rejected": B},                                  # strings
        {"prompt": Q, "chosen": chosen, "rejected": rejected, "score_chosen": 8.0},  # ultrafeedback-binarized
        {"prompt": USER, "chosen": chosen[-1:], "rejected": rejected[-1:]},        # TRL conversational
        {"chosen": chosen, "rejected": rejected},                                  # implicit prompt
        {"chosen": f"\n\nHuman: {Q}\n\nAssistant: {A}",                            # HH-RLHF
         "rejected": f"\n\nHuman: {Q}\n\nAssistant: {B}"}])
    data = load_preference_rows(path)
    want = {"prompt": USER, "chosen": A, "rejected": B}
    assert [dict(r) for r in data] == [want] * 5


def test_hh_multi_turn_prompt_keeps_the_history():
    row = {"chosen": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: An apple.",
           "rejected": "\n\nHuman: Hi\n\nAssistant: Hello!\n\nHuman: Name a fruit.\n\nAssistant: No."}
    (r,) = load_preference_rows([row])
    assert [m["role"] for m in r["prompt"]] == ["user", "assistant", "user"]
    assert (r["chosen"], r["rejected"]) == ("An apple.", "No.")


@pytest.mark.parametrize("row, message", [
    ({"prompt": Q, "chosen": A}, "missing 'rejected'"),
    ({"question": Q, "answer": A}, "missing 'chosen', 'rejected'"),
    ({"prompt": Q, "chosen": "", "rejected": B}, "'chosen' is empty"),
    ({"prompt": Q, "chosen": A, "rejected": [{"role": "user", "content": B}]}, "must end with an assistant"),
    ({"prompt": Q, "chosen": [{"role": "user", "content": "other"}, {"role": "assistant", "content": A}],
      "rejected": B}, "differ from 'prompt'"),
    ({"chosen": "Human says hi", "rejected": "no"}, "transcript"),
    ({"chosen": [{"role": "user", "content": Q}, {"role": "assistant", "content": A}],
      "rejected": [{"role": "user", "content": "other"}, {"role": "assistant", "content": B}]}, "differ before"),
    ({"chosen": [{"role": "assistant", "content": A}], "rejected": B}, "two conversations"),
    ({"prompt": [{"role": "robot", "content": Q}], "chosen": A, "rejected": B}, "role 'robot'"),
])
def test_bad_preference_rows_name_the_row_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": Q, "chosen": A, "rejected": B}, row])
    with pytest.raises(DataFormatError, match=message) as err:
        load_preference_rows(path)
    assert "bad.jsonl: row 2" in str(err.value)


@pytest.mark.parametrize("row, message", [
    ({"prompt": Q}, "needs 'messages', or 'prompt' and 'response'"),
    ({"messages": [{"role": "user"}]}, "needs 'role' and 'content'"),
    ({"messages": USER}, "no assistant message"),
    ({"messages": "hello"}, "non-empty list"),
])
def test_bad_sft_rows_name_the_row_and_field(tmp_path, row, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    with pytest.raises(DataFormatError, match=message) as err:
        load_sft_rows(path)
    assert "row 1" in str(err.value)


def test_missing_empty_and_invalid_files(tmp_path):
    with pytest.raises(DataFormatError, match="no such file"):
        load_sft_rows(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(DataFormatError, match="no rows"):
        load_sft_rows(tmp_path / "empty.jsonl")
    (tmp_path / "broken.jsonl").write_text('{"prompt": 1\n')
    with pytest.raises(DataFormatError, match="broken.jsonl:1: not valid JSON"):
        load_sft_rows(tmp_path / "broken.jsonl")


def test_an_unreachable_hub_set_is_one_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(DataFormatError, match="could not load the data set 'nobody/no-such-set'"):
        read_records("nobody/no-such-set")


def test_json_file_limit_and_split(tmp_path):
    path = tmp_path / "rows.json"
    path.write_text(json.dumps([{"prompt": f"{Q} {i}", "response": A} for i in range(10)]))
    data = load_sft_rows(path, limit=8)
    assert len(data) == 8
    train, test = split_rows(data, test_fraction=0.25, seed=0)
    assert (len(train), len(test)) == (6, 2)
    assert not {r["messages"][0]["content"] for r in train} & {r["messages"][0]["content"] for r in test}
