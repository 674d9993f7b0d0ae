"""Supervised fine-tuning (SFT) on instruction data: tokenization with prompt masking, padding.

For one example the loss is the token cross-entropy over the *response* only::

    L(theta) = - sum_{t in response} log p_theta(token_t | tokens_<t)  /  (# response tokens)

Prompt tokens get the label -100, which PyTorch's cross-entropy ignores. Batches are
right-padded with the pad token; padded positions get attention mask 0 and label -100.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import torch

from course_utils.training import TrainConfig, TrainResult, train

IGNORE_INDEX = -100


Message = Mapping[str, str]
_GENERATION_TAG = re.compile(r"\{%-?\s*generation\s*-?%\}")


class ChatTemplateError(ValueError):
    """A chat template cannot be used to find the assistant's tokens."""


def chat_messages(prompt: str | Sequence[Message], response: str | None = None) -> list[dict[str, str]]:
    """The conversation ``prompt`` (a user message, or a list of messages) plus an assistant ``response``.

    >>> chat_messages("Hi", "Hello")
    [{'role': 'user', 'content': 'Hi'}, {'role': 'assistant', 'content': 'Hello'}]
    """
    if isinstance(prompt, str):
        messages = [{"role": "user", "content": prompt}]
    else:
        messages = [{"role": m["role"], "content": m["content"]} for m in prompt]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    return messages


def has_generation_markers(tokenizer) -> bool:
    """Whether the tokenizer's chat template wraps assistant text in ``{% generation %}`` markers."""
    return bool(_GENERATION_TAG.search(tokenizer.chat_template or ""))


def _render(tokenizer, messages: list[dict], add_generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False,
                                         add_generation_prompt=add_generation_prompt)


