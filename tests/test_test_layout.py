"""Test modules outside a package must have unique basenames: pytest's rootdir imports collide otherwise.

A second ``test_registry.py`` (tests/images beside tests/executors) made collection fail only when the whole
suite ran ("import file mismatch"), never when either folder ran alone.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_module_basenames_are_unique_outside_packages():
    seen: dict[str, list[Path]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        if not (path.parent / "__init__.py").exists():
            seen[path.name].append(path.relative_to(TESTS))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
