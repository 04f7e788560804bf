"""Run flytekit's golden SQL templates (tests/golden/sql) through ``taskbox execute`` and through flytekit itself.

The container args are flytekit's own (``pyflyte-execute ... --resolver
flytekit.core.python_customized_container_task.default_task_template_resolver -- {{.taskTemplatePath}}
<flytekit executor class>``), with the placeholders substituted the way propeller substitutes them and
``pyflyte-execute`` replaced by ``taskbox execute`` (or kept, from .venv-flytekit, to run flytekit's executor).

Also: the tables the parity fixtures query (:func:`create_parity_tables`, :func:`make_parity_sqlite`) and
readers that run in flytekit's interpreter (:func:`read_with_flytekit`, :func:`read_nullable`).
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import sqltesting
from flyteidl.core import tasks_pb2
from google.protobuf import struct_pb2
from google.protobuf.json_format import MessageToDict

from helpers import TASKBOX, put, run

GOLDEN = sqltesting.ROOT / "tests" / "golden" / "sql"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
SECRET_ENV = "_FSEC_DB_PASSWORD"

#: ``people`` rows: names for LIKE, a quote, a percent sign.
PEOPLE = [(1, "Ann"), (2, "Joanna"), (3, "O'Brien"), (4, "Bob"), (5, "Brianna"), (6, "100% pure")]
#: ``nullable_values`` rows: (id, n bigint, b boolean); 2**53 + 1 is exact in int64, not in a double.
NULLABLE = [(1, 1, True), (2, None, None), (3, 2**53 + 1, False), (4, -7, None)]

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

# Every reader a flytekit user has: flytekit's TypeEngine (pandas), pandas itself (default and nullable dtypes)
# and pyarrow. Values keep their Python type in JSON (1 vs 1.0, NaN vs null); pandas' NA is "<NA>".
READ_NULLABLE = r"""
import json, math, sys
import pandas as pd
import pyarrow.parquet as pq
from flyteidl.core import literals_pb2
from flytekit import FlyteContextManager
from flytekit.core.type_engine import TypeEngine
from flytekit.models.literals import Literal

lm = literals_pb2.LiteralMap()
lm.ParseFromString(open(sys.argv[1], "rb").read())
scalar = lm.literals["results"].scalar
uri = scalar.structured_dataset.uri if scalar.HasField("structured_dataset") else scalar.schema.uri

def plain(v):
    return "<NA>" if v is pd.NA else v

def frame(df):
    return {
        "dtypes": {c: str(t) for c, t in df.dtypes.items()},
        "values": {c: [plain(v) for v in df[c].tolist()] for c in df.columns},
    }

literal = Literal.from_flyte_idl(lm.literals["results"])
table = pq.read_table(uri)
print(json.dumps({
    "flytekit": frame(TypeEngine.to_python_value(FlyteContextManager.current_context(), literal, pd.DataFrame)),
    "pandas": frame(pd.read_parquet(uri)),
    "pandas_nullable": frame(pd.read_parquet(uri, dtype_backend="numpy_nullable")),
    "pyarrow": {
        "types": {f.name: str(f.type) for f in table.schema},
        "values": {c: table.column(c).to_pylist() for c in table.column_names},
    },
}))
"""


def flytekit_executable(python: str) -> str:
    """``pyflyte-execute`` beside flytekit's interpreter."""
    return str(Path(python).with_name("pyflyte-execute"))


def load(name: str) -> tasks_pb2.TaskTemplate:
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString((GOLDEN / name).read_bytes())
    return template


def with_custom(template: tasks_pb2.TaskTemplate, **changes: Any) -> tasks_pb2.TaskTemplate:
    """A copy of the template with ``custom`` fields replaced (``None`` removes one)."""
    copy = tasks_pb2.TaskTemplate()
    copy.CopyFrom(template)
    custom = MessageToDict(template.custom)
    for key, value in changes.items():
        if value is None:
            custom.pop(key, None)
        else:
            custom[key] = value
    struct = struct_pb2.Struct()
    struct.update(custom)
    copy.custom.CopyFrom(struct)
    return copy


def propeller_args(
    template: tasks_pb2.TaskTemplate, inputs: str, prefix: str, raw: str, task: str, command: str = ""
) -> list[str]:
    """flytekit's container args with the placeholders filled and ``command`` (taskbox's entrypoint) in front."""
    values = {
        "{{.input}}": inputs,
        "{{.outputPrefix}}": prefix,
        "{{.rawOutputDataPrefix}}": raw,
        "{{.taskTemplatePath}}": task,
    }
    args = [values.get(a, a) for a in template.container.args]
    assert args[0] == "pyflyte-execute"
    return [command, *args[1:]] if command else [TASKBOX, "execute", *args[1:]]


