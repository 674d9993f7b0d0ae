"""Chapter 00's environment table: aligned columns, and its stored output matches this environment."""

import json
from importlib import metadata
from pathlib import Path

from course_utils.environment import pinned_requirements

CHAPTER = Path(__file__).resolve().parents[1] / "chapters" / "00_welcome.ipynb"


def stored_table() -> list[str]:
    """The lines of the stored output from the header ``package  pinned  installed`` to the blank line."""
    nb = json.loads(CHAPTER.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and "check_environment()" in "".join(cell["source"]):
            text = "".join("".join(o.get("text", "")) for o in cell["outputs"] if o["output_type"] == "stream")
            lines = text.splitlines()
            start = next(i for i, line in enumerate(lines) if line.split()[:3] == ["package", "pinned", "installed"])
            end = lines.index("", start)
            return lines[start:end]
    raise AssertionError("chapter 00 has no cell calling check_environment()")


def test_every_row_is_name_pin_version_in_aligned_columns():
    header, *rows = stored_table()
    starts = [header.index("pinned"), header.index("installed")]
    for line in rows:
        fields = line.split()
        assert len(fields) == 3, f"expected package, pinned, installed (columns run together?): {line!r}"
        # each value sits exactly under its heading, with at least one space before the next column
        columns = [line[:starts[0]], line[starts[0]:starts[1]], line[starts[1]:]]
        assert [c.strip() for c in columns] == fields and all(c.startswith(f) for c, f in zip(columns, fields)), line
        assert columns[0].endswith(" ") and columns[1].endswith(" "), line


def test_the_stored_table_is_this_environment():
    """Re-run chapter 00 after a pin changes: its table must list every pin with the installed version."""
    rows = {f[0]: (f[1], f[2]) for f in (line.split() + ["", ""] for line in stored_table()[1:])}
    pins = pinned_requirements()
    assert {name: pinned for name, (pinned, _) in rows.items()} == pins
    assert {name: installed for name, (_, installed) in rows.items()} == {n: metadata.version(n) for n in pins}
