"""Every chapter from 01 on ends with exercises a learner does, each with a worked answer.

The rules (docs/maintainers.md, "Self-check questions and exercises"):

* at least four exercises, numbered 1, 2, 3, ... as bold headings
  ``**N. Kind: title** (paper|reading|notebook, M minutes)``;
* among them at least one of each kind: *Predict, then run*; *Change and measure*;
  *Derive* or *Compute*; *Explain this output*;
* every exercise has a worked answer in ``<details><summary>Answer</summary>``;
* a predict-then-run exercise has a cell for the prediction (``prediction = ...``) and a
  reveal cell whose stored output is folded (tag ``hide-output``, ``outputs_hidden``);
* a change-and-measure exercise has a ready cell with its knob as an UPPER_CASE constant and,
  after the answer, a folded cell that measured the outcome the answer gives.

And every chapter from 02 on has a graded lab (labs/README.md's "after chapter" column).
"""

import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parent.parent
# Chapter 16 (the real-model track) is an appendix that runs only with a GPU and the hub: its
# code cells are stored without outputs (nbval skips them offline), so it can hold no folded
# reveal or measured-answer outputs, and it has no graded lab. Its exercises are checked below
# for numbering and answers only.
APPENDICES = {"16_real_model.ipynb"}
ALL_CHAPTERS = sorted(p for p in (REPO / "chapters").glob("*.ipynb") if p.name[:2] != "00")
CHAPTERS = [p for p in ALL_CHAPTERS if p.name not in APPENDICES]
HEADING = re.compile(r"^\*\*(\d+)\. ([^:*]+): [^*]+\*\* \((paper|reading|notebook), (\d+) minutes\)", re.M)
KINDS = {"Predict, then run": "predict", "Change and measure": "change", "Derive": "paper",
         "Compute": "paper", "Explain this output": "explain"}
ANSWER = "<details><summary>Answer</summary>"


def _folded(cell) -> bool:
    return ("hide-output" in cell.metadata.get("tags", [])
            and cell.metadata.get("jupyter", {}).get("outputs_hidden") is True)


def exercises(path: Path) -> list[dict]:
    """Each exercise of a chapter: its number, kind, and the cells from its heading to the next."""
    nb = nbformat.read(path, as_version=4)
    start = next(i for i, c in enumerate(nb.cells)
                 if c.cell_type == "markdown" and c.source.lstrip().startswith("## Exercises"))
    found: list[dict] = []
    for cell in nb.cells[start:]:
        heads = list(HEADING.finditer(cell.source)) if cell.cell_type == "markdown" else []
        if not heads:
            if found:
                found[-1]["cells"].append(cell)
            continue
        for k, m in enumerate(heads):
            end = heads[k + 1].start() if k + 1 < len(heads) else len(cell.source)
            part = nbformat.v4.new_markdown_cell(cell.source[m.start():end])
            found.append({"number": int(m.group(1)), "kind": m.group(2).strip(), "cells": [part]})
    return found


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_exercises_of_every_kind_each_with_an_answer(path):
    ex = exercises(path)
    assert len(ex) >= 4, f"{path.name}: {len(ex)} exercises, want at least 4"
    assert [e["number"] for e in ex] == list(range(1, len(ex) + 1)), f"{path.name}: numbering"
    for e in ex:
        assert e["kind"] in KINDS, f"{path.name} exercise {e['number']}: unknown kind {e['kind']!r}"
        text = "\n".join(c.source for c in e["cells"] if c.cell_type == "markdown")
        assert ANSWER in text and "</details>" in text, f"{path.name} exercise {e['number']}: no answer"
    kinds = {KINDS[e["kind"]] for e in ex}
    assert kinds == {"predict", "change", "paper", "explain"}, f"{path.name}: kinds {sorted(kinds)}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_notebook_exercises_have_their_cells(path):
    for e in exercises(path):
        code = [c for c in e["cells"] if c.cell_type == "code"]
        folded = [c for c in code if _folded(c)]
        where = f"{path.name} exercise {e['number']}"
        if KINDS[e["kind"]] == "predict":
            assert any(re.search(r"^prediction\s*=", c.source, re.M) for c in code), f"{where}: no prediction cell"
            assert folded, f"{where}: the reveal cell's output should be folded"
        if KINDS[e["kind"]] == "change":
            assert any(re.search(r"^[A-Z][A-Z0-9_]*\s*=", c.source, re.M) for c in code), f"{where}: no knob"
            answer_at = next(i for i, c in enumerate(e["cells"]) if ANSWER in c.source)
            assert any(_folded(c) for c in e["cells"][answer_at:]), f"{where}: no folded measured answer"
        for c in folded:
            assert c.outputs, f"{where}: a folded cell without its stored output"


def test_every_chapter_from_02_on_has_a_lab():
    rows = [line.split("|") for line in (REPO / "labs" / "README.md").read_text().splitlines()
            if line.startswith("| `lab")]
    after = {n for row in rows for n in re.findall(r"\d{2}", row[2])}
    want = {p.name[:2] for p in CHAPTERS if p.name[:2] >= "02"}
    assert want <= after, f"chapters without a lab: {sorted(want - after)}"
    for row in rows:
        lab = re.search(r"`(lab[^/]+)/", row[1]).group(1)
        assert (REPO / "labs" / lab / f"{lab}.ipynb").exists(), lab


@pytest.mark.parametrize("path", [p for p in ALL_CHAPTERS if p.name in APPENDICES], ids=lambda p: p.stem)
def test_appendix_exercises_are_numbered_with_answers_and_no_stored_errors(path):
    ex = exercises(path)
    assert len(ex) >= 4 and [e["number"] for e in ex] == list(range(1, len(ex) + 1)), path.name
    for e in ex:
        assert e["kind"] in KINDS, f"{path.name} exercise {e['number']}: unknown kind {e['kind']!r}"
        text = "\n".join(c.source for c in e["cells"] if c.cell_type == "markdown")
        assert ANSWER in text and "</details>" in text, f"{path.name} exercise {e['number']}: no answer"
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert not any(o.get("output_type") == "error" for c in code for o in c.outputs), path.name
    skipped = [c for c in code[1:] if {"nbval-skip", "skip-execution"} <= set(c.metadata.get("tags", []))]
    assert skipped == code[1:] and not any(c.outputs for c in skipped), \
        f"{path.name}: every cell after the first needs the GPU and the hub: tag it nbval-skip and skip-execution"
