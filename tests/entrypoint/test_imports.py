"""The entrypoint's modules import each other without a cycle, and nothing from the authoring layer above.

Layers (lowest first): core (errors, storage, literals, context, secrets, redaction, ...) <- executors
(+ http/, sql/) <- entrypoint <- authoring. Lazy imports inside functions count: a cycle through them
still ties the modules together. Imports under ``if TYPE_CHECKING:`` do not count.
"""

from __future__ import annotations

import ast
from pathlib import Path

import taskbox.entrypoint

ENTRYPOINT = Path(taskbox.entrypoint.__file__).parent


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    typing_only = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and "TYPE_CHECKING" in ast.unparse(block.test)
        for node in ast.walk(block)
    }
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("taskbox.")}


def _graph() -> dict[str, set[str]]:
    modules = {f"taskbox.entrypoint.{p.stem}": p for p in ENTRYPOINT.glob("*.py") if p.stem != "__init__"}
    return {name: _imports(path) for name, path in modules.items()}


def test_no_import_cycle_among_entrypoint_modules():
    graph = _graph()
    edges = {m: {t for t in targets if t in graph and t != m} for m, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(edges[module]):
            assert state.get(target) != 1, "import cycle: " + " -> ".join([*path, module, target])
            if target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module, [])


def test_entrypoint_imports_nothing_from_the_authoring_layer():
    upward = {(m, t) for m, targets in _graph().items() for t in targets if t.startswith("taskbox.authoring")}
    assert upward == set()
