"""Executors own their conventions: ``config_inputs`` / ``infer_outputs`` of the executor contract.

``taskbox run --executor NAME --config FILE`` builds the interface from what the executor says; these tests
check each built-in's answer directly, and a plugin's through the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import TASKBOX, read_outputs, run
from taskbox.errors import ConfigError
from taskbox.executors import Executor
from taskbox.executors.echo import EchoExecutor
from taskbox.executors.http import HTTPExecutor
from taskbox.executors.http_job import HTTPJobExecutor
from taskbox.executors.sql import SQLExecutor
from taskbox.executors.sqlite import SQLiteExecutor
from taskbox.typespec import parse_type


def t(spec: str):
    return parse_type(spec)


def read_json(path: Path):
    return json.loads(path.read_text())


# ------------------------------------------------------------------ the defaults


def test_default_config_inputs_are_flyte_placeholders_in_every_string_first_seen_first():
    config = {
        "query_template": "SELECT {{ .inputs.b }}, {{.inputs.a}} WHERE x = {{ inputs.b }}",
        "nested": {"deep": [{"v": "{{ .INPUTS.c }}"}, 3, None, "{inputs.not_flyte}"]},
        "key_{{ .inputs.not_a_value }}": "plain",
    }
    assert Executor.config_inputs(config) == ["b", "a", "c"]


def test_default_outputs_are_the_declared_ones():
    declared = {"n": t("int")}
    assert Executor.infer_outputs({"x": 1}, {"a": t("str")}, declared) == declared
    assert Executor.infer_outputs({}, {"a": t("str")}, {}) == {}
    assert HTTPJobExecutor.infer_outputs({"status_output": "s"}, {}, {}) == {}  # http-job: declared only


# ------------------------------------------------------------------ the built-ins


@pytest.mark.parametrize("cls", [SQLiteExecutor, SQLExecutor])
def test_sql_executors_output_a_results_table_unless_declared(cls):
    assert cls.infer_outputs({"query_template": "SELECT 1"}, {}, {}) == {"results": t("table")}
    declared = {"rows": t("list[json]")}
    assert cls.infer_outputs({"query_template": "SELECT 1"}, {}, declared) == declared  # replaces results
    assert cls.config_inputs({"query_template": "SELECT * FROM t WHERE id = {{ .inputs.id }}"}) == ["id"]


def test_echo_outputs_its_inputs_and_the_declared_ones():
    inputs = {"a": t("int"), "b": t("str")}
    assert EchoExecutor.infer_outputs({}, inputs, {"b": t("json"), "c": t("bool")}) == {
        "a": t("int"), "b": t("json"), "c": t("bool")}  # fmt: skip


def test_http_outputs_named_by_the_config():
    config = {"url": "http://api.test/", "status_output": "code", "headers_output": "h", "body_output": "text",
              "webhook": "info", "pagination": {"output": "items"}}  # fmt: skip
    assert HTTPExecutor.infer_outputs(config, {}, {"code": t("str")}) == {
        "code": t("str"), "h": t("json"), "text": t("str"), "info": t("json"), "items": t("list[json]")}  # fmt: skip


def test_http_json_pointer_outputs_must_be_declared():
    config = {"url": "http://api.test/", "outputs": {"id": "/id"}}
    with pytest.raises(ConfigError, match=r"output 'id' .* cannot be inferred; declare it"):
        HTTPExecutor.infer_outputs(config, {}, {})
    assert HTTPExecutor.infer_outputs(config, {}, {"id": t("int")}) == {"id": t("int")}


def test_http_placeholders_follow_the_placeholder_style():
    flyte = {"url": "http://api.test/{{ .inputs.a }}/{inputs.b}", "headers": {"X": "{{ .inputs.c }}"}}
    assert HTTPExecutor.config_inputs(flyte) == ["a", "c"]
    webhook = {**flyte, "placeholder_style": "webhook"}
    assert HTTPExecutor.config_inputs(webhook) == ["b"]


# ------------------------------------------------------------------ a plugin's conventions, through taskbox run


def taskbox_run(*args: str):
    return run([TASKBOX, "run", *args])


def test_plugin_conventions_give_inference_in_taskbox_run(tmp_path: Path):
    """The test plugin names inputs ``$name`` and always has a ``shout`` output: taskbox run infers both."""
    out = tmp_path / "out"
    config = json.dumps({"text": "hello $name"})
    proc = taskbox_run("--executor", "test-shout", "--config", config, "--input", "name=bob", "--outputs", str(out))
    assert proc.returncode == 0, proc.stderr
    assert read_json(out / "outputs.json") == {"shout": "HELLO BOB"}
    assert read_outputs(str(out), {"shout": t("str")}) == {"shout": "HELLO BOB"}


def test_plugin_input_named_by_its_convention_but_not_given_is_a_user_error(tmp_path: Path):
    proc = taskbox_run("--executor", "test-shout", "--config", json.dumps({"text": "hello $name"}),
                       "--outputs", str(tmp_path))  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    error = read_json(tmp_path / "error.json")
    assert error["code"] == "USER:InvalidInput" and "input 'name' is used by the config" in error["message"]


def test_plugin_that_answers_no_interface_is_an_invalid_plugin(tmp_path: Path):
    proc = taskbox_run("--executor", "test-clumsy", "--outputs", str(tmp_path))
    error = read_json(tmp_path / "error.json")
    assert error["code"] == "SYSTEM:InvalidPlugin" and "infer_outputs must return" in error["message"]
    assert proc.returncode == 3, proc.stderr


# ------------------------------------------------------------------ declared on the class (Executor.inputs/outputs)


def test_a_declared_interface_needs_no_interface_in_taskbox_run(tmp_path: Path):
    """issue 22 item 1: the documented `taskbox run --executor wordcount ...` gives the declared output."""
    out = tmp_path / "out"
    (tmp_path / "count.yaml").write_text("min_length: 2\n")
    proc = taskbox_run("--executor", "test-wordcount", "--config", str(tmp_path / "count.yaml"),
                       "--input", "text=a bb ccc dd", "--outputs", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_json(out / "outputs.json") == {"count": 3}
    assert read_outputs(str(out), {"count": t("int")}) == {"count": 3}


def test_interface_in_a_run_config_is_taskbox_runs_not_the_executors(tmp_path: Path):
    """The model rejects unknown keys, yet `interface` is allowed: removed before validation, kept out of custom."""
    out = tmp_path / "out"
    config = {"min_length": 1, "interface": {"outputs": {"count": "float"}}}
    proc = taskbox_run("--executor", "test-wordcount", "--config", json.dumps(config), "--input", "text=a b",
                       "--outputs", str(out))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert read_json(out / "outputs.json") == {"count": 2.0}  # the user's declaration wins over the class's
    proc = taskbox_run("--executor", "test-wordcount", "--config", json.dumps({"interfaces": {}}),
                       "--input", "text=a", "--outputs", str(tmp_path / "bad"))  # fmt: skip
    assert proc.returncode == 1 and read_json(tmp_path / "bad" / "error.json")["code"] == "USER:InvalidConfig"


@pytest.mark.parametrize(
    ("executor", "words"),
    [
        ("test-needs-library", "taskbox_no_such_library missing"),  # declared in `requires`: refused before the run
        ("test-lazy-import", "taskbox_no_such_library missing"),  # imported in execute: translated, not retried
    ],
)
def test_a_missing_library_is_executor_not_installed_not_a_retried_system_error(tmp_path: Path, executor, words):
    proc = taskbox_run("--executor", executor, "--outputs", str(tmp_path))
    error = read_json(tmp_path / "error.json")
    assert error["code"] == "USER:ExecutorNotInstalled", error
    assert words in error["message"] and "taskbox-testplugins" in error["message"]
    assert proc.returncode == 1, proc.stderr  # not 75: Argo and Batch would retry it forever


def test_sqlite_without_sqlglot_names_the_sqlite_image(tmp_path: Path):
    """issue 22 item 4: in the base image `taskbox run --executor sqlite` was SYSTEM:ModuleNotFoundError (exit 75)."""
    import subprocess
    import sys

    config = json.dumps({"uri": str(tmp_path / "db.sqlite"), "query_template": "SELECT 1"})
    code = (
        "import sys; sys.modules['sqlglot'] = None\n"  # as in an image without taskbox[sqlite]
        "from taskbox.entrypoint.cli import main\n"
        f"sys.exit(main(['run', '--executor', 'sqlite', '--config', {config!r}, '--outputs', {str(tmp_path)!r}]))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    error = read_json(tmp_path / "error.json")
    assert error["code"] == "USER:ExecutorNotInstalled" and "ghcr.io/taskbox/executor-sqlite" in error["message"]
