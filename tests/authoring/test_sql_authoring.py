"""SQLiteTask / SQLTask: the templates they build, and local runs through the entrypoint's pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from flyteidl.core import tasks_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))

import sqltesting

from helpers import TASKBOX, encode_inputs, put, read_outputs, run, simple
from taskbox.authoring import SQLiteTask, SQLTask, TaskFailed
from taskbox.authoring.sql import SQL_IMAGE, SQLITE_IMAGE
from taskbox.errors import ConfigError
from taskbox.literals import StructuredDataset

QUERY = "SELECT id, name\nFROM items -- kept on its own line\nWHERE id <= {{ .inputs.n }}\nORDER BY id"


@pytest.fixture
def db(tmp_path):
    return sqltesting.make_sqlite(tmp_path / "items.db")


def test_sqlite_task_builds_flytekits_template_shape(db):
    task = SQLiteTask("demo.items", QUERY, uri=db, inputs={"n": int})
    template = task.to_template(project="p", domain="d", version="v1")
    assert isinstance(template, tasks_pb2.TaskTemplate)
    assert (template.id.project, template.id.domain, template.id.name, template.id.version) == (
        "p",
        "d",
        "demo.items",
        "v1",
    )
    assert template.type == "sqlite"
    assert template.container.image == SQLITE_IMAGE
    assert list(template.container.args) == [
        "taskbox",
        "execute",
        "--inputs",
        "{{.input}}",
        "--output-prefix",
        "{{.outputPrefix}}",
        "--raw-output-data-prefix",
        "{{.rawOutputDataPrefix}}",
        "--resolver",
        "taskbox.template",
        "--",
        "{{.taskTemplatePath}}",
        "sqlite",
    ]
    assert template.interface.inputs.variables["n"].type == simple("INTEGER")
    assert template.interface.outputs.variables["results"].type.WhichOneof("type") == "structured_dataset_type"
    custom = dict(template.custom)
    assert custom["query_template"] == QUERY  # newlines kept: the comment cannot swallow the WHERE clause
    assert custom["uri"] == db and custom["compressed"] is False


def test_sqlite_task_runs_in_process(db, tmp_path):
    task = SQLiteTask("demo.items", QUERY, uri=db, inputs={"n": int})
    out = task.run(n=3, workdir=str(tmp_path / "run"))
    assert isinstance(out["results"], StructuredDataset)
    assert out["results"].to_arrow().to_pylist() == [
        {"id": 1, "name": "name-1"},
        {"id": 2, "name": "name-2"},
        {"id": 3, "name": "name-3"},
    ]


def test_primitive_outputs_and_failures_run_in_process(db, tmp_path):
    count = SQLiteTask(
        "demo.count",
        "SELECT count(*) AS n FROM items WHERE name = {{ .inputs.name }}",
        uri=db,
        inputs={"name": str},
        outputs={"n": int},
    )
    assert count.run(name="x' OR '1'='1") == {"n": 0}
    broken = SQLiteTask("demo.broken", "SELECT nope FROM items", uri=db, outputs={"n": int})
    with pytest.raises(TaskFailed) as info:
        broken.run()
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:QueryFailed", "USER", False)


def test_the_built_template_runs_in_the_cli(db, tmp_path):
    task = SQLiteTask(
        "demo.count",
        "SELECT count(*) AS n FROM items WHERE id > {{ .inputs.n }}",
        uri=db,
        inputs={"n": int},
        outputs={"n": int},
    )
    template = task.to_template()
    path = put(str(tmp_path / "task.pb"), template.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"n": 990}, {"n": simple("INTEGER")}))
    args = [
        {
            "{{.input}}": inputs,
            "{{.outputPrefix}}": str(tmp_path / "out"),
            "{{.rawOutputDataPrefix}}": str(tmp_path / "raw"),
            "{{.taskTemplatePath}}": path,
        }.get(a, a)
        for a in template.container.args
    ]
    proc = run([TASKBOX, *args[1:]])
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(str(tmp_path / "out"), {"n": simple("INTEGER")}) == {"n": 10}


def test_sql_task_requests_its_secrets_and_keeps_passwords_out():
    task = SQLTask(
        "demo.pg",
        "SELECT 1 AS x",
        uri="postgresql://reader@db:5432/sales",
        outputs={"x": int},
        secret_connect_args={"password": {"group": "db", "key": "password"}},
        connect_args={"sslmode": "require"},
    )
    template = task.to_template()
    assert template.type == "sqlalchemy" and template.container.image == SQL_IMAGE
    assert template.container.args[-1] == "sql"
    assert [(s.group, s.key) for s in template.security_context.secrets] == [("db", "password")]
    custom = template.custom
    assert custom["read_only"] is True
    assert custom["secret_connect_args"]["password"]["group"] == "db"
    with pytest.raises(ConfigError, match="secret_connect_args") as info:
        SQLTask("bad", "SELECT 1", uri="postgresql://reader:hunter22@db/sales")
    assert "hunter22" not in str(info.value)
    with pytest.raises(ConfigError, match="secret_connect_args"):
        SQLTask("bad", "SELECT 1", uri="postgresql://reader@db/sales", connect_args={"password": "x"})


def test_sql_task_runs_against_postgres(tmp_path, monkeypatch):
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    monkeypatch.setenv("_FSEC_DB_PASSWORD", sqltesting.servers_module().PASSWORD)
    task = SQLTask(
        "demo.pg",
        "SELECT id FROM items WHERE id > {{ .inputs.n }} ORDER BY id",
        uri=server.url,
        inputs={"n": int},
        secret_connect_args={"password": {"group": "db", "key": "password"}},
    )
    out = task.run(n=997)
    assert out["results"].to_arrow().column("id").to_pylist() == [998, 999, 1000]


def test_config_errors_surface_when_the_task_is_defined(db):
    """A bad config is taskbox's typed ``USER:InvalidConfig`` at definition time, as it is in the container."""
    with pytest.raises(ConfigError, match="timeout_seconds") as info:
        SQLiteTask("bad", "SELECT 1", uri=db, timeout_seconds=-1)
    assert info.value.code == "USER:InvalidConfig" and not info.value.recoverable
    with pytest.raises(ConfigError, match="no_such_option"):
        SQLTask("bad", "SELECT 1", uri="postgresql://reader@db/sales", no_such_option=1)


def test_importing_authoring_and_the_registry_stays_light():
    code = (
        "import sys, taskbox.authoring, taskbox.executors.registry\n"
        "heavy = [m for m in ('sqlalchemy', 'pyarrow', 'sqlglot', 'pandas') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
