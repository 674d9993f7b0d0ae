"""Does every number in a chapter's prose come from that chapter's outputs?

``python -m course_tools.prose_check [NOTEBOOK ...]`` lists every number written in a
notebook's markdown that appears in none of its outputs, and exits 1 if there is one.
A number may also be *declared* in the notebook's metadata, with its reason::

    nb.metadata["prose_check"]["declared"] = {
        "72.6": "quoted: InstructGPT's labeler agreement (Ouyang et al., 2022)",
        "0.3": "setting: the soft-prompt learning rate of Lester et al.",
        "1.4": "arithmetic: 2837.1 / 2004.8",
    }

Every reason starts with ``quoted:``, ``setting:`` or ``arithmetic:``. The rules:

* numbers inside inline code, fenced code, link targets and HTML tags are not prose;
* ignored by design: integers 0-10 (counts such as "two", "3 seeds"), years 1950-2030
  (citations), a number right after "chapter", "lab", "section", "§", "cell" or "part", and
  an exercise's expected time written as "(paper, 10 minutes)", "(reading, ...)" or "(notebook, ...)";
* a prose number matches an output number when the output, rounded to the prose's
  decimals, equals it (``0.34`` matches ``0.3412``; ``1,500`` matches ``1500``); signs are ignored;
* a percentage (``97.0%``) matches an output percentage, or an output fraction printed
  with at least three decimals (``0.970``) - not a two-decimal number such as a correlation;
* a time (``17 s``, ``2 min``) matches only an output number followed by a time unit, on an
  output line that shares a word with the prose's clause (a run time printed for one run
  does not vouch for a sentence about another);
* a number written literally in one of the notebook's code cells is a setting and matches
  without a declaration (exactly, not after rounding).

Outputs are the text of stream, ``text/plain``, ``text/markdown`` and ``text/html`` outputs.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path

import nbformat

REASONS = ("quoted:", "setting:", "arithmetic:")
TIME_UNITS = r"(?:s|sec|secs|second|seconds|min|mins|minute|minutes|ms|h|hours?)\b"
# A number: optional sign, digits with optional thousands commas, optional decimals, optional exponent.
NUMBER = re.compile(r"(?<![\w.])[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:[eE][-−+]?\d+)?(?![\w])"
                    r"|(?<![\w.])[-−+]?\.\d+(?![\w])")
SKIP_BEFORE = re.compile(r"(?:(?:chapters?|labs?|sections?|§|cells?|parts?|exercises?|Figure|Fig\.|Table|Eq\.)"
                         r"\s*(?:\d+\s*(?:,|–|-|and|to)\s*)*"
                         r"|(?:Llama|TRL|Python|PyTorch|torch|transformers|version|GPT-?|v)\s?"
                         r"|\*\*Time\*\*:\s*about\s"
                         r"|\((?:paper|reading|notebook),\s*)$", re.IGNORECASE)  # an exercise's expected time
STOPWORDS = {"the", "and", "for", "per", "with", "about", "that", "this", "was", "were", "are", "from",
             "its", "has", "had", "have", "not", "but", "all", "one", "two", "three", "than", "into",
             "here", "each", "run", "runs", "takes", "took", "needed", "seconds", "minutes", "min", "sec"}


@dataclass(frozen=True)
class Number:
    """A number as written: its text, value, decimals, and whether it is a percentage or a time."""
    text: str
    value: Decimal
    decimals: int
    percent: bool = False
    time: bool = False


def _parse(text: str) -> tuple[Decimal, int] | None:
    t = text.replace("−", "-").replace(",", "").lstrip("+-")
    try:
        value = Decimal(t)
    except InvalidOperation:
        return None
    if "e" in t.lower():
        return value, max(0, -value.as_tuple().exponent)
    decimals = len(t.split(".", 1)[1]) if "." in t else 0
    return value, decimals


def numbers_in(text: str) -> list[Number]:
    """Every number in ``text`` with its unit (percent or time) read from what follows it."""
    out = []
    for m in NUMBER.finditer(text):
        parsed = _parse(m.group(0))
        if parsed is None:
            continue
        after = text[m.end():m.end() + 12]
        percent = bool(re.match(r"\s?%", after))
        time = bool(re.match(r"\s?" + TIME_UNITS, after))
        out.append(Number(m.group(0), parsed[0], parsed[1], percent, time))
    return out


def prose_of(markdown: str) -> str:
    """Markdown without code, link targets, HTML tags and images: the words a learner reads."""
    text = re.sub(r"```.*?```", " ", markdown, flags=re.DOTALL)
    text = re.sub(r"`[^`]*`", " ", text)
    text = re.sub(r"!\[[^\]]*\]\([^)]*\)", " ", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    text = re.sub(r"<[^>]+>", " ", text)
    text = re.sub(r"https?://\S+", " ", text)
    return text


def ignored(number: Number, before: str) -> bool:
    """True for numbers the check leaves alone by design (small counts, years, references)."""
    if number.decimals == 0 and not number.percent and not number.time:
        v = abs(number.value)
        if v <= 10 or (1950 <= v <= 2030 and "," not in number.text):
            return True
    return bool(SKIP_BEFORE.search(before[-40:]))


def output_text(nb: nbformat.NotebookNode) -> str:
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            for mime in ("text/plain", "text/markdown", "text/html"):
                data = out.get("data", {}).get(mime)
                if data:
                    parts.append(data if isinstance(data, str) else "".join(data))
    return "\n".join(parts)


def _rounded(value: Decimal, decimals: int) -> Decimal:
    return value.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


def matches(prose: Number, out: Number) -> bool:
    """Whether the output number ``out`` is the prose number ``prose`` as the reader sees it."""
    if prose.time and not out.time:
        return False
    p, o = abs(prose.value), abs(out.value)
    candidates = [o]
    if prose.percent and not out.percent:
        if out.decimals < 3:
            return False
        candidates = [o * 100]
    elif out.percent and not prose.percent and prose.decimals >= 2 and p <= 1:
        candidates = [o / 100]
    for c in candidates:
        try:
            if _rounded(c, prose.decimals) == p or c == p:
                return True
        except InvalidOperation:
            continue
    return False


def words(text: str) -> set[str]:
    """Lower-case words of three letters or more, stop words removed."""
    return {w for w in re.findall(r"[a-z][a-z\-]{2,}", text.lower()) if w not in STOPWORDS}


def clause_around(text: str, start: int, end: int) -> str:
    """The clause (between ``.;:!?`` that end a sentence part, not a decimal point) holding a span."""
    stops = [m.end() for m in re.finditer(r"[;!?:]|\.(?!\d)", text[:start])]
    left = stops[-1] if stops else 0
    m = re.search(r"[;!?:]|\.(?!\d)", text[end:])
    right = end + m.start() if m else len(text)
    return text[left:right]


@dataclass
class Finding:
    """A number in the prose that no output shows and no declaration covers."""
    cell: int
    number: str
    context: str

    def __str__(self) -> str:
        return f"cell {self.cell}: {self.number!r} in \"…{self.context}…\""


def declarations(nb: nbformat.NotebookNode) -> dict[str, str]:
    """The notebook's declared numbers; raises ValueError on a reason of the wrong kind."""
    declared = dict(nb.metadata.get("prose_check", {}).get("declared", {}))
    bad = {k: v for k, v in declared.items() if not str(v).startswith(REASONS)}
    if bad:
        raise ValueError(f"declared numbers need a reason starting with {REASONS}: {bad}")
    return declared


