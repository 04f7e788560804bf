"""The ``sql`` executor on real PostgreSQL 15 and MariaDB 10.11 servers (started on 127.0.0.1 by the fixtures)."""

from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))

import sqltesting  # noqa: E402
from sqltesting import DATASET, SECRET_VALUE, simple  # noqa: E402

from helpers import commit_files, encode_inputs, execute_args, make_template, put, read_error, read_outputs, run  # noqa: E402
from taskbox import storage  # noqa: E402
from taskbox.authoring import TaskFailed, run_template  # noqa: E402

USER, SYSTEM = execution_pb2.ExecutionError.USER, execution_pb2.ExecutionError.SYSTEM
RECOVERABLE, NON_RECOVERABLE = errors_pb2.ContainerError.RECOVERABLE, errors_pb2.ContainerError.NON_RECOVERABLE
STR, INT = simple("STRING"), simple("INTEGER")
SECRET_ENV = "_FSEC_DB_PASSWORD"
INJECTIONS = [
    "x' OR '1'='1",
    "1; DROP TABLE items",
    "1 UNION SELECT s FROM secrets",
    ":name",
    "1' ; DELETE FROM items; --",
]


def password() -> str:
    return sqltesting.servers_module().PASSWORD


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def srv(request):
    server = sqltesting.server(request.param)
    sqltesting.seed(server)
    return server


@pytest.fixture
def secret_env(monkeypatch):
    monkeypatch.setenv(SECRET_ENV, password())


def template(srv, query, inputs=None, outputs=None, **custom):
    outputs = {"results": DATASET} if outputs is None else outputs
    custom = {
        "query_template": query,
        "uri": srv.url,
        "secret_connect_args": {"password": {"group": "db", "key": "password"}},
        **custom,
    }
    return make_template("sqlalchemy", inputs or {}, outputs, custom)


def run_local(tpl, values, tmp_path):
    return run_template(tpl, values, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))


def rows_of(dataset):
    return dataset.to_arrow().to_pylist()


def intact(srv):
    assert sqltesting.count(srv, "items") == 1000
    assert sqltesting.count(srv, "secrets") == 1


# ------------------------------------------------------------------------------------ end to end


@pytest.mark.servers
def test_sql_end_to_end_on_s3(srv, s3_base):
    types = {"min_id": INT, "exclude": STR}
    tpl = template(
        srv,
        "SELECT id, name, score, created, flag\nFROM items\nWHERE id > {{ .inputs.min_id }}\n"
        "  AND name <> '{{ .inputs.exclude }}' -- a whole-literal placeholder\nORDER BY id",
        types,
    )
    task = put(storage.join(s3_base, "task.pb"), tpl.SerializeToString())
    inputs = put(storage.join(s3_base, "inputs.pb"), encode_inputs({"min_id": 996, "exclude": "name-998"}, types))
    prefix, raw = storage.join(s3_base, "out"), storage.join(s3_base, "raw")
    proc = run(execute_args(inputs, prefix, task, None, "--raw-output-data-prefix", raw), **{SECRET_ENV: password()})
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"outputs.pb"}
    results = read_outputs(prefix, {"results": DATASET})["results"]
    assert results.uri.startswith(raw + "/")
    got = rows_of(results)
    assert [r["id"] for r in got] == [997, 999, 1000]
    assert str(got[0]["score"]) == "249.25" and got[0]["created"].minute == (997 % 60)
    assert password() not in proc.stderr
    assert f"{srv.url.split('://')[0]}://taskbox@127.0.0.1" in proc.stderr  # logged without a password


@pytest.mark.servers
def test_sql_failure_on_s3_writes_only_error_pb(srv, s3_base):
    tpl = template(srv, "SELECT * FROM no_such_table")
    task = put(storage.join(s3_base, "task.pb"), tpl.SerializeToString())
    inputs = put(storage.join(s3_base, "inputs.pb"), b"")
    prefix = storage.join(s3_base, "out")
    proc = run(execute_args(inputs, prefix, task), **{SECRET_ENV: password()})
    assert proc.returncode == 0, proc.stderr
    assert commit_files(prefix) == {"error.pb"}
    error = read_error(prefix)
    assert (error.code, error.origin, error.kind) == ("USER:QueryFailed", USER, NON_RECOVERABLE)
    assert "no_such_table" in error.message


