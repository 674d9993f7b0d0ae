"""Execute notebooks in place and report how long each took: ``python -m course_tools.notebooks``.

Used to refresh the stored outputs of the chapters (``make execute``) and to time them.
Each notebook runs in its own folder with the ``python3`` kernel.
``python -m course_tools.notebooks --jupyterlab-form PATHS`` only rewrites the notebooks in the
form JupyterLab saves them (:func:`write`), so that opening and saving one changes no byte.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def jupyterlab_form(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """``nb`` (changed in place) as JupyterLab would save it after opening it, without an edit.

    * ``language_info`` is what the kernel reports (ipykernel's, Python's version included):
      JupyterLab sets it when the kernel starts, and a different value marks the notebook
      dirty, so autosave (every 120 s), Ctrl+S and nbgrader's *Validate* write it back.
    * ``collapsed`` follows ``jupyter.outputs_hidden`` (JupyterLab keeps the two in step).
    * A float with an integral value becomes an int (300.0 -> 300): the notebook travels
      through JavaScript, whose numbers do not keep the difference (ipywidgets' state).
    """
    from ipykernel.ipkernel import IPythonKernel
    nb.metadata["language_info"] = dict(IPythonKernel.language_info)
    for cell in nb.cells:
        hidden = cell.metadata.get("jupyter", {}).get("outputs_hidden")
        if hidden is not None:
            cell.metadata["collapsed"] = hidden
    return _js_numbers(nb)


def _js_numbers(x):
    if isinstance(x, dict):
        for k, v in x.items():
            x[k] = _js_numbers(v)
    elif isinstance(x, list):
        x[:] = [_js_numbers(v) for v in x]
    elif isinstance(x, float) and x.is_integer() and abs(x) < 1e21:
        return int(x)
    return x


def write(nb: nbformat.NotebookNode, path: str | Path) -> None:
    """Write ``nb`` to ``path`` byte for byte as JupyterLab's save would (nbformat's writer)."""
    nbformat.write(jupyterlab_form(nb), path)


def execute(path: str | Path, timeout: int = 900) -> float:
    """Run every cell of the notebook at ``path``, save it with its outputs; return seconds."""
    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    seconds = time.perf_counter() - t0
    write(nb, path)
    return seconds


def main(paths: list[str]) -> dict[str, float]:
    times = {}
    for p in paths:
        times[p] = execute(p)
        print(f"{p}: {times[p]:.0f} s", flush=True)
    print(f"total: {sum(times.values()) / 60:.1f} min")
    return times


if __name__ == "__main__":
    if sys.argv[1:2] == ["--jupyterlab-form"]:
        for p in sys.argv[2:]:
            write(nbformat.read(p, as_version=4), p)
    else:
        main(sys.argv[1:])
