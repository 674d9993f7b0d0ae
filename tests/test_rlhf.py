"""RLHF pieces: KL estimators, token rewards and GAE, rollouts, PPO-RLHF, DPO and GRPO."""

import math

import pytest
import torch

from course_utils import world
from course_utils.alignment.dpo import collate_pairs, dpo_batch_loss, dpo_loss, sequence_logps, tokenize_pairs, add_reference_logps
from course_utils.alignment.grpo import GRPOConfig, group_advantages, train_grpo
from course_utils.models import load_model
from course_utils.rl.ppo import gae
from course_utils.alignment.rlhf import (RLHFConfig, ValueHead, exact_kl, kl_k1, kl_k3, sample_rollout, token_advantages,
                               token_rewards, train_ppo_rlhf)
from course_utils.tokenizer import chat_prompt


def test_kl_estimators_are_unbiased_where_the_true_kl_is_known():
    g = torch.Generator().manual_seed(0)
    p = torch.tensor([0.5, 0.2, 0.15, 0.1, 0.05])
    q = torch.tensor([0.3, 0.3, 0.2, 0.1, 0.1])
    true_kl = (p * (p / q).log()).sum().item()                       # KL(p || q) = 0.1266
    x = torch.multinomial(p, 400_000, replacement=True, generator=g)
    logp, logq = p.log()[x], q.log()[x]
    k1, k3 = kl_k1(logp, logq), kl_k3(logp, logq)
    assert k1.mean().item() == pytest.approx(true_kl, abs=0.004)
    assert k3.mean().item() == pytest.approx(true_kl, abs=0.004)
    assert (k3 >= 0).all() and (k1 < 0).any()                        # k1 is negative for some samples
    assert k3.var() < k1.var()                                       # and k3 varies less
    assert exact_kl(p.log(), q.log()).item() == pytest.approx(true_kl, rel=1e-5)


