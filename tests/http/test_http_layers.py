"""Layers: ``taskbox.http`` and ``taskbox.sql`` import nothing from ``taskbox.executors``; ``http-job`` builds and
sends its requests with ``taskbox.http.request``, not through the sibling ``http`` executor; the SSRF guard's
test hook ``taskbox.executors.http.RESOLVER`` still reaches both executors."""

from __future__ import annotations

import ast
from pathlib import Path

import taskbox
from taskbox.executors import http as http_executor
from taskbox.http import request

SRC = Path(taskbox.__file__).parent


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports (at any depth: lazy imports count)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def test_http_and_sql_libraries_do_not_import_the_executors():
    offenders = {
        f"{path.relative_to(SRC)}: {module}"
        for package in ("http", "sql")
        for path in sorted((SRC / package).rglob("*.py"))
        for module in imported_modules(path)
        if module == "taskbox.executors" or module.startswith("taskbox.executors.")
    }
    assert offenders == set()


def test_http_job_does_not_import_the_http_executor():
    modules = imported_modules(SRC / "executors" / "http_job.py")
    assert not {m for m in modules if m in ("taskbox.executors.http", "taskbox.executors.http.RESOLVER")}


def test_the_resolver_test_hook_is_the_request_module_s(monkeypatch):
    sentinel = object()
    monkeypatch.setattr(http_executor, "RESOLVER", sentinel)
    assert request.RESOLVER is sentinel and request.resolver() is sentinel and http_executor.RESOLVER is sentinel
    monkeypatch.undo()
    assert request.RESOLVER is None and http_executor.RESOLVER is None


def test_request_helpers_stay_importable_from_the_executor_module():
    assert http_executor.build_request is request.build_request
    assert http_executor.check_header_value is request.check_header_value
