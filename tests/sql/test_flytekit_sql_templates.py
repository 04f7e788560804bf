"""Templates serialized by flytekit (tests/golden/sql, made by tests/golden/make_sql_fixtures.py) run on taskbox,
and flytekit reads the results back as pandas DataFrames.

The container args are flytekit's own (``pyflyte-execute ... --resolver
flytekit.core.python_customized_container_task.default_task_template_resolver -- {{.taskTemplatePath}}
<flytekit executor class>``), with ``pyflyte-execute`` replaced by ``taskbox execute`` and the
placeholders substituted the way propeller substitutes them.
"""

from __future__ import annotations

import json
import os
import subprocess
import zipfile
from pathlib import Path

import pytest
import sqltesting
from flyteidl.core import tasks_pb2
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from helpers import TASKBOX, commit_files, encode_inputs, put, read_error, run, simple
from taskbox import storage

GOLDEN = sqltesting.ROOT / "tests" / "golden" / "sql"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())

READ_WITH_FLYTEKIT = r"""
import json, sys
import pandas as pd
from flyteidl.core import literals_pb2
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import Literal

lm = literals_pb2.LiteralMap()
lm.ParseFromString(open(sys.argv[1], "rb").read())
literal = Literal.from_flyte_idl(lm.literals["results"])
df = TypeEngine.to_python_value(FlyteContextManager.current_context(), literal, pd.DataFrame)
assert isinstance(df, pd.DataFrame), type(df)
print(json.dumps({"columns": list(df.columns), "rows": json.loads(df.to_json(orient="values", date_format="iso"))}))
"""


@pytest.fixture(scope="session")
def flytekit_python() -> str:
    """flytekit's interpreter: $TASKBOX_FLYTEKIT_PYTHON or .venv-flytekit (`make flytekit-venv` if missing)."""
    python = os.environ.get("TASKBOX_FLYTEKIT_PYTHON") or str(sqltesting.ROOT / ".venv-flytekit" / "bin" / "python")
    if not Path(python).exists():
        subprocess.run(["make", "flytekit-venv"], cwd=sqltesting.ROOT, check=True, timeout=900)
    probe = subprocess.run([python, "-c", "import flytekit, pandas, pyarrow"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"{python} cannot import flytekit/pandas/pyarrow (run `make flytekit-venv`): {probe.stderr[-500:]}")
    return python


def load(name: str) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString((GOLDEN / name).read_bytes())
    return template


def propeller_args(template: tasks_pb2.TaskTemplate, inputs: str, prefix: str, raw: str, task: str) -> list[str]:
    """flytekit's container args with the placeholders filled and taskbox's entrypoint in front."""
    values = {
        "{{.input}}": inputs,
        "{{.outputPrefix}}": prefix,
        "{{.rawOutputDataPrefix}}": raw,
        "{{.taskTemplatePath}}": task,
    }
    args = [values.get(a, a) for a in template.container.args]
    assert args[0] == "pyflyte-execute"
    return [TASKBOX, "execute", *args[1:]]


def read_with_flytekit(python: str, prefix: str) -> dict:
    proc = subprocess.run(
        [python, "-c", READ_WITH_FLYTEKIT, os.path.join(prefix, "outputs.pb")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
