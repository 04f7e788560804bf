"""``taskbox execute`` end to end: the real CLI in a subprocess, on local, S3 and GCS storage."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import time

import pytest
from flyteidl.core import errors_pb2, execution_pb2

from helpers import (
    commit_files,
    encode_inputs,
    execute_args,
    list_of,
    make_template,
    map_of,
    put,
    read_error,
    read_literal_map,
    read_outputs,
    run,
    simple,
    subprocess_env,
)
from taskbox import storage

USER, SYSTEM = execution_pb2.ExecutionError.USER, execution_pb2.ExecutionError.SYSTEM
RECOVERABLE, NON_RECOVERABLE = errors_pb2.ContainerError.RECOVERABLE, errors_pb2.ContainerError.NON_RECOVERABLE

ECHO_TYPES = {
    "n": simple("INTEGER"),
    "text": simple("STRING"),
    "ratio": simple("FLOAT"),
    "flag": simple("BOOLEAN"),
    "when": simple("DATETIME"),
    "span": simple("DURATION"),
    "xs": list_of(simple("INTEGER")),
    "named": map_of(list_of(simple("STRING"))),
}
ECHO_VALUES = {
    "n": -(2**63),
    "text": "héllo\n𝄞 'quoted' \"x\"",
    "ratio": 0.1,
    "flag": True,
    "when": dt.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=dt.UTC),
    "span": dt.timedelta(days=1, microseconds=7),
    "xs": [1, 2, 3],
    "named": {"a": ["x"], "b": []},
}


def _echo_run(base: str, **env: str) -> tuple[subprocess.CompletedProcess[str], str]:
    template = put(storage.join(base, "task.pb"), make_template("echo", ECHO_TYPES, ECHO_TYPES).SerializeToString())
    inputs = put(storage.join(base, "inputs.pb"), encode_inputs(ECHO_VALUES, ECHO_TYPES, storage.join(base, "raw")))
    prefix = storage.join(base, "out", "0")
    proc = run(
        execute_args(inputs, prefix, template, None, "--raw-output-data-prefix", storage.join(base, "raw")), **env
    )
    return proc, prefix


def test_echo_on_each_storage(storage_base):
    """Local, S3 (moto) and GCS (emulator): the ``storage_base`` fixture of tests/conftest.py."""
    proc, prefix = _echo_run(storage_base)
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}
    assert read_outputs(prefix, ECHO_TYPES) == ECHO_VALUES


def test_echo_with_file_uris(tmp_path):
    proc, prefix = _echo_run(f"file://{tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, ECHO_TYPES) == ECHO_VALUES


def test_flytekit_style_args_with_placeholders(tmp_path):
    """The args flytekit serializes for template tasks, with the placeholders propeller left alone."""
    types = {"x": simple("INTEGER")}
    template = put(str(tmp_path / "task.pb"), make_template("echo", types, types).SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"x": 7}, types))
    prefix = str(tmp_path / "out")
    proc = run(
        [
            str(execute_args("", "", "")[0]),
            "execute",
            "--inputs",
            inputs,
            "--output-prefix",
            prefix,
            "--raw-output-data-prefix",
            "{{.rawOutputDataPrefix}}",
            "--checkpoint-path",
            "{{.checkpointOutputPrefix}}",
            "--prev-checkpoint",
            '""',
            "--resolver",
            "flytekit.core.python_customized_container_task.default_task_template_resolver",
            "--",
            template,
            "taskbox.executors.echo.EchoExecutor",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, types) == {"x": 7}


def test_zero_byte_inputs_and_void_task(tmp_path):
    template = put(str(tmp_path / "task.pb"), make_template("echo").SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), b"")
    proc = run(execute_args(inputs, str(tmp_path / "out"), template))
    assert proc.returncode == 0, proc.stderr
    assert len(read_literal_map(str(tmp_path / "out" / "outputs.pb")).literals) == 0


def _failing_case(tmp_path, case):
    """Set up one failure; returns the container args."""
    types = {"x": simple("INTEGER")}
    good_template = make_template("echo", types, types).SerializeToString()
    good_inputs = encode_inputs({"x": 1}, types)
    template_bytes, inputs_bytes, executor, resolver = good_template, good_inputs, None, "taskbox.template"
    if case == "garbage-template":
        template_bytes = b"\xff\xff not a protobuf"
    elif case == "unknown-executor":
        executor = "no-such-executor"
    elif case == "executor-not-installed":
        executor = "test-missing"
    elif case == "broken-plugin":
        executor = "test-broken"
    elif case == "config-for-echo":
        template_bytes = make_template("echo", types, types, custom={"query": "select 1"}).SerializeToString()
    elif case == "garbage-inputs":
        inputs_bytes = b"\x0a\xff\xff\xff"
    elif case == "missing-input":
        inputs_bytes = b""
    elif case == "mistyped-input":
        inputs_bytes = encode_inputs({"x": "one"}, {"x": simple("STRING")})
    elif case == "missing-output":
        template_bytes = make_template(
            "echo", types, {"x": simple("INTEGER"), "y": simple("STRING")}
        ).SerializeToString()
    elif case in ("user-failure", "untranslated-failure"):
        kind = "user" if case == "user-failure" else "bug"
        template_bytes = make_template("test-fail", {"kind": simple("STRING")}, {}).SerializeToString()
        inputs_bytes = encode_inputs({"kind": kind}, {"kind": simple("STRING")})
    elif case == "unknown-resolver":
        resolver = "my.resolver"
    elif case == "flytekit-code-resolver":
        resolver = "flytekit.core.python_auto_container.default_task_resolver"
    template = put(str(tmp_path / "task.pb"), template_bytes)
    inputs = put(str(tmp_path / "inputs.pb"), inputs_bytes)
    if case == "inputs-not-found":
        inputs = str(tmp_path / "nowhere" / "inputs.pb")
    args = execute_args(inputs, str(tmp_path / "out"), template, executor)
    args[args.index("--resolver") + 1] = resolver
    return args


FAILURES = {
    # case: (code, origin, kind, words in the message)
    # the platform's files (inputs.pb, {{.taskTemplatePath}}): missing or damaged is SYSTEM and recoverable
    "garbage-template": ("SYSTEM:TemplateCorrupt", SYSTEM, RECOVERABLE, "not a serialized TaskTemplate"),
    "unknown-executor": ("USER:ExecutorNotFound", USER, NON_RECOVERABLE, "no executor named 'no-such-executor'"),
    "executor-not-installed": ("USER:ExecutorNotInstalled", USER, NON_RECOVERABLE, "reinstall taskbox-testplugins"),
    "broken-plugin": ("SYSTEM:InvalidPlugin", SYSTEM, NON_RECOVERABLE, "not a subclass"),
    "config-for-echo": ("USER:InvalidConfig", USER, NON_RECOVERABLE, "takes no configuration"),
    "garbage-inputs": ("SYSTEM:InputsCorrupt", SYSTEM, RECOVERABLE, "not a serialized LiteralMap"),
    "missing-input": ("USER:InvalidInput", USER, NON_RECOVERABLE, "x"),
    "mistyped-input": ("USER:InvalidInput", USER, NON_RECOVERABLE, "x"),
    "missing-output": ("USER:InvalidOutput", USER, NON_RECOVERABLE, "y"),
    "user-failure": ("USER:InvalidInput", USER, NON_RECOVERABLE, "the input was wrong"),
    "untranslated-failure": ("SYSTEM:ValueError", SYSTEM, RECOVERABLE, "an untranslated bug"),
    "inputs-not-found": ("SYSTEM:InputsNotFound", SYSTEM, RECOVERABLE, "nowhere"),
    "unknown-resolver": ("USER:InvalidTemplate", USER, NON_RECOVERABLE, "unknown resolver 'my.resolver'"),
    "flytekit-code-resolver": ("USER:InvalidTemplate", USER, NON_RECOVERABLE, "needs flytekit's own image"),
}


@pytest.mark.parametrize("case", sorted(FAILURES))
def test_each_failure_class_gives_its_error_document(tmp_path, case):
    proc = run(_failing_case(tmp_path, case))
    code, origin, kind, words = FAILURES[case]
    assert proc.returncode == 0, proc.stderr  # Flyte's contract: exit 0 after error.pb
    assert commit_files(str(tmp_path / "out")) == {"error.pb"}
    error = read_error(str(tmp_path / "out"))
    assert (error.code, error.origin, error.kind) == (code, origin, kind), error.message
    assert words in error.message
    assert code in proc.stderr  # a one-line summary for the pod log


@pytest.mark.parametrize("how", ["flag", "env"])
def test_fail_on_error_exits_non_zero(tmp_path, how):
    args = _failing_case(tmp_path, "garbage-inputs")
    env = {}
    if how == "flag":
        args.insert(2, "--fail-on-error")
    else:
        env["FLYTE_FAIL_ON_ERROR"] = "true"
    proc = run(args, **env)
    assert proc.returncode == 1
    assert commit_files(str(tmp_path / "out")) == {"error.pb"}


def test_unwritable_output_prefix_fails_the_pod(tmp_path):
    args = _failing_case(tmp_path, "garbage-inputs")
    (tmp_path / "blocker").write_text("a file, not a directory")
    args[args.index("--output-prefix") + 1] = str(tmp_path / "blocker" / "out")
    proc = run(args)
    assert proc.returncode == 1
    assert "could not write the error document" in proc.stderr


def test_rerun_into_same_prefix_leaves_only_its_own_commit(tmp_path):
    types = {"x": simple("INTEGER")}
    template = put(str(tmp_path / "task.pb"), make_template("echo", types, types).SerializeToString())
    bad = put(str(tmp_path / "bad.pb"), b"\x0a\xff")
    good = put(str(tmp_path / "good.pb"), encode_inputs({"x": 3}, types))
    prefix = str(tmp_path / "out")
    assert run(execute_args(bad, prefix, template)).returncode == 0
    assert commit_files(prefix) == {"error.pb"}
    assert run(execute_args(good, prefix, template)).returncode == 0
    assert commit_files(prefix) == {"outputs.pb"}
    assert read_outputs(prefix, types) == {"x": 3}
    assert run(execute_args(bad, prefix, template)).returncode == 0
    assert commit_files(prefix) == {"error.pb"}


def test_sigterm_during_a_run(tmp_path):
    marker = tmp_path / "running"
    template = make_template(
        "test-sleep", {}, {"slept": simple("FLOAT")}, custom={"seconds": 60, "marker": str(marker)}
    )
    put(str(tmp_path / "task.pb"), template.SerializeToString())
    put(str(tmp_path / "inputs.pb"), b"")
    proc = subprocess.Popen(
        execute_args(str(tmp_path / "inputs.pb"), str(tmp_path / "out"), str(tmp_path / "task.pb")),
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the executor never started"
            time.sleep(0.02)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 143, stderr
    assert commit_files(str(tmp_path / "out")) == {"error.pb"}
    error = read_error(str(tmp_path / "out"))
    assert (error.code, error.origin, error.kind) == ("SYSTEM:Terminated", SYSTEM, RECOVERABLE)


def test_identity_and_secrets_reach_the_executor(tmp_path):
    outputs = {
        "execution": simple("STRING"),
        "project": simple("STRING"),
        "task": simple("STRING"),
        "attempt": simple("INTEGER"),
        "secret_length": simple("INTEGER"),
    }
    types = {"with_secret": simple("BOOLEAN")}
    template = put(str(tmp_path / "task.pb"), make_template("test-whoami", types, outputs).SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"with_secret": True}, types))
    secrets_dir = tmp_path / "secrets" / "demo"
    secrets_dir.mkdir(parents=True)
    (secrets_dir / "token").write_text("tok-from-file\n")
    proc = run(
        execute_args(inputs, str(tmp_path / "out"), template),
        FLYTE_INTERNAL_EXECUTION_ID="exec-123",
        _F_PRJ="flytesnacks",
        FLYTE_INTERNAL_TASK_NAME="my.task",
        FLYTE_ATTEMPT_NUMBER="2",
        FLYTE_SECRETS_DEFAULT_DIR=str(tmp_path / "secrets"),
    )
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(str(tmp_path / "out"), outputs) == {
        "execution": "exec-123",
        "project": "flytesnacks",
        "task": "my.task",
        "attempt": 2,
        "secret_length": len("tok-from-file"),
    }


def test_secret_value_never_reaches_logs_or_error_document(tmp_path):
    secret = "Sup3r-Secret-Token-value"
    types = {"kind": simple("STRING")}
    template = put(str(tmp_path / "task.pb"), make_template("test-fail", types, {}).SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"kind": "secret"}, types))
    proc = run(execute_args(inputs, str(tmp_path / "out"), template), _FSEC_DEMO_TOKEN=secret)
    assert proc.returncode == 0
    error_bytes = (tmp_path / "out" / "error.pb").read_bytes()
    assert secret.encode() not in error_bytes
    assert secret not in proc.stderr and secret not in proc.stdout
    assert "bad token ***" in read_error(str(tmp_path / "out")).message


def test_large_outputs_are_offloaded_like_flytekit(tmp_path):
    types = {"text": simple("STRING"), "small": simple("INTEGER")}
    big = "x" * 1_200_000  # over 1 MiB: _F_L_MIN_SIZE_MB is a whole number of MiB, as in flytekit
    template = put(str(tmp_path / "task.pb"), make_template("echo", types, types).SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"text": big, "small": 1}, types))
    prefix = str(tmp_path / "out")
    proc = run(execute_args(inputs, prefix, template), _F_L_MIN_SIZE_MB="1")
    assert proc.returncode == 0, proc.stderr
    literal = read_literal_map(os.path.join(prefix, "outputs.pb")).literals["text"]
    assert literal.HasField("offloaded_metadata")
    assert literal.offloaded_metadata.uri == os.path.join(prefix, "text_offloaded_metadata.pb")
    assert read_outputs(prefix, types) == {"text": big, "small": 1}


# ------------------------------------------------------------------ JSON/YAML templates (issue 22 item 2)

TEXT_TEMPLATES = {
    "json": '{"id": {"name": "count"}, "type": "test-wordcount", "custom": {"min_length": 2},\n'
    ' "interface": {"inputs": {"text": "str"}, "outputs": {"count": "int"}}}\n',
    "yaml": "id: {name: count}\ntype: test-wordcount\ncustom: {min_length: 2}\n"
    "interface:\n  inputs: {text: str}\n  outputs: {count: int}\n",
}


@pytest.mark.parametrize("form", sorted(TEXT_TEMPLATES))
@pytest.mark.parametrize("name", ["task.pb", "template.{form}"])
def test_a_json_or_yaml_template_runs_like_taskbox_run_template(tmp_path, form, name):
    """The content decides, not the name: Flyte's file is `task.pb`, a hand-made one may be named anything."""
    types = {"text": simple("STRING")}
    template = put(str(tmp_path / name.format(form=form)), TEXT_TEMPLATES[form].encode())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"text": "a bb ccc"}, types))
    proc = run(execute_args(inputs, str(tmp_path / "out"), template, "test-wordcount"))
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(str(tmp_path / "out"), {"count": simple("INTEGER")}) == {"count": 2}


