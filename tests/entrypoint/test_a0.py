"""``taskbox a0`` with prebuilt executors (no flyte SDK needed): v2's error policy, SIGTERM, secrets, commits.

The error documents are read with v1's message types: v2's ``ErrorDocument`` shares their field numbers
(tests/flyte2/ reads them with the real SDK).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2

from helpers import TASKBOX, commit_files, encode_inputs, make_template, run, simple, subprocess_env
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template

STR, INT = simple("STRING"), simple("INTEGER")
SECRET = "s3cr3t-a0-value"


def _args(tmp_path: Path, template, inputs: bytes, out: Path) -> list[str]:
    (tmp_path / "inputs.pb").write_bytes(inputs)
    args = a0_args(PREBUILT_RESOLVER, ["template", encode_template(template.SerializeToString())], version="v1")
    values = {"{{.input}}": str(tmp_path / "inputs.pb"), "{{.outputPrefix}}": str(out)}
    return [TASKBOX, *[values.get(a, a) for a in args]]


def _error(out: Path) -> errors_pb2.ContainerError:
    assert commit_files(str(out)) == {"error.pb"}
    return errors_pb2.ErrorDocument.FromString((out / "error.pb").read_bytes()).error


@pytest.mark.parametrize(
    ("kind", "code", "origin", "recoverable"),
    [
        ("user", "InvalidInput", execution_pb2.ExecutionError.USER, False),  # a taskbox error keeps its mapping
        ("bug", "ValueError", execution_pb2.ExecutionError.USER, True),  # v2: an exception a task raised
    ],
)
def test_error_policy_of_v2(tmp_path, kind, code, origin, recoverable):
    template = make_template("test-fail", {"kind": STR}, {"x": INT})
    out = tmp_path / "out"
    proc = run(_args(tmp_path, template, encode_inputs({"kind": kind}, {"kind": STR}), out))
    assert proc.returncode == 0, proc.stderr
    error = _error(out)
    assert (error.code, error.origin) == (code, origin)
    assert error.kind == (
        errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    )
    assert not error.HasField("timestamp") and not error.worker


def test_secrets_are_masked_in_the_error_document(tmp_path):
    template = make_template("test-fail", {"kind": STR}, {"x": INT})
    template.security_context.secrets.add(group="demo", key="token")
    out = tmp_path / "out"
    proc = run(
        _args(tmp_path, template, encode_inputs({"kind": "secret"}, {"kind": STR}), out), _FSEC_DEMO_TOKEN=SECRET
    )
    assert proc.returncode == 0, proc.stderr
    error = _error(out)
    assert "bad token" in error.message
    assert SECRET not in error.message and SECRET not in proc.stderr


def test_outputs_then_rerun_with_error_leaves_only_the_error(tmp_path):
    out = tmp_path / "out"
    echo = make_template("echo", {"n": INT}, {"n": INT})
    assert run(_args(tmp_path, echo, encode_inputs({"n": 5}, {"n": INT}), out)).returncode == 0
    assert commit_files(str(out)) == {"outputs.pb"}
    failing = make_template("test-fail", {"kind": STR}, {"x": INT})
    assert run(_args(tmp_path, failing, encode_inputs({"kind": "user"}, {"kind": STR}), out)).returncode == 0
    assert commit_files(str(out)) == {"error.pb"}


def test_sigterm_commits_terminated_and_exits_143(tmp_path):
    marker = tmp_path / "running"
    template = make_template("test-sleep", {}, {"slept": simple("FLOAT")}, {"seconds": 60, "marker": str(marker)})
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _args(tmp_path, template, b"", out), env=subprocess_env(), stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the task never started"
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr
    error = _error(out)
    assert (error.code, error.origin) == ("Terminated", execution_pb2.ExecutionError.SYSTEM)
    assert error.kind == errors_pb2.ContainerError.RECOVERABLE
