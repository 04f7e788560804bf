"""ExecutorTask: a task for any installed executor (a plugin's, a built-in): config validated when defined, the
interface the executor declares, the same template as the executor-specific classes, local and container runs."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import tasks_pb2
from taskbox_testplugins.executors import WordCountConfig

from helpers import TASKBOX, encode_inputs, read_outputs, run, subprocess_env
from taskbox.authoring import ExecutorTask, HTTPJobTask, SQLiteTask, TaskFailed
from taskbox.authoring.base import default_image
from taskbox.entrypoint.cmdline import CHECKPOINT_ARGS, template_task_args
from taskbox.errors import ConfigError, ExecutorNotFound, PluginInvalid, UnsupportedType
from taskbox.executors import Executor, registry
from taskbox.typespec import parse_type

WORDCOUNT = "test-wordcount"


def wordcount(**kwargs: Any) -> ExecutorTask:
    return ExecutorTask("count_words", WORDCOUNT, {"min_length": 3}, **kwargs)


def test_a_plugins_task_takes_the_executors_declared_interface_and_validated_config():
    task = wordcount()
    template = task.to_template(project="p", domain="d", version="v1")
    assert isinstance(template, tasks_pb2.TaskTemplate)
    assert (template.id.project, template.id.domain, template.id.name, template.id.version) == (
        "p",
        "d",
        "count_words",
        "v1",
    )
    assert template.type == "test-wordcount"
    assert {n: v.type for n, v in template.interface.inputs.variables.items()} == {"text": parse_type("str")}
    assert {n: v.type for n, v in template.interface.outputs.variables.items()} == {"count": parse_type("int")}
    assert dict(template.custom) == {"version": 1.0, "min_length": 3.0}  # the model's dump, defaults included
    assert list(template.container.args) == template_task_args(WORDCOUNT)
    assert template.container.image == default_image("base")  # nothing better for a plugin: name its image
    assert template.metadata.runtime.flavor == "taskbox"


def test_image_retries_and_a_config_model_instance():
    task = ExecutorTask("c", WORDCOUNT, WordCountConfig(min_length=2), image="ghcr.io/me/wc:1", retries=3)
    template = task.to_template()
    assert template.container.image == "ghcr.io/me/wc:1"
    assert template.metadata.retries.retries == 3
    assert dict(template.custom)["min_length"] == 2.0


def test_local_run_goes_through_the_containers_pipeline(tmp_path: Path):
    assert wordcount().run(text="a few words here", workdir=str(tmp_path)) == {"count": 3}
    assert (tmp_path / "task.pb").exists() and (tmp_path / "inputs.pb").exists()
    assert (tmp_path / "out" / "outputs.pb").exists()


def test_a_failed_local_run_raises_task_failed_with_the_error_documents_code():
    with pytest.raises(TaskFailed) as info:
        ExecutorTask("f", "test-fail", inputs={"kind": str}).run(kind="user")
    assert info.value.code == "USER:InvalidInput" and not info.value.recoverable


@pytest.mark.parametrize(
    ("executor", "config", "error", "text"),
    [
        (WORDCOUNT, {"min_length": 0}, ConfigError, "invalid test-wordcount config: min_length"),
        (WORDCOUNT, {"nope": 1}, ConfigError, "nope"),  # unknown keys are rejected by ExecutorConfig
        (WORDCOUNT, ["min_length"], ConfigError, "must be a mapping or a WordCountConfig"),
        ("no-such-executor", None, ExecutorNotFound, "no executor named 'no-such-executor'"),
        ("taskbox_testplugins.executors:WordCountExecutor", None, ConfigError, "must be a registry name"),
        ("", None, ConfigError, "must be a registry name"),
    ],
)
def test_definition_errors_are_typed_and_early(executor, config, error, text):
    with pytest.raises(error, match=text) as info:
        ExecutorTask("t", executor, config)
    assert info.value.code == error.code


def test_declared_types_are_python_types_or_type_language_strings_and_win_by_name():
    as_strings = wordcount(inputs={"text": "str"}, outputs={"count": "int"})
    as_types = wordcount(inputs={"text": str}, outputs={"count": int})
    assert as_strings.to_template() == as_types.to_template() == wordcount().to_template()
    wider = wordcount(inputs={"lang": "enum[en, fr]"}, outputs={"count": "float"})  # added; a declaration wins
    template = wider.to_template()
    assert set(template.interface.inputs.variables) == {"text", "lang"}
    assert template.interface.outputs.variables["count"].type == parse_type("float")


@pytest.mark.parametrize(
    ("kwargs", "error", "text"),
    [
        ({"inputs": {"text": "strr"}}, ConfigError, "input 'text': cannot read the type 'strr'"),
        ({"outputs": {"count": object}}, UnsupportedType, "output 'count': no literal conversion"),
        ({"outputs": ["count"]}, ConfigError, "outputs must be a mapping of name: type"),
    ],
)
def test_bad_declarations_are_typed_errors_naming_the_variable(kwargs, error, text):
    with pytest.raises(error, match=text):
        wordcount(**kwargs)


def test_an_input_the_config_uses_needs_a_type(tmp_path: Path):
    config = {"query_template": "SELECT {{ .inputs.n }} AS n", "uri": str(tmp_path / "x.db")}
    with pytest.raises(ConfigError, match="'n'"):
        ExecutorTask("q", "sqlite", config)


def test_a_builtin_executors_task_equals_its_own_class(tmp_path: Path):
    db = str(tmp_path / "x.db")
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    query = "SELECT {{ .inputs.n }} AS n"
    generic = ExecutorTask("q", "sqlite", {"query_template": query, "uri": db}, inputs={"n": int})
    specific = SQLiteTask("q", query, uri=db, inputs={"n": int})
    assert generic.to_template(version="1") == specific.to_template(version="1")  # results: table by default
    assert generic.image == default_image("sqlite")
    assert generic.run(n=7)["results"].to_arrow().to_pylist() == [{"n": 7}]


def test_an_async_executor_gets_checkpoints_and_its_configs_secrets():
    job = HTTPJobTask(
        "train",
        submit_url="https://ml.example.com/jobs",
        status_url="https://ml.example.com/jobs/{{ .job.id }}",
        outputs={"model": str},
        output_pointers={"model": "/model"},
        secret_headers={"Authorization": {"group": "ml", "key": "token"}},
    )
    generic = ExecutorTask("train", "http-job", job.config.model_dump(), outputs={"model": str}, image=job.image)
    template = generic.to_template()
    assert template == job.to_template()
    assert all(arg in template.container.args for arg in CHECKPOINT_ARGS)
    assert [(s.group, s.key) for s in template.security_context.secrets] == [("ml", "token")]


class _Doubler(Executor):
    task_type = "test-doubler"
    inputs = {"x": "int"}
    outputs = {"y": "int"}

    def execute(self, context, config, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"y": inputs["x"] * 2}


class _Confused(Executor):
    task_type = "test-confused"

    @classmethod
    def interface(cls, config, inputs=None, outputs=None):
        return {"x": "int"}

    def execute(self, context, config, inputs):
        return {}


def test_an_executor_registered_from_code_runs_locally():
    registry.register("test-doubler", _Doubler)
    try:
        assert ExecutorTask("d", "test-doubler").run(x=21) == {"y": 42}
    finally:
        registry.unregister("test-doubler")


def test_a_wrong_interface_answer_is_a_plugin_bug():
    registry.register("test-confused", _Confused)
    try:
        with pytest.raises(PluginInvalid, match="interface must return"):
            ExecutorTask("c", "test-confused")
    finally:
        registry.unregister("test-confused")


def test_its_template_runs_under_taskbox_execute_and_taskbox_run(tmp_path: Path):
    template = wordcount().to_template()
    task_pb = tmp_path / "task.pb"
    task_pb.write_bytes(template.SerializeToString())
    inputs_pb = tmp_path / "inputs.pb"
    inputs_pb.write_bytes(encode_inputs({"text": "a few words here"}, {"text": parse_type("str")}, str(tmp_path)))
    prefix = str(tmp_path / "execute")
    args = [
        a.replace("{{.input}}", str(inputs_pb)).replace("{{.outputPrefix}}", prefix) for a in template.container.args
    ]
    args = [a.replace("{{.rawOutputDataPrefix}}", str(tmp_path / "raw")) for a in args]
    args = [str(task_pb) if a == "{{.taskTemplatePath}}" else a for a in args]
    assert args[:2] == ["taskbox", "execute"]
    proc = run([TASKBOX, *args[1:]])  # the container args, with Flyte's placeholders filled in
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, {"count": parse_type("int")}) == {"count": 3}
    out = tmp_path / "run"
    proc = run([TASKBOX, "run", "--template", str(task_pb), "--inputs", str(inputs_pb), "--outputs", str(out), "-q"])
    assert proc.returncode == 0, proc.stderr
    assert (out / "outputs.json").read_text() == '{"count": 3}'


# ------------------------------------------------------------------ docs/plugins.md, as written

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
_BLOCK = re.compile(r"```(\w+)\n(.*?)```", re.DOTALL)


def _blocks(text: str) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in _BLOCK.findall(text)]


def _doc_plugin(root: Path) -> None:
    """The docs' example distribution: its executor module and entry point, installed under ``root``."""
    doc = DOCS.read_text()
    module = next(body for lang, body in _blocks(doc) if lang == "python" and body.startswith("# my_executors/"))
    path = module.splitlines()[0].removeprefix("# ").split()[0]
    (root / path).parent.mkdir(parents=True, exist_ok=True)
    (root / path).parent.joinpath("__init__.py").write_text("")
    (root / path).write_text(module)
    toml = next(body for lang, body in _blocks(doc) if lang == "toml" and "taskbox.executors" in body)
    entry = next(line for line in toml.splitlines() if "=" in line and not line.startswith("["))
    info = root / "my_executors-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: my-executors\nVersion: 0.1\n")
    name, _, target = entry.split("#")[0].partition("=")
    target = target.strip().strip('"')
    (info / "entry_points.txt").write_text(f"[taskbox.executors]\n{name.strip()} = {target}\n")


