"""The course sampler (course_utils.sampling): greedy equals generate's, sampling is seeded and
draws from softmax(logits / T), EOS ends a row, and PPO's rollout can use it."""
import math

import pytest
import torch

from course_utils import world
from course_utils.alignment.rlhf import response_logits, sample_rollout, token_logp
from course_utils.models import generate, load_model
from course_utils.reasoning.tasks import make_reasoning_data
from course_utils.sampling import PREFILL_POSITIONS, sample, sample_tokens
from course_utils.tokenizer import chat_prompt


@pytest.fixture(scope="module")
def sft():
    return load_model("sft")


@pytest.fixture(scope="module")
def prompts():
    """32 prompts of 11 to 69 tokens: every instruction task, open-ended prompts, reasoning problems."""
    test = list(world.make_instruction_data()["test"])
    return ([r["prompt"] for r in world.per_task(test, 4)] + list(world.open_prompts(seed=3, n=8)["prompt"])
            + list(make_reasoning_data(seed=0, n_train=200)["test"]["prompt"])[:4])


def _batch(tok, prompts):
    old, tok.padding_side = tok.padding_side, "left"
    try:
        return tok([chat_prompt(tok, p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
    finally:
        tok.padding_side = old


def _hf_greedy(model, enc, max_new_tokens, eos, pad):
    with torch.no_grad():
        seq = model.generate(**enc, do_sample=False, max_new_tokens=max_new_tokens, pad_token_id=pad, eos_token_id=eos)
    return seq[:, enc["input_ids"].shape[1]:]


def _lengths(tokens, eos):
    """Tokens per row up to and including the first EOS (all of them without one)."""
    is_eos = (tokens == eos).long()
    return ((is_eos.cumsum(1) - is_eos) == 0).sum(1)


# The comparisons below are exact: both sides run here, in one process. Along these greedy paths
# the smallest top-1 minus top-2 logit gap is 0.014 (EOS as end) and 0.0008 (the "." as end),
# while dropping rows from the batch changed no logit here (max difference 0.0, four sub-batches
# of these prompts against the full batch); float noise elsewhere is about 1e-5.
def test_greedy_equals_generate_token_for_token(sft, prompts):
    model, tok = sft
    enc = _batch(tok, prompts)
    assert len(prompts) > PREFILL_POSITIONS // enc["input_ids"].shape[1]   # the prefill runs in chunks
    dot = tok(".", add_special_tokens=False)["input_ids"][-1]
    for eos in (tok.eos_token_id, dot):   # "." as the end: rows stop after 1 to 16 tokens
        want = _hf_greedy(model, enc, 32, eos, tok.pad_token_id)
        got = sample_tokens(model, enc["input_ids"], enc["attention_mask"], 32, eos, tok.pad_token_id, temperature=0.0)
        assert torch.equal(got, want), eos
        lengths = _lengths(got, eos)
        assert lengths.min() < lengths.max()          # rows did leave the batch at different steps
    texts = sample(model, tok, prompts, max_new_tokens=24, temperature=0.0)
    assert texts == generate(model, tok, prompts, max_new_tokens=24, temperature=0.0)
    assert generate(model, tok, prompts, max_new_tokens=24, sampler="course") == texts
    base, btok = load_model("base")
    docs = ["Tom has a red cup.", "The dog", "Mia wrote a review: The cake was sweet and fresh."]
    assert sample(base, btok, docs, 16, temperature=0.0, chat=False) == generate(base, btok, docs, 16, chat=False)


def test_a_seed_fixes_the_samples_and_different_seeds_differ(sft, prompts):
    model, tok = sft
    a = sample(model, tok, prompts, 24, temperature=1.0, seed=3)
    assert a == sample(model, tok, prompts, 24, temperature=1.0, seed=3)
    b = sample(model, tok, prompts, 24, temperature=1.0, seed=4)
    assert sum(x != y for x, y in zip(a, b)) >= 5      # seed 3 against 4: 14 of the 32 answers differ here
    c = generate(model, tok, prompts, 24, temperature=1.0, seed=3, sampler="course")
    assert c == generate(model, tok, prompts, 24, temperature=1.0, seed=3, sampler="course")
    # sample's seed seeds a generator of its own: torch's global stream is left as it was
    torch.manual_seed(1)
    before = torch.rand(1)
    torch.manual_seed(1)
    sample(model, tok, prompts[:2], 8, temperature=1.0, seed=5)
    assert torch.equal(torch.rand(1), before)


def test_first_tokens_follow_softmax_of_logits_over_temperature(sft):
    """2,000 first tokens of one prompt at T = 0.7 against softmax(logits / 0.7): total variation
    over the 10 likeliest tokens and the rest (11 buckets).

    Tolerance 0.05: with sampling as it should be, the expected TV is 1/2 sum sqrt(2 p (1 - p) / (pi n))
    = 0.018 here (asserted below, under 0.025), so 0.05 is nearly three times what sampling noise
    gives on average. Sampling at T = 1 instead of 0.7 would give TV 0.24 (asserted above 0.15):
    the test tells them apart.
    """
    model, tok = sft
    n, T = 2000, 0.7
    ids = _batch(tok, ["Write a sentence about a wolf."])
    with torch.no_grad():
        logits = model(**ids).logits[0, -1]
    p, p_at_1 = torch.softmax(logits / T, -1), torch.softmax(logits, -1)
    top = p.topk(10).indices

    def buckets(q):
        return torch.cat([q[top], (1 - q[top].sum()).reshape(1)])

    new = sample_tokens(model, ids["input_ids"].expand(n, -1), ids["attention_mask"].expand(n, -1), 1,
                        tok.eos_token_id, tok.pad_token_id, T, generator=torch.Generator().manual_seed(0))
    assert new.shape == (n, 1)
    freq = torch.bincount(new[:, 0], minlength=len(p)).float() / n
    pb = buckets(p)
    expected_tv = 0.5 * torch.sqrt(2 * pb * (1 - pb) / (math.pi * n)).sum().item()
    assert expected_tv < 0.025
    assert 0.5 * (buckets(p_at_1) - pb).abs().sum().item() > 0.15
    tv = 0.5 * (buckets(freq) - pb).abs().sum().item()
    assert tv < 0.05, f"total variation {tv:.3f} between the samples and softmax(logits / {T})"
    assert len(set(new[:, 0].tolist())) > 10              # samples vary


def test_everything_after_the_first_eos_is_pad_and_the_budget_truncates(sft, prompts):
    model, tok = sft
    enc = _batch(tok, prompts)
    eos, pad = tok.eos_token_id, tok.pad_token_id
    for budget in (3, 6):
        new = sample_tokens(model, enc["input_ids"], enc["attention_mask"], budget, eos, pad, temperature=1.0,
                            generator=torch.Generator().manual_seed(1))
        assert new.shape[0] == len(prompts) and new.shape[1] <= budget
        lengths = _lengths(new, eos)
        pos = torch.arange(new.shape[1])
        after = pos[None, :] >= lengths[:, None]
        assert (new[after] == pad).all()                   # pad after the first EOS, and only there
        assert (new[~after] != pad).all()
        ended = (new == eos).any(1)
        assert ended.any() and (~ended).any()              # some rows ended, some ran out of budget
        assert (lengths[~ended] == budget).all() and new.shape[1] == budget
    # a row cut by the budget is the beginning of the longer answer (greedy)
    short = sample_tokens(model, enc["input_ids"], enc["attention_mask"], 3, eos, pad, temperature=0.0)
    full = sample_tokens(model, enc["input_ids"], enc["attention_mask"], 32, eos, pad, temperature=0.0)
    assert torch.equal(short, full[:, :3])
    assert (_lengths(full, eos) > 3).any()
    with pytest.raises(ValueError, match="max_new_tokens"):
        sample_tokens(model, enc["input_ids"], enc["attention_mask"], 0, eos, pad)


def test_every_row_ending_at_once_right_padding_and_foreign_cache_use_are_handled(sft, prompts):
    """All rows ending on their first token leave an empty batch (one column back); a right-padded
    batch is refused by name; the preallocated cache refuses what it does not implement."""
    from course_utils.sampling import PreallocatedLayer, new_cache
    model, tok = sft
    enc = _batch(tok, [prompts[0]] * 3)
    first = sample_tokens(model, enc["input_ids"], enc["attention_mask"], 1, tok.eos_token_id, tok.pad_token_id, 0.0)
    new = sample_tokens(model, enc["input_ids"], enc["attention_mask"], 8, int(first[0, 0]), tok.pad_token_id, 0.0)
    assert new.shape == (3, 1) and (new[:, 0] == first[0, 0]).all()
    old, tok.padding_side = tok.padding_side, "right"
    try:
        right = tok([chat_prompt(tok, p) for p in prompts[:4]], return_tensors="pt", padding=True,
                    add_special_tokens=False)
    finally:
        tok.padding_side = old
    assert not right["attention_mask"][:, -1].all()
    with pytest.raises(ValueError, match="left-padded"):
        sample_tokens(model, right["input_ids"], right["attention_mask"], 4, tok.eos_token_id, tok.pad_token_id)
    cache = new_cache(model, 16)
    assert all(isinstance(layer, PreallocatedLayer) for layer in cache.layers)
    with pytest.raises(NotImplementedError):
        cache.layers[0].crop(1)


def test_rollout_with_the_course_sampler_scores_its_own_tokens(sft, prompts):
    """old_logp of a rollout sampled with sampler="course" equals log pi of its tokens, recomputed
    row by row without padding (1e-4: float noise of another batch shape is about 1e-6)."""
    model, tok = sft
    torch.manual_seed(0)
    ro = sample_rollout(model, None, model, tok, prompts[:12], max_new_tokens=16, sampler="course")
    assert ro.tokens.shape[0] == 12 and ro.tokens.shape[1] <= 16
    lengths = ro.mask.sum(1).long()
    assert torch.equal(lengths, _lengths(ro.tokens, tok.eos_token_id))
    assert (ro.tokens[ro.mask == 0] == tok.pad_token_id).all()
    assert torch.equal(ro.ended, (ro.tokens == tok.eos_token_id).any(1))
    for i, prompt in enumerate(prompts[:12]):
        p = tok(chat_prompt(tok, prompt), return_tensors="pt", add_special_tokens=False)["input_ids"]
        resp = ro.tokens[i:i + 1, :lengths[i]]
        ids = torch.cat([p, resp], 1)
        with torch.no_grad():
            logits = model(ids).logits[:, p.shape[1] - 1:-1]
        assert torch.allclose(token_logp(logits, resp), ro.old_logp[i:i + 1, :lengths[i]], atol=1e-4)
    # the batch PPO trains on is the prompt followed by the sampled tokens
    P = ro.batch["prompt_len"]
    assert torch.equal(ro.batch["input_ids"][:, P:], ro.tokens)
    with torch.no_grad():
        again = token_logp(response_logits(model, ro.batch), ro.tokens)
    assert torch.allclose(again * ro.mask, ro.old_logp * ro.mask)
    with pytest.raises(ValueError, match="sampler"):
        sample_rollout(model, None, model, tok, prompts[:2], sampler="vllm")
