"""``taskbox template SPEC --out DIR``: task.pb (and inputs.pb) from YAML/JSON, equal to ExecutorTask's template,
runnable by ``taskbox execute`` and ``taskbox run --template``; one typed line and run's exit codes on failure."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flyteidl.core import literals_pb2, tasks_pb2
from google.protobuf.json_format import Parse

from helpers import TASKBOX, execute_args, read_outputs, run
from taskbox.authoring import ExecutorTask
from taskbox.entrypoint import cli, templatecmd
from taskbox.entrypoint.plainio import literal_to_plain
from taskbox.typespec import parse_type

SPEC = """
name: count_words
executor: test-wordcount
config:
  min_length: 3
values:
  text: a few words here
"""


def template_cmd(*args: str):
    return run([TASKBOX, "template", *args])


def read_template(path: Path) -> tasks_pb2.TaskTemplate:
    return tasks_pb2.TaskTemplate.FromString(path.read_bytes())


def test_writes_the_template_and_inputs_that_execute_and_run_take(tmp_path: Path):
    (tmp_path / "spec.yaml").write_text(SPEC)
    out = tmp_path / "out"
    proc = template_cmd(str(tmp_path / "spec.yaml"), "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(out / "task.pb"), str(out / "task.json"), str(out / "inputs.pb")]
    template = read_template(out / "task.pb")
    assert template == ExecutorTask("count_words", "test-wordcount", {"min_length": 3}).to_template()
    assert Parse((out / "task.json").read_text(), tasks_pb2.TaskTemplate()) == template
    inputs = literals_pb2.LiteralMap.FromString((out / "inputs.pb").read_bytes())
    assert inputs.literals["text"].scalar.primitive.string_value == "a few words here"

    prefix = str(tmp_path / "execute")
    proc = run(execute_args(str(out / "inputs.pb"), prefix, str(out / "task.pb"), "test-wordcount"))
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, {"count": parse_type("int")}) == {"count": 3}
    for template_file in ("task.pb", "task.json"):
        outputs = tmp_path / f"run-{template_file}"
        proc = run([TASKBOX, "run", "--template", str(out / template_file), "--inputs", str(out / "inputs.pb"),
                    "--outputs", str(outputs), "-q"])  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert json.loads((outputs / "outputs.json").read_text()) == {"count": 3}


def test_equals_the_python_class_for_the_same_spec(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = {
        "name": "count_words",
        "executor": "test-wordcount",
        "config": {"min_length": 2},
        "inputs": {"lang": "enum[en, fr]"},
        "outputs": {"count": "float", "words": "list[str]"},
        "image": "ghcr.io/me/taskbox-wordcount:0.1.0",
        "retries": 2,
    }
    assert templatecmd.main([json.dumps(spec), "--out", str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "task.pb")]  # no values: no inputs.pb
    task = ExecutorTask(
        "count_words",
        "test-wordcount",
        {"min_length": 2},
        inputs={"lang": "enum[en, fr]"},
        outputs={"count": float, "words": list[str]},
        image="ghcr.io/me/taskbox-wordcount:0.1.0",
        retries=2,
    )
    template = read_template(tmp_path / "task.pb")
    assert template == task.to_template()
    assert set(template.interface.inputs.variables) == {"text", "lang"}
    assert not (tmp_path / "inputs.pb").exists()


def test_values_follow_taskbox_runs_plain_rules(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    spec = {
        "name": "e",
        "executor": "echo",
        "inputs": {"n": "int", "when": "datetime", "files": "list[file]", "opts": "json"},
        "values": {"n": 3.0, "when": "2026-01-02T03:04:05Z", "files": ["s3://b/a.csv"], "opts": {"k": [1]}},
    }
    assert templatecmd.main([json.dumps(spec), "--out", str(tmp_path)]) == 0
    literals = literals_pb2.LiteralMap.FromString((tmp_path / "inputs.pb").read_bytes()).literals
    assert literals["n"].scalar.primitive.integer == 3
    assert literals["when"].scalar.primitive.datetime.ToJsonString() == "2026-01-02T03:04:05Z"
    assert literals["files"].collection.literals[0].scalar.blob.uri == "s3://b/a.csv"  # a URI, kept in place
    assert literal_to_plain(literals["opts"]) == {"k": [1]}
    assert read_template(tmp_path / "task.pb").container.image.split("/")[-1].startswith("executor-base:")


@pytest.mark.parametrize(
    ("spec", "code", "exit_code", "text"),
    [
        ({"name": "x", "executor": "test-wordcount", "config": {"min_length": 0}}, "USER:InvalidConfig", 1,
         "min_length: Input should be greater than or equal to 1"),
        ({"name": "x", "executor": "no-such"}, "USER:ExecutorNotFound", 1, "no executor named 'no-such'"),
        ({"name": "x", "executor": "test-broken"}, "SYSTEM:InvalidPlugin", 3, "test-broken"),
        ({"name": "x", "executor": "test-wordcount", "outputs": {"n": "intt"}}, "USER:InvalidConfig", 1,
         "output 'n': cannot read the type 'intt'"),
        ({"name": "x", "executor": "test-wordcount", "values": {"text": 3}}, "USER:InvalidInput", 1,
         "input 'text' (string)"),
        ({"name": "x", "executor": "test-wordcount", "values": {"other": 3}}, "USER:InvalidInput", 1,
         "value 'other' names no input"),
        ({"name": "x", "executor": "test-wordcount", "interface": {}}, "USER:InvalidConfig", 1,
         "unknown key(s) in the template spec: interface"),
        ({"executor": "test-wordcount"}, "USER:InvalidConfig", 1, "needs 'name'"),
        ({"name": "x", "executor": "test-wordcount", "retries": -1}, "USER:InvalidConfig", 1, "'retries'"),
        (["not", "an", "object"], "USER:InvalidConfig", 1, "a template spec is an object"),
    ],
)  # fmt: skip
def test_failures_are_one_typed_line_with_runs_exit_codes(tmp_path, capsys, spec, code, exit_code, text):
    out = tmp_path / "out"
    assert templatecmd.main([json.dumps(spec), "--out", str(out)]) == exit_code
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"taskbox template: failed ({code}, ")
    assert text in lines[0]
    assert not out.exists()  # nothing written


def test_the_command_line(tmp_path: Path):
    proc = template_cmd("{name: x, executor: test-wordcount, config: {min_length: 0}}", "--out", str(tmp_path))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("taskbox template: failed (USER:InvalidConfig, USER, non-recoverable):")
    assert template_cmd("--json").returncode == 2  # argparse: a malformed command line
    assert "template" in cli.COMMANDS
    assert "template " in run([TASKBOX, "--help"]).stdout
