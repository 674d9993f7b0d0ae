"""The project's set-up: pins agree everywhere, CI calls the README's command, notebooks are clean."""
import json
import math
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject_pins():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pins = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([0-9][^\s;]*)", d)
        assert m, f"pyproject.toml: {d!r} is not pinned exactly (name==version)"
        pins[m.group(1).lower()] = m.group(2)
    return pins


def test_environment_yml_has_the_same_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    conda = {}
    for line in pip:
        if line.startswith("--"):  # an option line, such as the CPU index for torch
            continue
        m = re.match(r"([A-Za-z0-9_.\-]+)==(\S+)", line)
        assert m, f"environment.yml: {line!r} is not pinned exactly"
        conda[m.group(1).lower()] = m.group(2)
    assert conda == pyproject_pins()
    assert "python=3.11" in env["dependencies"]


def test_installed_versions_match_the_pins():
    from course_utils.environment import check_environment
    bad = [r for r in check_environment() if not r["ok"]]
    assert not bad, bad
    assert {r["package"] for r in check_environment()} == set(pyproject_pins())


def test_makefile_installs_cpu_torch_first_and_ci_runs_make_test():
    make = (ROOT / "Makefile").read_text()
    assert make.index("pip install --disable-pip-version-check -q torch==2.13.0") < make.index("-q -e .")
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make lab" in readme and "make test" in readme


NOTEBOOKS = sorted(p for d in ["chapters", "labs", "solutions"] for p in (ROOT / d).glob("**/*.ipynb")
                   if ".ipynb_checkpoints" not in p.parts)


def test_notebooks_are_clean():
    assert NOTEBOOKS, "no notebooks found"
    assert any(p.parent.name.startswith("lab") for p in NOTEBOOKS), "lab notebooks are checked too"
    machine_path = re.compile(r"(/home/|/root/|/tmp/|/Users/|/work/|C:\\\\)")
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text())
        assert nb["metadata"]["kernelspec"]["name"] == "python3", path.name
        for cell in nb["cells"]:
            for out in cell.get("outputs", []):
                assert out["output_type"] != "error", f"{path.name} stores an error output"
                text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
                assert not machine_path.search(text), f"{path.name} shows a machine path: {text[:200]}"
        assert path.stat().st_size < 3e6, f"{path.name} is too large"


def test_notebooks_are_stored_as_jupyterlab_saves_them():
    """Opening a notebook in JupyterLab and saving it (or *Validate*, or autosave) changes no byte.

    Only Python's patch version may differ from this machine's: that one JupyterLab rewrites
    wherever the kernel's Python is another 3.11.x (the README says how to keep git clean).
    """
    from course_tools.notebooks import jupyterlab_form
    versions = set()
    for path in NOTEBOOKS:
        text = path.read_text(encoding="utf-8")
        nb = nbformat.reads(text, as_version=4)
        versions.add(nb.metadata.get("language_info", {}).get("version"))
        stored = nb.metadata.get("language_info", {}).get("version")
        canonical = jupyterlab_form(nbformat.reads(text, as_version=4))
        canonical.metadata.language_info["version"] = stored
        assert nbformat.writes(canonical) + "\n" == text, (
            f"{path.relative_to(ROOT)} is not stored as JupyterLab saves it: "
            "python -m course_tools.notebooks --jupyterlab-form " + str(path.relative_to(ROOT)))
    assert len(versions) == 1, f"notebooks record different Python versions: {versions}"


def test_chapters_are_executed_and_start_with_a_title():
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    assert [p.name[:2] for p in chapters][:3] == ["00", "01", "02"]
    for path in chapters:
        nb = json.loads(path.read_text())
        first = nb["cells"][0]
        assert first["cell_type"] == "markdown" and "".join(first["source"]).startswith("# Chapter"), path.name
        # cells tagged nbval-skip (the real-model appendix's GPU cells) are stored unexecuted
        code = [c for c in nb["cells"] if c["cell_type"] == "code"
                and "nbval-skip" not in c.get("metadata", {}).get("tags", [])]
        assert code and all(c.get("execution_count") for c in code), f"{path.name} has cells that were not run"


def test_package_never_imports_the_pipeline():
    for py in (ROOT / "course_utils").glob("*.py"):
        if py.name != "pipeline.py":
            assert "import pipeline" not in py.read_text() and "from .pipeline" not in py.read_text(), py.name