def test_the_docs_task_definitions_run_as_written(tmp_path: Path):
    section = DOCS.read_text().split("## Defining a task for your executor", 1)[1].split("\n## ", 1)[0]
    blocks = _blocks(section)
    assert [lang for lang, _ in blocks] == ["python", "yaml", "sh"]
    _doc_plugin(tmp_path)
    env = {"PYTHONPATH": str(tmp_path), "PATH": f"{Path(TASKBOX).parent}{os.pathsep}{os.environ['PATH']}"}
    for lang, body in blocks:
        if lang == "yaml":
            (tmp_path / body.splitlines()[0].removeprefix("# ").strip()).write_text(body)
            continue
        name = body.splitlines()[0].removeprefix("# ").split()[0] if lang == "python" else "script.sh"
        (tmp_path / name).write_text(body)
        command = [sys.executable, name] if lang == "python" else ["bash", "-euo", "pipefail", name]
        proc = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120,
                              env=subprocess_env(**env))  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    from_yaml = tasks_pb2.TaskTemplate.FromString((tmp_path / "build" / "task.pb").read_bytes())
    from_python = tasks_pb2.TaskTemplate.FromString((tmp_path / "pause.pb").read_bytes())
    assert from_python.id.version == "v1"
    from_python.id.version = ""
    assert from_yaml == from_python  # the same task, the same template
    assert read_outputs(str(tmp_path / "build" / "out"), {"waited": parse_type("float")}) == {"waited": 0.1}
    assert json.loads((tmp_path / "build" / "run" / "outputs.json").read_text()) == {"waited": 0.1}
