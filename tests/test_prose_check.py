"""Every number in a chapter's prose comes from that chapter's outputs (or is declared)."""
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_tools.prose_check import check, declarations, main, numbers_in

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "chapters").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_number_in_the_prose_is_in_an_output_or_declared(path):
    nb = nbformat.read(path, as_version=4)
    found = check(nb)
    assert not found, f"{path.name}: numbers in the prose that no output shows:\n" + "\n".join(map(str, found))


def notebook(markdown: str, printed: str, code: str = "print(...)", declared: dict | None = None):
    cell = new_code_cell(code, outputs=[new_output("stream", name="stdout", text=printed)])
    nb = new_notebook(cells=[new_markdown_cell(markdown), cell])
    if declared:
        nb.metadata["prose_check"] = {"declared": declared}
    return nb


# Printed lines as chapters 09 and 11 stored them, with the sentences that misquoted them.
CH09_OUT = "reward model accuracy against gold: 97.0%\nPearson correlation with gold: 0.85\nlabels agree with gold: 82.1%\n"
CH11_OUT = ("beta 0.1: gold +0.95 -> +1.12 at KL 3.32 nats (16 s)\n"
            "beta 0.5: gold +0.95 -> +1.48 at KL 0.80 nats (17 s)\n"
            "PPO kl=0.02: gold +1.86 at KL 3.14 nats after 25 steps\n")


def test_catches_a_stale_percentage():
    nb = notebook("So what did it take to pass 85% against gold? Labels agreeing 82% of the time.", CH09_OUT)
    assert [f.number for f in check(nb)] == ["85"]  # 0.85 is a correlation, not a percentage


def test_catches_a_time_printed_for_another_run():
    nb = notebook("PPO needed all three, and about 17 s for 25 steps.", CH11_OUT)
    assert [f.number for f in check(nb)] == ["17"]  # the 17 s printed belongs to a DPO run
    ok = notebook("DPO with beta 0.5 took 17 s and reached gold 1.48 at 0.80 nats.", CH11_OUT)
    assert check(ok) == []


def test_rounding_settings_and_declarations():
    nb = notebook("The loss fell to 0.34 (from 1,500 steps at lr 3e-4); 72.6% in the paper; 97% here.",
                  "final loss 0.3412 after 1500 steps\naccuracy 0.970\n", code="lr = 3e-4",
                  declared={"72.6": "quoted: InstructGPT labeler agreement (Ouyang et al., 2022)"})
    assert check(nb) == []
    nb.metadata["prose_check"]["declared"] = {"72.6": "I think so"}
    with pytest.raises(ValueError, match="quoted:"):
        declarations(nb)


def test_ignored_by_design():
    nb = notebook("Chapter 12 shows it; see lab 7 and section 2.2 (Christiano et al., 2017), with 3 seeds, "
                  "in TRL 1.16 and Llama 3.2. **Time**: about 2 minutes to run. "
                  "**1. Derive it** (paper, 15 minutes). **2. Read it** (reading, 20 minutes).", "nothing\n")
    assert check(nb) == []
    # an exercise's expected time is exempt only in that form: a run time in prose is still checked
    assert [f.number for f in check(notebook("The paper took 15 minutes to train.", "nothing\n"))] == ["15"]


def test_units_are_read():
    (pct,) = numbers_in("97.0% of pairs")
    (sec,) = numbers_in("in 38 s")
    assert pct.percent and not pct.time and sec.time and not sec.percent


def test_command_line_exits_nonzero_on_a_finding(tmp_path, capsys):
    path = tmp_path / "x.ipynb"
    nbformat.write(notebook("It passes 85% against gold.", CH09_OUT), path)
    assert main([str(path)]) == 1
    assert "'85'" in capsys.readouterr().out
