"""``taskbox a0`` against the real flyte SDK (2.12): inputs the SDK encoded, outputs and errors the SDK reads back.

Prebuilt executors run under ``.venv/bin/taskbox`` (no SDK there, as in the executor images); flyte-sdk user
tasks run under ``.venv-flyte2/bin/taskbox`` (taskbox[flyte2], the python image) and are compared with
flyte's own ``a0`` run of the same task.
"""

from __future__ import annotations

import base64
import tarfile
from pathlib import Path

import pytest
from flyteidl.core import interface_pb2, tasks_pb2
from sdk import FLYTE_A0, TASKBOX_WITH_SDK, fill, run_a0, sdk

from helpers import TASKBOX, commit_files
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, a0_args, encode_template

CASES = [
    "int",
    "str",
    "float",
    "bool",
    "datetime",
    "list",
    "dict",
    "dataclass",
    "pydantic",
    "enum",
    "optional-none",
    "optional-set",
    "union-int",
    "union-str",
    "file",
    "dir",
    "dataframe",
]


def _echo_args(interface_b64: str) -> list[str]:
    """A prebuilt ``echo`` task under a0 whose inputs and outputs are the SDK task's input ``x``."""
    v2 = interface_pb2.TypedInterface.FromString(base64.b64decode(interface_b64))  # same wire as v2's
    x = v2.inputs.variables["x"]
    variables = interface_pb2.VariableMap(variables={"x": x})
    template = tasks_pb2.TaskTemplate(
        type="echo", interface=interface_pb2.TypedInterface(inputs=variables, outputs=variables)
    )
    return a0_args(PREBUILT_RESOLVER, ["template", encode_template(template.SerializeToString())], version="v1")


