"""The ``sql`` executor on real PostgreSQL 15 and MariaDB 10.11 servers (started on 127.0.0.1 by the fixtures)."""

from __future__ import annotations

import socket
import sys
import uuid
from pathlib import Path

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


# ------------------------------------------------------------------------------------ read-only reaches no file


def privileged(srv) -> str:
    """A URL for a role that may write server files: a PostgreSQL superuser, a MariaDB user with FILE."""
    mod = sqltesting.servers_module()
    if isinstance(srv, mod.PostgresServer):
        with srv.admin() as conn:
            if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tbxsuper'").fetchone():
                conn.execute(f"CREATE ROLE tbxsuper LOGIN SUPERUSER PASSWORD '{mod.PASSWORD}'")
        return srv.url.replace(f"{mod.USER}@", "tbxsuper@")
    with srv.admin(None) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'tbxfile'@'127.0.0.1' IDENTIFIED BY %s", (mod.PASSWORD,))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{mod.DATABASE}`.* TO 'tbxfile'@'127.0.0.1'")
        cur.execute("GRANT FILE ON *.* TO 'tbxfile'@'127.0.0.1'")
    return srv.url.replace(f"{mod.USER}@", "tbxfile@")


@pytest.fixture
def server_dir():
    """A directory the database server (which may run as ``nobody``) can reach and write into."""
    import shutil
    import tempfile

    path = Path(tempfile.mkdtemp(prefix="taskbox-server-files-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_read_only_transaction_alone_does_not_stop_server_file_writes(srv, server_dir):
    """The premise of the refusals below, checked on the real servers (PostgreSQL 15, MariaDB 10.11)."""
    mod = sqltesting.servers_module()
    url = privileged(srv)
    target = server_dir / "premise"
    if isinstance(srv, mod.PostgresServer):
        import psycopg

        with srv.admin() as admin:
            oid = admin.execute("SELECT lo_from_bytea(0, 'x')").fetchone()[0]
        with psycopg.connect(host=mod.HOST, port=srv.port, user="tbxsuper", password=password(), dbname="taskbox") as c:
            c.execute("SET TRANSACTION READ ONLY")
            c.execute("SELECT lo_export(%s, %s)", (oid, str(target)))
            c.rollback()
    else:
        import pymysql

        with pymysql.connect(
            host=mod.HOST, port=srv.port, user="tbxfile", password=password(), database="taskbox"
        ) as c:
            with c.cursor() as cur:
                cur.execute("SET SESSION TRANSACTION READ ONLY")
                cur.execute("START TRANSACTION")
                cur.execute("SELECT id FROM items WHERE id = 1 INTO OUTFILE %s", (str(target),))
            c.rollback()
    assert url and target.exists()


def test_server_file_constructs_are_refused_in_read_only_mode(srv, tmp_path, secret_env, server_dir):
    pg = isinstance(srv, sqltesting.servers_module().PostgresServer)
    url = privileged(srv)
    target = server_dir / "leak"
    queries = (
        [
            (f"SELECT \"lo_export\"(lo_from_bytea(0, 'x'), '{target}') AS n", "lo_export()"),
            (f"SELECT pg_catalog.lo_export(1, '{target}') AS n", "lo_export()"),
            (f"COPY (SELECT 1) TO '{target}'", "COPY"),
            ("SELECT pg_read_file('/etc/hostname') AS n", "pg_read_file()"),
            ("SELECT pg_reload_conf() AS n", "pg_reload_conf()"),
        ]
        if pg
        else [
            (f"SELECT id AS n FROM items WHERE id = 1 INTO OUTFILE '{target}'", "INTO OUTFILE"),
            (f"SELECT id AS n FROM items WHERE id = 1 /*!50000 INTO DUMPFILE '{target}' */", "INTO DUMPFILE"),
            (f"SELECT id AS n FROM items WHERE id = 1 /*M!100000 INTO OUTFILE '{target}' */", "INTO OUTFILE"),
            (f"SELECT id AS n FROM items WHERE id = 1 /*! INTO OUTFILE '{target}' */", "INTO OUTFILE"),
            ("SELECT LOAD_FILE('/etc/hostname') AS n", "LOAD_FILE()"),
        ]
    )
    for query, named in queries:
        with pytest.raises(TaskFailed) as info:
            run_local(template(srv, query, outputs={"n": STR}, uri=url), {}, tmp_path)
        assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:ReadOnlyViolation", "USER", False)
        assert named in str(info.value) and "read_only: false" in str(info.value), query
    assert list(server_dir.iterdir()) == []
    intact(srv)


def test_server_file_constructs_run_when_read_only_is_off(srv, tmp_path, secret_env, server_dir):
    pg = isinstance(srv, sqltesting.servers_module().PostgresServer)
    target = server_dir / "written"
    query = (
        f"COPY (SELECT 1) TO '{target}'"
        if pg
        else f"SELECT id FROM items WHERE id = 1 /*!50000 INTO OUTFILE '{target}' */"
    )
    assert run_local(template(srv, query, outputs={}, uri=privileged(srv), read_only=False), {}, tmp_path) == {}
    assert target.exists()


# ------------------------------------------------------------------------------------ lists of any length


def test_long_list_inputs_bind_whole(srv, tmp_path, secret_env):
    from helpers import list_of

    ids = list(range(-70_000, 0)) + [7, 3]
    tpl = template(srv, "SELECT id FROM items WHERE id IN {{ .inputs.ids }} ORDER BY id", {"ids": list_of(INT)})
    assert rows_of(run_local(tpl, {"ids": ids}, tmp_path)["results"]) == [{"id": 3}, {"id": 7}]
    count = template(
        srv, "SELECT count(*) AS n FROM items WHERE id NOT IN {{ .inputs.ids }}", {"ids": list_of(INT)}, {"n": INT}
    )
    assert run_local(count, {"ids": ids}, tmp_path) == {"n": 998}
    names = template(
        srv, "SELECT id FROM items WHERE name IN {{ .inputs.names }}", {"names": list_of(STR)}, {"id": INT}
    )
    assert run_local(names, {"names": ["name-5", "none"]}, tmp_path) == {"id": 5}
    empty = template(
        srv, "SELECT count(*) AS n FROM items WHERE id NOT IN {{ .inputs.ids }}", {"ids": list_of(INT)}, {"n": INT}
    )
    if isinstance(srv, sqltesting.servers_module().PostgresServer):  # MySQL has no empty IN list
        assert run_local(empty, {"ids": []}, tmp_path) == {"n": 1000}


def test_list_past_the_bind_limit_is_a_user_error_before_sending(tmp_path, secret_env):
    from helpers import list_of

    srv = sqltesting.server("postgres")
    tpl = template(srv, "SELECT id FROM items WHERE (id, 0) IN (VALUES {{ .inputs.ids }})", {"ids": list_of(INT)})
    with pytest.raises(TaskFailed) as info:
        run_local(tpl, {"ids": list(range(70_000))}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:InvalidInput", "USER", False)
    assert "65535" in str(info.value)


# ------------------------------------------------------------------------------------ sqlite:// through SQLAlchemy


def sqlite_template(uri, query, outputs=None, **custom):
    outputs = {"results": DATASET} if outputs is None else outputs
    return make_template("sqlalchemy", {}, outputs, {"query_template": query, "uri": uri, **custom})


def test_sqlite_url_read_only_touches_no_file(tmp_path):
    db = sqltesting.make_sqlite(tmp_path / "items.db")
    before = sorted(p.name for p in tmp_path.iterdir())
    for query in (f"VACUUM INTO '{tmp_path / 'copy.db'}'", f"ATTACH DATABASE '{tmp_path / 'new.db'}' AS n"):
        with pytest.raises(TaskFailed) as info:
            run_local(sqlite_template(f"sqlite:///{db}", query, {}), {}, tmp_path / "runs")
        assert info.value.code == "USER:ReadOnlyViolation", query
    missing = tmp_path / "missing.db"
    with pytest.raises(TaskFailed) as info:
        run_local(sqlite_template(f"sqlite:///{missing}", "SELECT 1 AS x", {"x": INT}), {}, tmp_path / "runs")
    assert (info.value.code, info.value.recoverable) == ("USER:QueryFailed", False) and "does not exist" in str(
        info.value
    )
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "runs") == before
    uri = f"sqlite:///file:{db}?uri=true&mode=rwc"  # a URI asking for read-write is opened read-only
    tpl = sqlite_template(uri, "SELECT count(*) AS n FROM items", {"n": INT})
    assert run_local(tpl, {}, tmp_path / "runs") == {"n": 1000}
    assert run_local(
        sqlite_template(f"sqlite:///{db}", "SELECT count(*) AS n FROM items", {"n": INT}), {}, tmp_path / "runs"
    ) == {"n": 1000}


def test_sqlite_session_denies_attach_even_when_unclassified(tmp_path):
    """The authorizer stops VACUUM INTO at the engine too (defence in depth behind the classifier)."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import DatabaseError

    from taskbox.sql.dialects import begin_session

    db = sqltesting.make_sqlite(tmp_path / "items.db")
    engine = create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        begin_session(conn, "sqlite", read_only=True, timeout_s=10, is_mariadb=False)
        with pytest.raises(DatabaseError, match="not authorized|authorization denied"):
            conn.exec_driver_sql(f"VACUUM INTO '{tmp_path / 'copy.db'}'")
    engine.dispose()
    assert not (tmp_path / "copy.db").exists()


@pytest.fixture
def small_packet():
    """MariaDB with ``max_allowed_packet`` at 1 MiB (new connections), restored afterwards."""
    srv = sqltesting.server("mariadb")
    sqltesting.seed(srv)
    with srv.admin(None) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = 1048576")
    yield srv
    with srv.admin(None) as conn, conn.cursor() as cur:
        cur.execute("SET GLOBAL max_allowed_packet = %s", (before,))


def test_mariadb_statement_past_max_allowed_packet_is_a_user_error(small_packet, tmp_path, secret_env):
    from helpers import list_of

    tpl = template(
        small_packet, "SELECT count(*) AS n FROM items WHERE id IN {{ .inputs.ids }}", {"ids": list_of(INT)}, {"n": INT}
    )
    assert run_local(tpl, {"ids": list(range(50_000))}, tmp_path) == {"n": 1000}  # 0.4 MB: fits
    with pytest.raises(TaskFailed) as info:
        run_local(tpl, {"ids": list(range(200_000))}, tmp_path)
    assert (info.value.code, info.value.origin, info.value.recoverable) == ("USER:InvalidInput", "USER", False)
    assert "max_allowed_packet (1048576 bytes)" in str(info.value)
