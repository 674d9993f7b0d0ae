"""The preference store never loses a completed label; simulated labelers follow Bradley-Terry."""

import json
import math
import signal
import subprocess
import sys
import textwrap
import warnings

import pytest

from course_utils.alignment.feedback import (PREFERENCE_SCHEMA, PartialLineWarning, PreferenceStore, SimulatedLabeler,
                                   default_labelers, expected_gold_agreement, gold_agreement, gold_of,
                                   inter_labeler_agreement, simulate_labels)
from course_utils.jsonl import JSONLError
from course_utils.alignment.labeling import PreferenceWidget

PROMPT = "Write a sentence about a dog."


def pair(i, a=None, b=None):
    return {"pair_id": f"p{i}", "prompt": PROMPT, "a": a or f"The happy dog {i}.", "b": b or f"A sad cat {i}."}


def test_add_undo_and_views(tmp_path):
    store = PreferenceStore(tmp_path / "l.jsonl", labeler="me")
    store.add(pair(0), "a")
    store.add(pair(1), "b")
    store.add(pair(2), "tie")
    store.add(pair(3), "skip")
    assert store.undo()["pair_id"] == "p3"
    assert store.done_ids() == {"p0", "p1", "p2"}
    prefs = store.preferences().to_list()
    assert [(r["pair_id"], r["chosen"], r["rejected"]) for r in prefs] == [
        ("p0", pair(0)["a"], pair(0)["b"]), ("p1", pair(1)["b"], pair(1)["a"])]
    with pytest.raises(ValueError, match="already judged"):
        store.add(pair(0), "b")
    with pytest.raises(ValueError, match="choice must be"):
        store.add(pair(5), "A")
    with pytest.raises(ValueError, match="missing \\['b'\\]"):
        store.add({"pair_id": "x", "prompt": PROMPT, "a": "y"}, "a")
    # the file holds every event, each line valid against the schema
    lines = [json.loads(x) for x in (tmp_path / "l.jsonl").read_text().splitlines()]
    assert [r["judgement"] for r in lines] == ["prefer", "prefer", "tie", "skip", "undo"]
    assert all(set(r) == set(PREFERENCE_SCHEMA) for r in lines)


def test_reopening_resumes_without_duplicates(tmp_path):
    pairs = [pair(i) for i in range(5)]
    w = PreferenceWidget(pairs, PreferenceStore(tmp_path / "l.jsonl", labeler="me"))
    w.choose("a")
    w.choose("b")
    w.undo()                      # back to p1
    assert w.index == 1
    w.key_box.value = "t"         # the keyboard box: t = tie
    w2 = PreferenceWidget(pairs, PreferenceStore(tmp_path / "l.jsonl", labeler="me"))
    assert w2.index == 2 and w2.n_done == 2
    other = PreferenceWidget(pairs, PreferenceStore(tmp_path / "l.jsonl", labeler="you"))
    assert other.index == 0       # each labeler has their own progress
    for _ in range(3):
        w2.choose("a")
    assert w2.index is None and w2.buttons["a"].disabled and not w2.buttons["undo"].disabled
    w2._act("a")                  # a click after the end is refused in the widget, not a crash
    assert "already judged" in w2.status.value
    ids = [r["pair_id"] for r in PreferenceStore(tmp_path / "l.jsonl").labels("me")]
    assert ids == ["p0", "p1", "p2", "p3", "p4"]


def test_half_written_last_line_is_reported_and_skipped(tmp_path):
    path = tmp_path / "l.jsonl"
    store = PreferenceStore(path, labeler="me")
    for i in range(3):
        store.add(pair(i), "a")
    with open(path, "a") as f:
        f.write('{"pair_id": "p3", "prompt": "Write a sen')       # a crash mid-line
    with pytest.warns(PartialLineWarning, match=r"l\.jsonl:4: the last line was half-written"):
        store = PreferenceStore(path, labeler="me")
    assert store.done_ids() == {"p0", "p1", "p2"} and store.recovered.startswith('{"pair_id": "p3"')
    assert (tmp_path / "l.jsonl.partial").read_text().startswith('{"pair_id": "p3"')
    store.add(pair(3), "b")                                      # lands on a line of its own
    again = PreferenceStore(path, labeler="me")                  # no warning the second time
    assert again.recovered is None and again.done_ids() == {"p0", "p1", "p2", "p3"}


