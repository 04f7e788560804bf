"""The lazy executor registry: built-ins, flytekit aliases, entry points, validation at load."""

import json
import subprocess
import sys

import pytest

from taskbox.errors import ExecutorNotFound, ExecutorNotInstalled, PluginInvalid
from taskbox.executors import registry
from taskbox.executors.echo import EchoExecutor


@pytest.fixture(autouse=True)
def _fresh_cache():
    registry._loaded.clear()
    yield
    registry._loaded.clear()


def test_builtin_by_name_and_by_task_type():
    assert registry.load("echo") is EchoExecutor
    assert registry.for_task_type("echo") is EchoExecutor


@pytest.mark.parametrize(
    ("ref", "extra"),
    [
        ("flytekit.extras.sqlite3.task.SQLite3TaskExecutor", "sqlite"),
        ("flytekitplugins.sqlalchemy.task.SQLAlchemyTaskExecutor", "sql"),
    ],
)
def test_flytekit_executor_paths_map_to_taskbox_executors(ref, extra, monkeypatch):
    # Make the executor's module unimportable so the "not installed" path is taken whatever is installed.
    name = registry.FLYTEKIT_ALIASES[ref]
    target_module = registry._BY_NAME[name].target.partition(":")[0]
    monkeypatch.setitem(sys.modules, target_module, None)
    with pytest.raises(ExecutorNotInstalled, match=rf"pip install 'taskbox\[{extra}\]'"):
        registry.load(ref)


def test_unknown_name_lists_what_is_available():
    with pytest.raises(ExecutorNotFound, match="available: .*echo"):
        registry.load("no-such-executor")


def test_unknown_task_type():
    with pytest.raises(ExecutorNotFound, match="task type 'nope'"):
        registry.for_task_type("nope")


def test_entry_point_plugin_by_name_and_task_type():
    from taskbox_testplugins.executors import SleepExecutor, WhoAmIExecutor

    assert registry.load("test-sleep") is SleepExecutor
    assert registry.for_task_type("test-whoami") is WhoAmIExecutor


def test_import_path_reference():
    from taskbox_testplugins.executors import FailingExecutor

    assert registry.load("taskbox_testplugins.executors:FailingExecutor") is FailingExecutor
    assert registry.load("taskbox_testplugins.executors.FailingExecutor") is FailingExecutor


def test_invalid_plugin_is_rejected_when_loaded():
    with pytest.raises(PluginInvalid, match="not a subclass"):
        registry.load("test-broken")
    with pytest.raises(PluginInvalid, match="not a subclass"):
        registry.load("taskbox_testplugins.executors:NotAnExecutor")


def test_plugin_with_missing_module_says_how_to_fix():
    with pytest.raises(ExecutorNotInstalled, match="reinstall taskbox-testplugins"):
        registry.load("test-missing")


def test_validate_catches_each_broken_rule():
    from taskbox.executors import Executor

    class NoType(Executor):
        def execute(self, context, config, inputs):
            return {}

    class NoExecute(Executor):
        task_type = "x"

    class BadSignature(Executor):
        task_type = "x"

        def execute(self, context):
            return {}

    class BadConfig(Executor):
        task_type = "x"
        Config = dict

        def execute(self, context, config, inputs):
            return {}

    for cls, why in [
        (NoType, "task_type"),
        (NoExecute, "does not implement"),
        (BadSignature, "must accept"),
        (BadConfig, "pydantic"),
    ]:
        with pytest.raises(PluginInvalid, match=why):
            registry.validate(cls, cls.__name__)


def test_cli_lists_executors_with_schemas():
    out = subprocess.run(
        [sys.executable, "-m", "taskbox", "executors", "--json"],
        capture_output=True,
        text=True,
        check=True,
        env={"PYTHONPATH": "tests/plugins", "PATH": "/usr/bin:/bin"},
    ).stdout
    infos = {i["name"]: i for i in json.loads(out)}
    assert infos["echo"]["status"] == "available"
    assert infos["test-sleep"]["config_schema"]["properties"]["seconds"]["type"] == "number"
    assert infos["test-sleep"]["source"] == "plugin (taskbox-testplugins)"
    assert infos["test-broken"]["status"].startswith("unavailable: executor plugin")


# ------------------------------------------------------------------ registering from code (fsspec's model)


@pytest.fixture
def registered():
    """Restore the code registrations after the test."""
    saved = dict(registry._registered)
    yield
    registry._registered.clear()
    registry._registered.update(saved)


class Shout(EchoExecutor):
    task_type = "test-code-shout"


def test_register_a_class_from_code_finds_it_by_name_and_task_type(registered):
    assert registry.register("code-shout", Shout) is Shout
    assert registry.load("code-shout") is Shout
    assert registry.for_task_type("test-code-shout") is Shout
    assert "code-shout" in registry.names()
    info = {i.name: i for i in registry.describe()}["code-shout"]
    assert (info.source, info.status, info.task_types) == ("registered", "available", ("test-code-shout",))
    registry.unregister("code-shout")
    with pytest.raises(ExecutorNotFound):
        registry.load("code-shout")


