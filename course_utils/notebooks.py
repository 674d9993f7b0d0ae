"""Execute notebooks in place and report how long each took: ``python -m course_utils.notebooks``.

Used to refresh the stored outputs of the chapters (``make execute``) and to time them.
Each notebook runs in its own folder with the ``python3`` kernel.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def execute(path: str | Path, timeout: int = 900) -> float:
    """Run every cell of the notebook at ``path``, save it with its outputs; return seconds."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - t0
    nbformat.write(nb, path)
    return seconds


def main(paths: list[str]) -> dict[str, float]:
    times = {}
    for p in paths:
        times[p] = execute(p)
        print(f"{p}: {times[p]:.0f} s", flush=True)
    print(f"total: {sum(times.values()) / 60:.1f} min")
    return times


if __name__ == "__main__":
    main(sys.argv[1:])
