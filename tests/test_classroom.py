"""Class mode: the shared label store, the class server, the participants' queue, the widget on it.

The concurrency test runs 30 simulated participants against a real server process that is
killed with SIGKILL midway and restarted; every label must then be in the room exactly once.
"""

import contextlib
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import uvicorn

from course_tools.classroom.dashboard import Room, class_ppo, fleiss_kappa
from course_tools.classroom.server import Limits, make_app
from course_tools.classroom.simulate import ServerProcess, free_port, simulate_class, synthetic_pairs, wait_until
from course_utils.alignment.class_store import ClassStore, JoinError, label_store
from course_utils.alignment.feedback import PreferenceStore
from course_utils.alignment.label_db import LabelDB
from course_utils.alignment.labeling import PreferenceWidget

REPO = Path(__file__).resolve().parents[1]
PAIRS = synthetic_pairs(12)
CODE = "maple-1234"


def call(url, method, path, body=None, token=None, raw=None, headers=None):
    """(status, decoded JSON) of one request; ``raw`` bytes are sent as they are."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    h = {"Content-Type": "application/json", **(headers or {})}
    if token:
        h["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url + path, data=data, headers=h, method=method)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


@contextlib.contextmanager
def app_server(app):
    """The app on 127.0.0.1 in a thread of this process (for the fast request-level tests)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the test server's start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def room(tmp_path):
    db = LabelDB(tmp_path / "room")
    db.add_pairs(PAIRS)
    return db


def _event(label_id, pair, judgement="prefer", chosen=None, **extra):
    return {"label_id": label_id, "pair_id": pair["pair_id"], "judgement": judgement,
            "chosen": pair["a"] if chosen is None else chosen, **extra}


def test_bad_input_gets_a_clear_4xx_and_changes_nothing(room):
    app = make_app(room, CODE, "instructor-key")
    with app_server(app) as url:
        assert call(url, "POST", "/join", {"code": "wrong", "name": "ana"})[0] == 403
        status, ana = call(url, "POST", "/join", {"code": CODE, "name": "ana"})
        assert status == 201 and ana["token"]
        assert call(url, "POST", "/join", {"code": CODE, "name": "ana"})[0] == 409       # name taken
        assert call(url, "POST", "/join", {"code": CODE, "name": "<script>"})[0] == 422
        ben = call(url, "POST", "/join", {"code": CODE, "name": "ben"})[1]["token"]
        status, out = call(url, "POST", "/labels", _event("ana-1", PAIRS[0]), ana["token"])
        assert status == 201 and out["label"]["labeler"] == "ana" and not out["duplicate"]
        before = room.rows()

        cases = {
            "no token": (401, dict(body=_event("x-1", PAIRS[1]))),
            "unknown token": (401, dict(body=_event("x-2", PAIRS[1]), token="nope")),
            "malformed JSON": (400, dict(raw=b'{"label_id": "x-3", ', token=ben)),
            "not an object": (422, dict(body=[1, 2], token=ben)),
            "missing field": (422, dict(body={"label_id": "x-4", "pair_id": PAIRS[1]["pair_id"]}, token=ben)),
            "bad label id": (422, dict(body=_event("x/../5", PAIRS[1]), token=ben)),
            "unknown pair id": (404, dict(body={**_event("x-6", PAIRS[1]), "pair_id": "nope"}, token=ben)),
            "text not the pair's": (422, dict(body=_event("x-7", PAIRS[1], chosen="something else"), token=ben)),
            "another's label id": (409, dict(body=_event("ana-1", PAIRS[0]), token=ben)),
            "undo another's label": (409, dict(body=_event("x-8", PAIRS[0], "undo", undoes="ana-1"), token=ben)),
            "judged already": (409, dict(body=_event("ana-2", PAIRS[0], chosen=PAIRS[0]["b"]), token=ana["token"])),
            "10 MB body": (413, dict(raw=b"{" + b" " * (10 << 20) + b"}", token=ben)),
        }
        for name, (want, kwargs) in cases.items():
            status, out = call(url, "POST", "/labels", **kwargs)
            assert status == want, (name, status, out)
            assert out.get("error"), name
            assert room.rows() == before, f"{name} changed the store"
        assert call(url, "GET", "/pairs")[0] == 401
        assert call(url, "GET", "/export", token="wrong")[0] == 403
        assert call(url, "GET", "/export", token="instructor-key")[1]["labels"] == before
        assert Room.fetch(url, "instructor-key").rows == before   # the dashboard, from another machine
        assert call(url, "DELETE", "/labels", token=ben)[0] == 405 and room.rows() == before



