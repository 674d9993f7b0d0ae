"""The static scan of a student's code: advice for a manual look, no condition of scoring.

:func:`check_student_code` lists what in a student-written cell deserves a look: patching a
module, rebinding a name a locked cell imports, exiting the process,
``exec``/``eval``/``getattr``/``builtins``, dunder attributes. The notes go to
``report.csv``; the score never depends on them (it comes from the records).

Imports: the standard library only.
"""

from __future__ import annotations

import ast

#: Calls worth a look in a student's cell.
FORBIDDEN_CALLS = {"exit", "quit", "exec", "eval", "compile", "__import__", "setattr",
                   "getattr", "delattr", "globals", "vars", "breakpoint", "sys.exit", "os._exit", "os.kill",
                   "os.abort", "os.system", "os.killpg", "importlib.reload",
                   "importlib.import_module", "signal.signal", "signal.alarm"}
FORBIDDEN_NAMES = {"builtins", "__builtins__", "get_ipython", "__loader__", "__spec__"}


def _dotted(node: ast.AST) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def _import_bindings(node: ast.Import | ast.ImportFrom) -> dict[str, str]:
    """``{name: what it is bound to}`` for one import statement (``np: numpy``)."""
    out = {}
    for alias in node.names:
        if isinstance(node, ast.ImportFrom):
            out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        else:
            out[alias.asname or alias.name.split(".")[0]] = alias.name if alias.asname else alias.name.split(".")[0]
    return out


def _imported_names(tree: ast.AST) -> dict[str, str]:
    """Names bound by ``import`` statements in ``tree``, with what they are bound to."""
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(_import_bindings(node))
    return names


def check_student_code(source: str, protected: dict[str, str] | set[str]) -> list[str]:
    """Reasons why a student-written cell deserves a manual look (empty when none).

    Patching a module, rebinding a name a locked cell imports (``protected``), exiting the
    process, ``exec``/``eval``/``getattr``/``builtins``, dunder attributes. This is advice
    in ``report.csv``: the score does not depend on it (see :mod:`course_tools.grading`).
    """
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # null bytes, absurd nesting
        return []
    if not isinstance(protected, dict):
        protected = {name: "" for name in protected}
    modules = set(protected) | set(_imported_names(tree))
    reasons = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _dotted(node.func)
            if name in FORBIDDEN_CALLS:
                reasons.append(f"line {node.lineno}: calls {name}()")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            reasons.append(f"line {node.lineno}: uses {node.id}")
        elif (isinstance(node, ast.Attribute) and node.attr.startswith("__")
              and node.attr.endswith("__") and node.attr != "__init__"):
            reasons.append(f"line {node.lineno}: uses {_dotted(node) or '...' + node.attr}")
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            mods = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            if any(m.split(".")[0] in FORBIDDEN_NAMES | {"ctypes", "gc", "inspect"} for m in mods):
                reasons.append(f"line {node.lineno}: imports {', '.join(mods)}")
        targets: list[ast.AST] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
            targets = [node.target]
        elif isinstance(node, ast.Delete):
            targets = list(node.targets)
        while targets:
            t = targets.pop()
            if isinstance(t, (ast.Tuple, ast.List)):
                targets += t.elts
            elif isinstance(t, ast.Starred):
                targets.append(t.value)
            elif isinstance(t, ast.Attribute):
                name = _dotted(t)
                if name and name.split(".")[0] in modules:
                    reasons.append(f"line {node.lineno}: assigns to {name}")
            elif isinstance(t, ast.Name) and t.id in protected:
                reasons.append(f"line {node.lineno}: rebinds {t.id}, which a locked cell imports")
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in protected:
            reasons.append(f"line {node.lineno}: rebinds {node.name}, which a locked cell imports")
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            for name, target in _import_bindings(node).items():
                if name in protected and protected[name] not in ("", target):
                    reasons.append(f"line {node.lineno}: rebinds {name}, which a locked cell imports")
    return sorted(set(reasons), key=lambda r: int(r.split()[1].rstrip(":")))