def check(nb: nbformat.NotebookNode) -> list[Finding]:
    """Every undeclared number of the notebook's markdown that none of its outputs shows."""
    outs = numbers_in(output_text(nb))
    lines = [(words(line), numbers_in(line)) for line in output_text(nb).splitlines()]
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    settings = {abs(n.value).normalize() for n in numbers_in(code)}
    declared = {abs(p[0]).normalize() for k in declarations(nb) if (p := _parse(k))}
    findings = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "markdown":
            continue
        text = prose_of(cell.source)
        for m in NUMBER.finditer(text):
            num = numbers_in(text[m.start():m.end() + 12])
            if not num or num[0].text != m.group(0):
                continue
            n = num[0]
            key = abs(n.value).normalize()
            if ignored(n, text[:m.start()]) or key in declared:
                continue
            if not n.time and not n.percent and key in settings:
                continue
            if n.time:
                clause = words(clause_around(text, m.start(), m.end()))
                if any(lw & clause and any(matches(n, o) for o in lo) for lw, lo in lines):
                    continue
            elif any(matches(n, o) for o in outs):
                continue
            ctx = re.sub(r"\s+", " ", text[max(0, m.start() - 50):m.end() + 30]).strip()
            findings.append(Finding(i, m.group(0), ctx))
    return findings


def main(argv: list[str] | None = None) -> int:
    paths = argv if argv else sorted(str(p) for p in Path("chapters").glob("[0-9][0-9]_*.ipynb"))
    total = 0
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        found = check(nb)
        total += len(found)
        print(f"{path}: {len(found)} number(s) in the prose that no output shows"
              f" ({len(declarations(nb))} declared)")
        for f in found:
            print(f"  {f}")
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
