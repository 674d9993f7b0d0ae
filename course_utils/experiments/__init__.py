"""Multi-seed sweeps behind the chapters' findings: ``python -m course_utils.experiments``.

A chapter runs one seed live, in about two minutes. A sentence such as "the baseline helps"
needs more than one seed, and several seeds do not fit in a chapter's time. So every
comparison a chapter states as a finding has a *sweep* here: a function that runs one seed
of the experiment and returns rows of numbers. ``make experiments`` (or
``python -m course_utils.experiments [--only NAME] [--seeds N]``) runs each sweep over its
seeds and writes every seed's rows, the settings, the code's git revision and the wall time
to ``course_utils/assets/experiments.json``, which is committed. Chapters read it with
:func:`load` and plot means with intervals (:mod:`course_utils.evaluation.uncertainty`) beside their
own live run.

Each stored sweep also holds a *smoke* row set: seed 0 at a reduced size, which a test
re-runs and compares exactly, so the stored numbers are known to come from this code.

This is course machinery: chapters read its results; nothing in the teaching modules imports it.
"""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from course_utils.evaluation.uncertainty import mean_ci

RESULTS = Path(__file__).resolve().parent.parent / "assets" / "experiments.json"
Row = dict[str, float | int | str]


@dataclass
class Sweep:
    """One experiment over seeds.

    ``run(seed, **settings)`` returns a list of rows: each row names its condition (e.g.
    ``{"arm": "baseline"}``) and holds its measured numbers. ``smoke`` overrides some
    settings to make a reduced run for the reproduction test.
    """
    name: str
    chapter: str
    description: str
    run: Callable[..., list[Row]]
    settings: dict = field(default_factory=dict)
    smoke: dict = field(default_factory=dict)
    seeds: int = 5


REGISTRY: dict[str, Sweep] = {}


def sweep(name: str, chapter: str, description: str, settings: Mapping | None = None,
          smoke: Mapping | None = None, seeds: int = 5) -> Callable:
    """Decorator: register ``run(seed, **settings) -> list[row]`` as the sweep ``name``."""
    def register(run: Callable[..., list[Row]]) -> Callable[..., list[Row]]:
        if name in REGISTRY:
            raise ValueError(f"two sweeps are named {name!r}")
        REGISTRY[name] = Sweep(name, chapter, description, run, dict(settings or {}),
                               dict(smoke or {}), seeds)
        return run
    return register


def discover() -> dict[str, Sweep]:
    """Import every sweep module of this package (``sweeps_*.py``) and return the registry."""
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("sweeps_"):
            importlib.import_module(f"{__name__}.{info.name}")
    return REGISTRY


def _clean(value):
    """Round floats to 6 decimals so that stored rows compare exactly after a re-run."""
    if isinstance(value, float):
        return round(value, 6)
    if hasattr(value, "item"):  # a NumPy or torch scalar
        return _clean(value.item())
    return value


def clean_rows(rows: Iterable[Mapping], seed: int) -> list[Row]:
    out = []
    for r in rows:
        if not isinstance(r, Mapping) or not r:
            raise ValueError(f"a sweep must return a list of non-empty dicts, got {r!r}")
        out.append({"seed": seed, **{k: _clean(v) for k, v in r.items()}})
    return out


def git_revision() -> str:
    """The code's git commit (``-dirty`` if ``course_utils`` has uncommitted changes), or ``unknown``.

    The results file itself does not count as a change.
    """
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "course_utils",
                                ":!course_utils/assets/experiments.json"], cwd=root,
                               capture_output=True, text=True, check=True).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def read_results(path: Path = RESULTS) -> dict:
    """The whole results file (``{"sweeps": {name: entry}}``); empty if there is none yet."""
    if not Path(path).exists():
        return {"sweeps": {}}
    try:
        data = json.loads(Path(path).read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path} is not valid JSON ({e}); re-run `make experiments`") from e
    if "sweeps" not in data:
        raise ValueError(f"{path} has no 'sweeps' field; re-run `make experiments`")
    return data


def write_entry(name: str, entry: dict, path: Path = RESULTS) -> None:
    """Replace one sweep's entry in the results file, atomically (temporary file, then rename)."""
    data = read_results(path)
    data["sweeps"][name] = entry
    data["sweeps"] = dict(sorted(data["sweeps"].items()))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


@dataclass
class SweepResult:
    """A stored sweep: its settings, every seed's rows, and summaries with 95% intervals."""
    name: str
    chapter: str
    description: str
    settings: dict
    seeds: list[int]
    rows: list[Row]
    git_revision: str
    wall_s: float

    def select(self, **where) -> list[Row]:
        """Rows whose fields equal every ``key=value`` given."""
        return [r for r in self.rows if all(r.get(k) == v for k, v in where.items())]

    def values(self, metric: str, **where) -> list[float]:
        """``metric`` of every row matching ``where``, in seed order."""
        rows = self.select(**where)
        if not rows:
            raise KeyError(f"sweep {self.name!r} has no rows with {where}")
        missing = [r for r in rows if metric not in r]
        if missing:
            raise KeyError(f"sweep {self.name!r}: rows {missing[:1]} have no {metric!r}")
        return [float(r[metric]) for r in rows]

    def levels(self, key: str) -> list:
        """The distinct values of ``key`` in the order they first appear."""
        seen: list = []
        for r in self.rows:
            if key in r and r[key] not in seen:
                seen.append(r[key])
        return seen

    def summary(self, metric: str, by: str | None = None, **where) -> dict:
        """Mean and 95% t interval over seeds of ``metric``, one per level of ``by``."""
        if by is None:
            return {None: mean_ci(self.values(metric, **where))}
        return {lvl: mean_ci(self.values(metric, **{by: lvl}, **where)) for lvl in self.levels(by)}

    def table(self, metrics: Sequence[str], by: str, digits: int = 3, **where) -> str:
        """A text table: one line per level of ``by``, mean [95% interval] of each metric."""
        lines = [f"{self.name}: {len(self.seeds)} seeds, mean [95% interval over seeds]"]
        for lvl in self.levels(by):
            if where and not self.select(**{by: lvl}, **where):
                continue
            cells = [mean_ci(self.values(m, **{by: lvl}, **where)).fmt(digits).rsplit(" (", 1)[0]
                     for m in metrics]
            lines.append(f"  {by}={lvl}: " + "   ".join(f"{m} {c}" for m, c in zip(metrics, cells)))
        return "\n".join(lines)


def load(name: str, path: Path = RESULTS) -> SweepResult:
    """The stored results of sweep ``name`` (run ``make experiments`` to produce them)."""
    entry = read_results(path)["sweeps"].get(name)
    if entry is None:
        raise KeyError(f"the results file {Path(path).name} holds no sweep {name!r}; "
                       f"run `python -m course_utils.experiments --only {name}`")
    return SweepResult(name, entry["chapter"], entry["description"], entry["settings"],
                       entry["seeds"], entry["rows"], entry["git_revision"], entry["wall_s"])