def test_register_by_import_path(registered):
    from taskbox_testplugins.executors import FailingExecutor

    assert registry.register("code-fail", "taskbox_testplugins.executors:FailingExecutor") is FailingExecutor
    assert registry.load("code-fail") is FailingExecutor


def test_register_validates_now_like_an_entry_point_plugin(registered):
    class NoExecute(EchoExecutor.__base__):
        task_type = "test-code-broken"

    class InstanceConventions(EchoExecutor):
        task_type = "test-code-broken"

        def infer_outputs(self, config, inputs, declared):
            return {}

    with pytest.raises(PluginInvalid, match="does not implement"):
        registry.register("code-broken", NoExecute)
    with pytest.raises(PluginInvalid, match="infer_outputs must be a classmethod"):
        registry.register("code-broken", InstanceConventions)
    with pytest.raises(PluginInvalid, match="not a subclass"):
        registry.register("code-broken", "taskbox_testplugins.executors:NotAnExecutor")
    with pytest.raises(ExecutorNotFound, match="no module named"):
        registry.register("code-broken", "taskbox_testplugins.no_such_module:X")
    for bad_name in ("", "a:b", None):
        with pytest.raises(ValueError, match="non-empty string"):
            registry.register(bad_name, Shout)
    assert "code-broken" not in registry.names()


def test_register_does_not_clobber_unless_asked(registered):
    class MyEcho(EchoExecutor):
        pass

    with pytest.raises(ValueError, match="'echo' is already known"):
        registry.register("echo", MyEcho)
    with pytest.raises(ValueError, match="task type 'echo' is served by executor 'echo'"):
        registry.register("my-echo", MyEcho)
    registry.register("code-shout", Shout)
    with pytest.raises(ValueError, match="'code-shout' is already known"):
        registry.register("code-shout", Shout)
    assert registry.load("echo") is EchoExecutor
    registry.register("my-echo", MyEcho, clobber=True)
    assert registry.for_task_type("echo") is MyEcho and registry.load("echo") is EchoExecutor
    registry.register("echo", MyEcho, clobber=True)
    assert registry.load("echo") is MyEcho


def test_registered_executor_runs_in_process(registered, tmp_path):
    from helpers import make_template, simple
    from taskbox.authoring import run_template

    registry.register("code-shout", Shout)
    types = {"word": simple("STRING")}
    template = make_template("test-code-shout", types, types)
    assert run_template(template, {"word": "hi"}, workdir=str(tmp_path)) == {"word": "hi"}


# ------------------------------------------------------------------ checks that hold under python -O


def test_no_module_level_assert_in_the_package():
    """A module-level ``assert`` is a check that ``python -O`` removes: the registry's sort check is a real one."""
    import ast
    from pathlib import Path

    import taskbox

    offenders = []
    for path in sorted(Path(taskbox.__file__).parent.rglob("*.py")):
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.Assert):
                offenders.append(f"{path.name}:{node.lineno}")
    assert offenders == []


def test_unsorted_builtins_are_refused():
    table = tuple(reversed(registry.BUILTINS))
    with pytest.raises(RuntimeError, match="sorted by name"):
        registry._check_sorted(table)
    registry._check_sorted(registry.BUILTINS)


def test_no_entry_point_in_pyproject_is_shadowed_by_a_builtin():
    """Built-ins are found first, so an entry point of the same name is never loaded: declare none."""
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text()).get("project", {}).get("entry-points", {})
    shadowed = set(declared.get(registry.ENTRY_POINT_GROUP, {})) & set(registry._BY_NAME)
    assert shadowed == set()


# ------------------------------------------------------------------ declared interface, requires, summary


def _plugin(**attrs):
    from taskbox.executors import Executor

    def execute(self, context, config, inputs):
        return {}

    return type("Declared", (Executor,), {"task_type": "x", "execute": execute, **attrs})


@pytest.mark.parametrize(
    ("attrs", "why"),
    [
        ({"outputs": {"count": "integr"}}, r"outputs\['count'\]: cannot read the type 'integr'"),
        ({"inputs": {"text": int}}, r"inputs\['text'\] must be a type-language string"),
        ({"inputs": ["text"]}, "inputs must be a mapping"),
        ({"outputs": {"not a name": "int"}}, "outputs names must be identifiers"),
        ({"requires": "sqlglot"}, "requires must be a tuple of module names"),
        ({"requires": ("sqlglot", "not a module")}, "requires must be a tuple of module names"),
        ({"summary": None}, "summary must be a string"),
        ({"interface": {"inputs": {}}}, "interface must be a classmethod"),
    ],
)
def test_declarations_are_validated_when_loaded(attrs, why):
    with pytest.raises(PluginInvalid, match=why):
        registry.validate(_plugin(**attrs), "declared")


