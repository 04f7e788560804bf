"""The one run pipeline (:mod:`taskbox.entrypoint.pipeline`) and its callers' hooks.

``taskbox execute`` and ``taskbox run`` share it: ``taskbox run`` hands the template it already parsed to
the resolver (read once, not written and read back), and reads a ``.pb`` inputs file on the same
memory-lean path as ``execute`` (serialized per input, never a whole ``LiteralMap``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from helpers import encode_inputs, make_template, simple, subprocess_env
from taskbox.entrypoint import pipeline
from taskbox.entrypoint.signals import TerminationGuard
from taskbox.errors import StorageError

INT = {"a": simple("INTEGER"), "s": simple("STRING")}

# Runs `taskbox run` in a fresh interpreter with the template reader counted and the whole-map inputs reader
# refused, so the test sees which path each read takes.
_PROBE = """
import sys
from taskbox.entrypoint import execute, template

reads = []
original = template.read_template

def counting(uri):
    reads.append(uri)
    return original(uri)

def whole_map(uri):
    raise AssertionError("inputs.pb parsed as a whole LiteralMap")

template.read_template = counting
execute.read_inputs = whole_map
from taskbox.entrypoint.run import main

code = main(sys.argv[1:])
print(f"template reads: {len(reads)}", file=sys.stderr)
sys.exit(code)
"""


def _probe_run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", _PROBE, *args], capture_output=True, text=True, timeout=120,
                          env=subprocess_env())  # fmt: skip


def test_taskbox_run_reads_its_template_once_and_its_inputs_per_input(tmp_path: Path):
    (tmp_path / "inputs.pb").write_bytes(encode_inputs({"a": 7, "s": "x y"}, INT))
    (tmp_path / "task.pb").write_bytes(make_template("echo", INT, INT).SerializeToString())
    out = tmp_path / "out"
    proc = _probe_run("--template", str(tmp_path / "task.pb"), "--inputs", str(tmp_path / "inputs.pb"),
                      "--outputs", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "template reads: 1" in proc.stderr
    assert json.loads((out / "outputs.json").read_text()) == {"a": 7, "s": "x y"}


def test_taskbox_run_damaged_input_bytes_are_still_a_user_input_error(tmp_path: Path):
    """Literals stay bytes until converted: bytes that do not parse are found then, and typed the same."""
    from flyteidl.core import literals_pb2

    lm = literals_pb2.LiteralMap.FromString(encode_inputs({"a": 7, "s": "x"}, INT))
    damaged = bytearray(lm.SerializeToString())
    damaged[-1] = 0xFF  # the string's last byte: no longer UTF-8
    (tmp_path / "inputs.pb").write_bytes(bytes(damaged))
    (tmp_path / "task.pb").write_bytes(make_template("echo", INT, INT).SerializeToString())
    out = tmp_path / "out"
    proc = _probe_run("--template", str(tmp_path / "task.pb"), "--inputs", str(tmp_path / "inputs.pb"),
                      "--outputs", str(out))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert json.loads((out / "error.json").read_text())["code"] == "USER:InvalidInput"
    assert not (out / "outputs.pb").exists()


# ------------------------------------------------------------------ run_committed


class _Calls:
    def __init__(self) -> None:
        self.working_dirs: list[str] = []
        self.successes: list[object] = []
        self.failures: list[BaseException] = []

    def body(self, result: object = None, exc: BaseException | None = None):
        def run(working_dir: str, cancelled: threading.Event) -> object:
            assert os.path.isdir(working_dir) and not cancelled.is_set()
            self.working_dirs.append(working_dir)
            if exc is not None:
                raise exc
            return result

        return run

    def on_failure(self, failure: BaseException) -> str:
        self.failures.append(failure)
        return "error committed"


def test_success_is_committed_and_the_scratch_directory_removed():
    calls = _Calls()
    outcome = pipeline.run_committed(TerminationGuard(), calls.body("outputs"),
                                     on_success=lambda o: calls.successes.append(o) or "done",
                                     on_failure=calls.on_failure)  # fmt: skip
    assert (outcome.failure, outcome.run_failure, outcome.result) == (None, None, "done")
    assert calls.successes == ["outputs"] and calls.failures == []
    assert not os.path.exists(calls.working_dirs[0])


def test_a_failed_run_is_committed_as_a_failure():
    calls = _Calls()
    boom = ValueError("boom")
    outcome = pipeline.run_committed(TerminationGuard(), calls.body(exc=boom),
                                     on_success=calls.successes.append, on_failure=calls.on_failure)  # fmt: skip
    assert (outcome.failure, outcome.run_failure, outcome.result) == (boom, boom, "error committed")
    assert calls.successes == [] and calls.failures == [boom]
    assert not os.path.exists(calls.working_dirs[0])


def test_a_failed_commit_of_outputs_is_committed_as_a_failure_of_the_commit_only():
    calls = _Calls()
    refused = StorageError("write refused")

    def commit(outputs: object) -> None:
        raise refused

    outcome = pipeline.run_committed(TerminationGuard(), calls.body("outputs"), on_success=commit,
                                     on_failure=calls.on_failure)  # fmt: skip
    assert (outcome.failure, outcome.run_failure) == (refused, None)
    assert calls.failures == [refused]


@pytest.mark.parametrize("prefix", ["taskbox-", "taskbox-run-"])
def test_scratch_directories_are_private(prefix):
    path = pipeline.scratch_dir(prefix)
    try:
        assert os.path.basename(path).startswith(prefix)
        assert os.stat(path).st_mode & 0o777 == 0o700
    finally:
        pipeline.remove_working_dir(path)
    assert not os.path.exists(path)
