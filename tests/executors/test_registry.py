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
