"""Chat templates in the styles of the common model families, on tokenizers built locally.

Each template is written here (not downloaded) after the family's published template, cut
to what matters for masking: the turn markers, the end-of-turn token, the whitespace after
it, a system prompt the template inserts by itself. None has ``{% generation %}`` markers.
:func:`family_tokenizer` puts one on the course's byte-level BPE tokenizer with the
family's special tokens added.
"""

from __future__ import annotations

from course_utils.tokenizer import CHAT_TEMPLATE

# Qwen2.5 style ChatML: a default system prompt when none is given, "\n" after <|im_end|>
CHATML = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")

# Llama 3 style headers: BOS, <|start_header_id|>role<|end_header_id|>\n\n content <|eot_id|>
LLAMA3 = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}")

# Gemma style turns: the assistant is "model", "\n" after <end_of_turn>, no system role
GEMMA = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'system' %}{{- raise_exception('System role not supported') }}{%- endif %}"
    "{%- set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{- '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<start_of_turn>model\\n' }}{%- endif %}")

# Mistral style [INST]: no generation prompt at all; the answer ends with the EOS token </s>
MISTRAL = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{- '[INST] ' + message['content'] + ' [/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}"
    "{%- else %}{{- raise_exception('Only user and assistant roles are supported!') }}{%- endif %}"
    "{%- endfor %}")

#: family -> (template, special tokens to add, bos, end-of-turn token = eos)
FAMILIES = {
    "chatml": (CHATML, ["<|im_start|>", "<|im_end|>"], None, "<|im_end|>"),
    "llama3": (LLAMA3, ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
               "<|begin_of_text|>", "<|eot_id|>"),
    "gemma": (GEMMA, ["<bos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<end_of_turn>"),
    "mistral": (MISTRAL, ["<s>", "</s>"], "<s>", "</s>"),
}

#: the course's template with its {% generation %} markers removed (same text)
COURSE_WITHOUT_MARKERS = CHAT_TEMPLATE.replace("{% generation %}", "").replace("{% endgeneration %}", "")


def family_tokenizer(family: str):
    """The course tokenizer with ``family``'s special tokens, BOS/EOS and chat template."""
    from course_utils.models import load_tokenizer
    template, specials, bos, eot = FAMILIES[family]
    tok = load_tokenizer("base")
    tok.add_tokens(specials, special_tokens=True)
    tok.eos_token = eot
    if bos is not None:
        tok.bos_token = bos
    tok.chat_template = template
    return tok
