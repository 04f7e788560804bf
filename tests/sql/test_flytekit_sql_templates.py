"""Templates serialized by flytekit (tests/golden/sql, made by tests/golden/make_sql_fixtures.py) run on taskbox,
and flytekit reads the results back as pandas DataFrames.

The container args are flytekit's own (``pyflyte-execute ... --resolver
flytekit.core.python_customized_container_task.default_task_template_resolver -- {{.taskTemplatePath}}
<flytekit executor class>``), with ``pyflyte-execute`` replaced by ``taskbox execute`` and the
placeholders substituted the way propeller substitutes them.
"""

from __future__ import annotations

import zipfile

import pytest
import sqltesting
from flytekit_golden import GOLDEN, MANIFEST, load, propeller_args, read_with_flytekit
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from helpers import commit_files, encode_inputs, put, read_error, run, simple
from taskbox import storage


def test_fixtures_are_flytekits():
    template = load("sqlite3_task.pb")
    assert template.type == "sqlite" and template.metadata.runtime.flavor == "python"
    assert template.metadata.runtime.version == MANIFEST["flytekit"]
    assert template.container.args[-1] == "flytekit.extras.sqlite3.task.SQLite3TaskExecutor"
    assert template.interface.outputs.variables["results"].type.WhichOneof("type") == "schema"
    assert "\n" not in MANIFEST["sqlite3_query_template"]  # flytekit collapsed it


@pytest.mark.servers
def test_flytekit_sqlite3_task_runs_and_flytekit_reads_the_result(s3_server, tmp_path, flytekit_python):
    template = load("sqlite3_task.pb")
    db = sqltesting.make_sqlite(tmp_path / "items.db")
    with zipfile.ZipFile(tmp_path / "items.db.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(db, "items.db")
    put(MANIFEST["sqlite_uri"], (tmp_path / "items.db.zip").read_bytes())
    base = s3_server.uri(f"golden-sql/{tmp_path.name}")
    task = put(storage.join(base, "task.pb"), (GOLDEN / "sqlite3_task.pb").read_bytes())
    inputs = put(storage.join(base, "inputs.pb"), (GOLDEN / "sqlite3_inputs.pb").read_bytes())
    prefix, raw = str(tmp_path / "out"), str(tmp_path / "raw")
    proc = run(propeller_args(template, inputs, prefix, raw, task), TASKBOX_CACHE_DIR=str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}, proc.stderr
    frame = read_with_flytekit(flytekit_python, prefix)
    assert frame["columns"] == ["id", "name", "score"]
    # The input "name-3' OR '1'='1" is a value, so it excludes nothing: rows 1..10 all come back.
    assert [row[0] for row in frame["rows"]] == list(range(1, 11))
    assert frame["rows"][2] == [3, "name-3", 0.75]


def test_flytekit_sqlalchemy_task_runs_on_postgres_and_flytekit_reads_the_result(pg_db, tmp_path, flytekit_python):
    server = pg_db
    template = load("sqlalchemy_task.pb")
    custom = MessageToDict(template.custom)
    custom["uri"] = MANIFEST["postgres_uri"].replace(":5432/", f":{server.port}/")
    struct = struct_pb2.Struct()
    struct.update(custom)
    template.custom.CopyFrom(struct)
    task = put(str(tmp_path / "task.pb"), template.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), (GOLDEN / "sqlalchemy_inputs.pb").read_bytes())
    prefix, raw = str(tmp_path / "out"), str(tmp_path / "raw")
    password = sqltesting.servers_module().PASSWORD
    proc = run(propeller_args(template, inputs, prefix, raw, task), _FSEC_DB_PASSWORD=password)
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}, proc.stderr
    assert password not in proc.stderr
    frame = read_with_flytekit(flytekit_python, prefix)
    assert frame["columns"] == ["id", "name", "score", "created", "flag"]
    assert [row[0] for row in frame["rows"]] == [991, 992, 993, 994, 996, 997, 998, 999, 1000]


def test_flytekit_template_with_a_swallowing_comment_is_rejected(tmp_path):
    template = load("sqlite3_collapsed_comment.pb")
    task = put(str(tmp_path / "task.pb"), template.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"max_id": 3}, {"max_id": simple("INTEGER")}))
    prefix = str(tmp_path / "out")
    proc = run(propeller_args(template, inputs, prefix, str(tmp_path / "raw"), task))
    assert proc.returncode == 0, proc.stderr
    error = read_error(prefix)
    assert error.code == "USER:SqlRejected"
    assert "comments out the rest of the query" in error.message and "WHERE id <=" in error.message