def test_a_declared_interface_is_the_default_interface():
    from taskbox_testplugins.executors import WordCountExecutor

    assert registry.load("test-wordcount") is WordCountExecutor
    assert WordCountExecutor.interface({}) == ({"text": "str"}, {"count": "int"})
    # the caller's declarations win and add; a LiteralType is said in the type language
    from taskbox.typespec import parse_type

    assert WordCountExecutor.interface({}, {"lang": parse_type("str?")}, {"count": "float"}) == (
        {"text": "str", "lang": "str?"},
        {"count": "float"},
    )
    from taskbox.executors.base import Executor

    assert WordCountExecutor.infer_outputs({}, {}, {})["count"] == parse_type("int")
    assert Executor.infer_outputs({}, {}, {}) == {}


def test_interface_of_the_builtins_keeps_their_conventions():
    from taskbox.errors import ConfigError
    from taskbox.executors.echo import EchoExecutor
    from taskbox.executors.http import HTTPExecutor
    from taskbox.executors.sqlite import SQLiteExecutor

    sqlite = {"uri": "db.sqlite", "query_template": "SELECT * FROM t WHERE id = {{ .inputs.id }}"}
    assert SQLiteExecutor.interface(sqlite, {"id": "int"}) == ({"id": "int"}, {"results": "table"})
    assert SQLiteExecutor.interface(sqlite, {"id": "int"}, {"n": "int"}) == ({"id": "int"}, {"n": "int"})
    assert EchoExecutor.interface({}, {"x": "list[int]"}) == ({"x": "list[int]"}, {"x": "list[int]"})
    http = {"url": "https://example.com/{{ .inputs.path }}", "status_output": "status"}
    assert HTTPExecutor.interface(http, {"path": "str"}) == ({"path": "str"}, {"status": "int"})
    with pytest.raises(ConfigError, match="'id' of no declared type"):
        SQLiteExecutor.interface(sqlite)


def test_format_type_is_the_inverse_of_parse_type():
    from taskbox.errors import ConfigError
    from taskbox.typespec import format_type, parse_type

    specs = ["int", "float", "str", "bool", "datetime", "duration", "json", "none", "file", "file[csv]", "dir",
             "table", "table[csv]", "list[int]", "dict[str, list[table]]", "int?", "int | str", "list[int?]",
             "enum[a, b]"]  # fmt: skip
    for spec in specs:
        assert parse_type(format_type(parse_type(spec))) == parse_type(spec), spec
    assert format_type(parse_type("optional[list[int]]")) == "list[int]?"
    with pytest.raises(ConfigError, match="no name in the type language"):
        format_type(parse_type({"simple": "BINARY"}))


def test_requires_decides_availability_and_names_the_image(monkeypatch):
    from taskbox.executors.sqlite import SQLiteExecutor

    assert registry.ensure_installed(registry.load("echo")) is EchoExecutor
    monkeypatch.setitem(sys.modules, "sqlglot", None)  # blocked: as in the base image
    assert registry.missing_modules(SQLiteExecutor) == ["sqlglot"]
    cls = registry.load("sqlite")  # defining a task for it still works (authoring loads the class only)
    with pytest.raises(ExecutorNotInstalled) as caught:
        registry.ensure_installed(cls, "sqlite")
    message = str(caught.value)
    assert "sqlglot missing" in message and "ghcr.io/taskbox/executor-sqlite" in message
    assert "pip install 'taskbox[sqlite]'" in message
    info = {i.name: i for i in registry.describe()}["sqlite"]
    assert info.status.startswith("unavailable: executor 'sqlite' is not installed") and info.summary


def test_a_plugin_without_its_library_is_not_available():
    cls = registry.load("test-needs-library")
    assert registry.missing_modules(cls) == ["taskbox_no_such_library"]
    with pytest.raises(ExecutorNotInstalled, match="taskbox_no_such_library missing.*install taskbox-testplugins"):
        registry.ensure_installed(cls)
    infos = {i.name: i for i in registry.describe()}
    assert infos["test-needs-library"].status.startswith("unavailable:")
    assert infos["test-needs-library"].requires == ("taskbox_no_such_library", "json")
    assert infos["test-wordcount"].status == "available"
    assert (infos["test-wordcount"].inputs, infos["test-wordcount"].outputs) == ({"text": "str"}, {"count": "int"})


def test_cli_shows_summary_and_declared_interface():
    env = {"PYTHONPATH": "tests/plugins", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "taskbox", "executors", "--json"], capture_output=True, text=True, check=True, env=env
    ).stdout
    infos = {i["name"]: i for i in json.loads(out)}
    assert infos["echo"]["summary"] == EchoExecutor.summary
    assert infos["test-wordcount"]["outputs"] == {"count": "int"}
    text = subprocess.run(
        [sys.executable, "-m", "taskbox", "executors"], capture_output=True, text=True, check=True, env=env
    ).stdout
    assert EchoExecutor.summary in text
    assert "inputs: text: str" in text and "outputs: count: int" in text
