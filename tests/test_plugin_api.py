"""Plugins written against the docs keep working: every name the plugin docs tell an author to import imports.

The names are read from the docs themselves (``from taskbox... import ...`` in their Python code blocks, and
dotted ``taskbox.x.Name`` references in backticks), so a name the docs add is checked without editing this test.
A lazy name behind an SDK this environment deliberately lacks (``taskbox.flytekit`` needs flytekit) is checked
against its package's ``__all__``; tests/flytekit_plugin imports it with flytekit.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
PLUGIN_DOCS = ("plugins.md", "jobs.md")
#: SDKs ``.venv`` does not have (as the executor images): names that need them are lazy in their package.
OPTIONAL_SDKS = frozenset({"flytekit"})
_CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.DOTALL)
_DOTTED = re.compile(r"`(taskbox(?:\.\w+)+)`")


def imports_in(doc: str) -> list[tuple[str, str]]:
    """``(module, name)`` for each ``from taskbox... import name``; ``("taskbox.x", "")`` for ``import taskbox.x``."""
    found = []
    for block in _CODE_BLOCK.findall((DOCS / doc).read_text()):
        for node in ast.walk(ast.parse(block.replace("...", "pass"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "taskbox":
                found += [(node.module, alias.name) for alias in node.names]
            elif isinstance(node, ast.Import):
                found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "taskbox"]
    return found


def references_in(doc: str) -> list[str]:
    return sorted(set(_DOTTED.findall((DOCS / doc).read_text())))


def get(obj: object, name: str) -> object:
    """``getattr``; a lazy name whose import needs an SDK of :data:`OPTIONAL_SDKS` must be in ``__all__``."""
    try:
        return getattr(obj, name)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in OPTIONAL_SDKS:
            raise
        assert name in getattr(obj, "__all__", ()), f"{name} is not exported by {obj!r}"
        return name


def resolve(dotted: str) -> object:
    """Import the longest importable module prefix of ``dotted`` and get the rest as attributes."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            obj = get(obj, attr)
        return obj
    raise ModuleNotFoundError(dotted)


IMPORTS = sorted({pair for doc in PLUGIN_DOCS for pair in imports_in(doc)})
REFERENCES = sorted({ref for doc in PLUGIN_DOCS for ref in references_in(doc)})


def test_the_docs_name_what_an_executor_author_imports():
    names = {f"{module}.{name}" for module, name in IMPORTS}
    expected = {"taskbox.executors.Executor", "taskbox.executors.config.ExecutorConfig", "taskbox.errors.Terminated",
                "taskbox.executors.jobs.AsyncExecutor", "taskbox.executors.registry.register"}  # fmt: skip
    assert expected <= names


@pytest.mark.parametrize(("module", "name"), IMPORTS, ids=[f"{m}.{n}" for m, n in IMPORTS])
def test_documented_import_works(module: str, name: str):
    mod = importlib.import_module(module)
    if name:
        try:
            get(mod, name)
        except AttributeError:
            pytest.fail(f"docs say `from {module} import {name}`, but {module} has no {name}")


@pytest.mark.parametrize("dotted", REFERENCES)
def test_documented_dotted_name_resolves(dotted: str):
    assert resolve(dotted) is not None


def test_the_example_executor_is_valid_and_stops_when_cancelled():
    """docs/plugins.md's first example: a valid plugin (declared outputs), and a cancelled wait raises."""
    import threading
    import types

    from taskbox.errors import Terminated
    from taskbox.executors import registry

    block = next(b for b in _CODE_BLOCK.findall((DOCS / "plugins.md").read_text()) if b.startswith("# my_executors/"))
    module = types.ModuleType("my_executors_sleep")
    exec(compile(block, "plugins.md", "exec"), module.__dict__)  # the docs' own code
    cls = registry.validate(module.WaitExecutor, "docs example")
    assert cls.interface({"seconds": 1}) == ({}, {"waited": "float"})
    assert cls.summary and cls.requires == ()
    config = cls.Config(seconds=0.01)
    context = types.SimpleNamespace(cancelled=threading.Event())
    assert cls().execute(context, config, {}) == {"waited": 0.01}
    context.cancelled.set()
    with pytest.raises(Terminated):
        cls().execute(context, config, {})
