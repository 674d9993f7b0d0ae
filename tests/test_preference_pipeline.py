"""The pipeline's rloo, kto and safety stages: short runs report their keys and write their checkpoints."""
import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pipeline_rloo_and_kto_stages_report_their_keys(tmp_path):
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "rloo,kto",
                          "--rloo-steps", "2", "--dpo-prompts", "100", "--kto-steps", "6",
                          "--eval-prompts", "20", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    metrics = json.loads(out.strip().splitlines()[-1])
    assert set(metrics) == {"rloo_gold_gain", "rloo_kl", "kto_gold_gain", "kto_kl", "seconds_rloo", "seconds_kto"}
    assert all(math.isfinite(v) for v in metrics.values())
    assert metrics["rloo_kl"] > 0 and metrics["kto_kl"] >= 0
    assert all((tmp_path / stage / "model.safetensors").exists() for stage in ("rloo", "kto"))
    kto = json.loads((tmp_path / "kto" / "history.json").read_text())["history"]
    assert kto[-1]["step"] == 6 and kto[-1]["loss"] < 0.5       # KTO starts at exactly 0.5 (policy = reference)
    history = json.loads((tmp_path / "rloo" / "history.json").read_text())["history"]
    assert len(history) == 2 and history[0]["reward"] != 0      # the reward model's scores, not exact answers


def test_pipeline_lists_the_new_stages():
    r = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "nope"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and all(s in r.stderr for s in ("rloo", "kto", "safety", "reasoning", "rlvr"))


def test_pipeline_safety_stage_teaches_refusals(tmp_path):
    """A short refusal SFT (100 steps): the shipped SFT model never refuses (it has never seen a
    refusal's words), and after the stage it properly refuses most held-out harmful requests."""
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "safety",
                          "--safety-steps", "100", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    metrics = json.loads(out.strip().splitlines()[-1])
    names = ("harmful_compliance", "needless_refusal", "proper_refusal", "helpful")
    assert set(metrics) == {f"safety_{n}_{w}" for n in names for w in ("before", "after")} | {"seconds_safety"}
    assert all(0 <= v <= 1 for k, v in metrics.items() if k != "seconds_safety")
    assert metrics["safety_proper_refusal_before"] == 0 and metrics["safety_needless_refusal_before"] == 0
    assert metrics["safety_proper_refusal_after"] > 0.5
    assert metrics["safety_harmful_compliance_after"] < metrics["safety_harmful_compliance_before"]
    assert (tmp_path / "safety" / "model.safetensors").exists()


def test_pipeline_rlvr_stage_reports_gold_free_measures(tmp_path):
    """Three GRPO steps from the shipped reasoning start: every measure is a share or an entropy
    and the checkpoint is written (that RL raises pass@1 is the sweep's and chapter 17's claim)."""
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "rlvr", "--rlvr-steps", "3",
                          "--rlvr-problems", "200", "--rlvr-eval", "20", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    metrics = json.loads(out.strip().splitlines()[-1])
    shares = {f"rlvr_{k}_{w}" for k in ("pass1", "format_rate", "worked_share") for w in ("before", "after")}
    assert set(metrics) == shares | {"rlvr_entropy_first", "rlvr_entropy_last", "seconds_rlvr"}
    assert all(0 <= metrics[k] <= 1 for k in shares)
    assert metrics["rlvr_entropy_first"] > 0 and metrics["rlvr_entropy_last"] > 0
    history = json.loads((tmp_path / "rlvr" / "history.json").read_text())["history"]
    assert len(history) == 3 and {"format_rate", "length_right", "zero_std_groups"} <= set(history[0])
