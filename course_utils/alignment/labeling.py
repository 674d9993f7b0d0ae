"""A preference-labeling widget for the notebook (ipywidgets), writing to a :class:`PreferenceStore`.

It shows a prompt and two completions side by side, with buttons *A is better*,
*B is better*, *Tie*, *Skip* and *Undo*, and a progress count. From the keyboard: click
into the small "keys" box and type ``a``, ``b``, ``t``, ``s`` or ``u`` (or move between the
buttons with Tab and press Enter).

Every judgement is appended to the store's JSONL file (flushed and fsync-ed) *before* the
next pair is shown, so closing the notebook, a kernel crash or a power cut loses at most
the click in progress. Opening the widget again on the same file resumes at the first
pair this labeler has not judged.

>>> from course_utils.alignment.feedback import PreferenceStore                      # doctest: +SKIP
>>> PreferenceWidget(pairs, PreferenceStore("data/my_labels.jsonl", labeler="me"))  # doctest: +SKIP
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping

import ipywidgets as widgets

from course_utils.alignment.feedback import PreferenceStore

#: Keyboard shortcuts: key -> action.
KEYS = {"a": "a", "b": "b", "t": "tie", "s": "skip", "u": "undo"}

_BOX = {"width": "48%", "border": "1px solid #bbb", "padding": "6px 10px", "margin": "4px"}


class PreferenceWidget(widgets.VBox):
    """Label ``pairs`` (each with ``pair_id``, ``prompt``, ``a``, ``b``) into ``store``.

    The methods :meth:`choose` and :meth:`undo` are what the buttons and keys call; a
    script or a test can call them directly.
    """

    def __init__(self, pairs: Iterable[Mapping], store: PreferenceStore, labeler: str | None = None):
        self.pairs = [dict(p) for p in pairs]
        if not self.pairs:
            raise ValueError("there are no pairs to label")
        ids = [p["pair_id"] for p in self.pairs]
        if len(set(ids)) != len(ids):
            raise ValueError("pair_id values must be unique")
        self.store, self.labeler = store, labeler or store.labeler
        self.index: int | None = None

        self.header = widgets.HTML()
        self.prompt = widgets.HTML()
        self.a_text = widgets.HTML(layout=widgets.Layout(**_BOX))
        self.b_text = widgets.HTML(layout=widgets.Layout(**_BOX))
        self.bar = widgets.IntProgress(min=0, max=len(self.pairs), layout={"width": "300px"})
        self.status = widgets.HTML()
        self.buttons = {
            "a": widgets.Button(description="A is better", button_style="info", tooltip="key: a"),
            "b": widgets.Button(description="B is better", button_style="info", tooltip="key: b"),
            "tie": widgets.Button(description="Tie", tooltip="key: t"),
            "skip": widgets.Button(description="Skip", tooltip="key: s"),
            "undo": widgets.Button(description="Undo", button_style="warning", tooltip="key: u"),
        }
        for action, button in self.buttons.items():
            button.on_click(lambda _b, action=action: self._act(action))
        self.key_box = widgets.Text(placeholder="type a / b / t / s / u", description="keys",
                                 continuous_update=True, layout={"width": "260px"})
        self.key_box.add_class("preference-keys")
        self.key_box.observe(self._on_key, names="value")
        super().__init__([
            self.header, self.prompt, widgets.HBox([self.a_text, self.b_text]),
            widgets.HBox(list(self.buttons.values())), self.key_box,
            widgets.HBox([self.bar, self.status])])
        self.add_class("preference-widget")
        self._show_next()

    # -- actions ------------------------------------------------------------------
    def choose(self, choice: str) -> dict:
        """Judge the pair on screen: ``"a"``, ``"b"``, ``"tie"`` or ``"skip"``; show the next one."""
        if self.index is None:
            raise RuntimeError("every pair is already judged (use undo to change one)")
        row = self.store.add(self.pairs[self.index], choice, labeler=self.labeler)
        self._show_next()
        return row

    def undo(self) -> dict | None:
        """Retract this labeler's latest judgement and show that pair again."""
        row = self.store.undo(self.labeler)
        if row is not None:
            where = [i for i, p in enumerate(self.pairs) if p["pair_id"] == row["pair_id"]]
            self._show(where[0] if where else self._next_index())
            self.status.value = f"undid your judgement of pair {html.escape(row['pair_id'])}"
        else:
            self.status.value = "nothing to undo"
        return row

    def _act(self, action: str) -> None:
        try:
            self.undo() if action == "undo" else self.choose(action)
        except Exception as e:  # shown in the widget; the label file is unchanged
            self.status.value = f"<span style='color:#b00'>{html.escape(str(e))}</span>"

    def _on_key(self, change) -> None:
        typed = change["new"]
        if not typed:
            return
        self.key_box.value = ""
        for ch in typed.lower():
            if ch in KEYS:
                self._act(KEYS[ch])

    # -- display ------------------------------------------------------------------
    def _next_index(self) -> int | None:
        done = self.store.done_ids(self.labeler)
        return next((i for i, p in enumerate(self.pairs) if p["pair_id"] not in done), None)

    @property
    def n_done(self) -> int:
        """How many of this widget's pairs the labeler has judged."""
        done = self.store.done_ids(self.labeler)
        return sum(p["pair_id"] in done for p in self.pairs)

    def _show_next(self) -> None:
        self._show(self._next_index())

    def _show(self, index: int | None) -> None:
        self.index = index
        n, total = self.n_done, len(self.pairs)
        self.bar.value = n
        self.status.value = ""
        self.header.value = f"<b class='preference-progress'>{n} of {total} judged</b> " \
                            f"&nbsp; labeler: {html.escape(self.labeler)}"
        queued = getattr(self.store, "pending", 0)  # class mode: labels not yet acknowledged by the room
        if queued:
            self.header.value += (f" &nbsp; <span class='preference-queued'>{queued} saved here, waiting "
                                  "for the class server (sent when it answers)</span>")
        if index is None:
            self.prompt.value = "<b>All pairs are judged.</b> Undo changes the last one."
            self.a_text.value = self.b_text.value = ""
        else:
            p = self.pairs[index]
            self.prompt.value = (f"<div class='preference-prompt'><b>Prompt</b> "
                                 f"({html.escape(str(p['pair_id']))}): {html.escape(p['prompt'])}</div>")
            self.a_text.value = f"<b>A</b><br>{html.escape(p['a']) or '<i>(empty)</i>'}"
            self.b_text.value = f"<b>B</b><br>{html.escape(p['b']) or '<i>(empty)</i>'}"
        for action, button in self.buttons.items():
            button.disabled = index is None and action != "undo"
