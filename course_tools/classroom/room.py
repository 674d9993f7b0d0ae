"""A room folder: the label store, the join code and instructor key, and the pairs to label.

``<room>/labels.sqlite`` is the store (SQLite, WAL mode); ``<room>/room.json`` keeps the
join code and the instructor key (file mode 0600), so a restarted server keeps both and
every participant's token stays valid. The pairs are sampled once from the SFT model,
as chapter 09 samples its own, and kept in the store.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path

from course_utils.alignment.label_db import LabelDB

#: Words for readable join codes ("tulip-4821"): easy to say aloud and type.
_WORDS = ("tulip", "otter", "maple", "comet", "pebble", "harbor", "lantern", "meadow",
          "falcon", "cedar", "violet", "glacier", "orchard", "ember", "willow", "quartz")


def new_code() -> str:
    """A random join code such as ``maple-4821`` (16 words x 9000 numbers; wrong guesses are rate-limited)."""
    return f"{secrets.choice(_WORDS)}-{secrets.randbelow(9000) + 1000}"


def _write_private(path: Path, text: str) -> None:
    """Write ``path`` atomically with mode 0600 (temporary file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def room_config(room: str | os.PathLike, code: str | None = None) -> dict:
    """The room's ``{"code", "instructor_key"}``, created on first use; ``code`` replaces the join code."""
    path = Path(room) / "room.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg = json.loads(path.read_text()) if path.exists() else {}
    changed = not cfg or (code is not None and code != cfg.get("code"))
    cfg.setdefault("instructor_key", secrets.token_urlsafe(24))
    cfg["code"] = code if code is not None else cfg.get("code") or new_code()
    if not cfg["code"].strip():
        raise ValueError("the join code must not be empty")
    if changed:
        _write_private(path, json.dumps(cfg, indent=1))
    return cfg


def read_pairs(path: str | os.PathLike) -> list[dict]:
    """Pairs from a JSONL file with ``pair_id``, ``prompt``, ``a``, ``b`` on each line."""
    rows = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            row = json.loads(line)
            missing = [k for k in ("pair_id", "prompt", "a", "b") if k not in row]
            if missing:
                raise ValueError(f"{path}:{i}: a pair needs pair_id, prompt, a, b; missing {missing}")
            rows.append(row)
    return rows


def sample_room_pairs(n: int = 40, seed: int = 3) -> list[dict]:
    """``n`` open prompts, two SFT samples each (identical pairs dropped), as chapter 09 makes its own."""
    from course_utils import world
    from course_utils.alignment.reward_model import sample_pairs
    from course_utils.models import load_model
    policy, tok = load_model("sft")
    prompts = world.open_prompts(seed=seed, n=n)["prompt"]
    return list(sample_pairs(policy, tok, prompts, seed=seed, id_prefix="class"))


def open_room(room: str | os.PathLike, pairs: Iterable[Mapping] | None = None,
              n_pairs: int = 40) -> LabelDB:
    """The room's store, with ``pairs`` added, or ``n_pairs`` sampled if it has none yet."""
    db = LabelDB(room)
    if pairs is not None:
        db.add_pairs(pairs)
    if not db.pairs():
        db.add_pairs(sample_room_pairs(n_pairs))
    return db
