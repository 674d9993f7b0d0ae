"""``python -m course_utils.experiments [--only NAME ...] [--seeds N] [--list]``: run the sweeps."""

from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone

from tqdm.auto import tqdm

from course_utils.experiments import RESULTS, clean_rows, discover, git_revision, write_entry


def run_sweep(sw, seeds: list[int], settings: dict | None = None, progress: bool = True) -> tuple[list, float]:
    """Run ``sw`` over ``seeds``; return (rows, wall seconds)."""
    settings = dict(sw.settings if settings is None else settings)
    rows, t0 = [], time.perf_counter()
    for seed in tqdm(seeds, desc=sw.name, disable=not progress, mininterval=0.5):
        rows.extend(clean_rows(sw.run(seed, **settings), seed))
    return rows, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> dict[str, float]:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", action="append", default=[], help="run only this sweep (repeatable, or comma-separated)")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (0..N-1); default: each sweep's own")
    ap.add_argument("--list", action="store_true", help="list the sweeps and exit")
    args = ap.parse_args(argv)
    registry = discover()
    names = [n for o in args.only for n in o.split(",") if n] or list(registry)
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"unknown sweep(s) {unknown}; known: {sorted(registry)}")
    if args.list:
        for n in names:
            sw = registry[n]
            print(f"{n:28s} chapter {sw.chapter}  {sw.seeds} seeds  {sw.description}")
        return {}
    times = {}
    for n in names:
        sw = registry[n]
        seeds = list(range(args.seeds if args.seeds is not None else sw.seeds))
        rev = git_revision()
        rows, wall = run_sweep(sw, seeds)
        smoke_settings = {**sw.settings, **sw.smoke}
        smoke_rows, _ = run_sweep(sw, [0], smoke_settings, progress=False)
        write_entry(n, {
            "chapter": sw.chapter, "description": sw.description, "settings": sw.settings,
            "seeds": seeds, "rows": rows, "git_revision": rev, "wall_s": round(wall, 1),
            "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "smoke": {"settings": smoke_settings, "rows": smoke_rows},
        })
        times[n] = wall
        print(f"{n}: {len(seeds)} seeds in {wall:.0f} s", flush=True)
    print(f"total: {sum(times.values()) / 60:.1f} min; results in {RESULTS}")
    return times


if __name__ == "__main__":
    main()
