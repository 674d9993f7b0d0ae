"""Assistant masks from any chat template: four family styles and the course's own template."""

import json
from pathlib import Path

import pytest

from chat_templates import COURSE_WITHOUT_MARKERS, FAMILIES, family_tokenizer
from course_utils.models import load_tokenizer
from course_utils.sft import (IGNORE_INDEX, ChatTemplateError, has_generation_markers, tokenize_chat,
                              tokenize_messages, tokenize_rows)

BASELINE = Path(__file__).parent / "data" / "cpu_baseline.json"

QUESTION, ANSWER = "What is the capital of France?", "Paris is the capital."


def labelled(ex):
    return [t for t, l in zip(ex["input_ids"], ex["labels"]) if l != IGNORE_INDEX]


def answer_ids(tok, text):
    return tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_exactly_the_answer_and_end_of_turn_are_labelled(family):
    tok = family_tokenizer(family)
    assert not has_generation_markers(tok)
    ex = tokenize_chat(tok, QUESTION, ANSWER)
    assert labelled(ex) == answer_ids(tok, ANSWER)
    # the whole text, not just the labels: nothing dropped, the template's own rendering
    text = tok.apply_chat_template([{"role": "user", "content": QUESTION},
                                    {"role": "assistant", "content": ANSWER}], tokenize=False)
    assert tok.decode(ex["input_ids"]) == text
    assert ex["labels"][-1] == IGNORE_INDEX if text.endswith("\n") else ex["labels"][-1] == tok.eos_token_id


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_multi_turn_labels_every_answer_or_only_the_last(family):
    tok = family_tokenizer(family)
    conv = [{"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
            {"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]
    every = tokenize_messages(tok, conv)
    assert labelled(every) == answer_ids(tok, "Blue.") + answer_ids(tok, ANSWER)
    last = tokenize_chat(tok, conv[:3], ANSWER)  # a message-list prompt: only the response counts
    assert last["input_ids"] == every["input_ids"]
    assert labelled(last) == answer_ids(tok, ANSWER)


def test_inserted_and_given_system_prompts_are_not_labelled():
    tok = family_tokenizer("chatml")
    ex = tokenize_chat(tok, QUESTION, ANSWER)
    assert "You are a helpful assistant." in tok.decode(ex["input_ids"])  # the template added it
    given = tokenize_chat(tok, [{"role": "system", "content": "Answer briefly."},
                                {"role": "user", "content": QUESTION}], ANSWER)
    assert "Answer briefly." in tok.decode(given["input_ids"])
    assert labelled(ex) == labelled(given) == answer_ids(tok, ANSWER)


def test_a_template_that_rewrites_earlier_turns_is_refused():
    tok = family_tokenizer("chatml")
    # like templates that drop the reasoning of earlier answers: the last answer renders differently
    tok.chat_template = FAMILIES["chatml"][0].replace(
        "message['content'] + '<|im_end|>'", "(message['content'] if loop.last else 'old') + '<|im_end|>'")
    conv = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"}]
    with pytest.raises(ChatTemplateError, match="generation"):
        tokenize_messages(tok, conv)


def test_no_assistant_message_is_a_clear_error():
    tok = family_tokenizer("llama3")
    with pytest.raises(ValueError, match="no assistant tokens"):
        tokenize_messages(tok, [{"role": "user", "content": QUESTION}])


def test_course_template_masks_are_identical_to_the_recorded_ones():
    """The course's template (with generation markers) gives the masks recorded before this change."""
    tok = load_tokenizer("base")
    assert has_generation_markers(tok)
    recorded = json.loads(BASELINE.read_text())["masks"]
    assert len(recorded) == 40
    for r in recorded:
        assert tokenize_chat(tok, r["prompt"], r["response"]) == {"input_ids": r["input_ids"],
                                                                  "labels": r["labels"]}
    # and the prefix-rendering path, on the same template without markers, agrees token for token
    tok.chat_template = COURSE_WITHOUT_MARKERS
    assert not has_generation_markers(tok)
    for r in recorded:
        assert tokenize_chat(tok, r["prompt"], r["response"])["labels"] == r["labels"]


def test_tokenize_rows_takes_conversations_and_drops_overlong_examples():
    tok = family_tokenizer("gemma")
    rows = [{"messages": [{"role": "user", "content": QUESTION}, {"role": "assistant", "content": ANSWER}]},
            {"prompt": QUESTION, "response": ANSWER + " " + "Really. " * 40}]
    both = tokenize_rows(tok, rows)
    assert labelled(both[0]) == answer_ids(tok, ANSWER)
    short = tokenize_rows(tok, rows, max_length=len(both[0]["input_ids"]))
    assert short == both[:1]
