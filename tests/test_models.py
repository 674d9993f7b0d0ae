"""The shipped models and the one loader: offline, from safetensors, with clear errors."""
import json

import pytest
import torch

from course_utils import world
from course_utils.models import SHIPPED, ModelNotFoundError, generate, load_model, resolve
from course_utils.pretrain import pack_documents, validation_loss


def test_shipped_checkpoints_are_small_safetensors():
    total = 0
    for name, path in SHIPPED.items():
        files = {p.name for p in path.iterdir()}
        assert "model.safetensors" in files, name
        assert not {f for f in files if f.endswith((".bin", ".pt", ".pkl"))} - {"trainer_state.pt"}, files
        total += sum(p.stat().st_size for p in path.iterdir())
    assert total < 20e6, f"shipped checkpoints take {total / 1e6:.1f} MB"


def test_base_model_reaches_its_documented_validation_loss():
    report = json.loads((SHIPPED["base"] / "pretrain_report.json").read_text())
    model, tok = load_model("base")
    val = validation_loss(model, pack_documents(tok, world.make_corpus(5000, split="validation")))
    assert val == pytest.approx(report["val_loss"], abs=1e-3)
    assert val < 1.2


def test_loader_takes_a_local_folder(tmp_path):
    model, tok = load_model(str(SHIPPED["base"]))
    model.save_pretrained(tmp_path / "copy")
    tok.save_pretrained(tmp_path / "copy")
    again, _ = load_model(tmp_path / "copy")
    x = tok("Tom saw a dog.", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        assert torch.equal(model(x).logits, again(x).logits)


def test_reward_model_head_loads_on_the_base():
    rm, tok = load_model("base", kind="classifier", num_labels=1)
    batch = tok(["The dog is nice.", "The cat."], return_tensors="pt", padding=True)
    with torch.no_grad():
        assert rm(**batch).logits.shape == (2, 1)


def test_unknown_hub_id_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError, match="not in the local Hugging Face cache.*unset HF_HUB_OFFLINE"):
        load_model("no-such-org/no-such-model")


def test_missing_local_folder_is_a_clear_error(tmp_path):
    with pytest.raises(ModelNotFoundError, match="no such model folder"):
        resolve("./nowhere/model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="no config.json"):
        resolve(tmp_path / "empty")


def test_every_world_word_is_one_token():
    _, tok = load_model("base")
    words = sorted(world.CONTENT_WORDS) + [w.upper() for w in world.ANIMALS + world.COLOURS + world.OBJECTS + world.NAMES]
    assert [w for w in words if len(tok(" " + w)["input_ids"]) != 1] == []


def test_chat_template_marks_the_assistant_tokens():
    _, tok = load_model("base")
    assert tok.model_max_length == 256
    enc = tok.apply_chat_template([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "dog"}],
                                  return_dict=True, return_assistant_tokens_mask=True)
    marked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(marked) == " dog" + tok.eos_token
    ids = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert len(ids) == 2, "the answer word after its leading space is one token, then end-of-text"
    # Both shipped tokenizers carry the template the package defines
    from course_utils.tokenizer import CHAT_TEMPLATE
    assert tok.chat_template == CHAT_TEMPLATE == load_model("sft")[1].chat_template
    with pytest.raises(Exception, match="system"):
        tok.apply_chat_template([{"role": "system", "content": "x"}], tokenize=False)


def test_sft_model_follows_instructions_and_base_does_not():
    data = world.make_instruction_data()["test"]
    rows = world.per_task(data, 10)
    from course_utils.evaluation.tasks import exact_match
    base, tok = load_model("base")
    sft, _ = load_model("sft")
    assert exact_match(base, tok, rows)["mean"] <= 0.05
    scores = exact_match(sft, tok, rows)
    assert scores["mean"] >= 0.9 and min(scores.values()) >= 0.8, scores


def test_shipped_sft_report_meets_the_course_goal():
    """The goal: held-out exact match >= 0.95 on average and >= 0.85 on every task."""
    report = json.loads((SHIPPED["sft"] / "sft_report.json").read_text())
    scores = dict(report["test_exact_match"])
    assert scores.pop("mean") >= 0.95, report
    assert min(scores.values()) >= 0.85, report
    assert set(scores) == set(world.TASKS)
    assert set(report["heldout_words_exact_match"]) >= {"uppercase", "reverse", "qa", "sentiment"}


def test_greedy_generation_is_deterministic_and_sampling_is_seeded():
    model, tok = load_model("base")
    p = ["Tom saw a"] * 2
    assert generate(model, tok, p, chat=False) == generate(model, tok, p, chat=False)
    a = generate(model, tok, p, chat=False, temperature=1.0, seed=1)
    assert a == generate(model, tok, p, chat=False, temperature=1.0, seed=1)
