"""Test cells as probes: what a submission's run records, with no expected value in it.

A lab's test cell checks a student's function by comparing its result with an expected
value: a constant (``assert got == [-100, 7]``), a reference computation
(``torch.allclose(mine, rlhf.token_rewards(...))``) or a snapshot (``before``). If the test
cell ran unchanged in the student's process, the student's code could read those expected
values from its caller's frame and return them. So the student's run holds no expected
value at all. :func:`probe_lab` rewrites every test cell of a lab, once, from the lab's
trusted source:

* **Taint** (:mod:`course_tools.grading.taint`). A name is *tainted* when the student's
  code may have made or changed it: the names the solution cells bind, names a statement
  binds by running the student's code (or by naming a student value), and the objects
  (root names of the arguments) handed to the student's code, which may have changed
  them. An expression is tainted when it mentions a tainted name.
* **Asserts become records.** ``assert E`` keeps only E's tainted parts. A node is *kept*
  (evaluated whole) when it is tainted and none of its operands is an untainted value
  that it compares or combines with (an untainted *argument* of a tainted function is an
  input, and kept). Any other tainted node is split into its tainted children. Each kept
  part is evaluated by ``__probe_try__("n.k", lambda: part)``, which records its value (or
  the name of the exception it raised) as plain data under the key ``"n.k"`` of check
  ``n``; the sub-expressions of a kept part are recorded too (``__probe_rec__``). The
  untainted side (the expected value) is never evaluated in the student's process.
* **Expected exceptions become records.** ``try: CALL / except E: pass / else: raise
  AssertionError(...)`` becomes ``__probe_raises__("n.1", lambda: CALL)``, which records
  the name of the exception the call raised; which exception the test expects is not in
  the student's process.
* **Expected values are not computed.** An untainted assignment whose names no kept code
  reads is dropped (``want = torch.tensor(...)``, ``with torch.no_grad(): expected = ...``);
  inputs (names a kept part or a later cell reads) stay.

The same rewritten cells run with the source's solution (the reference run) and with the
student's cells; the harness compares the two runs' records outside the sandbox
(:func:`course_tools.grading.records.same`). A record holds only what the student's code
returned or changed, on inputs the student's code is handed anyway.

**The rule for lab authors** (checked by ``tests/test_labs.py``): compute an expected
value in an assert, or in a statement of its own; never in the same statement as a call
of the student's code (``mine, ref = f(x), reference(x)`` would run ``reference`` in the
student's process). Tainted statements other than asserts run unchanged.

Imports: the standard library and :mod:`course_tools.grading.taint`.
"""

from __future__ import annotations

import ast
import copy
from dataclasses import dataclass

from course_tools.grading.taint import Taint, _headers, _prune, bound, loaded

HIDDEN_BEGIN, HIDDEN_END = "### BEGIN HIDDEN TESTS", "### END HIDDEN TESTS"


@dataclass(frozen=True)
class Check:
    """One check of a test cell (an ``assert``, or a call that must raise): where it is, and
    what feedback may say about it."""
    number: int   #: its place among the cell's checks (1-based)
    hidden: bool  #: inside ``### BEGIN HIDDEN TESTS`` ... ``### END HIDDEN TESTS``
    line: int     #: line in the test cell
    text: str     #: visible checks: its code; hidden ones: its hint (a constant message) or ""


def _hidden_lines(source: str) -> set[int]:
    hidden, inside = set(), False
    for i, line in enumerate(source.splitlines(), 1):
        if line.strip().startswith(HIDDEN_BEGIN):
            inside = True
        elif line.strip().startswith(HIDDEN_END):
            inside = False
        elif inside:
            hidden.add(i)
    return hidden


# ---------------------------------------------------------------------------------
# Rewriting one test cell
# ---------------------------------------------------------------------------------
_TRY, _REC, _RAISES = "__probe_try__", "__probe_rec__", "__probe_raises__"


def _call(name: str, *args: ast.expr) -> ast.Call:
    return ast.Call(ast.Name(name, ast.Load()), list(args), [])


def _thunk(body: ast.expr) -> ast.Lambda:
    return ast.Lambda(ast.arguments(posonlyargs=[], args=[], kwonlyargs=[], kw_defaults=[], defaults=[]), body)