def assistant_spans(tokenizer, messages: Sequence[Message]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character span of every assistant turn in it.

    Works with any chat template, markers or not. For the assistant message ``i``::

        start = len(render(messages[:i], add_generation_prompt=True))    # up to the assistant header
        end   = len(render(messages[:i + 1]).rstrip())                    # answer + end-of-turn token

    so a span holds the answer and whatever the template closes a turn with (``<|im_end|>``,
    ``<|eot_id|>``, ``<end_of_turn>``, ``</s>``), but not the whitespace some templates put
    after it. A system prompt the template inserts by itself sits in every rendering, so it
    falls before the first span. Raises :class:`ChatTemplateError` if a rendering is not a
    prefix of the whole conversation (templates that rewrite earlier turns, e.g. by dropping
    the reasoning of old answers).
    """
    messages = [dict(m) for m in messages]
    full = _render(tokenizer, messages, False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        head = _render(tokenizer, messages[:i], True) if i else ""
        upto = _render(tokenizer, messages[:i + 1], False).rstrip()
        for part in (head, upto):
            if not full.startswith(part):
                raise ChatTemplateError(
                    f"the chat template renders the first {i + 1} messages differently inside the whole "
                    "conversation, so the assistant's tokens cannot be located; add {% generation %} "
                    "markers to the template")
        if not upto.startswith(head) or len(upto) <= len(head):
            raise ChatTemplateError(f"the chat template rendered no text for assistant message {i}")
        spans.append((len(head), len(upto)))
    return full, spans


def assistant_mask(tokenizer, messages: Sequence[Message]) -> tuple[list[int], list[int]]:
    """Token ids of a conversation and a 0/1 mask of the tokens the assistant wrote (same length).

    With ``{% generation %}`` markers in the template (the course's own) the mask is
    transformers' ``return_assistant_tokens_mask``. Otherwise a token is marked when its
    characters overlap an assistant span of :func:`assistant_spans` (this needs a fast
    tokenizer's offsets). The text is tokenized without adding special tokens, as
    ``apply_chat_template`` does: the template writes its own.
    """
    messages = [dict(m) for m in messages]
    if has_generation_markers(tokenizer):
        enc = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                            return_assistant_tokens_mask=True)
        return list(enc["input_ids"]), list(enc["assistant_masks"])
    if not getattr(tokenizer, "is_fast", False):
        raise ChatTemplateError("a chat template without {% generation %} markers needs a fast "
                                "tokenizer (one with character offsets)")
    text, spans = assistant_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(s < b and e > a for a, b in spans)) for s, e in enc["offset_mapping"]]
    return list(enc["input_ids"]), mask


def tokenize_messages(tokenizer, messages: Sequence[Message], mask_prompt: bool = True,
                      last_turn_only: bool = False) -> dict[str, list[int]]:
    """Token ids of a conversation and their labels: the assistant's tokens, -100 elsewhere.

    ``last_turn_only``: label only the final assistant turn (DPO's ``log pi(y|x)`` is the
    answer's log-probability; earlier turns belong to the prompt ``x``).
    """
    ids, mask = assistant_mask(tokenizer, messages)
    if not any(mask):
        raise ValueError(f"the chat template marked no assistant tokens in {list(messages)!r}"[:300])
    if last_turn_only:  # keep the last run of ones
        end = max(i for i, m in enumerate(mask) if m) + 1
        start = end
        while start > 0 and mask[start - 1]:
            start -= 1
        mask = [int(start <= i < end) for i in range(len(mask))]
    labels = [t if (m or not mask_prompt) else IGNORE_INDEX for t, m in zip(ids, mask)]
    return {"input_ids": ids, "labels": labels}


def tokenize_chat(tokenizer, prompt: str | Sequence[Message], response: str,
                  mask_prompt: bool = True) -> dict[str, list[int]]:
    """Token ids of a (prompt, response) chat and their labels.

    ``prompt`` is a user message or a list of messages (a multi-turn history); only the
    ``response`` (with its end-of-turn token) is labelled, every other token gets -100
    when ``mask_prompt=True``. Any chat template works (see :func:`assistant_mask`).
    """
    return tokenize_messages(tokenizer, chat_messages(prompt, response), mask_prompt,
                             last_turn_only=not isinstance(prompt, str))


def tokenize_rows(tokenizer, rows: Iterable[Mapping], mask_prompt: bool = True,
                  max_length: int | None = None) -> list[dict]:
    """Rows with ``prompt`` and ``response`` (or a ``messages`` conversation) -> labelled tokens.

    A ``messages`` row has every assistant turn labelled. With ``max_length``, examples
    longer than that many tokens are left out (cutting one could leave no answer tokens).
    """
    out = []
    for r in rows:
        ex = (tokenize_messages(tokenizer, r["messages"], mask_prompt) if "messages" in r
              else tokenize_chat(tokenizer, r["prompt"], r["response"], mask_prompt))
        if max_length is None or len(ex["input_ids"]) <= max_length:
            out.append(ex)
    return out


def tokenize_documents(tokenizer, docs: Iterable[str]) -> list[dict[str, list[int]]]:
    """Plain pretraining documents as examples with every token labelled.

    Mixed into SFT data as *replay*: a share of the pretraining objective keeps skills the
    instruction data does not exercise from fading (InstructGPT mixes pretraining data into
    its RL updates for the same reason). Each document is framed by end-of-text tokens, as
    in the packed pretraining stream.
    """
    docs = list(docs)
    if not docs:
        return []
    eos = tokenizer.eos_token_id
    ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
    return [{"input_ids": [eos] + d + [eos], "labels": [IGNORE_INDEX] + d + [eos]} for d in ids]


def collate_sft(examples: list[dict], pad_token_id: int) -> dict[str, torch.Tensor]:
    """Right-pad tokenized examples into ``input_ids``, ``attention_mask``, ``labels`` of shape (B, T)."""
    width = max(len(e["input_ids"]) for e in examples)
    ids = torch.full((len(examples), width), pad_token_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE_INDEX, dtype=torch.long)
    attn = torch.zeros((len(examples), width), dtype=torch.long)
    for i, e in enumerate(examples):
        n = len(e["input_ids"])
        ids[i, :n] = torch.tensor(e["input_ids"])
        labels[i, :n] = torch.tensor(e["labels"])
        attn[i, :n] = 1
    return {"input_ids": ids, "attention_mask": attn, "labels": labels}


def run_sft(model, tokenizer, rows: Iterable[Mapping], config: TrainConfig,
            mask_prompt: bool = True, replay: Iterable[str] = (), max_length: int | None = None,
            **train_kwargs) -> TrainResult:
    """Fine-tune ``model`` on instruction ``rows`` with the course loop (:func:`training.train`).

    ``replay``: optional pretraining documents mixed into the data (see :func:`tokenize_documents`).
    ``max_length``: leave out examples longer than that many tokens (see :func:`tokenize_rows`).
    """
    data = tokenize_rows(tokenizer, rows, mask_prompt, max_length) + tokenize_documents(tokenizer, replay)
    if not data:
        raise ValueError("the SFT data set is empty")
    pad = tokenizer.pad_token_id
    return train(model, data, lambda b: collate_sft(b, pad), config, tokenizer=tokenizer,
                 **train_kwargs)


def build_sft_model(out: str | Path, steps: int = 1500, batch_size: int = 32, lr: float = 1e-3,
                    seed: int = 0, n_per_task: int = 200, replay_docs: int = 3000) -> dict:
    """Fine-tune the shipped base model on the tiny world's instructions, evaluate, save.

    Trains ``steps`` steps of ``batch_size`` examples with the course loop (warm-up, then
    cosine decay from ``lr``) on the instruction training split plus ``replay_docs``
    pretraining documents (replay; see :func:`tokenize_documents`), scores exact match on the test split and on the held-out-words
    split (``n_per_task`` examples per task), and writes the model, tokenizer, training
    history and ``sft_report.json`` to ``out`` atomically. Returns the report.
    """
    from course_utils import world
    from course_utils.evaluation.tasks import exact_match, format_scores
    from course_utils.models import load_model
    from course_utils.training import save_checkpoint

    model, tok = load_model("base")
    data = world.make_instruction_data(seed)
    cfg = TrainConfig(steps=steps, batch_size=batch_size, lr=lr, warmup_steps=30,
                      log_every=50, seed=seed, desc="SFT")
    replay = world.make_corpus(replay_docs, seed=seed, split="replay") if replay_docs else []
    result = run_sft(model, tok, data["train"], cfg, replay=replay)
    scores = exact_match(model, tok, world.per_task(data["test"], n_per_task))
    held = exact_match(model, tok, world.per_task(data["test_heldout_words"], n_per_task))
    print(f"  test exact match:           {format_scores(scores)}")
    print(f"  held-out words exact match: {format_scores(held)}")
    report = {"steps": steps, "batch_size": batch_size, "lr": lr, "seed": seed,
              "replay_docs": replay_docs,
              "seconds": round(result.seconds, 1), "test_exact_match": scores,
              "heldout_words_exact_match": held}
    save_checkpoint(Path(out), model, tok, history=result.history,
                    extra_files={"sft_report.json": json.dumps(report, indent=1)})
    return report
