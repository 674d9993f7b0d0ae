"""Taint: which names and expressions of a test cell the student's code may have made or changed.

The analysis that :mod:`course_tools.grading.probes` rewrites test cells with (its
docstring states the rules): the names a statement reads and binds (:func:`loaded`,
:func:`bound`); :class:`Taint`, the student's names and the objects handed to the student's
code, updated statement by statement, and which expressions can be evaluated in the
student's run (:meth:`Taint.keepable`); and :func:`_prune`, which drops the untainted
statements that nothing kept reads, so expected values are not computed.

Imports: the standard library only.
"""

from __future__ import annotations

import ast


def loaded(node: ast.AST) -> set[str]:
    """Every name read anywhere inside ``node``."""
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def bound(stmt: ast.AST) -> set[str]:
    """The names a statement binds in its namespace (assignment targets, defs, imports,
    loop and ``with`` targets, also inside compound statements)."""
    out: set[str] = set()
    for n in ast.walk(stmt):
        if isinstance(n, ast.Name) and isinstance(n.ctx, (ast.Store, ast.Del)):
            out.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(n.name)
        elif isinstance(n, (ast.Import, ast.ImportFrom)):
            out |= {(a.asname or a.name).split(".")[0] for a in n.names}
    return out


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


class Taint:
    """The taint of a lab, read cell by cell: ``student`` holds the names the student's code
    made, ``changed`` the objects it may have changed (shared by every cell of the lab)."""

    def __init__(self, student: set[str], changed: set[str]):
        self.student, self.changed = student, changed

    # -- taint ----------------------------------------------------------------------
    def is_tainted(self, node: ast.AST, extra: frozenset[str] = frozenset()) -> bool:
        return bool(loaded(node) & (self.student | self.changed | extra))

    def calls_student(self, node: ast.AST) -> bool:
        """Whether ``node`` runs the student's code: calls a function or method whose root
        name is a student value."""
        return any(isinstance(n, ast.Call) and _root(n.func) in self.student for n in ast.walk(node))

    def _student_chain(self, node: ast.AST) -> bool:
        return isinstance(node, (ast.Name, ast.Attribute, ast.Subscript, ast.Starred)) and _root(node) in self.student

    def absorb(self, stmt: ast.stmt) -> None:
        """After ``stmt`` runs: names it bound by running the student's code (or by naming a
        student value) are student values; objects it handed to the student's code, or
        whose attributes it set from student values, may have been changed."""
        runs = self.calls_student(stmt)
        value = getattr(stmt, "value", None)
        if runs or (value is not None and self._student_chain(value)):
            self.student |= bound(stmt)
            for t in getattr(stmt, "targets", []):
                r = _root(t)
                if r and not isinstance(t, ast.Name):
                    self.changed.add(r)
        elif isinstance(stmt, (ast.For, ast.AsyncFor)) and self.is_tainted(stmt.iter):
            self.changed |= bound(stmt.target)
        for n in ast.walk(stmt):
            if isinstance(n, ast.Call) and _root(n.func) in self.student:
                for a in [*n.args, *(k.value for k in n.keywords)]:
                    r = _root(a)
                    if r and r not in self.student:
                        self.changed.add(r)

    # -- expressions ----------------------------------------------------------------
    def _operands(self, node: ast.expr) -> list[ast.expr] | None:
        """The values ``node`` compares or combines; None for a node evaluated whole when
        tainted (names, attributes, subscripts, calls of tainted functions)."""
        if isinstance(node, ast.Compare):
            return [node.left, *node.comparators]
        if isinstance(node, ast.BinOp):
            return [node.left, node.right]
        if isinstance(node, (ast.BoolOp, ast.IfExp)):
            return []  # always split: each branch may not be evaluable (short-circuit)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            return list(node.elts)
        if isinstance(node, ast.Dict):
            return [x for x in [*node.keys, *node.values] if x is not None]
        if isinstance(node, ast.Call):
            return [*node.args, *(k.value for k in node.keywords)]
        return None

    def keepable(self, node: ast.expr, extra: frozenset[str]) -> bool:
        """Whether ``node`` can be evaluated in the student's run: tainted, and combining
        no untainted value (an untainted argument of a tainted function is an input)."""
        if not self.is_tainted(node, extra):
            return False
        if isinstance(node, (ast.GeneratorExp, ast.ListComp, ast.SetComp, ast.DictComp, ast.Lambda,
                             ast.BoolOp, ast.IfExp)):
            return False
        if isinstance(node, ast.UnaryOp):
            return self.keepable(node.operand, extra)
        if isinstance(node, ast.Call):
            func_tainted = self.is_tainted(node.func, extra)
            if isinstance(node.func, ast.Attribute) and func_tainted and not self.keepable(node.func.value, extra):
                return False  # a method of something that is itself split: (x >= 0).all()
            ops = [*node.args, *(k.value for k in node.keywords)]
            if _root(node.func) in self.student:  # the student's code: untainted arguments are its inputs
                return all(self.keepable(a, extra) or not self.is_tainted(a, extra) for a in ops)
            return all(self.keepable(a, extra) for a in ops)
        if isinstance(node, (ast.Attribute, ast.Subscript, ast.Starred)):
            return self.keepable(node.value, extra)  # a look-up in untainted data is the expected side
        ops = self._operands(node)
        if ops is None:
            return True
        return bool(ops) and all(self.keepable(o, extra) for o in ops)


def _headers(node: ast.stmt) -> list[ast.expr]:
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return [node.iter]
    if isinstance(node, (ast.While, ast.If)):
        return [node.test]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return [i.context_expr for i in node.items]
    return []


def _prune(body: list[ast.stmt], needed: set[str]) -> tuple[list[ast.stmt], set[str]]:
    """Drop untainted statements whose names nothing later reads; ``needed`` holds the names
    read after ``body``. Returns the kept statements and the names read before them."""
    kept: list[ast.stmt] = []
    for node in reversed(body):
        untainted = getattr(node, "_probe_derived", False)
        if isinstance(node, (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try)):
            inner = set(needed)
            for name in ("body", "orelse", "finalbody"):
                if hasattr(node, name):
                    new_body, got = _prune(getattr(node, name), set(needed) | loaded_in(node, name))
                    setattr(node, name, new_body)
                    inner |= got
            if isinstance(node, ast.Try):
                for h in node.handlers:
                    h.body, got = _prune(h.body, set(needed))
                    inner |= got
            empty = all(not getattr(node, n, []) for n in ("body", "orelse", "finalbody")) and not (
                isinstance(node, ast.Try) and any(h.body for h in node.handlers))
            if untainted and empty:
                continue
            if not node.body:
                node.body = [ast.Pass()]
            if isinstance(node, ast.Try):
                for h in node.handlers:
                    h.body = h.body or [ast.Pass()]
            needed = inner | {n for h in _headers(node) for n in loaded(h)}
            kept.append(node)
            continue
        names = bound(node)
        is_def = isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign))
        if untainted and is_def and not (names & needed):
            continue
        if is_def and not isinstance(node, ast.AugAssign):
            needed = needed - names
        needed = needed | loaded(node)
        kept.append(node)
    return list(reversed(kept)), needed


def loaded_in(node: ast.stmt, field: str) -> set[str]:
    """Names a loop reads again on its next iteration (its own body), so a loop body keeps
    what a later iteration needs."""
    if isinstance(node, (ast.For, ast.AsyncFor, ast.While)) and field == "body":
        return set().union(*(loaded(s) for s in node.body)) if node.body else set()
    return set()
