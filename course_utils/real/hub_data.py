"""Public data sets in, the course's rows out: conversational SFT sets and preference sets.

The tiny world's rows are ``{"prompt", "response"}`` (SFT) and ``{"prompt", "chosen",
"rejected"}`` (preferences). Public sets come in a few schemas; these loaders turn each
into the course's rows, so the same training code (:func:`sft.run_sft`, :func:`dpo.run_dpo`,
:func:`reward_model.train_reward_model`) runs on them:

SFT (:func:`load_sft_rows`) -> ``{"messages": [{"role", "content"}, ...]}``
    * conversational: a ``messages`` (or ``conversations``) list of role/content turns
      (e.g. ``HuggingFaceTB/smoltalk``, ``HuggingFaceH4/ultrachat_200k``);
    * prompt/completion strings: ``prompt`` with ``response``, ``completion`` or ``output``.

Preferences (:func:`load_preference_rows`) -> ``{"prompt": [messages], "chosen": str, "rejected": str}``
    * strings: ``prompt``, ``chosen``, ``rejected`` all text;
    * message lists, as in ``HuggingFaceH4/ultrafeedback_binarized``: ``chosen`` and
      ``rejected`` are whole conversations ending with the assistant's answer (their shared
      beginning is the prompt), or, as in TRL's conversational form, ``prompt`` is the
      history and ``chosen``/``rejected`` hold the one assistant message;
    * implicit prompt, as in ``trl-lib/ultrafeedback_binarized``: no ``prompt``; ``chosen`` and
      ``rejected`` are whole conversations, the prompt is the turns before their last answer;
    * HH-RLHF style (``Anthropic/hh-rlhf``): only ``chosen`` and ``rejected`` transcripts,
      ``"\\n\\nHuman: ...\\n\\nAssistant: ..."``; the prompt is everything before the last
      ``Assistant:``.

The prompt is always a message list (one user message for a string prompt), so a column
holds one type. Bad rows raise :class:`DataFormatError` naming the source, the row and the
field. A source is a local ``.jsonl``/``.json`` file or a hub data set id, read with
``datasets.load_dataset`` from the local cache only unless a download is asked for
(``download=True``, the pipeline's ``--download`` or ``COURSE_ALLOW_DOWNLOAD=1``; see
:mod:`course_utils.hub`): a hub id that is not cached raises :class:`DataNotFoundError` at
once, without touching the network. ``python -m course_utils.real.hub_data download NAME``
downloads a data set into the cache once.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from datasets import Dataset

from course_utils.hub import download_advice, download_main, downloads_allowed, hub_offline, hub_requests_blocked
from course_utils.jsonl import JSONLError, json_lines

ROLES = ("system", "user", "assistant")
_HH_TURN = re.compile(r"\n\n(Human|Assistant): ")


class DataFormatError(ValueError):
    """A data set row does not have the fields of any schema the loaders know."""


class DataNotFoundError(DataFormatError):
    """A data set is neither a local file nor in the local Hugging Face cache (or, when asked, downloadable)."""


def hub_dataset(name: str, split: str = "train", download: bool | None = None) -> Dataset:
    """Split ``split`` of hub data set ``name``: from the local cache, or downloaded when allowed.

    Without a download allowed (``download`` true, or ``None`` and ``COURSE_ALLOW_DOWNLOAD=1``)
    or with ``HF_HUB_OFFLINE`` set, ``datasets`` runs with its hub requests blocked, so it
    reads its cache or fails at once: :class:`DataNotFoundError`, one sentence.
    """
    from datasets import load_dataset
    where = f"could not load the data set {name!r} (split {split!r})"
    if downloads_allowed(download) and not hub_offline():
        try:
            return load_dataset(name, split=split)
        except Exception as e:  # no connection, unknown id, unknown split: one sentence, not a stack
            raise DataNotFoundError(f"{where} from the Hugging Face hub or its cache: "
                                    f"{type(e).__name__}: {e}"[:400]) from None
    try:
        with hub_requests_blocked():
            return load_dataset(name, split=split)
    except ConnectionError:  # datasets found no cached copy and may not ask the hub
        raise DataNotFoundError(
            f"{where}: it is not a local file and not in the local Hugging Face cache, and the course "
            "downloads nothing unless asked: "
            + download_advice(f"python -m course_utils.real.hub_data download {name}") + ".") from None
    except Exception as e:  # cached, but e.g. the split is not there
        raise DataNotFoundError(f"{where} from the local Hugging Face cache: {type(e).__name__}: {e}"[:400]) from None


def read_records(source: str | os.PathLike, split: str = "train", limit: int | None = None,
                 download: bool | None = None) -> list[dict]:
    """Raw rows of a local JSONL/JSON file or of a hub data set (``split``), at most ``limit``.

    A hub data set comes from the local cache unless ``download`` allows more (:func:`hub_dataset`).
    """
    path = Path(source).expanduser()
    if path.exists():
        if path.suffix == ".json":
            rows = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(rows, list):
                raise DataFormatError(f"{path}: a .json data file must hold a list of objects")
        else:
            rows = [row for _, row in json_lines(path)]
    elif str(source).startswith((".", "/", "~")) or str(source).endswith((".jsonl", ".json")):
        raise DataFormatError(f"{source}: no such file")
    else:
        rows = hub_dataset(str(source), split, download)
        rows = rows.select(range(min(limit, len(rows)))) if limit is not None else rows
        rows = [dict(r) for r in rows]
    rows = list(rows)[:limit] if limit is not None else list(rows)
    if not rows:
        raise DataFormatError(f"{source}: the data set holds no rows")
    return rows


def _where(source, i: int) -> str:
    return f"{source}: row {i + 1}"


def _fields(row: Mapping) -> str:
    return ", ".join(sorted(map(str, row))) or "none"


def check_messages(messages: object, where: str, field: str = "messages") -> list[dict[str, str]]:
    """Validate a list of ``{"role", "content"}`` turns; return it with only those two keys."""
    if not isinstance(messages, list) or not messages:
        raise DataFormatError(f"{where}: field {field!r} must be a non-empty list of messages")
    out = []
    for j, m in enumerate(messages):
        if not isinstance(m, Mapping) or "role" not in m or "content" not in m:
            raise DataFormatError(f"{where}: message {j} of {field!r} needs 'role' and 'content'")
        if m["role"] not in ROLES:
            raise DataFormatError(f"{where}: message {j} of {field!r} has role {m['role']!r}; "
                                  f"expected one of {', '.join(ROLES)}")
        if not isinstance(m["content"], str):
            raise DataFormatError(f"{where}: message {j} of {field!r} has non-text content")
        out.append({"role": m["role"], "content": m["content"]})
    return out


def _text(row: Mapping, field: str, where: str) -> str:
    value = row[field]
    if not isinstance(value, str) or not value.strip():
        raise DataFormatError(f"{where}: field {field!r} must be non-empty text")
    return value


def sft_row(row: Mapping, where: str) -> dict:
    """One SFT row of any known schema -> ``{"messages": [...]}`` with at least one assistant turn."""
    field = next((f for f in ("messages", "conversations") if f in row), None)
    if field is not None:
        messages = check_messages(row[field], where, field)
    else:
        answer = next((f for f in ("response", "completion", "output") if f in row), None)
        if "prompt" not in row or answer is None:
            raise DataFormatError(f"{where}: an SFT row needs 'messages', or 'prompt' and 'response' "
                                  f"(or 'completion'); it has: {_fields(row)}")
        messages = [{"role": "user", "content": _text(row, "prompt", where)},
                    {"role": "assistant", "content": _text(row, answer, where)}]
    if not any(m["role"] == "assistant" for m in messages):
        raise DataFormatError(f"{where}: the conversation has no assistant message to learn from")
    return {"messages": messages}


def _split_hh(transcript: str, where: str, field: str) -> list[dict[str, str]]:
    text = transcript if transcript.startswith("\n\n") else "\n\n" + transcript
    parts = _HH_TURN.split(text)
    turns = [{"role": "user" if who == "Human" else "assistant", "content": text.strip()}
             for who, text in zip(parts[1::2], parts[2::2])]
    if not turns or turns[-1]["role"] != "assistant":
        raise DataFormatError(f"{where}: field {field!r} is not a 'Human: ... Assistant: ...' transcript "
                              "ending with the assistant's answer")
    return turns


def _answer(value: object, where: str, field: str) -> list[dict[str, str]]:
    """A chosen/rejected value as messages (a string becomes one assistant message)."""
    if isinstance(value, str):
        if not value.strip():
            raise DataFormatError(f"{where}: field {field!r} is empty")
        return [{"role": "assistant", "content": value}]
    return check_messages(value, where, field)


def preference_row(row: Mapping, where: str) -> dict:
    """One preference row of any known schema -> ``{"prompt": [messages], "chosen": str, "rejected": str}``."""
    missing = [f for f in ("chosen", "rejected") if f not in row]
    if missing:
        raise DataFormatError(f"{where}: a preference row needs 'chosen' and 'rejected' "
                              f"(missing {', '.join(map(repr, missing))}); it has: {_fields(row)}")
    if "prompt" not in row:  # two whole conversations (or HH-RLHF transcripts) with a shared beginning
        if isinstance(row["chosen"], list) and isinstance(row["rejected"], list):
            chosen, rejected = check_messages(row["chosen"], where, "chosen"), check_messages(row["rejected"], where, "rejected")
        elif isinstance(row["chosen"], str) and isinstance(row["rejected"], str):
            chosen, rejected = _split_hh(row["chosen"], where, "chosen"), _split_hh(row["rejected"], where, "rejected")
        else:
            raise DataFormatError(f"{where}: a preference row without 'prompt' must hold two conversations "
                                  "(message lists) or two 'Human: ... Assistant: ...' transcripts")
        prompt = chosen[:-1]
        if rejected[:-1] != prompt:
            raise DataFormatError(f"{where}: 'chosen' and 'rejected' differ before the last answer")
    else:
        prompt_value = row["prompt"]
        prompt = ([{"role": "user", "content": _text(row, "prompt", where)}] if isinstance(prompt_value, str)
                  else check_messages(prompt_value, where, "prompt"))
        chosen, rejected = _answer(row["chosen"], where, "chosen"), _answer(row["rejected"], where, "rejected")
        # UltraFeedback-binarized: chosen/rejected repeat the prompt as their first turns
        for name, conv in (("chosen", chosen), ("rejected", rejected)):
            if len(conv) > 1 and conv[:-1] != prompt:
                raise DataFormatError(f"{where}: the turns of {name!r} before its answer differ from 'prompt'")
    for name, conv in (("chosen", chosen), ("rejected", rejected)):
        if conv[-1]["role"] != "assistant":
            raise DataFormatError(f"{where}: {name!r} must end with an assistant message")
    if not prompt:
        raise DataFormatError(f"{where}: the prompt is empty")
    return {"prompt": prompt, "chosen": chosen[-1]["content"], "rejected": rejected[-1]["content"]}


def _convert(rows: Sequence[Mapping], source, convert) -> Dataset:
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise DataFormatError(f"{_where(source, i)}: expected an object, got {type(row).__name__}")
        out.append(convert(row, _where(source, i)))
    return Dataset.from_list(out)


def load_sft_rows(source: str | os.PathLike | Iterable[Mapping], split: str = "train",
                  limit: int | None = None, download: bool | None = None) -> Dataset:
    """An SFT data set (file, hub id, or rows) as a Dataset of ``{"messages": [...]}`` rows."""
    rows, name = _rows(source, split, limit, download)
    return _convert(rows, name, sft_row)


def load_preference_rows(source: str | os.PathLike | Iterable[Mapping], split: str = "train",
                         limit: int | None = None, download: bool | None = None) -> Dataset:
    """A preference data set (file, hub id, or rows) as ``{"prompt", "chosen", "rejected"}`` rows."""
    rows, name = _rows(source, split, limit, download)
    return _convert(rows, name, preference_row)


def _rows(source, split: str, limit: int | None, download: bool | None = None) -> tuple[list, str]:
    if isinstance(source, (str, os.PathLike)):
        try:
            return read_records(source, split, limit, download), str(source)
        except JSONLError as e:
            raise DataFormatError(str(e)) from None
    rows = list(source)[:limit] if limit is not None else list(source)
    if not rows:
        raise DataFormatError("the data set holds no rows")
    return rows, "data"


def split_rows(data: Dataset, test_fraction: float = 0.1, seed: int = 0) -> tuple[Dataset, Dataset]:
    """A seeded (train, held-out) split; the held-out part has at least one row."""
    if len(data) < 2:
        raise DataFormatError(f"{len(data)} row(s) cannot be split into training and held-out rows")
    n_test = max(1, round(len(data) * test_fraction))
    parts = data.train_test_split(test_size=n_test, seed=seed)
    return parts["train"], parts["test"]


def main(argv: list[str] | None = None) -> None:
    """``python -m course_utils.real.hub_data download NAME [--split SPLIT]``: fetch hub data sets into the local cache."""
    download_main(argv, "hub_data", "data set",
                  lambda name, args: f"{len(hub_dataset(name, args.split, download=True))} rows in split {args.split!r}",
                  DataNotFoundError,
                  lambda p: p.add_argument("--split", default="train",
                                           help="the split to check after the download (default: train)"))


if __name__ == "__main__":
    main()
