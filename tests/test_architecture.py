"""The corridors between the packages: layers one way and no import cycle anywhere.

The import graph is read from the source with ``ast``: every ``import`` and ``from ...
import`` of a project module, at module level or inside a function (a function-local
import that closes a loop is still a loop). An import of a package counts as an import of
its ``__init__``; ``from package import name`` counts as an import of the submodule
``package.name`` when that is a module. import-linter checks the same contracts in CI
(pyproject.toml); this test also sees imports that import-linter's graph may leave out.
"""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("attention", "dynamics", "experiments", "paper_repro")  # top layer last
LAYER = {"attention": 0, "dynamics": 1, "experiments": 2, "paper_repro": 3}


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _package_of(name: str, path: Path) -> str:
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports (anywhere in its source)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = _package_of(name, path).split(".")
                    anchor = anchor[: len(anchor) - node.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_reader_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_reader_sees_function_local_imports():
    graph = import_graph()
    # dynamics.simulate imports the diffrax path inside a function only
    assert "dynamics.integrators.diffrax_path" in graph["dynamics.simulate"]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycle(package):
    graph = import_graph()
    cycles = [c for c in _cycles(graph) if any(m.split(".")[0] == package for m in c)]
    assert cycles == [], f"import cycles through {package}: {cycles}"


def test_layers_point_one_way():
    """paper_repro -> experiments -> dynamics -> attention, never upwards."""
    upward = sorted(
        (src, dst) for src, targets in import_graph().items() for dst in targets
        if LAYER[dst.split(".")[0]] > LAYER[src.split(".")[0]]
    )
    assert upward == []
