"""Write the SQL golden fixtures with flytekit itself: templates and inputs of ``SQLite3Task``/``SQLAlchemyTask``.

Run with flytekit's own interpreter (``make golden`` does; or by hand)::

    .venv-flytekit/bin/python tests/golden/make_sql_fixtures.py

It needs flytekit and flytekitplugins-sqlalchemy (``make flytekit-venv`` installs both). The files land in
tests/golden/sql/ and are committed; tests/sql/test_flytekit_sql_templates.py and
tests/sql/test_flytekit_sql_parity.py run them through ``taskbox execute`` (and the parity tests through
flytekit's own executors too) and read the outputs back with flytekit. A fixture whose content is unchanged
is not rewritten (flytekit's protobuf bytes are not deterministic).

Fixtures:
    sqlite3_task.pb            SQLite3Task, multi-line query (collapsed by flytekit), a quoted string
                               placeholder and a bare integer one; uri in the test bucket; compressed.
    sqlite3_collapsed_comment.pb  SQLite3Task whose ``--`` comment swallows the WHERE clause once collapsed.
    sqlite3_inputs.pb          inputs for sqlite3_task.pb, serialized by flytekit's TypeEngine.
    sqlalchemy_task.pb         SQLAlchemyTask on PostgreSQL, password from secret_connect_args.
    sqlalchemy_inputs.pb       inputs for sqlalchemy_task.pb.
    empty_inputs.pb            an empty input map (tasks without inputs).

    Issue 18, flytekit parity (the tests create the tables ``nullable_values``, ``people`` and ``notes``,
    see tests/sql/flytekit_golden.py):
    sqlalchemy_nullable.pb     SQLAlchemyTask: an integer and a boolean column with NULLs (item 5).
    sqlite3_nullable.pb        SQLite3Task: the same query on a plain SQLite file (the tests set the uri).
    sqlalchemy_like.pb         SQLAlchemyTask: ``name LIKE '%{{ .inputs.word }}%'`` (item 6), with the inputs
                               sqlalchemy_like_inputs.pb ("nn"), sqlalchemy_like_quote_inputs.pb ("O'B": breaks
                               flytekit's SQL) and sqlalchemy_like_injection_inputs.pb (injects under flytekit).
    sqlalchemy_whole_literal.pb  SQLAlchemyTask: ``name = '{{ .inputs.name }}'``; its inputs: O'Brien.
    sqlalchemy_typed_literal.pb  SQLAlchemyTask: int, float, bool, datetime, duration and str placeholders
                               inside literals (several in one literal, ``''`` escapes beside them), and
                               the int bare too; inputs sqlalchemy_typed_literal_inputs.pb.
    sqlite3_literals.pb        SQLite3Task: placeholders inside literals and an input used bare too;
                               inputs sqlite3_literals_inputs.pb and sqlite3_literals_injection_inputs.pb.
    sqlalchemy_insert.pb       SQLAlchemyTask without outputs that INSERTs (item 7), with a placeholder in a
                               literal; inputs sqlalchemy_insert_inputs.pb (O'Brien) and
                               sqlalchemy_insert_flytekit_inputs.pb (a value flytekit's own run can paste).
    manifest.json              flytekit's version, the query templates, and the SQL flytekit's executor
                               runs for each parity inputs file (``flytekit_queries``).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import OrderedDict
from pathlib import Path

OUT = Path(__file__).resolve().parent / "sql"

#: Where the tests put the SQLite archive (the S3 test server's bucket).
SQLITE_URI = "s3://taskbox-test/golden-sql/items.db.zip"
#: The tests replace host and port with their throwaway server's.
POSTGRES_URI = "postgresql://taskbox@127.0.0.1:5432/taskbox"
#: A plain (uncompressed) SQLite file; the tests replace the uri with a local path.
SQLITE_PLAIN_URI = "s3://taskbox-test/golden-sql/items.db"

SQLITE_QUERY = """
SELECT id, name, score
FROM items
WHERE name <> '{{ .inputs.exclude }}'
  AND id <= {{.inputs.max_id}}