@pytest.mark.parametrize("case", CASES)
def test_prebuilt_executor_reads_sdk_inputs_and_writes_outputs_the_sdk_reads(tmp_path, case):
    prepared = sdk("prepare", case, str(tmp_path))
    args = fill(
        _echo_args(prepared["interface"]), str(tmp_path / "inputs.pb"), str(tmp_path / "out"), str(tmp_path / "raw")
    )
    proc = run_a0(TASKBOX, args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert commit_files(str(tmp_path / "out")) == {"outputs.pb"}, proc.stderr
    checked = sdk("check", case, str(tmp_path / "out" / "outputs.pb"), "x")
    assert checked["equal"], checked


def test_pickled_values_are_a_clear_user_error_for_prebuilt_executors(tmp_path):
    prepared = sdk("prepare", "pickled", str(tmp_path))
    args = fill(
        _echo_args(prepared["interface"]), str(tmp_path / "inputs.pb"), str(tmp_path / "out"), str(tmp_path / "raw")
    )
    proc = run_a0(TASKBOX, args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    error = sdk("error", str(tmp_path / "out" / "error.pb"))
    assert (error["code"], error["kind"], error["recoverable"]) == ("UnsupportedType", "USER", False), error
    assert "pickled Python object" in error["message"] and "input 'x'" in error["message"]


def test_pickled_values_still_work_for_sdk_user_tasks(tmp_path):
    prepared = sdk("prepare", "pickled", str(tmp_path))
    out = tmp_path / "out"
    args = fill(prepared["args"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw"))
    proc = run_a0(TASKBOX_WITH_SDK, args, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert sdk("check", "pickled", str(out / "outputs.pb"))["equal"]


@pytest.mark.parametrize("case", ["int", "str", "datetime", "dataclass", "pydantic", "enum", "union-str", "file"])
def test_sdk_user_task_runs_as_under_flytes_own_a0(tmp_path, case):
    prepared = sdk("prepare", case, str(tmp_path))
    results = {}
    for name, executable in (("taskbox", TASKBOX_WITH_SDK), ("flyte", FLYTE_A0)):
        out = tmp_path / name
        out.mkdir()
        args = fill(prepared["args"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / f"raw-{name}"))
        proc = run_a0(executable, args, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert commit_files(str(out)) == {"outputs.pb"}, proc.stderr[-3000:]
        results[name] = sdk("check", case, str(out / "outputs.pb"))
        assert results[name]["equal"], results[name]
    if case != "file":  # a file's literal names where the run uploaded it
        assert (tmp_path / "taskbox" / "outputs.pb").read_bytes() == (tmp_path / "flyte" / "outputs.pb").read_bytes()


def test_failing_user_task_error_matches_flytes_own(tmp_path):
    prepared = sdk("prepare", "int", str(tmp_path))
    args = [*prepared["args"][:-1], "t_fails"]  # the same interface, the failing task
    errors = {}
    for name, executable in (("taskbox", TASKBOX_WITH_SDK), ("flyte", FLYTE_A0)):
        out = tmp_path / name
        out.mkdir()
        proc = run_a0(
            executable, fill(args, str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw")), cwd=str(tmp_path)
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert commit_files(str(out)) == {"error.pb"}
        errors[name] = sdk("error", str(out / "error.pb"))
    assert errors["taskbox"]["code"] == errors["flyte"]["code"]
    assert (errors["taskbox"]["kind"], errors["taskbox"]["recoverable"]) == ("USER", True)
    assert (errors["flyte"]["kind"], errors["flyte"]["recoverable"]) == ("USER", True)
    assert "bad x: 42" in errors["taskbox"]["message"]


def test_rerun_removes_the_other_commit_file(tmp_path):
    prepared = sdk("prepare", "int", str(tmp_path))
    out = tmp_path / "out"
    failing = fill([*prepared["args"][:-1], "t_fails"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw"))
    assert run_a0(TASKBOX_WITH_SDK, failing, cwd=str(tmp_path)).returncode == 0
    assert commit_files(str(out)) == {"error.pb"}
    ok = fill(prepared["args"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw"))
    proc = run_a0(TASKBOX_WITH_SDK, ok, cwd=str(tmp_path))
    assert commit_files(str(out)) == {"outputs.pb"}, proc.stderr[-2000:]
    prebuilt = fill(_echo_args(prepared["interface"]), str(tmp_path / "missing.pb"), str(out), str(tmp_path / "raw"))
    run_a0(TASKBOX, prebuilt, cwd=str(tmp_path))
    assert commit_files(str(out)) == {"error.pb"}


def test_prebuilt_errors_follow_v2_policy_and_the_sdk_reads_them(tmp_path):
    prepared = sdk("prepare", "int", str(tmp_path))
    template = tasks_pb2.TaskTemplate(type="sqlite")  # no query: the config does not validate
    template.custom.update({"version": 1})
    args = a0_args(PREBUILT_RESOLVER, ["template", encode_template(template.SerializeToString())], version="v1")
    out = tmp_path / "out"
    proc = run_a0(TASKBOX, fill(args, str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw")), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    error = sdk("error", str(out / "error.pb"))
    assert (error["code"], error["kind"], error["recoverable"]) == ("InvalidConfig", "USER", False), error
    del prepared


def test_user_task_needs_the_sdk_and_says_so(tmp_path):
    prepared = sdk("prepare", "int", str(tmp_path))
    out = tmp_path / "out"
    proc = run_a0(
        TASKBOX, fill(prepared["args"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw")), cwd=str(tmp_path)
    )
    assert proc.returncode == 0, proc.stderr
    error = sdk("error", str(out / "error.pb"))
    assert (error["code"], error["kind"], error["recoverable"]) == ("FlyteSDKMissing", "USER", False), error
    assert "taskbox[flyte2]" in error["message"]


def _bundle(path: Path, members: dict[str, bytes]) -> str:
    import io

    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


BUNDLED = b"""
import flyte

env = flyte.TaskEnvironment("bundled")


@env.task
async def t_int(x: int) -> int:
    with open("data/offset.txt") as fh:  # relative to the bundle, as under flyte's own a0
        return x + int(fh.read())
"""


def test_tgz_bundle_is_extracted_by_taskbox_and_run_by_flyte(tmp_path):
    sdk("prepare", "int", str(tmp_path))  # writes inputs.pb
    bundle = _bundle(tmp_path / "fastabc.tar.gz", {"bundled_wf.py": BUNDLED, "data/offset.txt": b"100"})
    work = tmp_path / "pod"
    work.mkdir()
    args = a0_args("flyte._internal.resolvers.default.DefaultTaskResolver", ["mod", "bundled_wf", "instance", "t_int"],
                   version="v1", bundle=bundle)  # fmt: skip
    out = tmp_path / "out"
    proc = run_a0(
        TASKBOX_WITH_SDK, fill(args, str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw")), cwd=str(work)
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert commit_files(str(out)) == {"outputs.pb"}, proc.stderr[-3000:]
    # 42 + 100: the bundle's module imported and its data file read relative to the working directory
    from taskbox.literals import wire

    literal = wire.parse_literal(dict(wire.split_map().FromString((out / "outputs.pb").read_bytes()).literals)["o0"])
    assert literal.scalar.primitive.integer == 142
    assert not (work / "bundled_wf.py").exists()  # extracted under .taskbox-bundles, not over the pod's files


def test_hostile_tgz_is_rejected_before_flyte_sees_it(tmp_path):
    sdk("prepare", "int", str(tmp_path))  # writes inputs.pb
    bundle = _bundle(tmp_path / "evil.tar.gz", {"../escape.py": b"x = 1\n"})
    args = a0_args("flyte._internal.resolvers.default.DefaultTaskResolver", ["mod", "escape", "instance", "t"],
                   version="v1", bundle=bundle)  # fmt: skip
    work = tmp_path / "pod"
    work.mkdir()
    out = tmp_path / "out"
    proc = run_a0(
        TASKBOX_WITH_SDK, fill(args, str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw")), cwd=str(work)
    )
    assert proc.returncode == 0, proc.stderr
    error = sdk("error", str(out / "error.pb"))
    assert (error["code"], error["kind"], error["recoverable"]) == ("BundleRejected", "USER", False), error
    assert not (tmp_path / "escape.py").exists()


def test_inspect_reads_v2_inputs_in_order_with_their_context(tmp_path):
    import json
    import subprocess

    sdk("prepare", "int", str(tmp_path))
    data = (tmp_path / "inputs.pb").read_bytes() + b"\x12\x06\x0a\x01k\x12\x01v"  # context: {key: k, value: v}
    (tmp_path / "inputs.pb").write_bytes(data)
    proc = subprocess.run([TASKBOX, "inspect", "--flyte2", str(tmp_path / "inputs.pb")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)
    assert [entry["name"] for entry in shown["literals"]] == ["x"]
    assert shown["literals"][0]["value"]["scalar"]["primitive"]["integer"] == "42"
    assert shown["context"] == [{"key": "k", "value": "v"}]


def test_sigterm_during_an_sdk_task_commits_terminated(tmp_path):
    import os
    import signal
    import subprocess
    import time

    from sdk import HERE, POD_ENV

    from helpers import subprocess_env

    prepared = sdk("prepare", "int", str(tmp_path))
    out, marker = tmp_path / "out", tmp_path / "running"
    args = fill([*prepared["args"][:-1], "t_sleeps"], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw"))
    env = subprocess_env(_U_RUN_BASE=str(tmp_path / "run-base"), TASKBOX_TEST_MARKER=str(marker), **POD_ENV)
    env["PYTHONPATH"] = os.pathsep.join([HERE, env["PYTHONPATH"]])
    proc = subprocess.Popen(
        [str(TASKBOX_WITH_SDK), *args], env=env, cwd=str(tmp_path), stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 90
    while not marker.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert marker.exists(), proc.stderr.read() if proc.poll() is not None else "the task never started"
    os.kill(proc.pid, signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 143, stderr[-3000:]
    assert commit_files(str(out)) == {"error.pb"}
    error = sdk("error", str(out / "error.pb"))
    assert (error["code"], error["kind"], error["recoverable"]) == ("Terminated", "SYSTEM", True), error


def test_pkl_bundle_goes_to_the_sdk_unchanged(tmp_path):
    prepared = sdk("prepare", "dataclass", str(tmp_path))
    bundle = sdk("pkl", "dataclass", str(tmp_path / "task.pkl.gz"))["pkl"]
    head = [a for a in prepared["args"][: prepared["args"].index("--resolver")]]
    for name, executable in (("taskbox", TASKBOX_WITH_SDK), ("flyte", FLYTE_A0)):
        out = tmp_path / name
        out.mkdir()
        dest = tmp_path / f"dest-{name}"
        args = fill(
            [*head, "--pkl", bundle, "--dest", str(dest)], str(tmp_path / "inputs.pb"), str(out), str(tmp_path / "raw")
        )
        proc = run_a0(executable, args, cwd=str(tmp_path))
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert commit_files(str(out)) == {"outputs.pb"}, proc.stderr[-3000:]
        assert sdk("check", "dataclass", str(out / "outputs.pb"))["equal"]
    assert (tmp_path / "taskbox" / "outputs.pb").read_bytes() == (tmp_path / "flyte" / "outputs.pb").read_bytes()


def test_a0_in_process_with_sdk_inputs(tmp_path):
    """``taskbox.entrypoint.a0.main`` called in this process (as an embedding would), read back by the SDK."""
    import signal

    from taskbox.entrypoint import a0

    prepared = sdk("prepare", "dataclass", str(tmp_path))
    args = fill(
        _echo_args(prepared["interface"]), str(tmp_path / "inputs.pb"), str(tmp_path / "out"), str(tmp_path / "raw")
    )
    previous = signal.getsignal(signal.SIGTERM)
    try:
        code = a0.main(args[1:], environ={})
    finally:
        signal.signal(signal.SIGTERM, previous)  # a0.main installs the SIGTERM guard
    assert code == 0
    assert commit_files(str(tmp_path / "out")) == {"outputs.pb"}
    assert sdk("check", "dataclass", str(tmp_path / "out" / "outputs.pb"), "x")["equal"]
