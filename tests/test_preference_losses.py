"""The preference-optimisation family equals TRL 1.16 on the same batch (within 1e-5).

DPO's loss types (DPOTrainer), SimPO (CPOTrainer), ORPO (ORPOTrainer), KTO (KTOTrainer), RLOO's
advantages and loss (RLOOTrainer) and GRPO's loss aggregations (GRPOTrainer). Each check feeds one
batch to TRL's trainer and to the course's function and compares the numbers.
"""

import pytest
import torch
from datasets import Dataset

from course_utils.models import load_model

ROWS = [{"prompt": "Write a sentence about a dog.", "chosen": "The happy dog runs in the park.",
         "rejected": "The dog dog dog."},
        {"prompt": "Describe a cup in one sentence.", "chosen": "Mia has a lovely red cup.",
         "rejected": "The sad cup is bad and mean."},
        {"prompt": "Tell me something about a fox.", "chosen": "A kind fox plays with Tom.",
         "rejected": "The fox is a fox is a fox and it is very very long today."}]
RL_COMMON = dict(bf16=False, gradient_checkpointing=False, use_cpu=True, report_to=[], disable_tqdm=True)
COMMON = dict(RL_COMMON, dataset_num_proc=None)


def _conversational(rows):
    return Dataset.from_list([
        {"prompt": [{"role": "user", "content": r["prompt"]}],
         "chosen": [{"role": "assistant", "content": r["chosen"]}],
         "rejected": [{"role": "assistant", "content": r["rejected"]}]} for r in rows])


@pytest.fixture(scope="module")
def models():
    policy, tok = load_model("sft")
    ref, _ = load_model("base")                      # a reference that differs from the policy
    policy.eval()
    ref.eval()
    return policy, ref, tok


# ---------------------------------------------------------------------------------
# Pairwise losses
# ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def dpo_trainer(models, tmp_path_factory):
    from trl import DPOConfig, DPOTrainer
    policy, ref, tok = models
    config = DPOConfig(output_dir=str(tmp_path_factory.mktemp("dpo")), beta=0.5, per_device_train_batch_size=3,
                       max_length=256, **COMMON)
    return DPOTrainer(model=policy, ref_model=ref, args=config, processing_class=tok,
                      train_dataset=_conversational(ROWS))


@pytest.mark.parametrize("loss_type,beta,eps", [("sigmoid", 0.5, 0.0), ("hinge", 0.5, 0.0), ("ipo", 0.5, 0.0),
                                                ("ipo", 0.1, 0.0), ("robust", 0.5, 0.2)])
def test_dpo_loss_types_equal_trl_dpotrainer(models, dpo_trainer, loss_type, beta, eps):
    from course_utils.alignment.dpo import dpo_batch_loss, sequence_logps
    policy, ref, tok = models
    trainer = dpo_trainer
    trainer.loss_types, trainer.loss_weights, trainer.beta, trainer.label_smoothing = [loss_type], [1.0], beta, eps
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(ROWS))])
    labels = trl_batch["input_ids"].masked_fill(trl_batch["completion_mask"] == 0, -100)
    batch = {"input_ids": trl_batch["input_ids"], "attention_mask": trl_batch["attention_mask"], "labels": labels}
    with torch.no_grad():
        ref_lp = sequence_logps(ref, batch)
        course = dpo_batch_loss(policy, {**batch, "ref_chosen": ref_lp[:3], "ref_rejected": ref_lp[3:]},
                                beta=beta, loss_type=loss_type, label_smoothing=eps)
        trl_loss = trainer.compute_loss(policy, dict(trl_batch))
    assert abs(trl_loss.item() - course.item()) < 1e-5, (loss_type, trl_loss.item(), course.item())
    assert abs(course.item()) > 1e-3              # a real margin (robust DPO may go below zero)


