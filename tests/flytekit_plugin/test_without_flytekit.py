"""taskbox.flytekit's wire without flytekit (``.venv``, as the executor images): the class path and the spec.

The images run the serialized args' executor class path ``taskbox.flytekit.executors.<name>`` by name: the
registry must resolve it without importing ``taskbox.flytekit`` (which needs flytekit). ``ExecutorSpec`` decides
what goes into a template with taskbox's pieces only.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from helpers import ROOT, subprocess_env
from taskbox.errors import ConfigError, ExecutorNotFound
from taskbox.executors import registry


def test_flytekit_is_not_installed_here():
    assert importlib.util.find_spec("flytekit") is None


@pytest.mark.parametrize(
    ("ref", "target"),
    [
        ("taskbox.flytekit.executors.sqlite", "taskbox.executors.sqlite:SQLiteExecutor"),
        ("taskbox.flytekit.executors.sql", "taskbox.executors.sql:SQLExecutor"),
        ("taskbox.flytekit.executors.http", "taskbox.executors.http:HTTPExecutor"),
        ("taskbox.flytekit.executors.http-job", "taskbox.executors.http_job:HTTPJobExecutor"),
        ("taskbox.flytekit.executors.test-shout", "taskbox_testplugins.executors:ShoutExecutor"),  # an entry point
    ],
)
def test_the_class_path_names_the_executor(ref, target):
    module, _, name = target.partition(":")
    cls = registry.load(ref)
    assert (cls.__module__, cls.__name__) == (module, name)


def test_an_unknown_name_after_the_prefix_is_not_found():
    with pytest.raises(ExecutorNotFound, match="no executor named 'nope'; available: .*sqlite"):
        registry.load("taskbox.flytekit.executors.nope")


def test_a_fresh_interpreter_resolves_the_class_path_without_loading_taskbox_flytekit():
    code = (
        "import sys\n"
        "from taskbox.executors import registry\n"
        "print(registry.load('taskbox.flytekit.executors.sqlite').__name__)\n"
        "print(sorted(m for m in sys.modules if m.startswith(('taskbox.flytekit', 'flytekit'))))\n"
    )
    env = subprocess_env()
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split("\n")[:2] == ["SQLiteExecutor", "[]"]


def test_spec_validates_the_config_with_the_executors_model():
    from taskbox.flytekit import ExecutorSpec

    fields = {"query_template": "SELECT 1 AS n", "uri": "/data/a.db", "timeout_seconds": 5}
    spec = ExecutorSpec.resolve("sqlite", fields)
    assert (spec.name, spec.task_type, spec.class_path) == ("sqlite", "sqlite", "taskbox.flytekit.executors.sqlite")
    assert spec.custom["timeout_seconds"] == 5 and spec.custom["version"] == 1 and not spec.checkpoints
    assert type(spec.config).__name__ == "SQLiteConfig" and spec.secrets == ()
    assert ExecutorSpec.resolve("sqlite", spec.config).config is spec.config  # a model instance is used as it is
    assert spec.default_image().startswith("ghcr.io/taskbox/executor-sqlite:")
    with pytest.raises(ConfigError, match="invalid sqlite config: timeout_seconds"):
        ExecutorSpec.resolve("sqlite", {"query_template": "SELECT 1", "uri": "/a.db", "timeout_seconds": -1})
    with pytest.raises(ConfigError, match="must be a mapping"):
        ExecutorSpec.resolve("sqlite", ["not", "a", "mapping"])


def test_spec_knows_async_executors_secrets_and_images():
    from taskbox.authoring.base import SecretSpec
    from taskbox.flytekit import ExecutorSpec

    job = ExecutorSpec.resolve("http-job", {"submit": {"url": "https://h/jobs"}, "status_url": "https://h/jobs/1"})
    assert job.checkpoints and job.task_type == "http-job" and "executor-http:" in (job.default_image() or "")
    sql = ExecutorSpec.resolve(
        "sql",
        {"query_template": "SELECT 1", "uri": "postgresql://u@db/x",
         "secret_connect_args": {"password": {"group": "db", "key": "pw", "env_var": "DB_PW"}}},
    )  # fmt: skip
    assert sql.task_type == "sqlalchemy" and sql.secrets == (SecretSpec("db", "pw", None, "DB_PW"),)
    twice = {"A": {"group": "api", "key": "t"}, "B": {"group": "api", "key": "t"}}
    http = ExecutorSpec.resolve("http", {"url": "https://h/x", "secret_headers": twice})
    assert http.secrets == (SecretSpec("api", "t"),)  # each secret once
    plugin = ExecutorSpec.resolve("test-shout", {"text": "hi $x"})
    assert plugin.task_type == "test-shout" and plugin.default_image() is None  # a plugin brings its own image


@pytest.mark.parametrize("bad", ["taskbox.executors.echo:EchoExecutor", "a.b", "with space", "", "-x"])
def test_only_registry_names_can_follow_the_class_path(bad):
    from taskbox.flytekit.spec import check_name

    with pytest.raises(ConfigError, match="executor must be a registry name"):
        check_name(bad)


def test_the_task_classes_say_they_need_flytekit(monkeypatch):
    import taskbox.flytekit

    monkeypatch.delitem(sys.modules, "taskbox.flytekit.tasks", raising=False)
    with pytest.raises(ModuleNotFoundError, match=r"pip install 'taskbox\[flytekit\]'"):
        taskbox.flytekit.SQLiteTask  # noqa: B018
    with pytest.raises(AttributeError):
        taskbox.flytekit.NoSuchThing  # noqa: B018


def test_the_example_plugins_executor_module_does_not_need_flytekit():
    """The greet image imports taskbox_greet.executor only; its flytekit task class lives in another module."""
    code = "import taskbox_greet.executor, sys; print(any(m.startswith('flytekit') for m in sys.modules))"
    env = subprocess_env(PYTHONPATH=str(ROOT / "examples" / "greet-executor" / "src"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and proc.stdout.strip() == "False", proc.stderr
