"""Loading models and tokenizers, and generating text.

One loader for everything: :func:`load_model` takes the name of a checkpoint shipped with
the course (``"base"``, ``"sft"``, the reward model ``"rm"``), any local folder saved with ``save_pretrained``,
or a Hugging Face hub id such as ``"HuggingFaceTB/SmolLM2-135M-Instruct"``. Weights are
read from safetensors only.

A hub id loads from the local Hugging Face cache, never from the network, unless a download
is asked for (``download=True``, or ``COURSE_ALLOW_DOWNLOAD=1``; see :mod:`course_utils.hub`):
a hub id that is not cached raises :class:`ModelNotFoundError` at once, with one sentence
saying how to download it, with or without ``HF_HUB_OFFLINE``.
``python -m course_utils.models download NAME`` downloads a model's config, tokenizer and
safetensors weights into the cache once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import (AutoModelForCausalLM, AutoModelForSequenceClassification,
                          AutoTokenizer, LlamaConfig, LlamaForCausalLM, PreTrainedModel)

from transformers.utils import logging as hf_logging

from course_utils.device import autocast, pick_device
from course_utils.hub import download_advice, download_main, downloads_allowed, hub_offline
from course_utils.sampling import sample
from course_utils.tokenizer import chat_prompt

ASSETS = Path(__file__).resolve().parent / "assets"
#: Checkpoints that ship with the course, by short name.
SHIPPED = {"base": ASSETS / "base", "sft": ASSETS / "sft", "rm": ASSETS / "rm", "reasoning": ASSETS / "reasoning"}


@contextmanager
def quiet_progress_bars() -> Iterator[None]:
    """Switch off transformers' "Loading weights" / "Writing shards" bars inside the block."""
    was_on = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()


@contextmanager
def _quiet_new_head(quiet: bool) -> Iterator[None]:
    """Silence transformers' load report, which lists a new classifier head as "MISSING".

    A reward model made from a language model *always* gets a new, freshly initialised
    head (``score.weight``); that is expected, not a problem worth a table of warnings.
    """
    old = hf_logging.get_verbosity()
    if quiet:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(old)


class ModelNotFoundError(OSError):
    """A model name is neither shipped, nor a local folder, nor in the local cache (or, when asked, downloadable)."""


def tiny_llama_config(vocab_size: int, hidden_size: int = 128, num_layers: int = 4,
                      num_heads: int = 4, intermediate_size: int = 512,
                      max_position_embeddings: int = 256, pad_token_id: int = 1,
                      eos_token_id: int = 0) -> LlamaConfig:
    """A tiny Llama: RoPE positions, RMSNorm, SwiGLU feed-forward, tied embeddings.

    The defaults (4 layers x 128 dims, 4 heads of 32, FFN 512) give about 1.2M parameters.
    A real Llama 3 8B has the same blocks with 32 layers x 4,096 dims and a 128k vocabulary.
    """
    return LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                       num_hidden_layers=num_layers, num_attention_heads=num_heads,
                       num_key_value_heads=num_heads, intermediate_size=intermediate_size,
                       max_position_embeddings=max_position_embeddings, rms_norm_eps=1e-5,
                       tie_word_embeddings=True, pad_token_id=pad_token_id,
                       bos_token_id=eos_token_id, eos_token_id=eos_token_id,
                       attention_dropout=0.0, rope_theta=10000.0)