def test_cdpo_equals_trl_label_smoothed_sigmoid():
    """TRL 1.16's DPOTrainer has no cDPO; CPOTrainer's label-smoothed sigmoid is the same formula on a margin."""
    from trl.experimental.cpo import CPOTrainer

    from course_utils.alignment.dpo import cdpo_loss, robust_dpo_loss
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (torch.randn(8, generator=g) * 5 - 20 for _ in range(4))
    fake = type("T", (), {"alpha": 0.0, "loss_type": "sigmoid", "beta": 0.3, "label_smoothing": 0.15,
                          "accelerator": type("A", (), {"device": "cpu"})()})()
    trl_losses, _, _ = CPOTrainer.cpo_loss(fake, pc - rc, pr - rr)   # the margin h enters as chosen - rejected
    course = cdpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=0.15)
    assert abs(trl_losses.mean().item() - course.item()) < 1e-5
    # robust DPO differs from cDPO only in the sign of the flipped term and the 1 / (1 - 2 eps)
    h = 0.3 * ((pc - rc) - (pr - rr))
    robust = robust_dpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=0.15)
    assert torch.allclose(robust * 0.7, course + 2 * 0.15 * torch.nn.functional.logsigmoid(-h).mean(), atol=1e-5)
    with pytest.raises(ValueError, match="label_smoothing < 0.5"):
        robust_dpo_loss(pc, pr, rc, rr, beta=0.3, label_smoothing=0.5)


def _course_pair_batch(tok, rows, prefix_keys: bool):
    """The course's tokens of ``rows``, as the course's 2B-row batch or as TRL's experimental chosen_/rejected_ keys."""
    from course_utils.alignment.dpo import collate_pairs, tokenize_pairs
    from course_utils.sft import collate_sft
    pairs = tokenize_pairs(tok, rows)
    if not prefix_keys:
        return collate_pairs(pairs, tok.pad_token_id)
    out = {}
    for side in ("chosen", "rejected"):
        b = collate_sft([p[side] for p in pairs], tok.pad_token_id)
        out.update({f"{side}_input_ids": b["input_ids"], f"{side}_attention_mask": b["attention_mask"],
                    f"{side}_labels": b["labels"]})
    return out


@pytest.mark.parametrize("cpo_alpha", [0.0, 1.0])
def test_simpo_equals_trl_cpotrainer(models, tmp_path, cpo_alpha):
    from trl.experimental.cpo import CPOConfig, CPOTrainer

    from course_utils.alignment.dpo import dpo_batch_loss
    policy, _, tok = models
    config = CPOConfig(output_dir=str(tmp_path), loss_type="simpo", beta=2.0, simpo_gamma=0.8, cpo_alpha=cpo_alpha,
                       per_device_train_batch_size=3, max_length=256, **COMMON)
    trainer = CPOTrainer(model=policy, args=config, processing_class=tok, train_dataset=_conversational(ROWS))
    policy.eval()
    with torch.no_grad():
        trl_loss, _ = trainer.get_batch_loss_metrics(policy, _course_pair_batch(tok, ROWS, True))
        batch = _course_pair_batch(tok, ROWS, False)
        course = dpo_batch_loss(policy, batch, beta=2.0, loss_type="simpo", gamma=0.8)
        if cpo_alpha:   # CPO's SFT term: the course's SFT loss on the chosen rows
            course = course + cpo_alpha * policy(**{k: v[:3] for k, v in batch.items()}).loss
    assert abs(trl_loss.item() - course.item()) < 1e-5, (trl_loss.item(), course.item())