class _Cell(Taint):
    """Rewrites the statements of one test cell, updating the lab's taint as it goes."""

    def __init__(self, student: set[str], changed: set[str], source: str):
        super().__init__(student, changed)
        self.hidden = _hidden_lines(source)
        self.lines = source.splitlines()
        self.checks: list[Check] = []

    # -- expressions ----------------------------------------------------------------
    def record_inline(self, node: ast.expr, key: str, extra: frozenset[str]) -> ast.expr:
        """``node`` with each tainted sub-expression wrapped in ``__probe_rec__``."""
        counter = [0]
        cell = self

        class Wrap(ast.NodeTransformer):
            def visit_Lambda(self, n):
                return n

            def generic_visit(self, n):
                n = super().generic_visit(n)
                if (isinstance(n, ast.expr) and isinstance(getattr(n, "ctx", ast.Load()), ast.Load)
                        and not isinstance(n, (ast.Constant, ast.Starred, ast.keyword, ast.Slice, ast.FormattedValue))
                        and cell.is_tainted(n, extra) and not _is_probe(n)):
                    counter[0] += 1
                    return _call(_REC, ast.Constant(f"{key}.{counter[0]}"), n)
                return n

        inner = copy.deepcopy(node)
        if isinstance(inner, ast.Call):  # the callee itself is not a value worth recording
            inner.args = [Wrap().visit(a) for a in inner.args]
            for k in inner.keywords:
                k.value = Wrap().visit(k.value)
            if isinstance(inner.func, ast.Attribute):
                inner.func.value = Wrap().visit(inner.func.value)
            return inner
        return Wrap().generic_visit(inner) if not isinstance(inner, ast.Name) else inner

    def parts(self, node: ast.expr, key: str, extra: frozenset[str], out: list[ast.expr]) -> None:
        """Append to ``out`` one ``__probe_try__`` per kept part of ``node``."""
        if not self.is_tainted(node, extra):
            return
        if self.keepable(node, extra):
            k = f"{key}.{len(out) + 1}"
            out.append(_call(_TRY, ast.Constant(k), _thunk(self.record_inline(node, k, extra))))
            return
        if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp)):
            inner_extra = set(extra)
            gens = []
            for g in node.generators:
                if self.is_tainted(g.iter, frozenset(inner_extra)):
                    inner_extra |= bound(g.target)
                gens.append(g)
            inner: list[ast.expr] = []
            elts = [node.key, node.value] if isinstance(node, ast.DictComp) else [node.elt]
            for e in elts:
                self.parts(e, f"{key}.{len(out) + 1}", frozenset(inner_extra), inner)
            if inner:
                k = f"{key}.{len(out) + 1}"
                comp = ast.ListComp(ast.Tuple(inner, ast.Load()), copy.deepcopy(gens))
                out.append(_call(_TRY, ast.Constant(k), _thunk(comp)))
            return
        if isinstance(node, ast.Call):
            children = [*node.args, *(k.value for k in node.keywords)]
            if isinstance(node.func, ast.Attribute):
                children.insert(0, node.func.value)
        elif isinstance(node, ast.UnaryOp):
            children = [node.operand]
        elif isinstance(node, ast.BoolOp):
            children = list(node.values)
        elif isinstance(node, ast.IfExp):
            children = [node.test, node.body, node.orelse]
        elif isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            children = [node.value]
        else:
            children = self._operands(node) or []
        for c in children:
            self.parts(c, key, extra, out)

    # -- statements -----------------------------------------------------------------
    def _check(self, node: ast.stmt, text: str | None = None) -> int:
        n = len(self.checks) + 1
        hidden = node.lineno in self.hidden
        if text is None:
            msg = getattr(node, "msg", None)
            text = msg.value if isinstance(msg, ast.Constant) and isinstance(msg.value, str) else ""
        if not hidden:
            text = " ".join(self.lines[node.lineno - 1:node.end_lineno or node.lineno]).strip()[:300]
        self.checks.append(Check(n, hidden, node.lineno, text))
        return n

    def _one_student_call(self, node: ast.stmt) -> None:
        """The rule for lab authors: an assignment that runs the student's code computes
        nothing else beside it (``mine, ref = f(x), reference(x)`` is refused)."""
        value = getattr(node, "value", None)
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and isinstance(value, (ast.Tuple, ast.List)) and self.calls_student(value):
            for elt in value.elts:
                if not self.calls_student(elt) and any(isinstance(n, ast.Call) for n in ast.walk(elt)):
                    raise SyntaxError(f"line {node.lineno}: {ast.unparse(elt)[:80]} is computed in the same statement "
                                      "as a call of the student's code; give it a statement of its own (see "
                                      "course_tools.grading.probes)")

    def _raises(self, node: ast.stmt) -> ast.stmt | None:
        """``try: CALL / except E: pass / else: raise ...`` as a record of what CALL raised."""
        if not (isinstance(node, ast.Try) and len(node.body) == 1 and isinstance(node.body[0], ast.Expr)
                and len(node.handlers) == 1 and node.handlers[0].type is not None
                and all(isinstance(s, ast.Pass) for s in node.handlers[0].body)
                and len(node.orelse) == 1 and isinstance(node.orelse[0], ast.Raise) and not node.finalbody
                and self.is_tainted(node.body[0])):
            return None
        exc = node.orelse[0].exc
        hint = None
        if isinstance(exc, ast.Call) and exc.args and isinstance(exc.args[0], ast.Constant):
            hint = exc.args[0].value if isinstance(exc.args[0].value, str) else None
        n = self._check(node, hint or "")
        call = _call(_RAISES, ast.Constant(f"{n}.1"), _thunk(node.body[0].value))
        return ast.copy_location(ast.Expr(call), node)

    def statements(self, body: list[ast.stmt]) -> list[ast.stmt]:
        out: list[ast.stmt] = []
        for node in body:
            if isinstance(node, ast.Assert):
                n = self._check(node)
                parts: list[ast.expr] = []
                self.parts(node.test, str(n), frozenset(), parts)
                out += [ast.copy_location(ast.Expr(p), node) for p in parts]
                continue
            raised = self._raises(node)
            if raised is not None:
                out.append(raised)
                continue
            if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)):
                new = copy.copy(node)
                header_tainted = self.is_tainted(
                    ast.Module([ast.Expr(x) for x in _headers(node)], []))
                if isinstance(node, (ast.For, ast.AsyncFor)) and header_tainted:
                    self.changed |= bound(node.target)
                for name in ("body", "orelse", "finalbody"):
                    if hasattr(node, name):
                        setattr(new, name, self.statements(getattr(node, name)))
                if isinstance(node, ast.Try):
                    new.handlers = [copy.copy(h) for h in node.handlers]
                    for h in new.handlers:
                        h.body = self.statements(h.body)
                new._probe_derived = not self.calls_student(node)  # type: ignore[attr-defined]
                self.absorb(node)
                out.append(new)
                continue
            node = copy.deepcopy(node)
            self._one_student_call(node)
            node._probe_derived = not self.calls_student(node)  # type: ignore[attr-defined]
            self.absorb(node)
            out.append(node)
        return out