@pytest.mark.parametrize(
    ("text", "code", "origin", "kind", "words"),
    [
        # text that is no JSON/YAML document: damaged, as bytes that are no protobuf (the platform's file)
        ("type: [echo\n", "SYSTEM:TemplateCorrupt", SYSTEM, RECOVERABLE, "is damaged"),
        # a document, but not a TaskTemplate: what `taskbox run --template` says of it
        ('{"type": "echo", "no_such_field": 1}\n', "USER:InvalidTemplate", USER, NON_RECOVERABLE, "no_such_field"),
        ("- a list\n", "USER:InvalidTemplate", USER, NON_RECOVERABLE, "must be an object"),
        ("interface: {inputs: {x: integr}}\n", "USER:InvalidTemplate", USER, NON_RECOVERABLE, "integr"),
    ],
)
def test_a_broken_text_template_is_blamed_as_taskbox_run_and_the_platform_would(tmp_path, text, code, origin, kind,
                                                                                 words):  # fmt: skip
    template = put(str(tmp_path / "task.pb"), text.encode())
    inputs = put(str(tmp_path / "inputs.pb"), b"")
    proc = run(execute_args(inputs, str(tmp_path / "out"), template))
    assert proc.returncode == 0, proc.stderr
    error = read_error(str(tmp_path / "out"))
    assert (error.code, error.origin, error.kind) == (code, origin, kind), error.message
    assert words in error.message
