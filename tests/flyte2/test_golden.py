"""Golden fixtures made by flyte 2.12's SDK (tests/flyte2/golden/, ``make flyte2-golden``).

* Today's SDK still serializes the same interfaces, inputs and container args (compared as messages:
  the SDK writes struct fields and map entries in no fixed order), so an SDK upgrade that changes the wire
  fails here first.
* taskbox runs the stored inputs under ``a0`` without the SDK, and writes back for each input the literal
  the SDK wrote (the prebuilt ``echo`` executor; pickled values are the one USER error).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, interface_pb2, literals_pb2, tasks_pb2
from sdk import fill, run_a0, sdk

from helpers import TASKBOX, commit_files
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template

GOLDEN = Path(__file__).with_name("golden")
CASES = sorted(p.name[: -len(".args.json")] for p in GOLDEN.glob("*.args.json"))
REGENERATE = "the flyte SDK's wire changed: check, then `make flyte2-golden` to rewrite tests/flyte2/golden"


def test_the_golden_set_is_complete():
    assert len(CASES) == 15, CASES
    for case in CASES:
        for suffix in (".inputs.pb", ".interface.pb"):
            assert (GOLDEN / f"{case}{suffix}").exists(), case


@pytest.mark.parametrize("case", CASES)
def test_todays_sdk_writes_the_golden_bytes(tmp_path, case):
    prepared = sdk("prepare", case, str(tmp_path))
    import base64

    interface = interface_pb2.TypedInterface.FromString(base64.b64decode(prepared["interface"]))
    assert interface == interface_pb2.TypedInterface.FromString((GOLDEN / f"{case}.interface.pb").read_bytes()), (
        REGENERATE
    )
    inputs = literals_pb2.LiteralMap.FromString((tmp_path / "inputs.pb").read_bytes())
    assert inputs == literals_pb2.LiteralMap.FromString((GOLDEN / f"{case}.inputs.pb").read_bytes()), REGENERATE
    assert prepared["args"] == json.loads((GOLDEN / f"{case}.args.json").read_text()), REGENERATE


@pytest.mark.parametrize("case", CASES)
def test_taskbox_runs_the_golden_inputs_without_the_sdk(tmp_path, case):
    interface = interface_pb2.TypedInterface.FromString((GOLDEN / f"{case}.interface.pb").read_bytes())
    variables = interface_pb2.VariableMap(variables={"x": interface.inputs.variables["x"]})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    args = a0_args(PREBUILT_RESOLVER, ["template", encode_template(template.SerializeToString())], version="v1")
    out = tmp_path / "out"
    proc = run_a0(
        TASKBOX, fill(args, str(GOLDEN / f"{case}.inputs.pb"), str(out), str(tmp_path / "raw")), cwd=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    if case == "pickled":
        error = errors_pb2.ErrorDocument.FromString((out / "error.pb").read_bytes()).error
        assert (error.code, error.kind) == ("UnsupportedType", errors_pb2.ContainerError.NON_RECOVERABLE)
        return
    assert commit_files(str(out)) == {"outputs.pb"}, proc.stderr
    sent = literals_pb2.LiteralMap.FromString((GOLDEN / f"{case}.inputs.pb").read_bytes()).literals["x"]
    written = literals_pb2.LiteralMap.FromString((out / "outputs.pb").read_bytes()).literals["x"]
    assert written == sent
