"""Plots shared by the chapters: a live loss curve, and box-and-arrow diagrams."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt


class LiveLossPlot:
    """A loss curve that redraws in place in a notebook while a model trains.

    Outside a notebook (a script, a test) it draws nothing.
    """

    def __init__(self, title: str = "training", keys: Sequence[str] = ("loss",)):
        self.title, self.keys = title, list(keys)
        try:
            from IPython import get_ipython
            from IPython.display import display
            in_notebook = get_ipython() is not None and "IPKernelApp" in get_ipython().config
        except ImportError:
            in_notebook = False
        self.handle = None
        if in_notebook:
            self.fig, self.ax = plt.subplots(figsize=(6, 3))
            plt.close(self.fig)  # shown through the display handle only
            self.handle = display(self.fig, display_id=True)

    def update(self, history: Sequence[dict]) -> None:
        if self.handle is None:
            return
        self.ax.clear()
        for key in self.keys:
            pts = [(r["step"], r[key]) for r in history if key in r]
            if pts:
                self.ax.plot(*zip(*pts), label=key)
        self.ax.set_xlabel("step")
        self.ax.set_ylabel("loss")
        self.ax.set_title(self.title)
        self.ax.grid(alpha=0.3)
        if len(self.keys) > 1:
            self.ax.legend()
        self.handle.update(self.fig)

    def close(self) -> None:
        pass


def plot_history(history: Sequence[dict], keys: Sequence[str] = ("loss",), ax=None,
                 title: str = "", logy: bool = False):
    """Plot the columns ``keys`` of a training history against ``step``."""
    if ax is None:
        _, ax = plt.subplots(figsize=(6, 3.2))
    for key in keys:
        pts = [(r["step"], r[key]) for r in history if key in r]
        if pts:
            ax.plot(*zip(*pts), marker="." if len(pts) < 30 else None, label=key)
    ax.set_xlabel("step")
    ax.set_title(title)
    if logy:
        ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend()
    return ax


def flow_diagram(boxes: Sequence[str], arrows: Sequence[tuple[int, int, str]] = (),
                 positions: Sequence[tuple[float, float]] | None = None,
                 colors: Sequence[str] | None = None, title: str = "",
                 figsize: tuple[float, float] = (10, 3)):
    """Draw labelled boxes joined by arrows ``(from, to, label)``; boxes in a row by default."""
    fig, ax = plt.subplots(figsize=figsize)
    n = len(boxes)
    positions = positions or [((i + 0.5) / n, 0.5) for i in range(n)]
    colors = colors or ["#dbe9f6"] * n
    for (x, y), text, c in zip(positions, boxes, colors):
        ax.text(x, y, text, ha="center", va="center", fontsize=10, wrap=True,
                bbox=dict(boxstyle="round,pad=0.6", fc=c, ec="#34495e"), transform=ax.transAxes)
    for a, b, label in arrows:
        (x0, y0), (x1, y1) = positions[a], positions[b]
        ax.annotate("", xy=(x1, y1), xytext=(x0, y0), xycoords="axes fraction",
                    arrowprops=dict(arrowstyle="-|>", color="#34495e", lw=1.5,
                                    shrinkA=38, shrinkB=38,
                                    connectionstyle="arc3,rad=0.25" if abs(y1 - y0) > 0.05 or b < a else "arc3"))
        if label:
            ax.text((x0 + x1) / 2, (y0 + y1) / 2 + (0.12 if b > a else -0.14), label,
                    ha="center", fontsize=8.5, color="#34495e", style="italic",
                    transform=ax.transAxes)
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return fig