def test_orpo_equals_trl_orpotrainer(models, tmp_path):
    """ORPO's odds-ratio term equals TRL's; TRL's SFT term covers the prompt tokens too, the course's
    (the paper's) only the response, so the totals are compared with each one's own NLL."""
    from trl.experimental.orpo import ORPOConfig, ORPOTrainer

    from course_utils.alignment.dpo import dpo_batch_loss, orpo_loss, response_lengths, sequence_logps
    policy, _, tok = models
    config = ORPOConfig(output_dir=str(tmp_path), beta=0.25, per_device_train_batch_size=3, max_length=256,
                        **COMMON)
    trainer = ORPOTrainer(model=policy, args=config, processing_class=tok, train_dataset=_conversational(ROWS))
    policy.eval()
    batch = _course_pair_batch(tok, ROWS, False)
    with torch.no_grad():
        trl_loss, metrics = trainer.get_batch_loss_metrics(policy, _course_pair_batch(tok, ROWS, True))
        avg = sequence_logps(policy, batch) / response_lengths(batch)
        with_trl_nll = orpo_loss(avg[:3], avg[3:], torch.as_tensor(metrics["nll_loss"]), lam=0.25)
        course = dpo_batch_loss(policy, batch, beta=0.25, loss_type="orpo")
        sft = policy(**{k: v[:3] for k, v in batch.items()}).loss
    assert abs(trl_loss.item() - with_trl_nll.item()) < 1e-5, (trl_loss.item(), with_trl_nll.item())
    assert abs(course.item() - orpo_loss(avg[:3], avg[3:], sft, lam=0.25).item()) < 1e-5
    assert abs(course.item() - sft.item()) > 1e-3                 # the odds-ratio term is there


def test_reference_free_losses_need_no_reference_and_bad_types_fail(models):
    from course_utils.alignment.dpo import run_dpo
    from course_utils.training import TrainConfig
    policy, _, tok = models
    cfg = TrainConfig(steps=1, batch_size=2, lr=0.0, log_every=1)
    res = run_dpo(policy, None, tok, ROWS, cfg, beta=2.0, loss_type="simpo", progress=False)
    assert res.losses and res.losses[0] > 0
    with pytest.raises(ValueError, match="needs a reference model"):
        run_dpo(policy, None, tok, ROWS, cfg, loss_type="ipo", progress=False)
    with pytest.raises(ValueError, match="unknown loss_type 'dpo2'"):
        run_dpo(policy, None, tok, ROWS, cfg, loss_type="dpo2", progress=False)


# ---------------------------------------------------------------------------------
# KTO
# ---------------------------------------------------------------------------------
def test_kto_equals_trl_ktotrainer(models, tmp_path):
    from trl import KTOConfig, KTOTrainer

    from course_utils.alignment.dpo import sequence_logps
    from course_utils.alignment.kto import kto_loss, kto_reference_point, unpaired_rows
    policy, ref, tok = models
    rows = unpaired_rows(ROWS)[:5]                     # 3 desirable, 2 undesirable
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["prompt"]}],
                               "completion": [{"role": "assistant", "content": r["completion"]}],
                               "label": r["label"]} for r in rows])
    config = KTOConfig(output_dir=str(tmp_path), beta=0.5, desirable_weight=1.0, undesirable_weight=1.3,
                       per_device_train_batch_size=len(rows), max_length=256, **COMMON)
    trainer = KTOTrainer(model=policy, ref_model=ref, args=config, processing_class=tok, train_dataset=data)
    trl_batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    policy.eval()

    def rows_of(prefix):
        ids = trl_batch[f"{prefix}input_ids"]
        return {"input_ids": ids, "attention_mask": trl_batch[f"{prefix}attention_mask"],
                "labels": ids.masked_fill(trl_batch[f"{prefix}completion_mask"] == 0, -100)}
    with torch.no_grad():
        trl_loss = trainer.compute_loss(policy, dict(trl_batch))
        z0 = kto_reference_point(sequence_logps(policy, rows_of("KL_")), sequence_logps(ref, rows_of("KL_")))
        course = kto_loss(sequence_logps(policy, rows_of("")), sequence_logps(ref, rows_of("")), trl_batch["label"],
                          z0, beta=0.5, desirable_weight=1.0, undesirable_weight=1.3)
    assert abs(trl_loss.item() - course.item()) < 1e-5, (trl_loss.item(), course.item())
    assert abs(trainer._metrics["eval"]["kl"][-1] - z0.item()) < 1e-5   # the same reference point
    assert z0.item() > 0                                                   # (not clamped to 0 here)


