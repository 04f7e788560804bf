"""Helpers for ``@taskbox.task`` tests: the sample project, and the real CLI with the function resolver."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from helpers import ROOT, TASKBOX, read_literal_map, run
from taskbox import storage

SAMPLE_PROJECT = ROOT / "tests" / "sample_project"
SAMPLE_MODULE = "sample_tasks.tasks"


def sample_tasks() -> ModuleType:
    """Import ``sample_tasks.tasks`` from ``tests/sample_project`` (added to ``sys.path`` once)."""
    if str(SAMPLE_PROJECT) not in sys.path:
        sys.path.insert(0, str(SAMPLE_PROJECT))
    import importlib

    return importlib.import_module(SAMPLE_MODULE)


def encode(values: dict[str, Any], hints: dict[str, Any], raw: str) -> bytes:
    """Serialize inputs by Python type hints (a task's ``inputs``); inputs left out stay absent."""
    from taskbox.literals import ConversionContext, python_to_literal_map

    ctx = ConversionContext(raw_output_prefix=raw, working_dir="/tmp")
    return python_to_literal_map(values, {n: hints[n] for n in values}, ctx).SerializeToString()


def substitute(args: list[str], **values: str) -> list[str]:
    """Fill Flyte's placeholders as propeller would (``input``, ``outputPrefix``, ``rawOutputDataPrefix``,
    ``checkpointOutputPrefix``, ``prevCheckpointPrefix``); placeholders without a value stay as they are."""
    out = []
    for arg in args:
        if arg.startswith("{{.") and arg.endswith("}}") and arg[3:-2] in values:
            arg = values[arg[3:-2]]
        out.append(arg)
    return out


def container_command(task: Any, **placeholders: str) -> list[str]:
    """A task template's container args, placeholders filled, runnable here (``taskbox`` = this venv's)."""
    args = substitute(list(task.template().container.args), **placeholders)
    assert args[0] == "taskbox"
    return [TASKBOX, *args[1:]]


def function_args(inputs: str, prefix: str, module: str, name: str, *extra: str) -> list[str]:
    """``taskbox execute ... --resolver taskbox.function -- task-module M task-name N``."""
    return [
        TASKBOX, "execute", "--inputs", inputs, "--output-prefix", prefix, *extra,
        "--resolver", "taskbox.function", "--", "task-module", module, "task-name", name,
    ]  # fmt: skip


def run_with_path(args: list[str], *paths: str | os.PathLike[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``paths`` (default: the sample project) first on ``PYTHONPATH``."""
    entries = [str(p) for p in (paths or (SAMPLE_PROJECT,))]
    current = os.environ.get("PYTHONPATH", "")
    return run(args, PYTHONPATH=os.pathsep.join([*entries, *([current] if current else [])]), **env)


def read_outputs_by_hints(prefix: str, hints: dict[str, Any], working_dir: str) -> dict[str, Any]:
    """Read ``outputs.pb`` under ``prefix`` into Python values by type hints."""
    from taskbox.literals import ConversionContext, literal_map_to_python

    ctx = ConversionContext(raw_output_prefix=working_dir, working_dir=working_dir)
    return literal_map_to_python(read_literal_map(storage.join(prefix, "outputs.pb")), hints, ctx)


def write_module(directory: Path, name: str, source: str) -> Path:
    """Write ``<directory>/<name>.py`` (a throwaway user module for the resolver)."""
    path = directory / f"{name}.py"
    path.write_text(source, encoding="utf-8")
    return path
