"""Loading models and tokenizers, and generating text.

One loader for everything: :func:`load_model` takes the name of a checkpoint shipped with
the course (``"base"``, ``"sft"``, the reward model ``"rm"``), any local folder saved with ``save_pretrained``,
or a Hugging Face hub id such as ``"HuggingFaceTB/SmolLM2-135M-Instruct"``. Weights are
read from safetensors only. With ``HF_HUB_OFFLINE=1`` (as in the tests) a hub id that is
not in the local cache gives one clear error instead of a stack of HTTP retries.
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

from .device import autocast, pick_device
from .tokenizer import chat_prompt

ASSETS = Path(__file__).resolve().parent / "assets"
#: Checkpoints that ship with the course, by short name.
SHIPPED = {"base": ASSETS / "base", "sft": ASSETS / "sft", "rm": ASSETS / "rm"}


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
    """A model name is neither shipped, nor a local folder, nor reachable on the hub."""


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


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes", "on"}


def resolve(name_or_path: str | os.PathLike) -> str:
    """Turn a shipped name, local folder or hub id into what ``from_pretrained`` takes.

    Raises :class:`ModelNotFoundError` for a missing local folder, and, when offline,
    for a hub id that is not in the local cache.
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
    if _offline():
        from huggingface_hub import try_to_load_from_cache
        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            raise ModelNotFoundError(
                f"{name!r} is not a shipped model ({', '.join(SHIPPED)}), not a local folder, "
                "and not in the local Hugging Face cache; the hub is offline (HF_HUB_OFFLINE=1). "
                "Connect to the internet and unset HF_HUB_OFFLINE to download it.")
    return name


def load_tokenizer(name_or_path: str | os.PathLike = "base"):
    """The tokenizer of a shipped model, local folder or hub id."""
    return AutoTokenizer.from_pretrained(resolve(name_or_path))


def load_model(name_or_path: str | os.PathLike = "base", kind: str = "causal-lm",
               num_labels: int = 1, dtype: torch.dtype = torch.float32,
               device: str | torch.device | None = None):
    """Load ``(model, tokenizer)`` from a shipped name, a local folder or a hub id.

    ``kind="causal-lm"`` gives a language model; ``kind="classifier"`` a sequence
    classification model with ``num_labels`` outputs (a reward model has one), whose
    head is new when the checkpoint is a language model. Weights come from safetensors only.
    ``device``: ``None`` leaves the model on the CPU; ``"auto"`` puts it on
    :func:`device.pick_device`'s choice (CUDA, MPS, CPU); a name such as ``"cuda:0"`` there.
    """
    path = resolve(name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:  # many hub models ship without one
        tokenizer.pad_token = tokenizer.eos_token
    auto = {"causal-lm": AutoModelForCausalLM,
            "classifier": AutoModelForSequenceClassification}.get(kind)
    if auto is None:
        raise ValueError(f"kind must be 'causal-lm' or 'classifier', not {kind!r}")
    extra = {"num_labels": num_labels} if kind == "classifier" else {}
    with quiet_progress_bars(), _quiet_new_head(kind == "classifier"):
        model = auto.from_pretrained(path, dtype=dtype, use_safetensors=True, **extra)
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
             batch_size: int = 64) -> list[str]:
    """Complete each prompt; greedy when ``temperature == 0``, else sampling at that temperature.

    With ``chat=True`` each prompt is wrapped in the chat template as a user message (for
    instruction-tuned models); with ``chat=False`` the model simply continues the text
    (for the base model). Prompts are left-padded into batches of ``batch_size`` and
    decoded with the KV cache; the returned strings exclude the prompt and special tokens.
    """
    if seed is not None:
        torch.manual_seed(seed)
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