def test_kto_data_pairs_every_answer_with_another_prompt(models):
    from course_utils.alignment.kto import collate_unpaired, run_kto, tokenize_unpaired, unpaired_rows
    from course_utils.training import TrainConfig
    policy, ref, tok = models
    rows = unpaired_rows(ROWS)
    assert [r["label"] for r in rows] == [True, False] * 3
    data = tokenize_unpaired(tok, rows)
    prompt_of = {tuple(d["example"]["input_ids"][:5]) for d in data}
    assert len(prompt_of) >= 1
    for d in data:      # the mismatched answer's prompt part is the row's own, its answer is another prompt's
        assert d["kl"]["input_ids"] != d["example"]["input_ids"]
    batch = collate_unpaired(data[:4], tok.pad_token_id)
    assert batch["kl_input_ids"].shape[0] == batch["input_ids"].shape[0] == 4
    with pytest.raises(ValueError, match="bool 'label'"):
        tokenize_unpaired(tok, [{"prompt": "a", "completion": "b", "label": 1}] * 2)
    with pytest.raises(ValueError, match="two different prompts"):
        tokenize_unpaired(tok, [{"prompt": "a", "completion": "b", "label": True}] * 2)
    res = run_kto(policy, ref, tok, rows, TrainConfig(steps=1, batch_size=4, lr=0.0, log_every=1), progress=False)
    assert 0 < res.losses[0] < 1.5


# ---------------------------------------------------------------------------------
# RLOO and GRPO
# ---------------------------------------------------------------------------------
def _reward(completions, **kwargs):
    """A reward that varies within groups: the completion's length in characters, mod 3."""
    return [float(len(c[0]["content"] if isinstance(c, list) else c) % 3) for c in completions]


def test_rloo_advantages_equal_trl_rlootrainer(models, tmp_path):
    from trl import RLOOConfig, RLOOTrainer

    from course_utils.alignment.grpo import rloo_advantages
    policy, _, tok = models
    seen = []

    def reward(completions, **kwargs):
        r = _reward(completions)
        seen.extend(r)
        return r
    prompts = [[{"role": "user", "content": p}] for p in
               ["Write a sentence about a dog.", "Tell me something about a cup.", "What is 3 plus 4?"]]
    config = RLOOConfig(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=12,
                        max_completion_length=12, temperature=1.0, beta=0.0, **RL_COMMON)
    trainer = RLOOTrainer(model=policy, reward_funcs=[reward], args=config, processing_class=tok,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]))
    torch.manual_seed(0)
    out = trainer._generate_and_score_completions([{"prompt": p} for p in prompts for _ in range(4)])
    rewards = torch.tensor(seen[-12:])
    assert rewards.view(3, 4).std(1).max() > 0
    assert torch.allclose(out["advantages"].view(-1), rloo_advantages(rewards, 4), atol=1e-6)
    by_hand = rewards[0] - rewards[1:4].mean()
    assert abs(rloo_advantages(rewards, 4)[0].item() - by_hand.item()) < 1e-6


def _rollout(models, n=8):
    """Sampled answers to one prompt (no prompt padding, so TRL's positions are the course's)."""
    from course_utils.alignment.rlhf import sample_rollout
    policy, ref, tok = models
    torch.manual_seed(1)
    ro = sample_rollout(policy, None, ref, tok, ["Write a sentence about a dog."] * n, max_new_tokens=12)
    g = torch.Generator().manual_seed(2)
    old = ro.old_logp + 0.3 * torch.randn(ro.old_logp.shape, generator=g)   # an older policy: ratios != 1
    adv = torch.randn(n, generator=g)
    P = ro.batch["prompt_len"]
    inputs = {"prompt_ids": ro.batch["input_ids"][:, :P], "prompt_mask": ro.batch["attention_mask"][:, :P],
              "completion_ids": ro.tokens, "completion_mask": ro.mask.long()}
    return ro, old, adv, inputs


