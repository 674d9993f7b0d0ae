"""The line between the two packages: the teaching package never imports the machinery, and
chapters and labs reach the machinery only through its one documented entry point."""
import ast
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
#: what a chapter may import from course_tools (docs/maintainers.md, "The house")
CHAPTER_INTERFACE = {("course_tools.selfcheck", "quiz")}


def _imports(tree: ast.AST) -> list[tuple[str, str | None]]:
    """(module, name) for every import in the tree; name is None for ``import module``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.module, a.name) for a in node.names]
    return out


def _code_cells(path: Path) -> str:
    nb = json.loads(path.read_text())
    return "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"
                     if not "".join(c["source"]).lstrip().startswith(("%", "!")))


@pytest.mark.parametrize("path", sorted((REPO / "course_utils").rglob("*.py")), ids=lambda p: p.name)
def test_the_teaching_package_never_imports_the_machinery(path):
    bad = [m for m, _ in _imports(ast.parse(path.read_text())) if m.split(".")[0] == "course_tools"]
    assert not bad, f"{path.relative_to(REPO)} imports {bad}: course_utils must not depend on course_tools"


def test_chapters_and_labs_use_only_the_documented_entry_point():
    notebooks = sorted((REPO / "chapters").glob("[0-9][0-9]_*.ipynb")) + sorted((REPO / "solutions").rglob("*.ipynb")) \
        + sorted((REPO / "labs").rglob("*.ipynb"))
    assert len(notebooks) > 16
    for path in notebooks:
        used = {(m, n) for m, n in _imports(ast.parse(_code_cells(path))) if m.split(".")[0] == "course_tools"}
        allowed = CHAPTER_INTERFACE if path.parent.name == "chapters" else set()
        assert used <= allowed, f"{path.relative_to(REPO)} imports {sorted(used - allowed)} from the machinery"


def _package_imports(package: str) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports (anywhere in the file, functions included)."""
    mods = {}
    for p in (REPO / package).rglob("*.py"):
        name = ".".join(p.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        mods[name] = p
    graph = {}
    for name, p in mods.items():
        deps = set()
        for module, imported in _imports(ast.parse(p.read_text())):
            target = f"{module}.{imported}" if f"{module}.{imported}" in mods else module
            if target in mods and target != name and not name.startswith(target + "."):
                deps.add(target)
        graph[name] = deps
    return graph


@pytest.mark.parametrize("package", ["course_utils", "course_tools"])
def test_no_import_cycles(package):
    graph, state, path = _package_imports(package), {}, []

    def visit(m):
        state[m] = "open"
        path.append(m)
        for d in sorted(graph[m]):
            assert state.get(d) != "open", f"import cycle: {' -> '.join(path[path.index(d):] + [d])}"
            if d not in state:
                visit(d)
        path.pop()
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_rl_core_knows_nothing_of_language_models():
    graph = _package_imports("course_utils")
    for m, deps in graph.items():
        if m.startswith("course_utils.rl."):
            assert all(d.startswith("course_utils.rl") for d in deps), (m, deps)