def new_tiny_model(tokenizer, seed: int = 0, **config_kwargs) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama sized for ``tokenizer``."""
    torch.manual_seed(seed)
    cfg = tiny_llama_config(len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                            eos_token_id=tokenizer.eos_token_id, **config_kwargs)
    return LlamaForCausalLM(cfg)


#: Files of a hub model that the loader needs, downloaded with ``download=True``: configs,
#: tokenizer files, chat templates and safetensors weights, from the top folder of the repo
#: (sub-folders such as ONNX exports or original checkpoints stay on the hub).
HUB_MODEL_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken"]


def _complete(folder: Path) -> bool:
    """Whether a folder holds a config, a tokenizer and safetensors weights (one file or an index of shards)."""
    return ((folder / "config.json").is_file()
            and any((folder / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json"))
            and any((folder / f).is_file() for f in ("model.safetensors", "model.safetensors.index.json")))


def cached_model(name: str) -> Path | None:
    """The folder of hub model ``name`` in the local Hugging Face cache, if it is complete there; no network.

    Uses ``huggingface_hub.try_to_load_from_cache`` (the cache is ``HF_HUB_CACHE``, by default
    ``~/.cache/huggingface/hub``) for the snapshot the ``main`` branch points to.
    """
    from huggingface_hub import try_to_load_from_cache
    try:
        config = try_to_load_from_cache(name, "config.json")
    except ValueError:  # not a valid repo id or file name
        return None
    if not isinstance(config, str):
        return None
    folder = Path(config).parent
    return folder if _complete(folder) else None


def _download(name: str) -> Path:
    """Download hub model ``name``'s :data:`HUB_MODEL_FILES` into the cache; its snapshot folder."""
    from huggingface_hub import snapshot_download
    try:
        folder = Path(snapshot_download(name, allow_patterns=HUB_MODEL_FILES, ignore_patterns=["*/*"]))
    except Exception as e:  # no connection, unknown or gated repo: one sentence, not a stack
        first = (str(e).strip().splitlines() or [""])[0][:300]
        raise ModelNotFoundError(f"could not download {name!r} from the Hugging Face hub "
                                 f"({type(e).__name__}: {first})") from None
    if not _complete(folder):
        raise ModelNotFoundError(f"{name!r} on the Hugging Face hub lacks a config.json, a tokenizer or "
                                 "safetensors weights in its top folder; the course loads weights from safetensors only")
    return folder


def resolve(name_or_path: str | os.PathLike, download: bool | None = None) -> str:
    """Turn a shipped name, local folder or hub id into the local folder ``from_pretrained`` reads.

    A hub id resolves to its folder in the local Hugging Face cache (:func:`cached_model`).
    One that is not cached is downloaded only when ``download`` is true (``None``: when
    ``COURSE_ALLOW_DOWNLOAD=1``) and ``HF_HUB_OFFLINE`` is not set; otherwise
    :class:`ModelNotFoundError` says so at once, without touching the network. A missing
    local folder, or one without ``config.json``, raises it too.
    """
    name = str(name_or_path)
    if name in SHIPPED:
        return str(SHIPPED[name])
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelNotFoundError(f"{path} is a folder but holds no config.json: "
                                     "is it a folder saved with save_pretrained()?")
        return str(path)
    looks_local = name.startswith((".", "/", "~")) or name.count("/") > 1
    if looks_local:
        raise ModelNotFoundError(f"no such model folder: {name}")
    folder = cached_model(name)
    if folder is not None:
        return str(folder)
    if not downloads_allowed(download):
        raise ModelNotFoundError(
            f"{name!r} is not a shipped model ({', '.join(SHIPPED)}), not a local folder and not in the "
            "local Hugging Face cache, and the course downloads nothing unless asked: "
            + download_advice(f"python -m course_utils.models download {name}") + ".")
    if hub_offline():
        raise ModelNotFoundError(f"{name!r} is not in the local Hugging Face cache and HF_HUB_OFFLINE=1 "
                                 "forbids downloading it: unset HF_HUB_OFFLINE and try again with a connection.")
    return str(_download(name))


def load_tokenizer(name_or_path: str | os.PathLike = "base", download: bool | None = None):
    """The tokenizer of a shipped model, local folder or hub id (``download`` as in :func:`resolve`)."""
    return AutoTokenizer.from_pretrained(resolve(name_or_path, download), local_files_only=True)


