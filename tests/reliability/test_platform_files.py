"""Who is to blame for platform-written data, command by command (issue 18 item 9).

Why: ``inputs.pb`` (and, under ``taskbox execute``, the task template at ``{{.taskTemplatePath}}``) is written
by the platform before the pod starts; when it is missing, refused or damaged the user is not at fault and a
new attempt may read it whole, so the error is SYSTEM and recoverable. Files the user names (``taskbox run``)
keep the user-facing classes. The table and its reasons are in docs/reliability.md (*Who is to blame for
platform-written data*); flytekit's side is tests/entrypoint/test_error_golden.py, the local-file cases of
``execute`` are tests/reliability/test_hostile_inputs.py. Here:

* ``execute`` on S3 whose answer for ``inputs.pb`` or ``task.pb`` is 403 AccessDenied (through the fault
  proxy in front of moto): ``SYSTEM:InputsDenied`` / ``SYSTEM:TemplateDenied``, recoverable;
* ``a0`` with a prebuilt executor: the same decisions, with v2's codes (no ``SYSTEM:`` prefix);
* ``a0`` with a flyte-sdk task, handed to flyte's own runtime: flyte 2.12's ``a0`` exits 1 without
  ``error.pb`` for a missing or damaged ``inputs.pb`` (measured here, so a change in flyte is noticed);
  taskbox's commits the same error document as for a prebuilt task;
* ``taskbox run``: a damaged inputs file is the user's (exit 1), a missing one stays a storage error (exit 3).

Every run is judged and recorded in the reliability ledger (family ``platform-written files``).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from hostile import (
    TYPES,
    echo_template,
    expect_error,
    good_inputs,
    inputs_with,
    lit_of,
    nested_lists,
    offloaded,
)

from faultproxy import FailFirst, FaultProxy, s3_error
from helpers import TASKBOX, commit_files, execute_args, make_template, put, run
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template

pytestmark = pytest.mark.timeout(180)

FAMILY = "platform-written files"
GARBAGE = b"\x0a\xff\xff\xff not protobuf"


# ----------------------------------------------------------------------------- execute: access denied (S3 403)


@pytest.mark.servers
@pytest.mark.parametrize(
    ("denied", "code", "words"),
    [
        ("inputs.pb", "SYSTEM:InputsDenied", ("inputs.pb", "access denied")),
        ("task.pb", "SYSTEM:TemplateDenied", ("task template", "access denied")),
    ],
)
def test_execute_denied_platform_file_is_recoverable(s3_server, tmp_path, denied, code, words):
    base = s3_server.uri(f"platform-files-{uuid.uuid4().hex[:8]}")
    template = put(f"{base}/task.pb", echo_template())
    inputs = put(f"{base}/inputs.pb", good_inputs())
    prefix = str(tmp_path / "out")
    with FaultProxy(s3_server.endpoint, FailFirst(None, s3_error(403, "AccessDenied", "Access Denied"),
                                                  path_contains=denied)) as proxy:  # fmt: skip
        proc = run(execute_args(inputs, prefix, template), AWS_ENDPOINT_URL=proxy.endpoint)
        assert proxy.requests, "the run never reached the proxy"
    expect_error(FAMILY, proc, prefix, code, words, recoverable=True)


# ----------------------------------------------------------------------------- a0: prebuilt executors


def _a0_prebuilt(tmp_path: Path, inputs: bytes | None, template: bytes | None = None) -> tuple[object, str]:
    path = tmp_path / "inputs.pb"
    if inputs is not None:
        path.write_bytes(inputs)
    encoded = encode_template(echo_template() if template is None else template)
    args = a0_args(PREBUILT_RESOLVER, ["template", encoded], version="v1")
    out = str(tmp_path / "out")
    values = {"{{.input}}": str(path), "{{.outputPrefix}}": out, "{{.rawOutputDataPrefix}}": str(tmp_path / "raw")}
    return run([TASKBOX, *(values.get(a, a) for a in args)]), out


A0_CASES = {  # name -> (inputs.pb bytes or None for no file, template or None, code, origin, recoverable, words)
    "inputs-missing": (None, None, "InputsNotFound", "SYSTEM", True, ("inputs.pb", "does not exist")),
    "inputs-garbage": (GARBAGE, None, "InputsCorrupt", "SYSTEM", True, ("inputs.pb", "is damaged")),
    "inputs-truncated": (good_inputs()[:-3], None, "InputsCorrupt", "SYSTEM", True, ("inputs.pb", "is damaged")),
    "inputs-nested-past-protobuf-limit": (
        nested_lists(200), None, "InvalidInput", "USER", False, ("input 'xs'", "nested deeper than protobuf's limit"),
    ),
    "input-wrong-type": (
        inputs_with(n=lit_of("one", str)), None, "InvalidInput", "USER", False, ("input 'n'", "expected integer"),
    ),
    # the template travels in the resolver args: the user's registration, not a file the platform wrote
    "inline-template-garbage": (None, GARBAGE, "InvalidTemplate", "USER", False, ("resolver args cannot be read",)),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(A0_CASES))
def test_a0_prebuilt_blames_as_execute_does(tmp_path, name):
    inputs, template, code, origin, recoverable, words = A0_CASES[name]
    if name == "inline-template-garbage":  # the good inputs; only the template is broken
        inputs = good_inputs()
    proc, out = _a0_prebuilt(tmp_path, inputs, template)
    error = expect_error(FAMILY, proc, out, code, words, recoverable=recoverable, origin_name=origin)
    assert not error.HasField("timestamp")  # v2's document


# ----------------------------------------------------------------------------- a0: flyte-sdk tasks


def _sdk():
    from flyte2 import sdk  # tests/flyte2/sdk.py: the flyte SDK's environment (``make flyte2-venv``)

    return sdk


@pytest.mark.parametrize(
    ("name", "inputs", "code"),
    [("inputs-missing", None, "InputsNotFound"), ("inputs-garbage", GARBAGE, "InputsCorrupt")],
)
def test_a0_flyte_sdk_task_blames_as_a_prebuilt_one(tmp_path, name, inputs, code):
    sdk = _sdk()
    prepared = sdk.sdk("prepare", "int", str(tmp_path))
    path = tmp_path / "platform-inputs.pb"
    if inputs is not None:
        path.write_bytes(inputs)
    procs = {}
    for runtime, executable in (("flyte", sdk.FLYTE_A0), ("taskbox", sdk.TASKBOX_WITH_SDK)):
        out = tmp_path / runtime
        args = sdk.fill(prepared["args"], str(path), str(out), str(tmp_path / f"raw-{runtime}"))
        procs[runtime] = (sdk.run_a0(executable, args, cwd=str(tmp_path)), str(out))
    flyte, flyte_out = procs["flyte"]
    assert flyte.returncode == 1 and not commit_files(flyte_out), flyte.stderr[-2000:]  # flyte's own: no error.pb
    proc, out = procs["taskbox"]
    expect_error(FAMILY, proc, out, code, ("inputs.pb",), recoverable=True, origin_name="SYSTEM")
    assert sdk.sdk("error", str(Path(out, "error.pb")))["recoverable"] is True  # as the SDK reads it


# ----------------------------------------------------------------------------- taskbox run: the user's file


def _template_file(tmp_path: Path) -> str:
    template = make_template("echo", TYPES, TYPES)
    path = tmp_path / "task.pb"
    path.write_bytes(template.SerializeToString())
    return str(path)


@pytest.mark.parametrize(
    ("inputs", "code", "exit_code", "words"),
    [
        (GARBAGE, "USER:InvalidInput", 1, ("not a serialized LiteralMap",)),
        (None, "SYSTEM:StorageNotFound", 3, ("inputs.pb",)),
    ],
    ids=["damaged", "missing"],
)
def test_taskbox_run_keeps_the_users_file_the_users(tmp_path, inputs, code, exit_code, words):
    path = tmp_path / "inputs.pb"
    if inputs is not None:
        path.write_bytes(inputs)
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--template", _template_file(tmp_path), "--inputs", str(path), "--outputs", str(out)])
    error = expect_error(f"{FAMILY} / taskbox run", proc, str(out), code, words, exit_code=exit_code)
    assert json.loads((out / "error.json").read_text())["recoverable"] is False
    assert error.kind == error.NON_RECOVERABLE


def test_taskbox_run_keeps_a_damaged_offloaded_literal_the_users(tmp_path):
    """Under ``taskbox run`` the user named the inputs, and so the literals they point to."""
    garbage = tmp_path / "garbage-literal.pb"
    garbage.write_bytes(GARBAGE)
    path = tmp_path / "inputs.pb"
    path.write_bytes(inputs_with(n=offloaded(str(garbage))))
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--template", _template_file(tmp_path), "--inputs", str(path), "--outputs", str(out)])
    error = expect_error(
        f"{FAMILY} / taskbox run", proc, str(out), "USER:InvalidInput", ("not a serialized Literal",), exit_code=1
    )
    assert error.kind == error.NON_RECOVERABLE