def test_primitive_outputs(srv, tmp_path, secret_env):
    outputs = {"n": INT, "top": STR, "total": simple("FLOAT")}
    tpl = template(srv, "SELECT count(*) AS n, max(name) AS top, sum(score) AS total FROM items", outputs=outputs)
    assert run_local(tpl, {}, tmp_path) == {"n": 1000, "top": "name-999", "total": 125125.0}


# ------------------------------------------------------------------------------------ values stay values


@pytest.mark.parametrize("value", INJECTIONS)
def test_injection_attempts_are_plain_values(srv, tmp_path, secret_env, value):
    tpl = template(
        srv, "SELECT id, name FROM items WHERE name = '{{ .inputs.v }}' OR name = {{ .inputs.v }}", {"v": STR}
    )
    assert rows_of(run_local(tpl, {"v": value}, tmp_path)["results"]) == []
    intact(srv)


def test_colon_names_inside_literals_stay_text(srv, tmp_path, secret_env):
    tpl = template(srv, "SELECT ':name' AS tag, id FROM items WHERE id = {{ .inputs.id }}", {"id": INT})
    assert rows_of(run_local(tpl, {"id": 5}, tmp_path)["results"]) == [{"tag": ":name", "id": 5}]


def test_identifiers_are_quoted_by_the_dialect(srv, tmp_path, secret_env):
    tpl = template(
        srv, "SELECT s FROM {{ .inputs.table }}", {"table": STR}, {"s": STR}, identifiers={"table": ["secrets"]}
    )
    assert run_local(tpl, {"table": "secrets"}, tmp_path) == {"s": SECRET_VALUE}


def test_list_inputs_expand(srv, tmp_path, secret_env):
    from helpers import list_of

    tpl = template(srv, "SELECT id FROM items WHERE id IN {{ .inputs.ids }} ORDER BY id", {"ids": list_of(INT)})
    assert rows_of(run_local(tpl, {"ids": [4, 2, 5000]}, tmp_path)["results"]) == [{"id": 2}, {"id": 4}]


# ------------------------------------------------------------------------------------ read-only, writes


