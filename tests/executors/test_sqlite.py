"""The ``sqlite`` executor: through ``taskbox execute`` (S3 and local) and in-process through the same pipeline."""

from __future__ import annotations

import functools
import http.server
import io
import os
import sqlite3
import sys
import tarfile
import threading
import uuid
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from flyteidl.core import errors_pb2, execution_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))

import sqltesting
from sqltesting import DATASET, SECRET_VALUE, simple

from helpers import commit_files, encode_inputs, execute_args, make_template, put, read_error, read_outputs, run
from taskbox import storage
from taskbox.authoring import TaskFailed, run_template

USER, SYSTEM = execution_pb2.ExecutionError.USER, execution_pb2.ExecutionError.SYSTEM
RECOVERABLE, NON_RECOVERABLE = errors_pb2.ContainerError.RECOVERABLE, errors_pb2.ContainerError.NON_RECOVERABLE
STR, INT = simple("STRING"), simple("INTEGER")
INJECTIONS = [
    "x' OR '1'='1",
    "1; DROP TABLE items",
    "1 UNION SELECT s FROM secrets",
    ":name",
    "'; DELETE FROM items; --",
]


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Each test gets its own database cache (the cache is per container in production)."""
    monkeypatch.setenv("TASKBOX_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def db(tmp_path):
    return sqltesting.make_sqlite(tmp_path / "items.db")


def zipped(db: str, path: Path) -> bytes:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(db, "items.db")
    return path.read_bytes()


def template(query, uri, inputs=None, outputs=None, **custom):
    outputs = {"results": DATASET} if outputs is None else outputs
    return make_template("sqlite", inputs or {}, outputs, {"query_template": query, "uri": uri, **custom})


def rows_of(dataset):
    return dataset.to_arrow().to_pylist()


def run_local(tpl, values, tmp_path):
    return run_template(tpl, values, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))


def table_intact(db: str) -> None:
    conn = sqlite3.connect(db)
    assert conn.execute("SELECT count(*) FROM items").fetchone() == (1000,)
    assert conn.execute("SELECT s FROM secrets").fetchall() == [(SECRET_VALUE,)]
    conn.close()


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.servers
@pytest.mark.parametrize("store", ["s3", "azure"])
def test_sqlite_end_to_end_on_an_object_store(store, request, tmp_path, db):
    """Template, inputs and a zipped database in S3 (or Azure); the CLI writes Parquet and outputs.pb back there."""
    base = request.getfixturevalue(f"{store}_base")
    archive = put(storage.join(base, "db", "items.zip"), zipped(db, tmp_path / "items.zip"))
    types = {"exclude": STR, "max_id": INT}
    tpl = template(
        "SELECT id, name, score\nFROM items\nWHERE name <> '{{ .inputs.exclude }}' -- quoted placeholder\n"
        "  AND id <= {{ .inputs.max_id }}\nORDER BY id",
        archive,
        types,
        compressed=True,
    )
    task = put(storage.join(base, "task.pb"), tpl.SerializeToString())
    inputs = put(storage.join(base, "inputs.pb"), encode_inputs({"exclude": "name-2", "max_id": 4}, types))
    prefix, raw = storage.join(base, "out"), storage.join(base, "raw")
    proc = run(execute_args(inputs, prefix, task, None, "--raw-output-data-prefix", raw))
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}
    results = read_outputs(prefix, {"results": DATASET})["results"]
    assert results.uri.startswith(raw + "/")
    assert storage.exists(storage.join(results.uri, "00000"))
    assert rows_of(results) == [
        {"id": 1, "name": "name-1", "score": 0.25},
        {"id": 3, "name": "name-3", "score": 0.75},
        {"id": 4, "name": "name-4", "score": 1.0},
    ]
    assert "WHERE name <> :exclude" in proc.stderr  # the logged SQL holds binds, not values


@pytest.mark.servers
def test_downloaded_database_is_cached_between_runs(s3_base, tmp_path, db):
    archive = put(storage.join(s3_base, "items.zip"), zipped(db, tmp_path / "items.zip"))
    tpl = template("SELECT count(*) AS n FROM items", archive, outputs={"n": INT}, compressed=True)
    task = put(storage.join(s3_base, "task.pb"), tpl.SerializeToString())
    inputs = put(storage.join(s3_base, "inputs.pb"), b"")
    cache = str(tmp_path / "cache")
    first = run(execute_args(inputs, storage.join(s3_base, "out1"), task), TASKBOX_CACHE_DIR=cache)
    second = run(execute_args(inputs, storage.join(s3_base, "out2"), task), TASKBOX_CACHE_DIR=cache)
    assert first.returncode == second.returncode == 0, first.stderr + second.stderr
    assert "fetching the database" in first.stderr and "using the cached copy" not in first.stderr
    assert "using the cached copy" in second.stderr and "fetching the database" not in second.stderr
    assert read_outputs(storage.join(s3_base, "out2"), {"n": INT}) == {"n": 1000}


def test_flytekit_executor_path_and_local_storage(tmp_path, db):
    """flytekit's resolver and executor class path, as its serialized SQLite3Task args carry them."""
    tpl = template("SELECT count(*) AS n FROM items WHERE id > {{.inputs.x}}", db, {"x": INT}, {"n": INT})
    task = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({"x": 990}, {"x": INT}))
    prefix = str(tmp_path / "out")
    proc = run(
        [
            execute_args("", "", "")[0],
            "execute",
            "--inputs",
            inputs,
            "--output-prefix",
            prefix,
            "--raw-output-data-prefix",
            "{{.rawOutputDataPrefix}}",
            "--resolver",
            "flytekit.core.python_customized_container_task.default_task_template_resolver",
            "--",
            task,
            "flytekit.extras.sqlite3.task.SQLite3TaskExecutor",
        ]
    )
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, {"n": INT}) == {"n": 10}