def load_model(name_or_path: str | os.PathLike = "base", kind: str = "causal-lm",
               num_labels: int = 1, dtype: torch.dtype = torch.float32,
               device: str | torch.device | None = None, download: bool | None = None):
    """Load ``(model, tokenizer)`` from a shipped name, a local folder or a hub id.

    ``kind="causal-lm"`` gives a language model; ``kind="classifier"`` a sequence
    classification model with ``num_labels`` outputs (a reward model has one), whose
    head is new when the checkpoint is a language model. Weights come from safetensors only.
    ``device``: ``None`` leaves the model on the CPU; ``"auto"`` puts it on
    :func:`device.pick_device`'s choice (CUDA, MPS, CPU); a name such as ``"cuda:0"`` there.
    A hub id comes from the local cache; ``download=True`` (or ``COURSE_ALLOW_DOWNLOAD=1``)
    downloads it first if it is not there (:func:`resolve`). Nothing else reaches the network.
    """
    path = resolve(name_or_path, download)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token is None:  # many hub models ship without one
        tokenizer.pad_token = tokenizer.eos_token
    auto = {"causal-lm": AutoModelForCausalLM,
            "classifier": AutoModelForSequenceClassification}.get(kind)
    if auto is None:
        raise ValueError(f"kind must be 'causal-lm' or 'classifier', not {kind!r}")
    extra = {"num_labels": num_labels} if kind == "classifier" else {}
    with quiet_progress_bars(), _quiet_new_head(kind == "classifier"):
        model = auto.from_pretrained(path, dtype=dtype, use_safetensors=True, local_files_only=True, **extra)
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    if device is not None:
        model.to(pick_device(device))
    model.eval()
    return model, tokenizer


def count_parameters(model: torch.nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors, such as tied embeddings, counted once)."""
    seen, total = set(), 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


@torch.no_grad()
def generate(model: PreTrainedModel, tokenizer, prompts: list[str], max_new_tokens: int = 32,
             temperature: float = 0.0, chat: bool = True, seed: int | None = None,
             batch_size: int = 64, sampler: str = "hf") -> list[str]:
    """Complete each prompt; greedy when ``temperature == 0``, else sampling at that temperature.

    With ``chat=True`` each prompt is wrapped in the chat template as a user message (for
    instruction-tuned models); with ``chat=False`` the model simply continues the text
    (for the base model). Prompts are left-padded into batches of ``batch_size`` and
    decoded with the KV cache; the returned strings exclude the prompt and special tokens.
    ``sampler="hf"`` decodes with ``model.generate`` (the random stream the stored results
    were made with); ``sampler="course"`` with :func:`sampling.sample`, faster, the same
    greedy text, samples from the same distribution but another random stream. ``seed``
    seeds torch's global random stream either way.
    """
    if sampler not in ("hf", "course"):
        raise ValueError(f"sampler must be 'hf' or 'course', not {sampler!r}")
    if seed is not None:
        torch.manual_seed(seed)
    if sampler == "course":
        return sample(model, tokenizer, prompts, max_new_tokens, temperature, chat=chat, batch_size=batch_size)
    texts = [chat_prompt(tokenizer, p) if chat else p for p in prompts]
    old_side, tokenizer.padding_side = tokenizer.padding_side, "left"
    model.eval()
    outputs: list[str] = []
    try:
        for i in range(0, len(texts), batch_size):
            enc = tokenizer(texts[i:i + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False)
            enc = {k: v.to(model.device) for k, v in enc.items()}
            sampling = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0} \
                if temperature > 0 else {"do_sample": False}
            with autocast(model.device):
                out = model.generate(**enc, max_new_tokens=max_new_tokens,
                                     pad_token_id=tokenizer.pad_token_id,
                                     eos_token_id=tokenizer.eos_token_id, **sampling)
            new = out[:, enc["input_ids"].shape[1]:]
            outputs += tokenizer.batch_decode(new, skip_special_tokens=True)
    finally:
        tokenizer.padding_side = old_side
    return [o.strip() if chat else o for o in outputs]


def main(argv: list[str] | None = None) -> None:
    """``python -m course_utils.models download NAME [NAME ...]``: fetch hub models into the local cache."""
    download_main(argv, "models", "model", lambda name, _: str(resolve(name, download=True)), ModelNotFoundError)


if __name__ == "__main__":
    main()