def test_token_rewards_by_hand():
    logp = torch.tensor([[-1.0, -2.0, -0.5], [-1.0, -1.0, -1.0]])
    ref = torch.tensor([[-1.5, -1.0, -0.5], [-1.0, -3.0, -1.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    r = token_rewards(torch.tensor([2.0, -1.0]), logp, ref, mask, kl_coef=0.1)
    want = torch.tensor([[-0.05, 0.1, 0.0 + 2.0], [0.0, -0.2 - 1.0, 0.0]])
    assert torch.allclose(r, want)


def test_token_gae_equals_gae_per_sequence():
    g = torch.Generator().manual_seed(1)
    rewards, values = torch.randn(4, 7, generator=g), torch.randn(4, 7, generator=g)
    lengths = [7, 3, 1, 5]
    mask = torch.tensor([[1.0] * n + [0.0] * (7 - n) for n in lengths])
    rewards = rewards * mask
    adv, ret = token_advantages(rewards, values, mask, gamma=1.0, lam=0.95)
    for i, n in enumerate(lengths):
        dones = torch.zeros(n)
        dones[-1] = 1
        a, r = gae(rewards[i, :n], values[i, :n], dones, torch.tensor(0.0), 1.0, 0.95)
        assert torch.allclose(adv[i, :n], a, atol=1e-6) and torch.allclose(ret[i, :n], r, atol=1e-6)
        assert (adv[i, n:] == 0).all()


def test_rollout_scores_match_unpadded_forward_passes():
    """Left-padded prompts, padded responses: every log-prob equals the one from the sequence alone."""
    policy, tok = load_model("sft")
    prompts = ["Write a sentence about a dog.", "Tell me something about a cup.", "What is 3 plus 4?"]
    torch.manual_seed(0)
    ro = sample_rollout(policy, ValueHead(policy.config.hidden_size), policy, tok, prompts, max_new_tokens=10)
    assert ro.tokens.shape[0] == 3 and (ro.mask.sum(1) >= 1).all()
    for i, p in enumerate(prompts):
        prompt_ids = tok(chat_prompt(tok, p), add_special_tokens=False)["input_ids"]
        n = int(ro.mask[i].sum())
        resp = ro.tokens[i, :n].tolist()
        ids = torch.tensor([prompt_ids + resp])
        with torch.no_grad():
            logp = torch.log_softmax(policy(ids).logits[0, len(prompt_ids) - 1:-1], -1)
        alone = logp[torch.arange(n), torch.tensor(resp)]
        assert torch.allclose(ro.old_logp[i, :n], alone, atol=1e-4), (i, ro.old_logp[i, :n], alone)
        assert ro.responses[i] == tok.decode(resp, skip_special_tokens=True).strip()
    assert torch.allclose(ro.old_logp, ro.ref_logp) and ro.exact_kl.abs().max() < 1e-5  # policy == ref


def test_ppo_rlhf_short_run_logs_everything_and_moves_the_policy():
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    rm, _ = load_model("rm", kind="classifier")
    prompts = list(world.open_prompts(seed=5, n=100)["prompt"])
    res = train_ppo_rlhf(policy, ref, rm, tok, prompts, RLHFConfig(steps=4, batch_size=16, seed=0), progress=False)
    keys = {"proxy", "gold", "kl", "kl_k3", "kl_exact", "entropy", "clip_fraction", "approx_kl", "length", "eos_rate"}
    assert len(res.history) == 4 and keys <= set(res.history[-1])
    assert all(math.isfinite(v) for row in res.history for v in row.values())
    assert res.history[0]["kl"] == pytest.approx(0.0, abs=1e-4)      # the first rollout is the reference itself
    assert res.history[-1]["kl_exact"] > 0                           # the policy moved away from it
    assert not all(torch.equal(a, b) for a, b in zip(policy.parameters(), ref.parameters()))


# ---------------------------------------------------------------------------------
# DPO
# ---------------------------------------------------------------------------------
ROWS = [{"prompt": "Write a sentence about a dog.", "chosen": "The happy dog runs in the park.", "rejected": "The dog dog dog."},
        {"prompt": "Describe a cup in one sentence.", "chosen": "Mia has a lovely red cup.", "rejected": "The sad cup is bad."}]


def test_dpo_loss_by_hand_and_at_the_start():
    pc, pr, rc, rr = torch.tensor([-3.0]), torch.tensor([-5.0]), torch.tensor([-4.0]), torch.tensor([-4.5])
    margin = (-3 + 4) - (-5 + 4.5)                                   # 1.5
    assert dpo_loss(pc, pr, rc, rr, beta=0.5).item() == pytest.approx(math.log(1 + math.exp(-0.75)), rel=1e-6)
    policy, tok = load_model("sft")
    data = add_reference_logps(policy, tokenize_pairs(tok, ROWS), tok.pad_token_id)
    batch = collate_pairs(data, tok.pad_token_id)
    with torch.no_grad():
        assert dpo_batch_loss(policy, batch, beta=0.5).item() == pytest.approx(math.log(2), abs=1e-5)
    assert margin == 1.5


def test_sequence_logps_sum_the_response_tokens_only():
    policy, tok = load_model("sft")
    data = tokenize_pairs(tok, ROWS[:1])
    batch = collate_pairs(data, tok.pad_token_id)
    with torch.no_grad():
        lp = sequence_logps(policy, batch)
    ids, labels = data[0]["chosen"]["input_ids"], data[0]["chosen"]["labels"]
    with torch.no_grad():
        logp = torch.log_softmax(policy(torch.tensor([ids])).logits[0], -1)
    by_hand = sum(logp[t - 1, ids[t]].item() for t in range(1, len(ids)) if labels[t] != -100)
    assert lp[0].item() == pytest.approx(by_hand, abs=1e-4)


# ---------------------------------------------------------------------------------
# GRPO
# ---------------------------------------------------------------------------------
def test_group_advantages():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    a = group_advantages(r, 4)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std().item()            # unbiased: 0.5774
    assert torch.allclose(a[:4], torch.tensor([0.5, -0.5, -0.5, 0.5]) / (std + 1e-4))
    assert (a[4:] == 0).all()                                        # all right: nothing to learn
    with pytest.raises(ValueError, match="groups of 3"):
        group_advantages(r, 3)


def test_grpo_short_run():
    policy, tok = load_model("sft")
    ref, _ = load_model("sft")
    rows = [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]
    res = train_grpo(policy, ref, tok, rows, GRPOConfig(steps=2, prompts_per_step=4, group_size=4), progress=False)
    assert len(res.history) == 2 and 0 <= res.history[-1]["reward"] <= 1
    assert all(math.isfinite(v) for v in res.history[-1].values())
    fast = train_grpo(policy, ref, tok, rows, GRPOConfig(steps=2, prompts_per_step=4, group_size=4, sampler="course"),
                      progress=False)     # the course sampler: the same loop, another random stream
    assert len(fast.history) == 2 and all(math.isfinite(v) for v in fast.history[-1].values())
    with pytest.raises(ValueError, match="sampler must be"):
        train_grpo(policy, ref, tok, rows, GRPOConfig(steps=1, prompts_per_step=2, group_size=2, sampler="vllm"),
                   progress=False)


def test_grpo_warmup_scales_the_first_update():
    """The learning rate rises linearly over the warm-up steps, then stays. Adam's first update is
    lr * g / (|g| + eps), linear in lr, so warming up over 4 steps makes it a quarter as long
    (the same seed samples the same group)."""
    rows = [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]
    start, tok = load_model("sft")
    policy, _ = load_model("sft")
    cfg = GRPOConfig(steps=5, prompts_per_step=2, group_size=2, iterations=1, warmup_steps=4)
    res = train_grpo(policy, start, tok, rows, cfg, progress=False)
    assert [h["lr"] for h in res.history] == pytest.approx([cfg.lr * f for f in (0.25, 0.5, 0.75, 1, 1)])
    moved = []
    for warmup in (0, 4):
        policy, _ = load_model("sft")
        train_grpo(policy, start, tok, rows, GRPOConfig(steps=1, prompts_per_step=4, group_size=4, iterations=1,
                                                        warmup_steps=warmup), progress=False)
        moved.append(torch.cat([(p - q).detach().flatten() for p, q in zip(policy.parameters(), start.parameters())]).norm().item())
    assert moved[0] > 0
    assert moved[1] / moved[0] == pytest.approx(0.25, rel=0.02)


def test_grpo_decay_follows_the_course_schedule():
    """After the warm-up the rate decays along a cosine to min_lr_ratio * lr (the course loop's lr_at)."""
    from course_utils.training import lr_at
    rows = [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]
    start, tok = load_model("sft")
    policy, _ = load_model("sft")
    cfg = GRPOConfig(steps=6, prompts_per_step=2, group_size=2, iterations=1, warmup_steps=2, min_lr_ratio=0.1)
    res = train_grpo(policy, start, tok, rows, cfg, progress=False)
    lrs = [h["lr"] for h in res.history]
    assert lrs == pytest.approx([lr_at(i, cfg) for i in range(6)])
    assert lrs[:2] == pytest.approx([cfg.lr / 2, cfg.lr])
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:])) and cfg.lr * 0.1 < lrs[-1] < lrs[3] < cfg.lr
    with pytest.raises(ValueError, match="min_lr_ratio"):
        train_grpo(policy, start, tok, rows, GRPOConfig(steps=1, min_lr_ratio=1.5), progress=False)
    still, _ = load_model("sft")      # lr 0: a control that must not move (and must not divide by zero)
    res = train_grpo(still, start, tok, rows, GRPOConfig(steps=2, prompts_per_step=2, group_size=2, lr=0.0,
                                                         warmup_steps=1, min_lr_ratio=0.1), progress=False)
    assert [h["lr"] for h in res.history] == [0.0, 0.0]
    assert all(torch.equal(p, q) for p, q in zip(still.parameters(), start.parameters()))


