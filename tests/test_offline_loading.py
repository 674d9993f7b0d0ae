"""Hub names load from the local Hugging Face cache only, unless a download is asked for.

Each check runs in a fresh Python process WITHOUT ``HF_HUB_OFFLINE`` (the libraries read it at
import), with an unreachable ``HF_ENDPOINT``, an empty cache of its own (``HF_HUB_CACHE``,
``HF_DATASETS_CACHE``) and every socket connection and DNS look-up replaced by a function that
records the attempt and raises. A hub name that is not cached must raise the course's one-sentence
error without any network attempt; a cached one must load; a download must happen only when asked.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from course_utils.models import SHIPPED

REPO = Path(__file__).resolve().parents[1]
COMMIT = "0123456789abcdef0123456789abcdef01234567"

# Installed before anything else: any connection or DNS look-up is recorded and fails at once
# (a BaseException, so no library retries it as a network error).
GUARD = textwrap.dedent("""
    import json, socket, sys
    ATTEMPTS = []

    class NetworkAttempt(BaseException):
        pass

    def _refuse(*args, **kwargs):
        ATTEMPTS.append(repr(args[1:3] if args and isinstance(args[0], socket.socket) else args[:2]))
        raise NetworkAttempt(ATTEMPTS[-1])

    socket.socket.connect = socket.socket.connect_ex = _refuse
    socket.create_connection = socket.getaddrinfo = _refuse

    def report(**values):
        print("RESULT " + json.dumps(dict(values, attempts=ATTEMPTS)))
""")


def fake_hub_cache(root: Path, repo_id: str, files: list[str] | None = None) -> Path:
    """A Hugging Face hub cache holding ``repo_id`` as the shipped base model (or only ``files`` of it)."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for f in SHIPPED["base"].iterdir():
        if f.is_file() and (files is None or f.name in files):
            shutil.copy(f, snapshot / f.name)
    return snapshot


def fake_dataset_cache(root: Path, repo_id: str) -> None:
    """A ``datasets`` cache holding ``repo_id``'s train split as if ``load_dataset`` had downloaded it."""
    rows = root / "rows.jsonl"
    rows.write_text('{"prompt": "What colour is the cat?", "chosen": "Red.", "rejected": "No idea."}\n' * 3)
    code = textwrap.dedent(f"""
        import glob, json, shutil
        from pathlib import Path
        import datasets
        datasets.load_dataset("json", data_files={str(rows)!r}, split="train", cache_dir={str(root / "build")!r})
        src = next(Path(p) for p in glob.glob({str(root / "build" / "json" / "*" / "*" / "*")!r}) if Path(p).is_dir())
        org, name = {repo_id!r}.split("/")
        dst = Path({str(root / "datasets")!r}) / (org + "___" + name) / "default" / "0.0.0" / "cafe"
        shutil.copytree(src, dst)
        (dst / "json-train.arrow").rename(dst / (name + "-train.arrow"))
        info = json.loads((dst / "dataset_info.json").read_text())
        (dst / "dataset_info.json").write_text(json.dumps(dict(info, config_name="default", dataset_name=name)))
    """)
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=300,
                   env=dict(os.environ, HF_HUB_OFFLINE="1"))


