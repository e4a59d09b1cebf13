"""The house's floors hold: no import circles (imports inside functions count) and nothing in
`src/nightshift` imports the application shell in `flows/`."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = {"nightshift": ROOT / "src" / "nightshift", "flows": ROOT / "flows"}


def _module_name(path: Path) -> str:
    for top, folder in PACKAGES.items():
        if path.is_relative_to(folder):
            parts = [top, *path.relative_to(folder).with_suffix("").parts]
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    raise ValueError(path)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(tree: ast.AST, known: set[str]) -> set[str]:
    """Our modules a module imports anywhere in its body (not under `if TYPE_CHECKING:`)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from pkg import module` imports the module; `from pkg import name` needs pkg itself
            names = {f"{node.module}.{a.name}" for a in node.names}
            found.update(names & known if names <= known else {node.module, *(names & known)})
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return {m for m in found if m in known}


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    files = {_module_name(p): p for folder in PACKAGES.values() for p in folder.rglob("*.py")}
    known = set(files)
    return {name: _imported(ast.parse(path.read_text()), known) - {name} for name, path in files.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return out


def test_there_are_no_import_circles() -> None:
    assert cycles(import_graph()) == []


def test_nothing_in_the_library_imports_the_flows() -> None:
    offenders = {m: sorted(i for i in deps if i.startswith("flows")) for m, deps in import_graph().items()
                 if m.startswith("nightshift")}
    assert {m: d for m, d in offenders.items() if d} == {}


@pytest.mark.parametrize("graph, expected", [
    ({"a": {"b"}, "b": {"a"}, "c": set()}, [["a", "b"]]),
    ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
])
def test_the_circle_finder_finds_circles(graph, expected) -> None:
    assert cycles(graph) == expected


def test_imports_inside_functions_count(tmp_path) -> None:
    tree = ast.parse("def f():\n    from nightshift import night\n    from nightshift.jobs import JOBS\n")
    assert _imported(tree, {"nightshift", "nightshift.night", "nightshift.jobs"}) == {"nightshift.night", "nightshift.jobs"}