def test_pipeline_base_stage_prints_a_table_and_json_last():
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "base",
                          "--n-per-task", "10", "--val-docs", "500"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = out.strip().splitlines()
    metrics = json.loads(lines[-1])
    assert set(metrics) == {"base_val_loss", "base_exact_match", "seconds_base"}
    assert metrics["base_exact_match"] <= 0.05 and metrics["base_val_loss"] < 1.2
    assert any(line.startswith("base_val_loss") and "|" in line for line in lines)


def test_pipeline_sft_stage_trains_saves_and_reports(tmp_path):
    """A short run of the real stage (20 steps): its checkpoint loads and its keys are there."""
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "sft",
                          "--sft-steps", "20", "--n-per-task", "5", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    metrics = json.loads(out.strip().splitlines()[-1])
    assert set(metrics) == {"sft_exact_match", "sft_exact_match_min",
                            "sft_heldout_words_exact_match", "seconds_sft"}
    assert 0 <= metrics["sft_exact_match_min"] <= metrics["sft_exact_match"] <= 1
    report = json.loads((tmp_path / "sft" / "sft_report.json").read_text())
    assert report["steps"] == 20
    from course_utils.models import load_model
    model, _ = load_model(tmp_path / "sft")
    assert model.config.model_type == "llama"


def test_pipeline_rm_stage_trains_saves_and_reports(tmp_path):
    """A short run of the real stage (300 prompts): its checkpoint loads as a classifier."""
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "rm",
                          "--rm-prompts", "300", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    metrics = json.loads(out.strip().splitlines()[-1])
    assert set(metrics) == {"rm_accuracy", "labeler_agreement", "seconds_rm"}
    assert 0.6 < metrics["labeler_agreement"] < 0.95 and metrics["rm_accuracy"] > 0.5
    report = json.loads((tmp_path / "rm" / "rm_report.json").read_text())
    assert report["pairs"] <= 300 and report["accuracy_vs_gold"] == metrics["rm_accuracy"]
    from course_utils.models import load_model
    model, _ = load_model(tmp_path / "rm", kind="classifier")
    assert model.config.num_labels == 1


def test_pipeline_rlhf_stages_report_their_keys(tmp_path):
    """Short runs of the ppo, dpo and grpo stages: every key, finite, checkpoints written."""
    out = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "ppo,dpo,grpo",
                          "--ppo-steps", "3", "--dpo-prompts", "100", "--dpo-steps", "5", "--grpo-steps", "2",
                          "--eval-prompts", "20", "--out", str(tmp_path)],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    metrics = json.loads(out.strip().splitlines()[-1])
    want = {"ppo_gold_gain", "ppo_kl", "dpo_gold_gain", "dpo_kl", "grpo_accuracy_gain", "grpo_accuracy_before",
            "grpo_accuracy_after", "grpo_test_accuracy_before", "grpo_test_accuracy_after",
            "seconds_ppo", "seconds_dpo", "seconds_grpo"}
    assert set(metrics) == want and all(math.isfinite(v) for v in metrics.values())
    assert metrics["ppo_kl"] > 0 and metrics["dpo_kl"] > 0
    assert all((tmp_path / stage / "model.safetensors").exists() for stage in ("ppo", "dpo", "grpo"))