# ------------------------------------------------------------------------------------ values stay values


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_are_plain_values(tmp_path, db, value):
    tpl = template(
        "SELECT id, name FROM items WHERE name = '{{ .inputs.v }}' OR CAST(id AS TEXT) = {{ .inputs.v }}",
        db,
        {"v": STR},
    )
    results = run_local(tpl, {"v": value}, tmp_path)["results"]
    assert rows_of(results) == []
    table_intact(db)


def test_colon_names_inside_literals_stay_text(tmp_path, db):
    tpl = template("SELECT ':name' AS tag, id FROM items WHERE id = {{ .inputs.id }}", db, {"id": INT})
    assert rows_of(run_local(tpl, {"id": 7}, tmp_path)["results"]) == [{"tag": ":name", "id": 7}]


def test_identifier_inputs_come_from_the_allow_list(tmp_path, db):
    tpl = template(
        "SELECT count(*) AS n FROM {{ .inputs.table }}",
        db,
        {"table": STR},
        {"n": INT},
        identifiers={"table": ["items", "secrets"]},
    )
    assert run_local(tpl, {"table": "secrets"}, tmp_path) == {"n": 1}
    with pytest.raises(TaskFailed, match="allow-listed") as info:
        run_local(tpl, {"table": "items; DROP TABLE items"}, tmp_path)
    assert info.value.origin == "USER" and info.value.code == "USER:SqlRejected"
    table_intact(db)


def test_list_inputs_expand(tmp_path, db):
    from helpers import list_of

    tpl = template("SELECT id FROM items WHERE id IN {{ .inputs.ids }} ORDER BY id", db, {"ids": list_of(INT)})
    assert rows_of(run_local(tpl, {"ids": [3, 1, 2000]}, tmp_path)["results"]) == [{"id": 1}, {"id": 3}]


def test_primitive_outputs_take_the_single_row(tmp_path, db):
    outputs = {"n": INT, "top": STR, "avg": simple("FLOAT")}
    tpl = template(
        "SELECT count(*) AS n, max(id) AS TOP, avg(score) AS avg FROM items WHERE id <= {{.inputs.k}}",
        db,
        {"k": INT},
        outputs,
    )
    assert run_local(tpl, {"k": 4}, tmp_path) == {"n": 4, "top": "4", "avg": 0.625}


def test_large_result_is_written_in_row_groups(tmp_path):
    db = sqltesting.make_sqlite(tmp_path / "big.db", rows=50_000)
    tpl = template("SELECT * FROM items ORDER BY id", db, batch_rows=8192)
    results = run_local(tpl, {}, tmp_path)["results"]
    meta = pq.ParquetFile(os.path.join(results.uri, "00000")).metadata
    assert meta.num_rows == 50_000 and meta.num_row_groups == 7


def test_database_over_http(tmp_path, db, monkeypatch):
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "127.0.0.1")  # the SSRF guard refuses loopback unless allowed
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(Path(db).parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        uri = f"http://127.0.0.1:{server.server_address[1]}/items.db"
        tpl = template("SELECT count(*) AS n FROM items", uri, outputs={"n": INT})
        assert run_local(tpl, {}, tmp_path) == {"n": 1000}
    finally:
        server.shutdown()
        server.server_close()


# ------------------------------------------------------------------------------------ failures


def _fail_via_cli(tmp_path, tpl, values=None, types=None):
    task = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs(values or {}, types or {}))
    prefix, raw = str(tmp_path / "out"), tmp_path / "raw"
    proc = run(execute_args(task and inputs, prefix, task, None, "--raw-output-data-prefix", str(raw)))
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"error.pb"}
    assert not raw.exists() or not any(raw.rglob("*")), "nothing may be written to the outputs on failure"
    return read_error(prefix)