def test_damage_before_the_last_line_is_an_error(tmp_path):
    path = tmp_path / "l.jsonl"
    store = PreferenceStore(path, labeler="me")
    store.add(pair(0), "a")
    good = path.read_text()
    path.write_text("{not json}\n" + good)
    with pytest.raises(JSONLError, match=r"l\.jsonl:1: not valid JSON"):
        PreferenceStore(path)
    row = json.loads(good)
    path.write_text(json.dumps({**row, "judgement": "maybe"}) + "\n")
    with pytest.raises(JSONLError, match=r":1: field 'judgement' must be one of"):
        PreferenceStore(path)
    path.write_text(json.dumps({k: v for k, v in row.items() if k != "labeler"}) + "\n")
    with pytest.raises(JSONLError, match=r":1: missing field 'labeler'"):
        PreferenceStore(path)


WRITER = textwrap.dedent("""
    import sys
    from course_utils.alignment.feedback import PreferenceStore
    from course_utils.alignment.labeling import PreferenceWidget
    pairs = [{"pair_id": f"p{i}", "prompt": "Write a sentence about a dog.",
              "a": "The happy dog runs. " * 20, "b": f"A dog {i}."} for i in range(100000)]
    w = PreferenceWidget(pairs, PreferenceStore(sys.argv[1], labeler="me"))
    print("ready", flush=True)
    while True:
        row = w.choose("a")             # returns after the line is written and fsync-ed
        print(row["pair_id"], flush=True)
""")


def test_kill_9_while_labeling_loses_no_completed_label(tmp_path):
    path = tmp_path / "labels.jsonl"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    completed = []
    assert proc.stdout.readline().strip() == "ready"
    for line in proc.stdout:
        completed.append(line.strip())
        if len(completed) == 300:
            proc.send_signal(signal.SIGKILL)   # no clean-up, no flush of anything pending
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    with warnings.catch_warnings():   # a line cut off by the kill is reported, and allowed
        warnings.simplefilter("ignore", PartialLineWarning)
        store = PreferenceStore(path, labeler="me")
    ids = [r["pair_id"] for r in store.labels("me")]
    assert ids[:len(completed)] == completed               # every confirmed label, in order
    assert len(ids) - len(completed) <= 2                  # at most the ones in flight
    assert len(set(ids)) == len(ids)                       # no duplicates
    w = PreferenceWidget([{"pair_id": f"p{i}", "prompt": PROMPT, "a": "x y z w.", "b": "y."}
                          for i in range(len(ids) + 3)], store)
    assert w.index == len(ids)                             # resumes right after the last one


# ---------------------------------------------------------------------------------
# Simulated labelers
# ---------------------------------------------------------------------------------
def test_labeler_probability_is_bradley_terry():
    lab = SimulatedLabeler("x", beta=2.0)
    a, b = "The happy dog runs in the park.", "The sad dog runs in the park."
    d = gold_of(PROMPT, a) - gold_of(PROMPT, b)
    assert d == 1.0
    assert lab.prob_a(PROMPT, a, b) == pytest.approx(1 / (1 + math.exp(-2.0 * d)))
    assert lab.prob_a(PROMPT, a, a) == 0.5


def test_labelers_are_reproducible_and_as_noisy_as_their_beta():
    pairs = [pair(i, "The happy dog runs in the park.", "The sad dog runs in the park.") for i in range(3000)]
    noisy, careful = SimulatedLabeler("n", beta=0.5), SimulatedLabeler("c", beta=4.0)
    assert [noisy.choose(p) for p in pairs[:50]] == [noisy.choose(p) for p in pairs[:50]]
    for lab in (noisy, careful):
        rows = simulate_labels(pairs, [lab])
        expected = expected_gold_agreement(pairs, lab.beta)      # sigma(beta * 1)
        assert gold_agreement(rows) == pytest.approx(expected, abs=0.03)
    assert expected_gold_agreement(pairs, 0.5) < expected_gold_agreement(pairs, 4.0)


def test_agreement_between_labelers():
    pairs = [pair(i, "The happy dog runs in the park.", "The sad dog runs in the park.") for i in range(2000)]
    labs = [SimulatedLabeler("a", 2.0), SimulatedLabeler("b", 2.0)]
    rows = simulate_labels(pairs, labs, every_labeler=True)
    p = 1 / (1 + math.exp(-2.0))
    assert len(rows) == 4000
    assert inter_labeler_agreement(rows) == pytest.approx(p * p + (1 - p) * (1 - p), abs=0.03)
    with pytest.raises(ValueError, match="no pair was judged by two"):
        inter_labeler_agreement(simulate_labels(pairs[:10], labs))


def test_simulated_labels_go_into_a_store_once(tmp_path):
    store = PreferenceStore(tmp_path / "sim.jsonl", labeler="me", source="simulated")
    labs = default_labelers()
    first = simulate_labels([pair(i) for i in range(9)], labs, store=store)
    again = simulate_labels([pair(i) for i in range(9)], labs, store=store)
    assert len(first) == 9 and len(again) == 0 and len(PreferenceStore(tmp_path / "sim.jsonl")) == 9