def test_pipeline_rejects_unknown_stages():
    r = subprocess.run([sys.executable, "-m", "course_utils.pipeline", "--stages", "nope"],
                       capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 2 and "unknown stage" in r.stderr


def test_bench_prints_a_table_and_json_last():
    """The benchmark runs end to end, interleaved in rounds (its numbers are printed, never asserted:
    they depend on the machine). Small here: 2 rounds of 10 steps, and the class store's labels/s."""
    out = subprocess.run([sys.executable, "-m", "course_tools.bench", "--skip-chapters", "--rounds", "2",
                          "--steps", "10", "--class-store"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary["ratios"]) == {"sft_vs_trl", "sft_grouped_vs_trl", "sft_grouping_gain", "rm_vs_trl",
                                      "dpo_vs_trl", "pretrain_peak_fraction"} | SAMPLING_RATIOS
    for name, s in summary["ratios"].items():
        assert len(s["rounds"]) == 2 and s["min"] <= s["median"] <= s["max"] and s["min"] > 0, name
    assert summary["unstable"] == sorted(k for k, s in summary["ratios"].items() if not s["stable"])
    assert any(line.startswith("| measurement |") for line in lines)
    compute = [line for line in lines if "step: compute" in line]
    assert len(compute) == 4 and all("% padding" in line and "of peak" in line for line in compute)
    store = summary["class_store"]
    assert store["sustained"]["labels_per_s"] > 0 and store["sustained"]["participants"] == 30
    assert (store["killed_midway"]["lost"], store["killed_midway"]["duplicated"]) == (0, 0)
    assert any(line.startswith("class store, 30 participants:") for line in lines)


SAMPLING_RATIOS = {"sampling_reasoning_vs_generate", "sampling_reasoning_peak_fraction",
                   "sampling_ppo_vs_generate", "sampling_ppo_peak_fraction"}


def test_bench_runs_the_sampling_section_alone():
    """``--only sampling``: the course sampler against ``model.generate`` in tokens/s, and its share of
    the matmul peak; nothing of the other sections (about 20 s)."""
    out = subprocess.run([sys.executable, "-m", "course_tools.bench", "--only", "sampling", "--rounds", "2"],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    lines = out.strip().splitlines()
    summary = json.loads(lines[-1])
    assert set(summary["ratios"]) == SAMPLING_RATIOS and "course_minutes" not in summary
    for name, s in summary["ratios"].items():
        assert len(s["rounds"]) == 2 and 0 < s["min"] <= s["median"] <= s["max"], name
    rows = [line for line in lines if line.startswith("| sampling, ")]
    assert len(rows) == 2 and all("tokens/s" in line and "generate" in line for line in rows)
    compute = [line for line in lines if line.startswith("| course sampler, ")]
    assert len(compute) == 2 and all("prefill alone" in line and "of peak" in line for line in compute)
    assert not any(line.startswith(("| SFT", "| pretraining", "| chapter")) for line in lines)


def test_bench_flags_rounds_that_disagree():
    from course_tools.bench import UNSTABLE_SPREAD, _ratio_cell, spread_summary
    calm = spread_summary([2.0, 2.1, 1.95, 2.05, 2.0])
    assert calm["stable"] and calm["median"] == 2.0 and calm["spread"] == pytest.approx(0.025)   # (2.05 - 2.0) / 2
    noisy = spread_summary([2.0, 2.6, 1.5, 2.05, 1.6])     # two rounds far off, not one
    assert not noisy["stable"] and noisy["spread"] == pytest.approx(0.225) and noisy["spread"] > UNSTABLE_SPREAD
    assert _ratio_cell(noisy).startswith("unstable") and "no result" in _ratio_cell(noisy)
    assert _ratio_cell(calm) == "2.00x (1.95–2.10)"
    one_stray = spread_summary([2.0, 2.1, 1.5, 2.05, 2.0])  # one disturbed round: still a result, its range shows it
    assert one_stray["stable"] and (one_stray["min"], one_stray["max"]) == (1.5, 2.1)
    assert not spread_summary([2.0, 2.5, 2.1])["stable"]    # fewer than 5 rounds: min to max

def test_bench_compare_says_which_ratios_hold_across_runs():
    from course_tools.bench import compare_runs, spread_summary
    run1 = {"ratios": {"a": spread_summary([1.17, 1.20, 1.23]), "b": spread_summary([0.99, 1.0, 1.09]),
                       "c": spread_summary([1.0, 1.5, 2.0])}}
    run2 = {"ratios": {"a": spread_summary([1.16, 1.29, 1.33]), "b": spread_summary([0.98, 1.0, 1.02]),
                       "c": spread_summary([1.5, 1.5, 1.5])}}
    rows = {r["ratio"]: r for r in compare_runs(run2, run1)}
    assert not rows["a"]["holds"]          # 1.29 lies outside 1.17–1.23
    assert rows["b"]["holds"]              # 1.00 in 0.99–1.09 and 1.00 in 0.98–1.02
    assert not rows["c"]["holds"]          # run 1 was unstable: never a result


def test_bench_chance_of_a_median_outside_a_range_matches_simulation():
    """The exact count behind the 11-round default, against 20,000 simulated pairs of runs."""
    import random
    from course_tools.bench import outside_range_probability
    assert outside_range_probability(7, 7) == pytest.approx(2 * 120 / 3432)
    assert outside_range_probability(11, 11) < 0.013 < outside_range_probability(9, 9)
    rng = random.Random(0)
    trials, n, m = 20_000, 7, 7
    misses = 0
    for _ in range(trials):
        old = [rng.random() for _ in range(n)]
        new = sorted(rng.random() for _ in range(m))[m // 2]
        misses += not (min(old) <= new <= max(old))
    # binomial standard error at p = 0.07 over 20,000 trials is 0.0018; 4 of them is 0.0072
    assert abs(misses / trials - outside_range_probability(n, m)) < 0.0072
    with pytest.raises(ValueError, match="odd number"):
        outside_range_probability(7, 6)