def run_golden(
    template: tasks_pb2.TaskTemplate,
    inputs: str,
    workdir: Path,
    *,
    flytekit_python: str | None = None,
    **env: str,
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Run a template through ``taskbox execute`` (or flytekit's ``pyflyte-execute``); return the process and prefix.

    Args:
        template: The template (written to ``workdir/task.pb``).
        inputs: Name of an inputs file in tests/golden/sql.
        workdir: A fresh directory for the run.
        flytekit_python: Run flytekit's executor with this interpreter instead of taskbox.
        **env: Extra environment variables.

    """
    workdir.mkdir(parents=True)
    task = put(str(workdir / "task.pb"), template.SerializeToString())
    inputs_path = put(str(workdir / "inputs.pb"), (GOLDEN / inputs).read_bytes())
    prefix, raw = str(workdir / "out"), str(workdir / "raw")
    if flytekit_python is None:
        return run(propeller_args(template, inputs_path, prefix, raw, task), **env), prefix
    command = flytekit_executable(flytekit_python)
    proc = subprocess.run(
        propeller_args(template, inputs_path, prefix, raw, task, command),
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, **env},
    )
    return proc, prefix


def _read(python: str, script: str, prefix: str) -> dict[str, Any]:
    proc = subprocess.run(
        [python, "-c", script, os.path.join(prefix, "outputs.pb")], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def read_with_flytekit(python: str, prefix: str) -> dict[str, Any]:
    """The ``results`` table as flytekit reads it: ``{"columns": [...], "rows": [[...], ...]}`` (JSON values)."""
    return _read(python, READ_WITH_FLYTEKIT, prefix)


def read_nullable(python: str, prefix: str) -> dict[str, Any]:
    """The ``results`` table through flytekit, pandas (default and nullable dtypes) and pyarrow (see READ_NULLABLE)."""
    return _read(python, READ_NULLABLE, prefix)


def server_uri(srv: Any) -> str:
    """The golden templates' URI pointed at a test server (its own driver, which flytekit's venv has too)."""
    return str(srv.url)


def create_parity_tables(srv: Any) -> None:
    """(Re)create ``people``, ``nullable_values`` and an empty ``notes`` in the server's application database."""
    mod = sqltesting.servers_module()
    statements = [
        "DROP TABLE IF EXISTS people, nullable_values, notes",
        "CREATE TABLE people (id integer PRIMARY KEY, name varchar(100) NOT NULL)",
        "CREATE TABLE nullable_values (id integer PRIMARY KEY, n bigint, b boolean)",
        "CREATE TABLE notes (x integer, body varchar(200))",
    ]
    if isinstance(srv, mod.PostgresServer):
        with srv.admin() as conn:
            for statement in statements:
                conn.execute(statement)
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO people VALUES (%s, %s)", PEOPLE)
                cur.executemany("INSERT INTO nullable_values VALUES (%s, %s, %s)", NULLABLE)
            for table in ("people", "nullable_values", "notes"):
                conn.execute(f"ALTER TABLE {table} OWNER TO {mod.USER}")
        return
    with srv.admin() as conn, conn.cursor() as cur:
        for statement in statements:
            cur.execute(statement)
        cur.executemany("INSERT INTO people VALUES (%s, %s)", PEOPLE)
        cur.executemany("INSERT INTO nullable_values VALUES (%s, %s, %s)", NULLABLE)


def notes(srv: Any) -> list[tuple[int, str]]:
    """The rows of ``notes`` (as the superuser), ordered."""
    mod = sqltesting.servers_module()
    if isinstance(srv, mod.PostgresServer):
        with srv.admin() as conn:
            return [tuple(r) for r in conn.execute("SELECT x, body FROM notes ORDER BY x").fetchall()]
    with srv.admin() as conn, conn.cursor() as cur:
        cur.execute("SELECT x, body FROM notes ORDER BY x")
        return [tuple(r) for r in cur.fetchall()]


def make_parity_sqlite(path: Path) -> str:
    """:func:`sqltesting.make_sqlite` plus ``nullable_values`` (SQLite has no boolean type: 0/1 integers)."""
    db = sqltesting.make_sqlite(path)
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("CREATE TABLE nullable_values (id INTEGER PRIMARY KEY, n INTEGER, b INTEGER)")
        conn.executemany("INSERT INTO nullable_values VALUES (?, ?, ?)", NULLABLE)
    conn.close()
    return db
