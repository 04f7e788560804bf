"""The flyte SDK (``.venv-flyte2``, ``make flyte2-venv``) as the tests' peer: encode inputs, read outputs back.

The SDK runs in its own virtual environment (its dependencies are not taskbox's); :func:`sdk` runs
``tests/flyte2/sdk_tool.py`` there and returns its JSON answer. A missing environment fails the test with
the command that makes it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from helpers import ROOT, subprocess_env

FLYTE2_VENV = Path(os.environ.get("TASKBOX_FLYTE2_VENV", ROOT / ".venv-flyte2"))
PYTHON = FLYTE2_VENV / "bin" / "python"
#: ``taskbox`` installed beside the SDK (the python image's layout: taskbox[flyte2]).
TASKBOX_WITH_SDK = FLYTE2_VENV / "bin" / "taskbox"
FLYTE_A0 = FLYTE2_VENV / "bin" / "a0"
TOOL = Path(__file__).with_name("sdk_tool.py")
HERE = str(Path(__file__).parent)
#: What the v2 backend sets in a task's pod (flyte's runtime asserts them).
POD_ENV = {
    "FLYTE_INTERNAL_EXECUTION_PROJECT": "p",
    "FLYTE_INTERNAL_EXECUTION_DOMAIN": "d",
    "_U_ORG_NAME": "o",
    "ACTION_NAME": "a1",
    "RUN_NAME": "r1",
}


def require_sdk() -> None:
    """Fail (never skip) when the flyte SDK environment is missing."""
    for path in (PYTHON, TASKBOX_WITH_SDK, FLYTE_A0):
        if not path.exists():
            pytest.fail(f"{path} is missing: run `make flyte2-venv` (flyte 2.12 and taskbox in {FLYTE2_VENV})")


def sdk(*args: str, cwd: str | None = None) -> Any:
    """Run ``sdk_tool.py ARGS`` with the SDK and return its JSON answer."""
    require_sdk()
    proc = subprocess.run(
        [str(PYTHON), str(TOOL), *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=subprocess_env()
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def fill(args: list[str], inputs: str, outputs: str, raw: str) -> list[str]:
    """Substitute the v2 backend's placeholders as its connector utilities do."""
    values = {
        "{{.input}}": inputs,
        "{{.outputPrefix}}": outputs,
        "{{.rawOutputDataPrefix}}": raw,
        "{{.runName}}": POD_ENV["RUN_NAME"],
        "{{.actionName}}": POD_ENV["ACTION_NAME"],
    }
    return [values.get(arg, arg) for arg in args]


def run_a0(executable: str | Path, args: list[str], cwd: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``EXECUTABLE a0 ...`` (``args`` start with ``a0``) the way a v2 pod does."""
    command = [str(executable), *args] if Path(executable).name == "taskbox" else [str(executable), *args[1:]]
    full_env = subprocess_env(_U_RUN_BASE=str(Path(cwd) / "run-base"), **POD_ENV, **env)
    full_env["PYTHONPATH"] = os.pathsep.join([HERE, full_env.get("PYTHONPATH", "")])
    return subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=cwd, env=full_env)