def test_rloo_loss_equals_trl_rlootrainer(models, tmp_path):
    from trl import RLOOConfig, RLOOTrainer

    from course_utils.alignment.grpo import rloo_loss
    from course_utils.alignment.rlhf import response_logits, token_logp
    policy, _, tok = models
    config = RLOOConfig(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=8,
                        max_completion_length=12, beta=0.0, epsilon=0.2, **RL_COMMON)
    trainer = RLOOTrainer(model=policy, reward_funcs=[_reward], args=config, processing_class=tok,
                          train_dataset=Dataset.from_list([{"prompt": "Hi"}] * 8))
    ro, old, adv, inputs = _rollout(models)
    policy.eval()
    with torch.no_grad():
        trl_loss = trainer._compute_loss(policy, {**inputs, "old_logps": (old * ro.mask).sum(1), "advantages": adv})
        new = token_logp(response_logits(policy, ro.batch), ro.tokens)
        course = rloo_loss(new, old, adv, ro.mask, clip=0.2)
    assert abs(trl_loss.item() - course.item()) < 1e-5, (trl_loss.item(), course.item())


@pytest.mark.parametrize("loss_type,clip_high,correction", [("grpo", None, False), ("bnpo", None, False),
                                                            ("dr_grpo", None, False), ("dapo", 0.28, False),
                                                            ("bnpo", None, True)])
def test_grpo_loss_types_equal_trl_grpotrainer(models, tmp_path, loss_type, clip_high, correction):
    from trl import GRPOConfig, GRPOTrainer

    from course_utils.alignment.grpo import grpo_loss
    from course_utils.alignment.rlhf import response_logits, token_logp
    policy, _, tok = models
    config = GRPOConfig(output_dir=str(tmp_path), num_generations=4, per_device_train_batch_size=8,
                        max_completion_length=12, beta=0.04, epsilon=0.2, epsilon_high=clip_high,
                        loss_type=loss_type, use_bias_correction_kl=correction, **RL_COMMON)
    trainer = GRPOTrainer(model=policy, reward_funcs=[_reward], args=config, processing_class=tok,
                          train_dataset=Dataset.from_list([{"prompt": "Hi"}] * 8))
    ro, old, adv, inputs = _rollout(models)
    policy.eval()
    with torch.no_grad():
        trl_loss = trainer._compute_loss(policy, {**inputs, "advantages": adv, "old_per_token_logps": old,
                                                  "ref_per_token_logps": ro.ref_logp,
                                                  "num_items_in_batch": ro.mask.sum()})
        new = token_logp(response_logits(policy, ro.batch), ro.tokens)
        course = grpo_loss(new, old, ro.ref_logp, adv.unsqueeze(1).expand_as(ro.mask), ro.mask, beta=0.04,
                           loss_type=loss_type, clip=0.2, clip_high=clip_high, max_completion_length=12,
                           kl_ratio_correction=correction)
    assert abs(trl_loss.item() - course.item()) < 1e-5, (loss_type, trl_loss.item(), course.item())


def test_grpo_aggregations_differ_as_documented():
    from course_utils.alignment.grpo import aggregate_tokens, group_advantages
    x = torch.tensor([[1.0, 1.0, 1.0, 1.0], [3.0, 0.0, 0.0, 0.0]])
    m = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 0.0]])
    assert aggregate_tokens(x, m, "grpo").item() == pytest.approx(2.0)          # (4/4 + 3/1) / 2
    assert aggregate_tokens(x, m, "bnpo").item() == pytest.approx(7 / 5)
    assert aggregate_tokens(x, m, "dr_grpo", max_completion_length=10).item() == pytest.approx(7 / 20)
    assert aggregate_tokens(x, m, "dapo", num_items=14).item() == pytest.approx(0.5)
    with pytest.raises(ValueError, match="unknown loss_type"):
        aggregate_tokens(x, m, "ppo")
    r = torch.tensor([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 0.0, 0.0])
    assert torch.allclose(group_advantages(r, 4, scale="none"), r - r.view(2, 4).mean(1).repeat_interleave(4))
    assert not torch.allclose(group_advantages(r, 4, scale="batch"), group_advantages(r, 4))