def test_write_in_read_only_mode_is_refused_before_connecting(srv, tmp_path, secret_env):
    tpl = template(srv, "DELETE FROM items WHERE id = {{ .inputs.id }}", {"id": INT}, {})
    with pytest.raises(TaskFailed) as info:
        run_local(tpl, {"id": 1}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:ReadOnlyViolation", "USER", False)
    intact(srv)


def test_hidden_write_is_stopped_by_the_read_only_transaction(srv, tmp_path, secret_env):
    pg = isinstance(srv, sqltesting.servers_module().PostgresServer)
    tpl = template(srv, "SELECT wipe() AS n" if pg else "CALL wipe()", outputs={"n": INT} if pg else {})
    with pytest.raises(TaskFailed) as info:
        run_local(tpl, {}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:ReadOnlyViolation", "USER", False)
    intact(srv)


def test_writes_commit_when_read_only_is_off(srv, tmp_path, secret_env):
    marker = int(uuid.uuid4().int % 1_000_000)
    tpl = template(srv, "INSERT INTO scratch (x) VALUES ({{ .inputs.x }})", {"x": INT}, {}, read_only=False)
    assert run_local(tpl, {"x": marker}, tmp_path) == {}
    check = template(srv, "SELECT count(*) AS n FROM scratch WHERE x = {{ .inputs.x }}", {"x": INT}, {"n": INT})
    assert run_local(check, {"x": marker}, tmp_path) == {"n": 1}


def test_constraint_violation_is_a_user_error(srv, tmp_path, secret_env):
    tpl = template(
        srv, "INSERT INTO items (id, name) VALUES ({{ .inputs.id }}, 'dup')", {"id": INT}, {}, read_only=False
    )
    with pytest.raises(TaskFailed) as info:
        run_local(tpl, {"id": 1}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:QueryFailed", "USER", False)
    intact(srv)


@pytest.mark.parametrize("query", ["SELEC 1", "SELECT * FROM no_such_table", "SELECT no_such_column FROM items"])
def test_bad_queries_are_user_errors(srv, tmp_path, secret_env, query):
    with pytest.raises(TaskFailed) as info:
        run_local(template(srv, query), {}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:QueryFailed", "USER", False)


# ------------------------------------------------------------------------------------ platform failures


def test_statement_timeout_is_recoverable(srv, tmp_path, secret_env):
    pg = isinstance(srv, sqltesting.servers_module().PostgresServer)
    slow = "SELECT pg_sleep(20) AS s" if pg else "SELECT count(*) AS s FROM items a, items b, items c"
    with pytest.raises(TaskFailed) as info:
        run_local(template(srv, slow, outputs={"s": STR}, timeout_seconds=1), {}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("SYSTEM:StatementTimeout", "SYSTEM", True)


def test_connection_refused_is_recoverable(srv, tmp_path, secret_env):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket closes
    uri = srv.url.replace(f":{srv.port}/", f":{port}/")
    with pytest.raises(TaskFailed) as info:
        run_local(template(srv, "SELECT 1 AS x", outputs={"x": INT}, uri=uri), {}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == (
        "SYSTEM:DatabaseUnavailable",
        "SYSTEM",
        True,
    )


# ------------------------------------------------------------------------------------ secrets


def test_password_from_a_secret_file(srv, tmp_path, monkeypatch):
    secrets = tmp_path / "secrets" / "db"
    secrets.mkdir(parents=True)
    (secrets / "password").write_text(password() + "\n")
    monkeypatch.delenv(SECRET_ENV, raising=False)
    monkeypatch.setenv("FLYTE_SECRETS_DEFAULT_DIR", str(tmp_path / "secrets"))
    tpl = template(srv, "SELECT count(*) AS n FROM items", outputs={"n": INT})
    assert run_local(tpl, {}, tmp_path) == {"n": 1000}


def test_password_never_appears_in_logs_or_error_documents(srv, tmp_path):
    wrong = "wrong-" + uuid.uuid4().hex
    tpl = template(srv, "SELECT count(*) AS n FROM items", outputs={"n": INT})
    task = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), b"")
    for value, ok in ((password(), True), (wrong, False)):
        prefix = str(tmp_path / f"out-{ok}")
        proc = run(execute_args(inputs, prefix, task), TASKBOX_LOG_LEVEL="DEBUG", **{SECRET_ENV: value})
        assert proc.returncode == 0, proc.stderr
        assert value not in proc.stderr and value not in proc.stdout
        if ok:
            assert read_outputs(prefix, {"n": INT}) == {"n": 1000}
        else:
            error = read_error(prefix)
            assert value not in error.message
            assert (error.code, error.origin, error.kind) == ("USER:QueryFailed", USER, NON_RECOVERABLE)
            assert "password" in error.message.lower() or "denied" in error.message.lower()


def test_password_in_the_uri_is_refused_without_echoing_it(srv, tmp_path):
    leaked = "in-uri-" + uuid.uuid4().hex
    uri = srv.url.replace("taskbox@", f"taskbox:{leaked}@")
    tpl = template(srv, "SELECT 1 AS x", outputs={"x": INT}, uri=uri)
    task = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    prefix = str(tmp_path / "out")
    proc = run(execute_args(put(str(tmp_path / "inputs.pb"), b""), prefix, task))
    assert proc.returncode == 0
    error = read_error(prefix)
    assert error.code == "USER:InvalidConfig" and "secret_connect_args" in error.message
    assert leaked not in error.message and leaked not in proc.stderr


def test_password_in_connect_args_is_refused(srv, tmp_path):
    tpl = template(srv, "SELECT 1 AS x", outputs={"x": INT}, connect_args={"password": "plain"})
    with pytest.raises(TaskFailed, match="secret_connect_args") as info:
        run_local(tpl, {}, tmp_path)
    assert info.value.code == "USER:InvalidConfig"
