"""The course tokenizer: byte-level BPE trained on the tiny-world corpus, with a chat template.

Byte-level BPE (as in GPT-2 and Llama 3) starts from the 256 byte values, so any text can
be encoded, and learns merges of frequent pairs until the vocabulary is full. With a
vocabulary of at most 1,024 every word of the tiny world (and its CAPITALISED form) ends up as
one token.

The chat template turns a list of messages into the text the model sees::

    <|user|>
     What is 2 plus 3?
    <|assistant|>
     2 plus 3 is 5.<|endoftext|>

Every message starts with a space: a word after a space is one token, while the same
word at the start of a line is split into pieces (``garden`` is ``g|ard|en``), and a tiny
model copies whole tokens far more reliably than it spells.

The assistant's text is wrapped in ``{% generation %}`` markers, so
``apply_chat_template(..., return_assistant_tokens_mask=True)`` can tell which tokens the
model wrote (the tokens an instruction-tuning loss is computed on).
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

EOS = "<|endoftext|>"
PAD = "<|pad|>"
USER = "<|user|>"
ASSISTANT = "<|assistant|>"
SPECIAL_TOKENS = [EOS, PAD, USER, ASSISTANT]
VOCAB_SIZE = 1024
MODEL_MAX_LENGTH = 256

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}"
    "{{ '<|user|>\\n ' + message['content'] + '\\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\\n' }}{% generation %}{{ ' ' + message['content'] + '<|endoftext|>' }}{% endgeneration %}"
    "{{ '\\n' }}"
    "{% else %}"
    "{{ raise_exception('the tiny chat template knows the roles user and assistant, not ' + message['role']) }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = VOCAB_SIZE) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts`` and wrap it for transformers."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return wrap_tokenizer(tok)


def wrap_tokenizer(tok: Tokenizer) -> PreTrainedTokenizerFast:
    """Wrap a ``tokenizers.Tokenizer`` as a transformers fast tokenizer with the chat template."""
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=EOS, bos_token=EOS,
                                   pad_token=PAD, model_max_length=MODEL_MAX_LENGTH,
                                   additional_special_tokens=[USER, ASSISTANT])
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "right"
    return fast


def chat_prompt(tokenizer, prompt: str) -> str:
    """The text the model sees before it answers ``prompt`` (ends with the assistant header)."""
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}],
                                         tokenize=False, add_generation_prompt=True)
