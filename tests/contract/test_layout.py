"""The layout's promises (README, Architecture): no import cycle between modules or packages,
counting imports made inside functions too (a lazy import hides a cycle, it does not remove it),
and each layer imports only the layers beneath it."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

from app.core.settings import PROJECT_ROOT

SHIPPED = ("app", "wiring", "topics", "agents", "console", "lifecycle", "devstack")
# what each top-level package may import of ours (besides itself)
ALLOWED = {
    "app": set(),
    "wiring": {"app"},
    "topics": {"app", "wiring"},
    "agents": {"app", "wiring", "topics"},
    "console": {"app", "wiring"},
    "devstack": {"app", "wiring", "topics"},
    "lifecycle": {"app", "wiring", "topics", "agents", "console", "devstack"},
}
# inside the domain: the stages each stage may import ("app" is app/notifications.py)
STAGES = {
    "core": set(),
    "access": {"core"},
    "intake": {"core"},
    "profiles": {"core"},
    "rendering": {"core", "app"},
    "state": {"core", "app"},
    "planning": {"core", "app", "intake", "profiles", "rendering", "state"},
    "delivery": {"core", "app", "profiles", "state"},
    "app": {"core"},
}


def modules() -> dict[str, Path]:
    found = {}
    for top in SHIPPED:
        for path in (PROJECT_ROOT / top).rglob("*.py"):
            parts = path.relative_to(PROJECT_ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports, anywhere in its body."""
    mods = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in mods.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                targets = [base, *(f"{base}.{a.name}" for a in node.names)]
            for target in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    graph[name].add(target)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in list(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))
            elif child not in index:
                index[child] = low[child] = len(index)
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph.get(child, ())))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    return found


def package_of(module: str) -> str:
    path = modules()[module]
    return module if path.name == "__init__.py" else module.rpartition(".")[0] or module


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package → the packages it imports from (a package and its own sub-packages not counted)."""
    packages: dict[str, set[str]] = defaultdict(set)
    for source, targets in graph.items():
        a = package_of(source)
        for target in targets:
            b = package_of(target)
            if a != b and not b.startswith(a + ".") and not a.startswith(b + "."):
                packages[a].add(b)
    return packages


def stage(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in STAGES) else "app"


def test_the_graph_sees_what_it_should():
    """The checks below are only as good as the graph: it finds a known edge, a lazy one too."""
    graph = import_graph()
    assert "app.planning.rules" in graph["app.planning.planner"] or any(
        t.startswith("app.planning.model") for t in graph["app.planning.planner"]
    )
    assert "devstack.dev" in graph["lifecycle.cli"]  # imported inside a function
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back():
    assert cycles(import_graph()) == []


def test_no_package_imports_itself_back():
    assert cycles(package_graph(import_graph())) == []


@pytest.mark.parametrize("top", SHIPPED)
def test_each_layer_imports_only_the_layers_beneath_it(top):
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        if source.split(".")[0] == top
        for target in targets
        if target.split(".")[0] != top and target.split(".")[0] not in ALLOWED[top]
    )
    assert wrong == []


def test_each_stage_of_the_domain_imports_only_what_it_builds_on():
    wrong = sorted(
        f"{source} imports {target}"
        for source, targets in import_graph().items()
        if source.startswith("app.") or source == "app"
        for target in targets
        if stage(target) != stage(source) and stage(target) not in STAGES[stage(source)]
    )
    assert wrong == []