def test_a_label_flood_gets_429_and_stores_nothing_more(room):
    with app_server(make_app(room, CODE, "k", Limits(label_rate=0.01, label_burst=5))) as url:
        token = call(url, "POST", "/join", {"code": CODE, "name": "ben"})[1]["token"]
        statuses = [call(url, "POST", "/labels", _event(f"ben-{i}", PAIRS[i]), token)[0] for i in range(9)]
        assert statuses == [201] * 5 + [429] * 4
        assert [r["label_id"] for r in room.rows()] == [f"ben-{i}" for i in range(5)]
        status, out = call(url, "POST", "/labels", _event("ben-9", PAIRS[9]), token)
        assert status == 429 and "slow down" in out["error"]


def test_wrong_join_codes_are_rate_limited(room):
    with app_server(make_app(room, CODE, "k", Limits(wrong_code_burst=3, wrong_code_rate=0.001))) as url:
        assert [call(url, "POST", "/join", {"code": f"guess-{i}", "name": "eve"})[0]
                for i in range(5)] == [403, 403, 403, 429, 429]
        assert call(url, "POST", "/join", {"code": CODE, "name": "eve"})[0] == 429  # even the right one, for now
        assert room.participants() == []


def test_resending_a_label_counts_it_once(room):
    with app_server(make_app(room, CODE, "k")) as url:
        token = call(url, "POST", "/join", {"code": CODE, "name": "ana"})[1]["token"]
        first = call(url, "POST", "/labels", _event("same-id", PAIRS[2], chosen=PAIRS[2]["b"]), token)
        again = call(url, "POST", "/labels", _event("same-id", PAIRS[2], chosen=PAIRS[2]["b"]), token)
        assert (first[0], again[0]) == (201, 200) and again[1]["duplicate"]
        assert first[1]["label"] == again[1]["label"] and room.count() == 1


def test_the_server_answers_under_a_hub_service_prefix(room, tmp_path):
    with app_server(make_app(room, CODE, "k", prefix="/services/class/")) as url:
        assert call(url, "GET", "/health")[0] == 404
        store = ClassStore(url + "/services/class", "ana", code=CODE, state_dir=tmp_path / "ana", retry_every=0)
        store.add(store.pairs()[0], "a")
        assert store.pending == 0 and room.count() == 1


def _listening_addresses(port):
    """Local addresses with a listening TCP socket on ``port`` (Linux /proc/net/tcp)."""
    out = []
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        ip, p = local.split(":")
        if int(p, 16) == port and state == "0A":
            out.append(".".join(str(int(ip[i:i + 2], 16)) for i in (6, 4, 2, 0)))
    return out