def run_isolated(tmp_path: Path, body: str, **env) -> dict:
    """Run ``GUARD + body`` in a fresh process without HF_HUB_OFFLINE; the dict it ``report``-ed."""
    clean = {k: v for k, v in os.environ.items()
             if k not in {"HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "COURSE_ALLOW_DOWNLOAD"}}
    clean.update(HF_ENDPOINT="http://10.255.255.1", HF_HOME=str(tmp_path / "home"),
                 HF_HUB_CACHE=str(tmp_path / "hub"), HF_DATASETS_CACHE=str(tmp_path / "datasets"),
                 TOKENIZERS_PARALLELISM="false", **env)
    proc = subprocess.run([sys.executable, "-c", GUARD + textwrap.dedent(body)], cwd=REPO, env=clean,
                          capture_output=True, text=True, timeout=600)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


def test_an_uncached_hub_model_fails_at_once_without_a_network_attempt(tmp_path):
    res = run_isolated(tmp_path, """
        import os
        from course_utils.models import ModelNotFoundError, load_model, load_tokenizer
        said = {}
        for case, env, kwargs in [("default", {}, {}), ("offline", {"HF_HUB_OFFLINE": "1"}, {}),
                                  ("explicit no", {"COURSE_ALLOW_DOWNLOAD": "1"}, {"download": False}),
                                  ("offline download", {"HF_HUB_OFFLINE": "1"}, {"download": True})]:
            os.environ.update(env)
            try:
                load_model("HuggingFaceTB/SmolLM2-135M-Instruct", **kwargs)
            except ModelNotFoundError as e:
                said[case] = str(e)
            for k in env:
                del os.environ[k]
        try:
            load_tokenizer("nobody/no-such-model")
        except ModelNotFoundError as e:
            said["tokenizer"] = str(e)
        report(said=said)
    """)
    assert res["attempts"] == []
    said = res["said"]
    assert set(said) == {"default", "offline", "explicit no", "offline download", "tokenizer"}
    command = "python -m course_utils.models download HuggingFaceTB/SmolLM2-135M-Instruct"
    for case in ("default", "offline", "explicit no"):
        assert "not in the local Hugging Face cache" in said[case] and command in said[case], said[case]
        assert "COURSE_ALLOW_DOWNLOAD=1" in said[case] and "download=True" in said[case]
        assert said[case].endswith(".") and said[case].count(". ") == 0, "one sentence"
    assert "unset HF_HUB_OFFLINE" in said["offline"] and "unset" not in said["default"]
    assert "HF_HUB_OFFLINE=1 forbids downloading" in said["offline download"]
    assert "python -m course_utils.models download nobody/no-such-model" in said["tokenizer"]


def test_a_cached_hub_model_and_the_shipped_ones_load_without_the_network(tmp_path):
    snapshot = fake_hub_cache(tmp_path / "hub", "course/tiny-base")
    fake_hub_cache(tmp_path / "hub", "course/config-only", files=["config.json"])
    res = run_isolated(tmp_path, """
        import torch
        from course_utils.models import ModelNotFoundError, load_model, resolve
        cached, tok = load_model("course/tiny-base")
        base, base_tok = load_model("base")
        rm, _ = load_model("rm", kind="classifier")
        x = tok("Tom saw a dog.", return_tensors="pt")["input_ids"]
        with torch.no_grad():
            same = torch.equal(cached(x).logits, base(x).logits)
        try:
            load_model("course/config-only")
            partial = ""
        except ModelNotFoundError as e:
            partial = str(e)
        report(same=same, vocab=(len(tok), len(base_tok)), where=resolve("course/tiny-base"), partial=partial)
    """)
    assert res["attempts"] == []
    assert res["same"] and res["vocab"][0] == res["vocab"][1]
    assert Path(res["where"]) == snapshot
    assert "not in the local Hugging Face cache" in res["partial"]  # config alone is not a model


def test_a_download_happens_only_when_asked(tmp_path):
    """``download=True`` or ``COURSE_ALLOW_DOWNLOAD=1`` calls huggingface_hub's download (replaced here)."""
    res = run_isolated(tmp_path, f"""
        import os, shutil
        import huggingface_hub
        from course_utils.models import ModelNotFoundError, load_model
        calls = []

        def fake_download(repo_id, **kwargs):
            calls.append([repo_id, kwargs.get("allow_patterns"), kwargs.get("ignore_patterns")])
            return shutil.copytree({str(SHIPPED["base"])!r}, {str(tmp_path / "downloaded")!r}, dirs_exist_ok=True)

        huggingface_hub.snapshot_download = fake_download
        load_model("course/remote", download=True)
        os.environ["COURSE_ALLOW_DOWNLOAD"] = "1"
        load_model("course/remote")
        try:
            load_model("course/remote", download=False)
        except ModelNotFoundError:
            calls.append("refused")
        report(calls=calls)
    """)
    assert res["attempts"] == []
    first, second, refused = res["calls"]
    assert first == second and first[0] == "course/remote" and refused == "refused"
    assert "*.safetensors" in first[1] and not any(p.endswith((".bin", ".pt")) for p in first[1])


def test_hub_data_sets_come_from_the_cache_only(tmp_path):
    fake_dataset_cache(tmp_path, "course/tiny-prefs")
    res = run_isolated(tmp_path, """
        from course_utils.real.hub_data import DataNotFoundError, load_preference_rows
        rows = load_preference_rows("course/tiny-prefs")
        try:
            load_preference_rows("nobody/no-such-set")
            said = ""
        except DataNotFoundError as e:
            said = str(e)
        report(n=len(rows), first=rows[0], said=said)
    """)
    assert res["attempts"] == []
    assert res["n"] == 3 and res["first"]["chosen"] == "Red."
    assert res["first"]["prompt"] == [{"role": "user", "content": "What colour is the cat?"}]
    said = res["said"]
    assert "could not load the data set 'nobody/no-such-set'" in said and "not in the local Hugging Face cache" in said
    assert "python -m course_utils.real.hub_data download nobody/no-such-set" in said and said.count(". ") == 0


@pytest.mark.parametrize("flags", [["--stages", "sft"], ["--stages", "sft", "--download"]])
def test_the_pipeline_names_a_missing_hub_model_in_one_sentence(tmp_path, flags):
    """``--model`` with an uncached hub id ends before any stage; with --download (and HF_HUB_OFFLINE) it says why."""
    extra = {"HF_HUB_OFFLINE": "1"} if "--download" in flags else {}
    res = run_isolated(tmp_path, f"""
        import contextlib, io, runpy, sys
        sys.argv = ["pipeline", "--model", "nobody/no-such-model", "--sft-data", "nobody/no-such-set",
                    "--out", {str(tmp_path / "runs")!r}, *{flags!r}]
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                runpy.run_module("course_utils.pipeline", run_name="__main__")
            code = 0
        except SystemExit as e:
            code = e.code
        report(code=str(code), stderr=err.getvalue())
    """, **extra)
    assert res["attempts"] == [] and "Traceback" not in res["stderr"]
    assert "nobody/no-such-model" in res["code"] and "not in the local Hugging Face cache" in res["code"]
    if extra:
        assert "forbids downloading" in res["code"]
    assert not (tmp_path / "runs").exists(), "no stage ran"