@pytest.mark.parametrize(
    ("query", "code", "outputs"),
    [
        ("SELEC id FROM items", "USER:QueryFailed", None),
        ("SELECT id FROM no_such_table", "USER:QueryFailed", None),
        ("SELECT no_such_column FROM items", "USER:QueryFailed", None),
        ("DELETE FROM items", "USER:ReadOnlyViolation", {}),
        ("SELECT * FROM items; DROP TABLE items", "USER:SqlRejected", None),
        ("SELECT * FROM items -- all of them WHERE id = 1", "USER:SqlRejected", None),
        ("SELECT id FROM items", "USER:ResultShape", {"n": INT}),
    ],
)
def test_user_errors_end_in_error_pb(tmp_path, db, query, code, outputs):
    error = _fail_via_cli(tmp_path, template(query, db, outputs=outputs))
    assert (error.code, error.origin, error.kind) == (code, USER, NON_RECOVERABLE)
    table_intact(db)


def test_a_query_over_the_timeout_fails_recoverably(tmp_path, db):
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"
    error = _fail_via_cli(tmp_path, template(endless, db, outputs={"n": INT}, timeout_seconds=0.5))
    assert (error.code, error.origin, error.kind) == ("SYSTEM:StatementTimeout", SYSTEM, RECOVERABLE)


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> str:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return str(path)


def _member(name: str, data: bytes | None = None, **fields) -> tuple[tarfile.TarInfo, bytes | None]:
    info = tarfile.TarInfo(name)
    for k, v in fields.items():
        setattr(info, k, v)
    if data is not None:
        info.size = len(data)
    return info, data


@pytest.mark.parametrize("case", ["trigger", "two_files", "traversal", "huge", "symlink", "not_sqlite"])
def test_malicious_database_files_are_rejected(tmp_path, db, case):
    data = Path(db).read_bytes()
    compressed, extra = True, {}
    if case == "trigger":
        uri, compressed = sqltesting.make_sqlite(tmp_path / "evil.db", rows=5, trigger=True), False
    elif case == "two_files":
        uri = _tar(tmp_path / "two.tar.gz", [_member("a.db", data), _member("b.db", data)])
    elif case == "traversal":
        uri = _tar(tmp_path / "up.tar.gz", [_member("../../../tmp/evil.db", data)])
    elif case == "huge":
        uri = str(tmp_path / "huge.zip")
        with zipfile.ZipFile(uri, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("zeros.db", b"\x00" * (8 * 1024 * 1024))
        extra = {"max_database_bytes": 1024 * 1024}
    elif case == "symlink":
        uri = _tar(tmp_path / "link.tar.gz", [_member("items.db", type=tarfile.SYMTYPE, linkname="/etc/passwd")])
    else:
        uri, compressed = str(tmp_path / "plain.txt"), False
        Path(uri).write_text("hello")
    (tmp_path / "run").mkdir()
    error = _fail_via_cli(tmp_path / "run", template("SELECT * FROM items", uri, compressed=compressed, **extra))
    assert (error.code, error.origin, error.kind) == ("USER:DatabaseRejected", USER, NON_RECOVERABLE)
    assert not Path("/tmp/evil.db").exists()
    assert not any((tmp_path / "cache").rglob("database")), "a rejected database must not stay in the cache"


def test_commits_in_a_write_ahead_log_are_read_on_every_run(tmp_path):
    """The base file does not change when a writer commits into app.db-wal: each run reads the log again."""
    path = str(tmp_path / "app.db")
    writer = sqltesting.wal_writer(path)
    try:
        tpl = template("SELECT count(*) AS n FROM items", path, outputs={"n": INT})
        assert run_local(tpl, {}, tmp_path) == {"n": 1005}
        writer.execute("INSERT INTO items (id, name) VALUES (1006, 'wal-1006')")
        assert run_local(tpl, {}, tmp_path) == {"n": 1006}
    finally:
        writer.close()


def test_a_hot_journal_ends_in_a_user_error_naming_it(tmp_path):
    path = sqltesting.hot_journal(tmp_path / "app.db")
    (tmp_path / "run").mkdir()
    error = _fail_via_cli(tmp_path / "run", template("SELECT * FROM items", path))
    assert (error.code, error.origin, error.kind) == ("USER:DatabaseRejected", USER, NON_RECOVERABLE)
    assert "app.db-journal" in error.message


def test_execute_only_without_outputs(tmp_path, db):
    assert run_local(template("SELECT count(*) FROM items", db, outputs={}), {}, tmp_path) == {}


def test_config_is_validated_before_anything_runs(tmp_path, db):
    with pytest.raises(TaskFailed, match="invalid sqlite config") as info:
        run_local(template("SELECT 1", db, no_such_field=1), {}, tmp_path)
    assert info.value.code == "USER:InvalidConfig"
    assert os.path.exists(db)
