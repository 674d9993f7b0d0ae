"""Plots shared by the chapters: a training history, and box-and-arrow diagrams.

The live plot of a running loop is the run dashboard's (:mod:`course_utils.dashboard`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt


def plot_history(history: Sequence[dict], keys: Sequence[str] = ("loss",), ax=None,
                 title: str = "", logy: bool = False, label: str | None = None):
    """Plot the columns ``keys`` of a training history against ``step``.

    ``label`` names the line instead of the column (one key): several runs on one ``ax``.
    """
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for key in keys:
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=label or key)
    ax.set_xlabel("step")
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.set_ylabel(keys[0] if len(keys) == 1 else "")
    ax.grid(alpha=0.3)
    if len(keys) > 1 or label:
        ax.legend(fontsize=7)
    return ax


def flow_diagram(boxes: Sequence[str], arrows: Sequence[tuple[int, int, str]] = (),
                 colors: Sequence[str] | None = None, title: str = "",
                 figsize: tuple[float, float] = (10, 3), box_width: float = 0.17):
    """Draw boxes in a row joined by labelled arrows ``(from, to, label)``.

    An arrow to the next box runs straight between them with its label above; any other
    arrow (such as a loop back to an earlier step) curves underneath the row.
    """
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    fig, ax = plt.subplots(figsize=figsize)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    n = len(boxes)
    xs = [(i + 0.5) / n for i in range(n)]
    y, h = 0.6, 0.34
    colors = colors or ["#dbe9f6"] * n
    for x, text, c in zip(xs, boxes, colors):
        ax.add_patch(FancyBboxPatch((x - box_width / 2, y - h / 2), box_width, h,
                                    boxstyle="round,pad=0.01", fc=c, ec="#34495e"))
        ax.text(x, y, text, ha="center", va="center", fontsize=9.5)
    for a, b, label in arrows:
        if b == a + 1:
            start, end = (xs[a] + box_width / 2 + 0.005, y), (xs[b] - box_width / 2 - 0.005, y)
            style, label_xy = "arc3", ((xs[a] + xs[b]) / 2, y + h / 2 + 0.04)
        else:
            start, end = (xs[a], y - h / 2 - 0.02), (xs[b], y - h / 2 - 0.02)
            style, label_xy = "arc3,rad=-0.25", ((xs[a] + xs[b]) / 2, 0.05)
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=14, lw=1.5,
                                     color="#34495e", connectionstyle=style))
        if label:
            ax.text(*label_xy, label, ha="center", fontsize=8.5, color="#34495e", style="italic")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig
