"""The real-model pipeline end to end, offline: a locally built Qwen2-architecture model with a
ChatML template (random weights), public-schema JSONL files, ``python -m course_utils.pipeline``."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from chat_templates import family_tokenizer
from course_utils.jsonl import write_jsonl

REPO = Path(__file__).resolve().parents[1]
COLOURS = ["red", "blue", "green", "black", "white", "brown", "pink", "grey"]
THINGS = ["cat", "dog", "bird", "fish", "tree", "house", "car", "boat"]


def build_model(folder: Path) -> int:
    """A Qwen2 model (RoPE, GQA, SwiGLU, RMSNorm) of about 3.5M parameters with a ChatML tokenizer."""
    from transformers import Qwen2Config, Qwen2ForCausalLM
    tok = family_tokenizer("chatml")
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=256, intermediate_size=704, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                      bos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg)
    model.save_pretrained(folder, safe_serialization=True)
    tok.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def write_data(folder: Path) -> tuple[Path, Path]:
    pairs = [(c, t) for c in COLOURS for t in THINGS]
    sft = write_jsonl(folder / "sft.jsonl", [
        {"messages": [{"role": "user", "content": f"What colour is the {t}?"},
                      {"role": "assistant", "content": f"The {t} is {c}."}]} for c, t in pairs])
    rows = []
    for i, (c, t) in enumerate(pairs):
        good, bad = f"The {t} is {c}.", f"I do not know about the {t}."
        if i % 3 == 0:    # strings
            rows.append({"prompt": f"What colour is the {t}?", "chosen": good, "rejected": bad})
        elif i % 3 == 1:  # ultrafeedback-binarized message lists
            user = [{"role": "user", "content": f"What colour is the {t}?"}]
            rows.append({"prompt": user[0]["content"], "chosen": user + [{"role": "assistant", "content": good}],
                         "rejected": user + [{"role": "assistant", "content": bad}]})
        else:             # HH-RLHF transcripts
            rows.append({"chosen": f"\n\nHuman: What colour is the {t}?\n\nAssistant: {good}",
                         "rejected": f"\n\nHuman: What colour is the {t}?\n\nAssistant: {bad}"})
    prefs = write_jsonl(folder / "prefs.jsonl", rows)
    return sft, prefs


def test_pipeline_runs_sft_rm_dpo_ppo_on_a_real_architecture(tmp_path):
    from course_utils.models import load_model
    n_params = build_model(tmp_path / "model")
    assert 2e6 < n_params < 6e6
    sft, prefs = write_data(tmp_path)
    cmd = [sys.executable, "-m", "course_utils.pipeline", "--model", str(tmp_path / "model"),
           "--sft-data", str(sft), "--preference-data", str(prefs), "--stages", "sft,rm,dpo,ppo",
           "--out", str(tmp_path / "runs"), "--sft-steps", "30", "--sft-lr", "3e-3", "--rm-steps", "10",
           "--rm-lr", "1e-3", "--dpo-steps", "10", "--dpo-lr", "1e-3", "--dpo-beta", "0.1",
           "--ppo-steps", "4", "--ppo-lr", "1e-4", "--max-new-tokens", "16", "--eval-prompts", "8",
           "--batch-size", "8", "--max-length", "128", "--seed", "0"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", COURSE_DEVICE="cpu")
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    print({k: v for k, v in metrics.items() if k.startswith(("seconds", "ppo"))})
    assert all(math.isfinite(v) for v in metrics.values())
    # SFT learned the held-out answers' pattern; DPO moved the held-out pairs the right way
    assert metrics["sft_heldout_loss_after"] < 0.7 * metrics["sft_heldout_loss_before"]
    assert metrics["dpo_heldout_accuracy"] > 0.5 and metrics["dpo_heldout_margin"] > 0
    assert 0.0 <= metrics["rm_heldout_accuracy"] <= 1.0
    assert metrics["sft_train_examples"] + metrics["dpo_train_pairs"] > 0
    # PPO ran on the preference prompts without a gold reward and moved the policy off the SFT model
    assert metrics["ppo_train_prompts"] > 0 and metrics["ppo_kl"] > 0
    assert metrics["ppo_rm_gain"] == pytest.approx(metrics["ppo_rm_score_after"] - metrics["ppo_rm_score_before"],
                                                   abs=2e-4)
    assert 0.0 <= metrics["ppo_win_rate"] <= 1.0 and 0.0 <= metrics["ppo_eos_rate"] <= 1.0
    history = json.loads((tmp_path / "runs" / "ppo" / "history.json").read_text())["history"]
    assert len(history) == 4 and all("gold" not in row for row in history)
    assert history[0]["kl"] == pytest.approx(0.0, abs=1e-4)  # the first rollout comes from the SFT model itself
    # the checkpoints load with the course loader, keep the template, and differ from the start
    for stage in ("sft", "rm", "dpo", "ppo"):
        assert (tmp_path / "runs" / stage / "model.safetensors").exists()
    start, tok = load_model(tmp_path / "model")
    sft_model, _ = load_model(tmp_path / "runs" / "sft")
    for stage in ("dpo", "ppo"):
        tuned, tok2 = load_model(tmp_path / "runs" / stage)
        assert tok2.chat_template == tok.chat_template
        assert not torch.equal(start.model.embed_tokens.weight, tuned.model.embed_tokens.weight)
        assert not torch.equal(sft_model.model.embed_tokens.weight, tuned.model.embed_tokens.weight)


def test_missing_data_flag_is_one_clear_sentence(tmp_path):
    build_model(tmp_path / "model")
    proc = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--model", str(tmp_path / "model"),
                           "--stages", "sft", "--out", str(tmp_path / "runs")], cwd=REPO,
                          env=dict(os.environ, HF_HUB_OFFLINE="1", COURSE_DEVICE="cpu"),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "needs --sft-data" in proc.stderr and "Traceback" not in proc.stderr
    no_rm = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--model", str(tmp_path / "model"),
                            "--stages", "ppo", "--out", str(tmp_path / "runs")], cwd=REPO,
                           env=dict(os.environ, HF_HUB_OFFLINE="1", COURSE_DEVICE="cpu"),
                           capture_output=True, text=True, timeout=300)
    assert no_rm.returncode != 0 and "Traceback" not in no_rm.stderr
    assert "needs a reward model" in no_rm.stderr and "--reward-model" in no_rm.stderr
    bad = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--model", str(tmp_path / "model"),
                          "--stages", "grpo"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "choose from sft, rm, dpo, ppo" in bad.stderr


def test_ppo_without_gold_trains_exactly_as_with_it():
    """``gold=None`` only leaves the gold reward out of the log: same rollouts, same updates, same weights."""
    from course_utils import world
    from course_utils.models import load_model
    from course_utils.alignment.rlhf import RLHFConfig, evaluate_policy, train_ppo_rlhf
    rm, tok = load_model("rm", kind="classifier")
    ref, _ = load_model("sft")
    prompts = list(world.open_prompts(seed=5, n=40)["prompt"])
    runs = []
    for gold in ("default", None):
        policy, _ = load_model("sft")
        kwargs = {} if gold == "default" else {"gold": None}
        res = train_ppo_rlhf(policy, ref, rm, tok, prompts, RLHFConfig(steps=2, batch_size=8, seed=0),
                             progress=False, **kwargs)
        runs.append((policy, res.history))
    (with_gold, h1), (without, h2) = runs
    assert all("gold" in row for row in h1) and all("gold" not in row for row in h2)
    strip = lambda h: [{k: v for k, v in row.items() if k not in ("gold", "seconds")} for row in h]  # noqa: E731
    assert strip(h1) == strip(h2)
    assert all(torch.equal(a, b) for a, b in zip(with_gold.parameters(), without.parameters()))
    ev = evaluate_policy(without, rm, tok, prompts[:6], ref=ref, seed=0)
    ev_free = evaluate_policy(without, rm, tok, prompts[:6], ref=ref, seed=0, gold=None)
    assert "gold" in ev and "gold" not in ev_free
    assert {k: v for k, v in ev.items() if k != "gold"} == ev_free
    with pytest.raises(ValueError, match="batch_size"):
        evaluate_policy(without, rm, tok, prompts[:6], batch_size=0, gold=None)


def test_the_track_says_what_it_needs_in_one_sentence(monkeypatch, capsys):
    from course_utils.real import real_model
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("COURSE_DEVICE", "cpu")
    monkeypatch.setattr(real_model, "_MISSING", None)
    with pytest.raises(real_model.TrackUnavailable) as err:  # a later cell run first: the same sentence
        real_model.require_track()
    assert real_model.check_track() is False
    said = capsys.readouterr().out.strip()
    assert said == str(err.value) and said.count(". ") == 0 and said.endswith(".")
    assert "no GPU and no connection to the hub" in said
    assert err.value._render_traceback_() == [said]  # IPython shows only this line


def test_chapter_16_later_cells_offline_show_only_the_sentence(tmp_path):
    """A learner who runs a later cell offline (tags ignored, as in Jupyter) sees the sentence, no traceback."""
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(REPO / "chapters" / "16_real_model.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    for c in code:
        c.metadata["tags"] = []
    nb.cells = [code[1], code[0], code[2]]  # a later cell first, then the check, then a later cell again
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(REPO / "chapters")}}).execute()
    first, check, later = (c.outputs for c in nb.cells)
    sentence = "".join(o.get("text", "") for o in check if o["output_type"] == "stream").strip()
    assert sentence.startswith("The real-model track needs a GPU")
    for outs in (first, later):
        errors = [o for o in outs if o["output_type"] == "error"]
        assert len(errors) == 1 and errors[0]["traceback"] == [sentence], errors


def test_readme_memory_table_is_the_course_arithmetic():
    from course_utils.real.real_model import memory_table, training_memory_gib
    assert memory_table() in (REPO / "README.md").read_text()
    n = 135e6  # chapter 13: 16 bytes per trained parameter, 4 per frozen one
    assert training_memory_gib(n, "SFT") == 16 * n / 2**30
    assert training_memory_gib(n, "DPO") == 20 * n / 2**30
    assert training_memory_gib(n, "PPO") == 24 * n / 2**30
