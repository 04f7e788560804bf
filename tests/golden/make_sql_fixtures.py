"""Write the SQL golden fixtures with flytekit itself: templates and inputs of ``SQLite3Task``/``SQLAlchemyTask``.

Run with flytekit's own interpreter (``make golden`` does; or by hand)::

    .venv-flytekit/bin/python tests/golden/make_sql_fixtures.py

It needs flytekit and flytekitplugins-sqlalchemy (``make flytekit-venv`` installs both). The files land in
tests/golden/sql/ and are committed; tests/sql/test_flytekit_sql_templates.py runs them through
``taskbox execute`` and reads the outputs back with flytekit.

Fixtures:
    sqlite3_task.pb            SQLite3Task, multi-line query (collapsed by flytekit), a quoted string
                               placeholder and a bare integer one; uri in the test bucket; compressed.
    sqlite3_collapsed_comment.pb  SQLite3Task whose ``--`` comment swallows the WHERE clause once collapsed.
    sqlite3_inputs.pb          inputs for sqlite3_task.pb, serialized by flytekit's TypeEngine.
    sqlalchemy_task.pb         SQLAlchemyTask on PostgreSQL, password from secret_connect_args.
    sqlalchemy_inputs.pb       inputs for sqlalchemy_task.pb.
    manifest.json              flytekit's version and what each fixture holds.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from pathlib import Path

OUT = Path(__file__).resolve().parent / "sql"

#: Where the tests put the SQLite archive (the S3 test server's bucket).
SQLITE_URI = "s3://taskbox-test/golden-sql/items.db.zip"
#: The tests replace host and port with their throwaway server's.
POSTGRES_URI = "postgresql://taskbox@127.0.0.1:5432/taskbox"

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


def main() -> int:
    import flytekit
    from flytekit import FlyteContextManager, kwtypes
    from flytekit.configuration import Image, ImageConfig, SerializationSettings
    from flytekit.core.type_engine import TypeEngine
    from flytekit.extras.sqlite3.task import SQLite3Config, SQLite3Task
    from flytekit.models.literals import LiteralMap
    from flytekit.models.security import Secret
    from flytekit.tools.translator import get_serializable
    from flytekit.types.schema import FlyteSchema
    from flytekitplugins.sqlalchemy import SQLAlchemyConfig, SQLAlchemyTask

    settings = SerializationSettings(
        image_config=ImageConfig(
            default_image=Image(name="default", fqn="cr.flyte.org/flyteorg/flytekit", tag="golden")
        ),
        project="golden",
        domain="development",
        version="v1",
    )
    OUT.mkdir(parents=True, exist_ok=True)

    def template(task) -> bytes:
        return get_serializable(OrderedDict(), settings, task).template.to_flyte_idl().SerializeToString()

    def inputs(task, values: dict) -> bytes:
        ctx = FlyteContextManager.current_context()
        literals = {}
        for name, value in values.items():
            var = task.python_interface.inputs[name]
            lt = TypeEngine.to_literal_type(var)
            literals[name] = TypeEngine.to_literal(ctx, value, var, lt)
        return LiteralMap(literals=literals).to_flyte_idl().SerializeToString()

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
    files = {
        "sqlite3_task.pb": template(sqlite_task),
        "sqlite3_collapsed_comment.pb": template(collapsed_task),
        "sqlite3_inputs.pb": inputs(sqlite_task, {"exclude": "name-3' OR '1'='1", "max_id": 10}),
        "sqlalchemy_task.pb": template(sqlalchemy_task),
        "sqlalchemy_inputs.pb": inputs(sqlalchemy_task, {"min_id": 990, "exclude": "name-995"}),
    }
    for name, data in files.items():
        (OUT / name).write_bytes(data)
    manifest = {
        "flytekit": flytekit.__version__,
        "python": ".".join(map(str, sys.version_info[:3])),
        "sqlite_uri": SQLITE_URI,
        "postgres_uri": POSTGRES_URI,
        "sqlite3_query_template": sqlite_task.query_template,
        "collapsed_query_template": collapsed_task.query_template,
        "sqlalchemy_query_template": sqlalchemy_task.query_template,
        "files": sorted(files),
    }
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(files)} fixtures to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