def _no_update_when_nothing_is_kept(start, tok, rows, cfg, reward_fn, column):
    """A run whose rewards leave nothing to keep logs a kept share of 0 every step and leaves the
    model as it started; returns the model."""
    model, _ = load_model("sft")
    res = train_grpo(model, start, tok, rows, cfg, progress=False, reward_fn=reward_fn)
    assert [h[column] for h in res.history] == [0.0] * cfg.steps
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), start.parameters()))
    return model


def test_grpo_dynamic_sampling_updates_only_on_groups_with_a_spread():
    """DAPO's dynamic sampling: of k * P sampled groups, the first P with a reward spread are updated on;
    the logged columns still describe every sampled answer. With a reward that never varies, no
    group is kept and the policy does not move at all."""
    rows = [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]
    start, tok = load_model("sft")
    seen = []

    def reward_fn(prompts, responses):  # groups 1, 4, 6 and 7 of each step have a spread, the others none
        r = torch.tensor([float(i % 4 == 0) if i // 4 in (1, 4, 6, 7) else 1.0 for i in range(len(responses))])
        seen.append((list(prompts), r.view(-1, 4)))
        return r
    kept = []
    import course_utils.alignment.grpo as grpo_module
    rows_of = grpo_module._rows

    def spy(ro, keep):                  # what the update is given
        out = rows_of(ro, keep)
        kept.append((out.prompts, None))
        return out
    grpo_module._rows = spy
    try:
        policy, _ = load_model("sft")
        cfg = GRPOConfig(steps=2, prompts_per_step=3, group_size=4, iterations=1, dynamic_sampling=3)
        res = train_grpo(policy, start, tok, rows, cfg, progress=False, reward_fn=reward_fn,
                         log_fn=lambda p, r, rw: {"logged_answers": len(r)})
    finally:
        grpo_module._rows = rows_of
    for (prompts, groups), h in zip(seen, res.history):
        assert groups.shape == (9, 4)                       # k * P groups sampled
        spread = [g for g in range(9) if groups[g].std() > 0]
        assert h["kept_groups"] == pytest.approx(min(len(spread), 3) / 3)
        assert h["reward"] == pytest.approx(groups.mean().item())
        assert h["zero_std_groups"] == pytest.approx(1 - len(spread) / 9)
        assert h["logged_answers"] == 36
    with_spread = [(p, g) for p, g in seen if (g.std(1) > 0).any()]
    assert len(kept) == len(with_spread) >= 1
    for (kept_prompts, kept_rewards), (prompts, groups) in zip(kept, with_spread):
        first = [g for g in range(9) if groups[g].std() > 0][:3]       # the first groups with a spread
        assert first == [1, 4, 6]
        assert kept_prompts == [prompts[g * 4] for g in first for _ in range(4)]
    assert not all(torch.equal(p, q) for p, q in zip(policy.parameters(), start.parameters()))
    flat = _no_update_when_nothing_is_kept(start, tok, rows, cfg, lambda p, r: torch.ones(len(r)), "kept_groups")
    with pytest.raises(ValueError, match="dynamic_sampling"):
        train_grpo(flat, start, tok, rows, GRPOConfig(steps=1, dynamic_sampling=1), progress=False)


def test_expert_iteration_updates_on_the_answers_with_full_reward_only():
    """estimator="expert": the kept share is logged, the loss of the one update is -mean(rho) = -1
    (rho = 1 when the gradient is taken), every sampled answer is logged, and a step whose
    answers all miss makes no update."""
    rows = [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]
    start, tok = load_model("sft")
    seen = []

    def reward_fn(prompts, responses):
        r = torch.tensor([float(i % 4 == 0) for i in range(len(responses))])
        seen.append(r)
        return r
    policy, _ = load_model("sft")
    cfg = GRPOConfig(steps=2, prompts_per_step=2, group_size=4, iterations=1, beta=0.0, estimator="expert")
    res = train_grpo(policy, start, tok, rows, cfg, progress=False, reward_fn=reward_fn,
                     log_fn=lambda p, r, rw: {"logged_answers": len(r)})
    for h in res.history:
        assert h["kept_answers"] == 0.25 and h["logged_answers"] == 8 and h["loss"] == pytest.approx(-1.0)
    assert not all(torch.equal(p, q) for p, q in zip(policy.parameters(), start.parameters()))
    missed = _no_update_when_nothing_is_kept(start, tok, rows, cfg, lambda p, r: torch.zeros(len(r)), "kept_answers")
    with pytest.raises(ValueError, match="'expert'"):
        train_grpo(missed, start, tok, rows, GRPOConfig(steps=1, estimator="nope"), progress=False)


def test_grpo_logging_hooks_see_every_step_and_change_nothing():
    """log_fn, eval_fn (which samples) and callback add columns; the run itself is the same."""
    from course_utils.alignment.grpo import sampled_accuracy
    rows = [r for r in world.make_instruction_data()["train"] if r["task"] == "add"][:50]
    cfg = GRPOConfig(steps=3, prompts_per_step=4, group_size=4)
    ref, tok = load_model("sft")
    plain, _ = load_model("sft")
    base = train_grpo(plain, ref, tok, rows, cfg, progress=False)
    hooked, _ = load_model("sft")
    seen = []
    res = train_grpo(hooked, ref, tok, rows, cfg, progress=False,
                     log_fn=lambda p, r, rew: {"answers": float(len(r)), "mean_reward_seen": rew.mean().item()},
                     eval_fn=lambda m: {"heldout": sampled_accuracy(m, tok, rows[:8], n_samples=2)},
                     eval_every=2, callback=seen.append)
    assert [h["reward"] for h in res.history] == [h["reward"] for h in base.history]
    for a, b in zip(hooked.parameters(), plain.parameters()):
        assert torch.equal(a, b)
    assert seen == res.history and all(h["answers"] == 16 for h in res.history)
    assert [("heldout" in h) for h in res.history] == [True, True, True]     # step 1, every 2nd, the last
    for h in res.history:
        assert h["mean_reward_seen"] == pytest.approx(h["reward"])
        assert 0 <= h["truncated"] <= 1 and h["length"] > 0 and h["entropy"] > 0 and h["kl_k1"] == h["kl_k1"]