def _is_probe(node: ast.AST) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in (_TRY, _REC, _RAISES)


def probe_lab(cells: list[tuple[str, str]]) -> dict[int, tuple[str, list[Check]]]:
    """Rewrite a lab's test cells for the graded runs (see the module docstring).

    ``cells`` is the source notebook's code cells in order, as ``(role, source)`` with role
    ``"solution"``, ``"test"`` or ``"locked"``. Returns, for the index (in ``cells``) of
    each test cell, its rewritten code and its checks. Raises ``SyntaxError`` for a cell
    that does not parse (a source error).
    """
    student: set[str] = set()
    changed: set[str] = set()
    rewritten: dict[int, tuple[list[ast.stmt], list[Check]]] = {}
    for i, (role, source) in enumerate(cells):
        tree = ast.parse(source)
        if role == "solution":
            for stmt in tree.body:
                student |= bound(stmt)
            continue
        cell = _Cell(student, changed, source)
        if role == "test":
            rewritten[i] = (cell.statements(tree.body), cell.checks)
        else:
            for stmt in tree.body:
                cell.absorb(stmt)
    needed: set[str] = set()
    out: dict[int, tuple[str, list[Check]]] = {}
    for i in reversed(range(len(cells))):
        role, source = cells[i]
        if i in rewritten:
            body, checks = rewritten[i]
            body, needed = _prune(body, needed)
            module = ast.fix_missing_locations(ast.Module(body or [ast.Pass()], []))
            out[i] = (ast.unparse(module), checks)
        else:
            needed |= loaded(ast.parse(source))
    return dict(sorted(out.items()))
