"""Feedback: what a student is told, and feedback pages that are safe to open.

:func:`_result_cell` writes the result under each test cell of the feedback notebook
(failed visible checks by their code, hidden checks only as a whole, errors named from a
fixed list); :func:`offline_feedback` makes nbgrader's feedback page load nothing from the
network and wrap long lines; :func:`sanitize_feedback` cleans its body (the student's
cells) with ``nh3``.

Imports: nbformat, nh3 and :mod:`course_tools.grading.probes`
(:class:`~course_tools.grading.probes.Check`).
"""

from __future__ import annotations

import re
from typing import Any

import nbformat

from course_tools.grading.probes import Check

#: errors feedback may name (a fixed list: a student's own exception class could carry a
#: message in its name)
NAMED_ERRORS = {"NotImplementedError", "AssertionError", "TypeError", "ValueError", "IndexError", "KeyError",
                "AttributeError", "NameError", "RuntimeError", "ZeroDivisionError", "CellTimeoutError",
                "RecursionError", "MemoryError", "UnboundLocalError", "SyntaxError", "ImportError",
                "ModuleNotFoundError", "OverflowError", "StopIteration"}


def _result_cell(gid: str, ok: bool, earned: float, points: float, failed: list[Check], ran: bool,
                 checks: list[Check] | None = None, not_run: list[Check] | None = None,
                 error: str | None = None) -> Any:
    """The feedback under a test cell: its score, the error it stopped with (named when it
    is one of :data:`NAMED_ERRORS`), each failed visible check, each visible check that did
    not run because of that error, and for hidden checks only whether any failed or did
    not run, with the hints of *all* the cell's hidden checks. Which hidden check failed is
    never said: a student's code could choose it, one bit per check."""
    lines = [f"**Grading of `{gid}`: {earned:g} / {points:g}**" + (" (every check passed)" if ok else "")]
    if not ran:
        what = f"`{error}`" if error in NAMED_ERRORS else "an error"
        hint = " (a part not written yet?)" if error == "NotImplementedError" else ""
        lines.append(f"- the test cell stopped with {what}{hint}: run it in your notebook to see where")
    for c in failed:
        if not c.hidden:
            lines.append(f"- visible check {c.number} failed: `{c.text}`")
    for c in not_run or []:
        if not c.hidden:
            lines.append(f"- visible check {c.number} did not run (the error came first): `{c.text}`")
    if any(c.hidden for c in not_run or []) and not any(c.hidden for c in failed):
        lines.append("- hidden checks did not run (the error came first)")
    if any(c.hidden for c in failed):
        hints = [c.text for c in checks or failed if c.hidden and c.text]
        lines.append("- hidden checks failed (they are not named one by one)"
                     + (f"; they test: {'; '.join(dict.fromkeys(hints))}" if hints else ""))
    return nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"grading_result": True})


#: feedback pages wrap long lines (code, test lines, results) instead of cutting them at the right edge
WRAP_CSS = """<style type="text/css">
/* course: wrap long lines instead of cutting them at the right edge */
pre, code, .highlight pre, div.input_area pre, div.output_area pre, div.output_text pre {
  white-space: pre-wrap !important; overflow-wrap: anywhere; word-break: break-word; overflow-x: visible;
}
div.input_area, div.highlight, div.output_subarea, div.inner_cell { overflow-x: visible; min-width: 0; }
</style>
"""
_EXTERNAL_SCRIPT = re.compile(r"<script\b[^>]*\bsrc\s*=\s*[\"']?(?:https?:)?//[^>]*>.*?</script>\s*", re.S | re.I)
_MATHJAX_CONFIG = re.compile(r"<script\b[^>]*type\s*=\s*[\"']text/x-mathjax-config[\"'][^>]*>.*?</script>\s*", re.S | re.I)
_EXTERNAL_SRC = re.compile(r"""(<[a-z][a-z0-9]*\b[^>]*?\bsrc\s*=\s*)(["']?)(?:https?:)?//[^"'\s>]*\2""", re.I)
_FONT_FACE = re.compile(r"@font-face\s*\{[^}]*\}", re.I)  # bootstrap's icon font: a file the page lacks
_EXTERNAL_LINK = re.compile(r"<link\b[^>]*\bhref\s*=\s*[\"']?(?:https?:)?//[^>]*>\s*", re.S | re.I)


def offline_feedback(html: str) -> str:
    """A feedback page of ``nbgrader generate_feedback`` made self-contained and readable:
    scripts and style sheets it would load from the network (nbgrader's template loads
    MathJax from a CDN) are removed, any other ``src`` on the network (an image in a
    student's markdown) is emptied, and :data:`WRAP_CSS` makes long lines wrap. The labs
    write their formulas in Unicode, so nothing needs MathJax; bootstrap's icon font (a file
    the page lacks, and no icon is used) is dropped too: the page is one file that loads nothing."""
    html = _EXTERNAL_SCRIPT.sub("", html)
    html = _MATHJAX_CONFIG.sub("", html)
    html = _EXTERNAL_LINK.sub("", html)
    html = _FONT_FACE.sub("", html)
    html = _EXTERNAL_SRC.sub(r"\1\2\2", html)  # e.g. an image a student's markdown cell links to
    return html.replace("</head>", WRAP_CSS + "</head>", 1) if WRAP_CSS not in html else html


#: what a feedback page's body may hold after :func:`sanitize_feedback`
FEEDBACK_TAGS = {"a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "div", "dl", "dt", "em", "h1", "h2",
                 "h3", "h4", "h5", "h6", "hr", "i", "kbd", "li", "ol", "p", "pre", "s", "samp", "span", "strong",
                 "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "ul"}
FEEDBACK_ATTRIBUTES = {"*": {"class", "id", "name", "title"}, "a": {"href"}, "td": {"colspan", "rowspan"},
                       "th": {"colspan", "rowspan"}, "ol": {"start"}}


def _fragment_only(tag: str, attr: str, value: str) -> str | None:  # noqa: ARG001
    return value if attr != "href" or value.startswith("#") else None


def sanitize_feedback(html: str) -> str:
    """A feedback page with its body (where the student's cells are) cleaned by ``nh3``, a
    maintained HTML sanitiser: only the tags and attributes of :data:`FEEDBACK_TAGS` and
    :data:`FEEDBACK_ATTRIBUTES` stay (no script, style, image, form, iframe or event
    handler), links only to places in the page (``#...``). The head is nbgrader's template,
    made offline by :func:`offline_feedback`; nothing in it comes from a student."""
    import nh3

    start = html.find("<body")
    start = html.find(">", start) + 1 if start >= 0 else 0
    end = html.rfind("</body>")
    end = end if end >= start else len(html)
    body = nh3.clean(html[start:end], tags=FEEDBACK_TAGS, attributes=FEEDBACK_ATTRIBUTES,
                     attribute_filter=_fragment_only, url_schemes=set(), strip_comments=True, link_rel=None)
    return html[:start] + body + html[end:]
