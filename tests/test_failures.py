"""Chapter 18's bugs: each does exactly what its docstring says, and the cheap ones show their
signature on the dashboard in a few steps. (The slower signatures, and the healthy twins'
silence at the chapter's sizes, are in the stored sweep ``failures``: see the last test.)"""
import pytest
import torch

from course_utils import world
from course_utils.dashboard import RunDashboard
from course_utils.debugging import failures as f
from course_utils.models import load_model
from course_utils.sft import IGNORE_INDEX, collate_sft


@pytest.fixture(scope="module")
def tok():
    return load_model("base")[1]


ROW = {"prompt": "What do 20 and 1 make?", "response": "20 plus 1 is 21."}


def test_healthy_labels_end_with_end_of_text_and_skip_the_prompt(tok):
    ex = f.sft_example(tok, ROW)
    assert f.labelled_text(tok, ex) == "· 20 plus 1 is 21.<|endoftext|>·"


def test_off_by_one_mask_trains_the_header_break_and_not_end_of_text(tok):
    healthy, broken = f.sft_example(tok, ROW), f.sft_example(tok, ROW, "mask_off_by_one")
    assert broken["input_ids"] == healthy["input_ids"]
    assert f.labelled_text(tok, broken) == "·\n 20 plus 1 is 21.·"
    assert sum(label != IGNORE_INDEX for label in broken["labels"]) == sum(label != IGNORE_INDEX for label in healthy["labels"])


def test_pad_is_eos_masks_the_answers_own_end_of_text(tok):
    examples = [f.sft_example(tok, ROW), f.sft_example(tok, {"prompt": "Say hi.", "response": "hi"})]
    eos = tok.eos_token_id
    healthy, broken = collate_sft(examples, tok.pad_token_id), f.collate_pad_is_eos(examples, eos)
    assert (healthy["labels"] == eos).sum() == 2          # each answer's closing end-of-text is trained
    assert (broken["labels"] == eos).sum() == 0           # ... and none of them here
    assert torch.equal(healthy["attention_mask"], broken["attention_mask"])
    other = (healthy["labels"] != eos) & (healthy["labels"] != IGNORE_INDEX)
    assert torch.equal(healthy["labels"][other], broken["labels"][other])   # nothing else changed


def test_parsers(tok):
    assert f.parse_total("20 plus 1 is 21.") == 21
    assert f.parse_total("20 plus 1 is") is None and f.parse_total("21") is None
    assert f.parse_total("20 plus 1 is 21.", "parser_mismatch") is None
    assert f.parse_total("so #### 21", "parser_mismatch") == 21


def test_sign_flip_negates_the_reward_model_exactly(tok):
    from course_utils.alignment.reward_model import score
    rm, _ = load_model("rm", kind="classifier")
    prompts, answers = ["Write a sentence about a cat."] * 2, ["The cat is happy.", "cat cat cat"]
    assert torch.equal(score(f.SignFlipped(rm), tok, prompts, answers), -score(rm, tok, prompts, answers))


def test_unknown_bugs_are_refused_by_name(tok):
    with pytest.raises(ValueError, match="unknown PPO bug 'pad_is_eos'"):
        f.ppo_run("pad_is_eos")
    with pytest.raises(ValueError, match="unknown SFT bug"):
        f.sft_example(tok, ROW, "sign_flip")


def test_every_bug_names_checks_the_dashboard_has():
    from course_utils.dashboard import CHECKS, NOTES
    for bug, failure in f.FAILURES.items():
        assert failure.fires and set(failure.fires) <= set(CHECKS) - NOTES, bug


@pytest.mark.parametrize("bug", ["cap_too_short", "parser_mismatch"])
def test_grpo_bugs_fire_their_warnings_within_five_steps(bug):
    board = RunDashboard(live=False, echo=False)
    f.grpo_run(bug, steps=5, prompts_per_step=4, group_size=4, dashboard=board, progress=False)
    assert set(f.FAILURES[bug].fires) <= {a.check for a in board.alerts}


def test_shared_reference_freezes_the_policy_and_keeps_kl_at_zero():
    board = RunDashboard(live=False, echo=False)
    run = f.ppo_run("shared_reference", steps=4, batch_size=8, dashboard=board, progress=False)
    assert "kl_stuck_at_zero" in {a.check for a in board.alerts}
    sft, _ = load_model("sft")
    assert all(torch.equal(p, q) for p, q in zip(run.policy.parameters(), sft.parameters()))


def test_the_stored_sweep_shows_every_signature_and_quiet_healthy_runs():
    """What chapter 18 states over seeds: every bug fired its checks in every seed, and no
    healthy twin raised a warning (notes are allowed: they describe healthy runs)."""
    from course_utils.experiments import load
    res = load("failures")
    for seed in res.seeds:
        for row in res.select(seed=seed):
            fired = set(filter(None, row["warnings"].split(",")))
            if row["bug"] == "none":
                assert not fired, (seed, row["arm"], fired)
            else:
                assert set(f.FAILURES[row["bug"]].fires) <= fired, (seed, row["arm"], fired)
