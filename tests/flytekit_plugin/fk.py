"""flytekit (``.venv-flytekit``, ``make flytekit-venv``) as the tests' peer: define, run, package, read back.

flytekit runs in its own virtual environment (taskbox's ``.venv`` has none, as the executor images): :func:`tool`
runs ``fk_tool.py`` there and returns its JSON answer; :func:`package` runs ``pyflyte package`` on a workflow
module and returns the taskbox tasks' specs; :func:`fill` substitutes propeller's placeholders. A missing
environment fails the test with the command that makes it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, subprocess_env

FLYTEKIT_VENV = Path(os.environ.get("TASKBOX_FLYTEKIT_VENV", ROOT / ".venv-flytekit"))
PYTHON = FLYTEKIT_VENV / "bin" / "python"
PYFLYTE = FLYTEKIT_VENV / "bin" / "pyflyte"
PYFLYTE_EXECUTE = FLYTEKIT_VENV / "bin" / "pyflyte-execute"
HERE = Path(__file__).resolve().parent
TOOL = HERE / "fk_tool.py"
GREET_SRC = ROOT / "examples" / "greet-executor" / "src"
#: The executor class path of taskbox.flytekit's tasks (the images resolve it by name).
CLASS_PATH = "taskbox.flytekit.executors."
TEMPLATE_RESOLVER = "flytekit.core.python_customized_container_task.default_task_template_resolver"


def require_flytekit() -> None:
    """Fail (never skip) when the flytekit environment is missing, or lacks taskbox."""
    for path in (PYTHON, PYFLYTE, PYFLYTE_EXECUTE):
        if not path.exists():
            pytest.fail(f"{path} is missing: run `make flytekit-venv` (flytekit and taskbox in {FLYTEKIT_VENV})")


def require_module(module: str, hint: str) -> None:
    """Fail (never skip) when the flytekit environment cannot import ``module``; ``hint`` says how to install it."""
    require_flytekit()
    proc = subprocess.run([str(PYTHON), "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        pytest.fail(f"{FLYTEKIT_VENV} cannot import {module}: {hint}\n{proc.stderr[-1000:]}")


def flytekit_env(env: dict[str, Any] | None = None) -> dict[str, str]:
    """The subprocess environment: the test's string values, this directory and the greet example on the path."""
    extra = {k: v for k, v in (env or {}).items() if isinstance(v, str)}
    full = subprocess_env(**extra)
    full["PYTHONPATH"] = os.pathsep.join([str(HERE), str(GREET_SRC), full.get("PYTHONPATH", "")])
    return full


def tool(env: dict[str, Any] | None, *args: str, cwd: str | None = None) -> Any:
    """Run ``fk_tool.py ARGS`` with flytekit and return its JSON answer."""
    require_flytekit()
    proc = subprocess.run([str(PYTHON), str(TOOL), *args], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env=flytekit_env(env))  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def pyflyte(env: dict[str, Any] | None, *args: str, cwd: str) -> subprocess.CompletedProcess[str]:
    """Run ``pyflyte ARGS`` (flytekit's own CLI)."""
    require_flytekit()
    return subprocess.run([str(PYFLYTE), *args], capture_output=True, text=True, timeout=180, cwd=cwd,
                          env=flytekit_env(env))  # fmt: skip


def package(env: dict[str, Any] | None, module: str, out: Path, *options: str) -> dict[str, dict[str, Any]]:
    """``pyflyte --pkgs MODULE package [OPTIONS]`` into ``out``; write each task's ``<name>.task.pb``; return the specs.

    Returns:
        Task name -> what fk_tool.py's ``specs`` prints (args, image, type, custom, secrets...).
    """
    archive = out / "flyte-package.tgz"
    proc = pyflyte(env, "--pkgs", module, "package", "--image", "ghcr.io/example/user:1", "-f", "-o", str(archive),
                   *options, cwd=str(HERE))  # fmt: skip
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    return tool(env, "specs", str(archive), str(out))


def fill(args: list[str], values: dict[str, str]) -> list[str]:
    """Substitute propeller's placeholders (``{{.input}}``, ``{{.outputPrefix}}``...) as it does."""
    return [values.get(arg, arg) for arg in args]


def placeholders(work: Path, name: str, prefix: str = "") -> dict[str, str]:
    """Propeller's values for a run of task ``name`` whose files are under ``work`` (as the container sees them).

    ``prefix`` replaces ``work`` in the values (a mount point inside a container).
    """
    base = prefix or str(work)
    return {
        "{{.input}}": f"{base}/inputs.pb",
        "{{.outputPrefix}}": f"{base}/out",
        "{{.rawOutputDataPrefix}}": f"{base}/raw",
        "{{.taskTemplatePath}}": f"{base}/{name}.task.pb",
        "{{.checkpointOutputPrefix}}": f"{base}/checkpoint",
        "{{.prevCheckpointPrefix}}": '""',
    }
