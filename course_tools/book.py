"""Build the course as a static website: ``python -m course_tools.book`` (``make book``).

The site is built by jupyter-book 1.x (Sphinx) from the chapter notebooks as stored, with
their outputs; nothing is executed. Every file a page loads is in the built folder, so the
site works without a network:

* MathJax 3 is copied from the ``sphinx-mathjax-offline`` package into the book's static
  folder (``mathjax_path: mathjax/tex-chtml.js`` in ``book/_config.yml``), not loaded from a CDN.
* A notebook stores widgets (tqdm progress bars, sliders, the labeling widget) as views of
  models whose state is saved in its metadata. Drawing them would need the ipywidgets
  JavaScript from a CDN, so :func:`static_widgets` replaces each view with plain HTML: the
  widget's own static form where it has one (:mod:`course_tools.selfcheck`), a progress bar
  at its final value, or a note that the widget is live in JupyterLab.
* Figures are the PNG outputs of the notebooks; Sphinx writes them as image files.

Steps: the book's configuration (``book/``) and a copy of ``chapters/*.ipynb`` with static
widgets go to ``build/book-src``; ``jupyter-book build`` writes ``build/book/_build/html``.
Open ``build/book/_build/html/index.html`` in a browser.
"""

from __future__ import annotations

import argparse
import html
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def mathjax_folder() -> Path:
    """The folder holding MathJax 3 (``tex-chtml.js`` and its fonts) in the installed package."""
    dist = importlib.metadata.distribution("sphinx-mathjax-offline")
    folder = Path(dist.locate_file("sphinx-mathjax-offline/static/mathjax"))
    if not (folder / "tex-chtml.js").is_file():
        raise FileNotFoundError(f"MathJax not found in {folder}: reinstall sphinx-mathjax-offline")
    return folder


def _model_state(states: dict, ref: str) -> dict:
    """The saved state of the widget model ``ref`` (``"IPY_MODEL_<id>"`` or ``"<id>"``)."""
    return states.get(ref.removeprefix("IPY_MODEL_"), {}).get("state", {})


def widget_html(model_id: str, states: dict) -> str:
    """Static HTML for one widget view, from the saved state of its model and children.

    A tqdm bar (``HBox(HTML, FloatProgress, HTML)``) becomes its text and an HTML
    ``<progress>`` at the value it ended with; any other widget becomes a short note.
    """
    model = states.get(model_id)
    if model is None:
        return "<p class='course-widget'><em>(a widget: run the notebook to see it)</em></p>"
    children = [_model_state(states, ref) for ref in model.get("state", {}).get("children", [])]
    kinds = [states.get(ref.removeprefix("IPY_MODEL_"), {}).get("model_name")
             for ref in model.get("state", {}).get("children", [])]
    if kinds == ["HTMLModel", "FloatProgressModel", "HTMLModel"]:
        left, bar, right = children
        # The two HTML widgets hold HTML already (tqdm escapes its text): insert as is.
        return ("<div class='course-progress' style='display: flex; gap: 0.5em; "
                "align-items: center; font-family: monospace'>"
                f"<span>{left.get('value', '')}</span>"
                f"<progress value='{bar.get('value', 0)}' max='{bar.get('max', 100)}'></progress>"
                f"<span>{right.get('value', '')}</span></div>")
    name = model.get("model_name", "widget").removesuffix("Model")
    return (f"<p class='course-widget'><em>(an interactive {html.escape(name)} widget: "
            "open this notebook in JupyterLab with <code>make lab</code> to use it)</em></p>")


def static_widgets(nb: nbformat.NotebookNode) -> int:
    """Replace every widget view in ``nb`` by static HTML (in place); return how many."""
    states = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    replaced = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_VIEW in data:
                # A widget that carries its own static form (the self-check questions) keeps it.
                static = data.get("text/html") or widget_html(data[WIDGET_VIEW]["model_id"], states)
                output["data"] = {"text/html": static}
                replaced += 1
    nb.metadata.pop("widgets", None)
    return replaced


def prepare_source(src: Path, chapters: list[Path]) -> int:
    """Fill ``src`` with the book configuration, MathJax and the chapters; return widgets replaced."""
    if src.exists():
        shutil.rmtree(src)
    (src / "chapters").mkdir(parents=True)
    for name in ("_config.yml", "_toc.yml", "course_book.py"):
        shutil.copy2(ROOT / "book" / name, src / name)
    shutil.copytree(mathjax_folder(), src / "book_static" / "mathjax")
    replaced = 0
    for path in chapters:
        nb = nbformat.read(path, as_version=4)
        replaced += static_widgets(nb)
        nbformat.write(nb, src / "chapters" / path.name)
    return replaced


def build(out: Path = ROOT / "build" / "book", src: Path = ROOT / "build" / "book-src") -> Path:
    """Build the website; return the path of its ``index.html``.

    Sphinx warnings are errors (``-W``), so a broken figure, link or table of contents
    stops the build instead of shipping a page with a hole in it.
    """
    chapters = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))
    if not chapters:
        raise FileNotFoundError(f"no chapter notebooks in {ROOT / 'chapters'}")
    replaced = prepare_source(src, chapters)
    print(f"{len(chapters)} chapters, {replaced} widget views made static", flush=True)
    if out.exists():
        shutil.rmtree(out)
    jb = Path(sys.executable).with_name("jupyter-book")
    subprocess.run([str(jb), "build", str(src), "--path-output", str(out), "-W", "-n",
                    "--keep-going", "--builder", "html"], check=True)
    index = out / "_build" / "html" / "index.html"
    if not index.is_file():
        raise FileNotFoundError(f"the build wrote no {index}")
    print(f"open {index}")
    return index


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book",
                        help="output folder (the site is written to OUT/_build/html)")
    args = parser.parse_args(argv)
    build(args.out.resolve(), src=args.out.resolve().parent / (args.out.name + "-src"))


if __name__ == "__main__":
    main()
