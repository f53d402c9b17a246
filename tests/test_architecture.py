"""The layering of docs/architecture.md, checked on the source: imports point one way.

Every import counts, function-local and `TYPE_CHECKING` ones included. At folder level (one node per
app) the graph has no cycle except through the wiring package `config/`, which may import anything and
is imported by nothing but itself; at file level there is no cycle at all.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Lowest layer first; an app may import the apps of the layers below its own, never a peer or above.
LAYER_LIST: list[set[str]] = [
    {"training"},
    {"portal"},
    {"scheduler"},
    {"lending", "metrics", "evals"},
    {"experiments"},
    {"reports"},
    {"slackbot"},
    {"demo"},
    {"config"},
]
LAYERS = [app for layer in LAYER_LIST for app in sorted(layer)]
WIRING = "config"
APP_CODE = [app for app in LAYERS if app != WIRING]


def below(app: str) -> set[str]:
    level = next(i for i, layer in enumerate(LAYER_LIST) if app in layer)
    return set().union(*LAYER_LIST[:level])


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in LAYERS:
        base = ROOT / package
        if not base.is_dir():
            continue
        for path in base.rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _imported_names(path: Path, module: str) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield target
            for alias in node.names:
                yield f"{target}.{alias.name}"


def file_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        edges: set[str] = set()
        for name in _imported_names(path, module):
            # The longest known module the name starts with (a name may be `module.attribute`).
            parts = name.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    if candidate != module:
                        edges.add(candidate)
                    break
        graph[module] = edges
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def folder_graph() -> dict[str, set[str]]:
    folders: dict[str, set[str]] = {}
    for module, targets in file_graph().items():
        top = module.split(".")[0]
        folders.setdefault(top, set()).update(t.split(".")[0] for t in targets if t.split(".")[0] != top)
    return folders


def test_no_file_level_import_cycle() -> None:
    assert _cycles(file_graph()) == []


def test_no_folder_level_cycle_outside_the_wiring() -> None:
    graph = {k: {t for t in v if t != WIRING} for k, v in folder_graph().items() if k != WIRING}
    assert _cycles(graph) == []


@pytest.mark.parametrize("app", APP_CODE)
def test_imports_point_down_the_layers(app: str) -> None:
    not_below = sorted(folder_graph().get(app, set()) - below(app))
    assert not_below == [], f"{app} imports what is not below it: {not_below}"


@pytest.mark.parametrize("app", APP_CODE)
def test_no_app_reaches_into_others_at_run_time(app: str) -> None:
    """No registry filled from `ready()`, no Signals as control flow, no `import_module`/`hasattr`
    probing of sibling apps: the flow is the settings' step lists and plain imports."""
    found = []
    for path in (ROOT / app).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "ready":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} def ready()")
            elif isinstance(node, ast.Attribute | ast.Name):
                name = node.attr if isinstance(node, ast.Attribute) else node.id
                if name in {"import_module", "Signal"}:
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {name}")
    assert found == []


def test_the_checks_see_a_cycle_and_an_upward_import() -> None:
    """The graph code itself: a made-up cycle is found."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert "portal" in below("scheduler") and "metrics" not in below("evals")