def test_the_server_binds_to_localhost_unless_told_otherwise(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    with ServerProcess(tmp_path / "room", CODE, tmp_path / "pairs.jsonl") as server:
        assert _listening_addresses(server.port) == ["127.0.0.1"]


def test_thirty_participants_and_a_killed_server_lose_nothing_and_count_nothing_twice():
    report = simulate_class(n_participants=30, pairs_each=20, kill=True)
    print(json.dumps(report))
    assert report["kill"]["max_queued"] > 0, "no label was queued while the server was down"
    assert report["lost"] == 0 and report["lost_acknowledged"] == 0
    assert report["duplicated"] == 0 and report["not_journalled"] == 0
    assert report["stored"] == report["labels_sent"] == report["acknowledged"]
    assert report["participants_whose_view_differs"] == 0 and report["rejected"] == 0


def test_offline_labels_are_queued_and_replayed_once(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS))
    server = ServerProcess(tmp_path / "room", CODE, tmp_path / "pairs.jsonl")
    server.start()
    state = tmp_path / "ana"
    store = ClassStore(server.url, "ana", code=CODE, state_dir=state, retry_every=0)
    store.add(PAIRS[0], "a")
    server.kill()                                       # the Wi-Fi drops
    for pair, choice in zip(PAIRS[1:5], "abab"):
        store.add(pair, choice)
    store.undo()
    store.add(PAIRS[4], "tie")
    assert store.pending == 6 and "unreachable" in store.last_error
    store.close()
    again = ClassStore(server.url, "ana", code=CODE, state_dir=state, retry_every=0)  # a new kernel
    assert again.pending == 6 and again.done_ids() == {p["pair_id"] for p in PAIRS[:5]}
    server.start()                                      # back on line
    assert again.flush() == 6 and again.pending == 0
    (state / "acked.txt").unlink()                      # as if no acknowledgement had arrived
    replay = ClassStore(server.url, "ana", code=CODE, state_dir=state, retry_every=0)  # re-sends all 7 at once
    assert replay.pending == 0 and len((state / "acked.txt").read_text().split()) == 7
    server.stop()
    room = Room.open(tmp_path / "room")
    assert len(room.rows) == 7 and len({r["label_id"] for r in room.rows}) == 7
    assert [(r["pair_id"], r["vote"]) for r in room.live] == [
        ("sim0000", "a"), ("sim0001", "a"), ("sim0002", "b"), ("sim0003", "a"), ("sim0004", "tie")]


def test_a_refused_label_is_reported_and_not_kept(tmp_path, room):
    store = ClassStore(room.folder, "ana", state_dir=tmp_path / "ana", retry_every=0)
    with pytest.raises(ValueError, match="unknown pair id"), pytest.warns(UserWarning, match="refused label"):
        store.add({"pair_id": "nope", "prompt": "p", "a": "x", "b": "y"}, "a")
    assert store.pending == 0 and store.labels() == [] and store.rejected[0]["status"] == 404


def test_the_widget_labels_through_the_server(tmp_path):
    (tmp_path / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PAIRS[:4]))
    with ServerProcess(tmp_path / "room", CODE, tmp_path / "pairs.jsonl") as server:
        store = ClassStore(server.url, "ana", code=CODE, state_dir=tmp_path / "ana", retry_every=0)
        widget = PreferenceWidget(store.pairs(), store)
        widget.choose("a")
        widget.choose("b")
        assert widget.undo()["pair_id"] == "sim0001" and widget.index == 1
        widget.choose("tie")
        assert widget.n_done == 2 and widget.index == 2
        with pytest.raises(JoinError, match="wrong join code"):
            ClassStore(server.url, "ben", code="wrong", state_dir=tmp_path / "ben", retry_every=0)
        ben = ClassStore(server.url, "ben", code=CODE, state_dir=tmp_path / "ben", retry_every=0)
        PreferenceWidget(ben.pairs(), ben).choose("b")
        rows = [(r["labeler"], r["pair_id"], r["judgement"]) for r in Room.open(tmp_path / "room").rows]
        assert rows == [("ana", "sim0000", "prefer"), ("ana", "sim0001", "prefer"), ("ana", "sim0001", "undo"),
                        ("ana", "sim0001", "tie"), ("ben", "sim0000", "prefer")]
        resumed = PreferenceWidget(store.pairs(), ClassStore(server.url, "ana", code=CODE,
                                                             state_dir=tmp_path / "ana", retry_every=0))
        assert resumed.index == 2 and resumed.n_done == 2
        server.kill()                                   # the Wi-Fi drops: labelling goes on
        resumed.choose("b")
        assert resumed.index == 3 and "1 saved here, waiting for the class server" in resumed.header.value
        server.start()
        assert resumed.store.flush() == 1 and len(Room.open(tmp_path / "room").rows) == 6


