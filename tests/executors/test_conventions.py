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
