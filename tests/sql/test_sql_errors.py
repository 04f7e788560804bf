"""Driver exceptions -> taskbox errors: USER for the query's faults, recoverable SYSTEM for the platform's."""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid

import psycopg
import pymysql
import pytest
import sqltesting

from helpers import make_template
from taskbox.authoring import TaskFailed, run_template
from taskbox.errors import PlatformError
from taskbox.sql import errors


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (psycopg.errors.DeadlockDetected("deadlock detected"), errors.TransactionConflict),
        (psycopg.errors.SerializationFailure("could not serialize"), errors.TransactionConflict),
        (psycopg.errors.AdminShutdown("terminating connection"), errors.DatabaseUnavailable),
        (psycopg.errors.CannotConnectNow("the database system is starting up"), errors.DatabaseUnavailable),
        (psycopg.errors.QueryCanceled("canceling statement due to statement timeout"), errors.StatementTimeout),
        (psycopg.errors.ReadOnlySqlTransaction("cannot execute DELETE"), errors.ReadOnlyViolation),
        (psycopg.errors.UniqueViolation("duplicate key"), errors.QueryFailed),
        (psycopg.errors.SyntaxError("syntax error"), errors.QueryFailed),
        (psycopg.errors.UndefinedTable("relation does not exist"), errors.QueryFailed),
        (psycopg.OperationalError("connection refused"), errors.DatabaseUnavailable),
        (psycopg.OperationalError('FATAL:  password authentication failed for user "x"'), errors.QueryFailed),
        (pymysql.err.OperationalError(1213, "Deadlock found"), errors.TransactionConflict),
        (pymysql.err.OperationalError(2003, "Can't connect"), errors.DatabaseUnavailable),
        (pymysql.err.OperationalError(1053, "Server shutdown in progress"), errors.DatabaseUnavailable),
        (pymysql.err.OperationalError(1969, "max_statement_time exceeded"), errors.StatementTimeout),
        (pymysql.err.InternalError(1792, "READ ONLY transaction"), errors.ReadOnlyViolation),
        (pymysql.err.IntegrityError(1062, "Duplicate entry"), errors.QueryFailed),
        (pymysql.err.ProgrammingError(1146, "Table doesn't exist"), errors.QueryFailed),
        (sqlite3.OperationalError("no such table: t"), errors.QueryFailed),
        (sqlite3.OperationalError("database is locked"), errors.TransactionConflict),
        (sqlite3.DatabaseError("file is not a database"), errors.DatabaseRejected),
    ],
)
def test_classification(exc, cls):
    translated = errors.translate(exc)
    assert type(translated) is cls
    assert translated.origin == ("USER" if issubclass(cls, errors.UserError) else "SYSTEM")
    assert translated.recoverable == (not issubclass(cls, errors.UserError))


def test_sqlalchemy_wrappers_are_unwrapped_without_sql_or_parameters():
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine("sqlite://", hide_parameters=True)
    with engine.connect() as conn, pytest.raises(SQLAlchemyError) as info:
        conn.execute(text("SELECT * FROM nowhere WHERE x = :v"), {"v": "value-that-must-not-leak"})
    translated = errors.translate(info.value)
    assert isinstance(translated, errors.QueryFailed)
    assert "nowhere" in translated.message and "value-that-must-not-leak" not in translated.message
    assert "[SQL:" not in translated.message


def test_unknown_failures_are_recoverable_system_errors():
    translated = errors.translate(RuntimeError("something odd"))
    assert isinstance(translated, PlatformError) and translated.recoverable


def _kill_while_running(srv, tmp_path, monkeypatch, query, kill):
    monkeypatch.setenv("_FSEC_DB_PASSWORD", sqltesting.servers_module().PASSWORD)
    template = make_template(
        "sqlalchemy",
        {},
        {"x": sqltesting.simple("STRING")},
        {
            "query_template": query,
            "uri": srv.url,
            "timeout_seconds": 60,
            "secret_connect_args": {"password": {"group": "db", "key": "password"}},
        },
    )
    outcome: dict = {}

    def target():
        try:
            run_template(template, {}, workdir=str(tmp_path / uuid.uuid4().hex))
        except TaskFailed as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target)
    thread.start()
    deadline = time.monotonic() + 30
    while thread.is_alive() and time.monotonic() < deadline and not kill():
        time.sleep(0.1)
    thread.join(60)
    return outcome.get("error")


def test_server_terminating_the_connection_is_recoverable(postgres_server, tmp_path, monkeypatch):
    srv = postgres_server

    def kill() -> bool:
        with srv.admin("postgres") as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE usename = 'taskbox' AND query LIKE '%pg_sleep%'"
            ).fetchall()
        return bool(rows)

    error = _kill_while_running(srv, tmp_path, monkeypatch, "SELECT pg_sleep(30)::text AS x", kill)
    assert error is not None
    assert (error.code, error.origin, error.recoverable) == ("SYSTEM:DatabaseUnavailable", "SYSTEM", True)


def test_mariadb_connection_killed_is_recoverable(mariadb_server, tmp_path, monkeypatch):
    srv = mariadb_server

    def kill() -> bool:
        with srv.admin(None) as conn, conn.cursor() as cur:
            cur.execute("SELECT id FROM information_schema.processlist WHERE user = 'taskbox' AND info LIKE '%SLEEP%'")
            ids = [row[0] for row in cur.fetchall()]
            for pid in ids:
                cur.execute("KILL CONNECTION %s", (pid,))
        return bool(ids)

    error = _kill_while_running(srv, tmp_path, monkeypatch, "SELECT CAST(SLEEP(30) AS CHAR) AS x", kill)
    assert error is not None
    assert (error.code, error.origin, error.recoverable) == ("SYSTEM:DatabaseUnavailable", "SYSTEM", True)