_WRITER = """
import sys
from course_tools.classroom.simulate import synthetic_pairs
from course_utils.alignment.class_store import ClassStore
store = ClassStore(sys.argv[1], sys.argv[2], state_dir=sys.argv[3], retry_every=0)
for p in synthetic_pairs(12):
    store.add(p, "a")
"""


def test_the_embedded_store_takes_several_processes_at_once(tmp_path, room):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(room.folder), f"p{i}", str(tmp_path / f"p{i}")],
                              env=env) for i in range(3)]
    assert [p.wait(120) for p in procs] == [0, 0, 0]
    assert room.count() == 36 and len(room.live()) == 36


def test_one_setting_switches_the_chapter_store_to_the_class(tmp_path, room, monkeypatch):
    monkeypatch.delenv("COURSE_CLASS", raising=False)
    mine = label_store(tmp_path / "mine.jsonl")
    assert type(mine) is PreferenceStore
    monkeypatch.setenv("COURSE_CLASS", str(room.folder))
    monkeypatch.setenv("COURSE_CLASS_NAME", "ana")
    monkeypatch.setenv("HOME", str(tmp_path))
    store = label_store(tmp_path / "mine.jsonl", retry_every=0)
    assert isinstance(store, ClassStore) and store.labeler == "ana"
    store.add(PAIRS[0], "b")
    assert room.live()[0]["chosen"] == PAIRS[0]["b"]


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss (1971) as worked in Wikipedia's "Fleiss' kappa": 10 subjects, 14 raters, 5 categories.
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
             [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert fleiss_kappa(table) == pytest.approx(0.210, abs=5e-4)
    assert fleiss_kappa([[3, 0], [0, 3], [3, 0]]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two votes"):
        fleiss_kappa([[1, 0]])


def test_the_dashboard_numbers(room):
    good, bad = "The happy dog runs in the park.", "The sad dog sleeps."
    room.add_pairs([{"pair_id": "g1", "prompt": "Write a sentence about a dog.", "a": good, "b": bad}])
    for name, choice in (("ana", good), ("ben", good), ("cy", bad)):
        room.record({"label_id": f"{name}-g1", "pair_id": "g1", "judgement": "prefer", "chosen": choice}, name)
    room.record({"label_id": "cy-s", "pair_id": PAIRS[0]["pair_id"], "judgement": "skip"}, "cy")
    r = Room.open(room.folder)
    assert r.counts()["cy"] == {"labels": 2, "b": 1, "skip": 1}
    per, overall = r.gold_agreement()
    assert (per["ana"].value, per["cy"].value, overall.value, overall.n) == (1.0, 0.0, pytest.approx(2 / 3), 3)
    assert r.kappa() == pytest.approx(fleiss_kappa([[2, 1, 0]]))
    assert len(r.preferences()) == 3 and r.export_jsonl(room.folder / "out.jsonl") == 4


def test_class_ppo_scores_the_same_samples_before_and_after():
    from course_utils.models import load_model
    rm, tok = load_model("rm", kind="classifier")
    runs = [class_ppo(rm, tok, steps=1, batch_size=8, n_eval_prompts=12, progress=False) for _ in range(2)]
    a = runs[0]
    assert len(a["history"]) == 1 and {"gold", "proxy", "kl"} <= set(a["history"][0])
    assert (a["before"].n, a["after"].n, a["gain"].n) == (12, 12, 12)
    assert runs[1]["before"] == a["before"] and runs[1]["after"] == a["after"]   # seeded: one result
    assert a["gain"].value == pytest.approx(a["after"].value - a["before"].value)