ORDER BY id
"""

COLLAPSED_QUERY = """
SELECT id, name FROM items -- every row below the limit
WHERE id <= {{ .inputs.max_id }}
"""

SQLALCHEMY_QUERY = """
SELECT id, name, score, created, flag
FROM items
WHERE id > {{ .inputs.min_id }} AND name <> '{{ .inputs.exclude }}'
ORDER BY id
"""

NULLABLE_QUERY = "SELECT id, n, b FROM nullable_values ORDER BY id"

LIKE_QUERY = """
SELECT id, name
FROM people
WHERE name LIKE '%{{ .inputs.word }}%'
ORDER BY id
"""

WHOLE_LITERAL_QUERY = "SELECT id, name FROM people WHERE name = '{{ .inputs.name }}' ORDER BY id"

TYPED_LITERAL_QUERY = """
SELECT id,
'n={{ .inputs.n }};f={{ .inputs.f }};b={{ .inputs.b }};t={{ .inputs.t }};d={{ .inputs.d }};s={{ .inputs.s }}' AS label,
'{{ .inputs.s }}-''{{ .inputs.n }}''' AS quoted
FROM people
WHERE id = {{ .inputs.n }}
"""

SQLITE_LITERALS_QUERY = """
SELECT id, name, 'max {{ .inputs.max_id }}, flag {{ .inputs.flag }}' AS note
FROM items
WHERE name LIKE '%{{ .inputs.digit }}' AND id <= {{ .inputs.max_id }}
ORDER BY id
"""

INSERT_QUERY = "INSERT INTO notes (x, body) VALUES ({{ .inputs.x }}, 'by {{ .inputs.who }}')"

TYPED_VALUES = {
    "n": 3,
    "f": 1.5,
    "b": True,
    "t": dt.datetime(2024, 1, 2, 3, 4, 5),
    "d": dt.timedelta(days=1, seconds=5),
    "s": "plain",
}


def main() -> int:
    import flytekit
    from flyteidl.core import literals_pb2, tasks_pb2
    from flytekit import FlyteContextManager, kwtypes
    from flytekit.core.type_engine import TypeEngine
    from flytekit.extras.sqlite3.task import SQLite3Config, SQLite3Task
    from flytekit.models.literals import LiteralMap
    from flytekit.models.security import Secret
    from flytekit.tools.translator import get_serializable
    from flytekit.types.schema import FlyteSchema
    from flytekit_common import serialization_settings
    from flytekitplugins.sqlalchemy import SQLAlchemyConfig, SQLAlchemyTask

    settings = serialization_settings()
    OUT.mkdir(parents=True, exist_ok=True)
    ctx = FlyteContextManager.current_context()

    def template(task) -> bytes:
        return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl().SerializeToString()

    def inputs(task, values: dict) -> bytes:
        literals = {}
        for name, value in values.items():
            var = task.python_interface.inputs[name]
            lt = TypeEngine.to_literal_type(var)
            literals[name] = TypeEngine.to_literal(ctx, value, var, lt)
        return LiteralMap(literals=literals).to_flyte_idl().SerializeToString()

    def executor_values(task, data: bytes) -> dict:
        """What flytekit's executor gets for an inputs file: types guessed from the template's interface."""
        lm = literals_pb2.LiteralMap()
        lm.ParseFromString(data)
        guessed = {
            name: TypeEngine.guess_python_type(TypeEngine.to_literal_type(var))
            for name, var in task.python_interface.inputs.items()
        }
        return TypeEngine.literal_map_to_kwargs(ctx, LiteralMap.from_flyte_idl(lm), guessed)

    def sqlalchemy(name: str, query: str, inputs=None, **options) -> SQLAlchemyTask:
        return SQLAlchemyTask(
            f"golden.{name}",
            query_template=query,
            inputs=inputs,
            task_config=SQLAlchemyConfig(
                uri=POSTGRES_URI, secret_connect_args={"password": Secret(group="db", key="password")}
            ),
            **options,
        )

    def sqlite3(name: str, query: str, inputs=None) -> SQLite3Task:
        return SQLite3Task(
            f"golden.{name}",
            query_template=query,
            inputs=inputs,
            task_config=SQLite3Config(uri=SQLITE_PLAIN_URI, compressed=False),
        )

    sqlite_task = SQLite3Task(
        "golden.sqlite3_items",
        query_template=SQLITE_QUERY,
        inputs=kwtypes(exclude=str, max_id=int),
        output_schema_type=FlyteSchema[kwtypes(id=int, name=str, score=float)],
        task_config=SQLite3Config(uri=SQLITE_URI, compressed=True),
    )
    collapsed_task = SQLite3Task(
        "golden.sqlite3_collapsed",
        query_template=COLLAPSED_QUERY,
        inputs=kwtypes(max_id=int),
        task_config=SQLite3Config(uri=SQLITE_URI, compressed=True),
    )
    sqlalchemy_task = SQLAlchemyTask(
        "golden.sqlalchemy_items",
        query_template=SQLALCHEMY_QUERY,
        inputs=kwtypes(min_id=int, exclude=str),
        task_config=SQLAlchemyConfig(
            uri=POSTGRES_URI,
            connect_args={"application_name": "taskbox-golden"},
            secret_connect_args={"password": Secret(group="db", key="password")},
        ),
    )
    parity_tasks = {
        "sqlalchemy_nullable": sqlalchemy("sqlalchemy_nullable", NULLABLE_QUERY),
        "sqlite3_nullable": sqlite3("sqlite3_nullable", NULLABLE_QUERY),
        "sqlalchemy_like": sqlalchemy("sqlalchemy_like", LIKE_QUERY, kwtypes(word=str)),
        "sqlalchemy_whole_literal": sqlalchemy("sqlalchemy_whole_literal", WHOLE_LITERAL_QUERY, kwtypes(name=str)),
        "sqlalchemy_typed_literal": sqlalchemy(
            "sqlalchemy_typed_literal",
            TYPED_LITERAL_QUERY,
            kwtypes(n=int, f=float, b=bool, t=dt.datetime, d=dt.timedelta, s=str),
        ),
        "sqlite3_literals": sqlite3(
            "sqlite3_literals", SQLITE_LITERALS_QUERY, kwtypes(digit=str, max_id=int, flag=bool)
        ),
        "sqlalchemy_insert": sqlalchemy(
            "sqlalchemy_insert", INSERT_QUERY, kwtypes(x=int, who=str), output_schema_type=None
        ),
    }
    parity_inputs = {  # inputs file -> (task, values)
        "sqlalchemy_like_inputs.pb": ("sqlalchemy_like", {"word": "nn"}),
        "sqlalchemy_like_quote_inputs.pb": ("sqlalchemy_like", {"word": "O'B"}),
        "sqlalchemy_like_injection_inputs.pb": ("sqlalchemy_like", {"word": "' OR 1=1 OR name LIKE '"}),
        "sqlalchemy_whole_literal_inputs.pb": ("sqlalchemy_whole_literal", {"name": "O'Brien"}),
        "sqlalchemy_typed_literal_inputs.pb": ("sqlalchemy_typed_literal", TYPED_VALUES),
        "sqlite3_literals_inputs.pb": ("sqlite3_literals", {"digit": "7", "max_id": 50, "flag": True}),
        "sqlite3_literals_injection_inputs.pb": (
            "sqlite3_literals",
            {"digit": "7' OR '1'='1", "max_id": 50, "flag": True},
        ),
        "sqlalchemy_insert_inputs.pb": ("sqlalchemy_insert", {"x": 1, "who": "O'Brien"}),
        "sqlalchemy_insert_flytekit_inputs.pb": ("sqlalchemy_insert", {"x": 2, "who": "flytekit"}),
    }
    files = {
        "sqlite3_task.pb": template(sqlite_task),
        "sqlite3_collapsed_comment.pb": template(collapsed_task),
        "sqlite3_inputs.pb": inputs(sqlite_task, {"exclude": "name-3' OR '1'='1", "max_id": 10}),
        "sqlalchemy_task.pb": template(sqlalchemy_task),
        "sqlalchemy_inputs.pb": inputs(sqlalchemy_task, {"min_id": 990, "exclude": "name-995"}),
        "empty_inputs.pb": inputs(parity_tasks["sqlalchemy_nullable"], {}),
    }
    files.update({f"{name}.pb": template(task) for name, task in parity_tasks.items()})
    flytekit_queries = {}
    for name, (task_name, values) in parity_inputs.items():
        task = parity_tasks[task_name]
        files[name] = inputs(task, values)
        # The SQL flytekit's executor runs: its own interpolation of the values it reads back.
        flytekit_queries[name] = task.interpolate_query(task.query_template, **executor_values(task, files[name]))
    templates = {"sqlite3_task.pb", "sqlite3_collapsed_comment.pb", "sqlalchemy_task.pb"}
    templates |= {f"{name}.pb" for name in parity_tasks}
    written = sum(
        _write_if_changed(OUT / name, data, tasks_pb2.TaskTemplate if name in templates else literals_pb2.LiteralMap)
        for name, data in files.items()
    )
    manifest = {
        "flytekit": flytekit.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "sqlite_uri": SQLITE_URI,
        "postgres_uri": POSTGRES_URI,
        "sqlite_plain_uri": SQLITE_PLAIN_URI,
        "sqlite3_query_template": sqlite_task.query_template,
        "collapsed_query_template": collapsed_task.query_template,
        "sqlalchemy_query_template": sqlalchemy_task.query_template,
        "query_templates": {name: task.query_template for name, task in parity_tasks.items()},
        "flytekit_queries": flytekit_queries,
        "files": sorted(files),
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"{len(files)} fixtures in {OUT}, {written} written")
    return 0


def _write_if_changed(path: Path, data: bytes, message_type) -> int:
    """Write ``data`` unless ``path`` holds the same message already (serialization order may differ)."""
    if path.exists():
        old, new = message_type(), message_type()
        old.ParseFromString(path.read_bytes())
        new.ParseFromString(data)
        if old == new:
            return 0
    path.write_bytes(data)
    return 1


if __name__ == "__main__":
    sys.exit(main())
