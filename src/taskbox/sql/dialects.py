"""Per-database behaviour of the ``sql`` executor: drivers, read-only sessions, timeouts, column types.

Why: SQLAlchemy gives one API for executing a statement, but read-only transactions, statement
timeouts, server-side cursors and the types a cursor describes are each database's own. Keeping them
here, one small function per concern and database, leaves the executor database-agnostic.

Invariants:
    * Session settings are sent as statements with bound values (``set_config``/``SET SESSION``), never
      as URL or ``options`` text, so they work through poolers and carry no string pasting.
    * PostgreSQL: ``SET TRANSACTION READ ONLY`` is the transaction's first statement; the statement,
      lock and idle-in-transaction timeouts are transaction-local.
    * MySQL/MariaDB: the session is made read-only (``SET SESSION TRANSACTION READ ONLY``) before the
      transaction starts; MariaDB's ``max_statement_time`` / MySQL's ``max_execution_time`` bound it.
    * Other databases: read-only mode is enforced by refusing statements sqlglot classifies as writes
      (a warning says the database itself does not enforce it).
"""

from __future__ import annotations

import importlib.util
import logging
from typing import Any

log = logging.getLogger("taskbox.sql")

__all__ = ["begin_session", "normalise_url", "stream_supported", "type_hints"]

# SQLAlchemy's default DBAPI per backend -> the driver taskbox ships in its ``sql`` extra.
_DEFAULT_DRIVERS = {
    "postgresql": ("psycopg2", "psycopg"),
    "mysql": ("MySQLdb", "pymysql"),
    "mariadb": ("MySQLdb", "pymysql"),
}


def normalise_url(url: Any) -> Any:
    """Pick taskbox's driver for URLs that name none (``postgresql://`` -> ``postgresql+psycopg://``).

    flytekit's images ship psycopg2 and mysqlclient; taskbox ships psycopg 3 and PyMySQL. A URL that
    names its driver explicitly is left alone.
    """
    backend, _, driver = url.drivername.partition("+")
    if driver or backend not in _DEFAULT_DRIVERS:
        return url
    default_module, ours = _DEFAULT_DRIVERS[backend]
    if importlib.util.find_spec(default_module) is not None:
        return url
    return url.set(drivername=f"{backend}+{ours}")


def stream_supported(backend: str) -> bool:
    """Tell whether SQLAlchemy's ``stream_results`` gives a real server-side cursor."""
    return backend in ("postgresql", "mysql", "mariadb")


def begin_session(conn: Any, backend: str, *, read_only: bool, timeout_s: float, is_mariadb: bool) -> bool:
    """Apply read-only mode and timeouts to a new connection; the caller then runs its transaction.

    Args:
        conn: A SQLAlchemy ``Connection`` with no statement executed yet.
        backend: ``url.get_backend_name()``.
        read_only: Make the transaction read-only.
        timeout_s: Statement timeout in seconds.
        is_mariadb: The server is MariaDB (``dialect.is_mariadb``).

    Returns:
        True if the database enforces ``read_only`` itself.

    """
    from sqlalchemy import text  # noqa: PLC0415

    millis = max(1, int(timeout_s * 1000))
    if backend == "postgresql":
        if read_only:
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        conn.execute(
            text(
                "SELECT set_config('statement_timeout', :t, true), set_config('lock_timeout', :t, true), "
                "set_config('idle_in_transaction_session_timeout', :idle, true)"
            ),
            {"t": str(millis), "idle": str(millis * 2)},
        )
        return True
    if backend in ("mysql", "mariadb"):
        if read_only:
            conn.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")
        if is_mariadb:
            conn.execute(text("SET SESSION max_statement_time = :t"), {"t": timeout_s})
        else:
            conn.execute(text("SET SESSION max_execution_time = :t"), {"t": millis})
        lock_wait = max(1, int(timeout_s))
        conn.execute(text("SET SESSION innodb_lock_wait_timeout = :t"), {"t": lock_wait})
        conn.commit()  # end the implicit transaction; the query's transaction starts read-only
        return True
    if backend == "sqlite":
        if read_only:
            conn.exec_driver_sql("PRAGMA query_only = ON")
        _sqlite_deadline(conn, timeout_s)
        return True
    if read_only:
        log.warning(
            "the %s database does not get a read-only transaction from taskbox; only statements recognised as "
            "writes are refused. Use a database role without write privileges",
            backend,
        )
    return False


def _sqlite_deadline(conn: Any, timeout_s: float) -> None:
    import time  # noqa: PLC0415

    deadline = time.monotonic() + timeout_s
    raw = conn.connection.driver_connection
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)


# --------------------------------------------------------------------------------- column types


def type_hints(backend: str, description: Any) -> list[Any]:
    """Arrow types for the columns of a DBAPI ``cursor.description`` (``None`` where unknown)."""
    if not description:
        return []
    if backend == "postgresql":
        return [_pg_type(d) for d in description]
    if backend in ("mysql", "mariadb"):
        return [_mysql_type(d) for d in description]
    return [None for _ in description]


def _decimal(precision: Any, scale: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    if not isinstance(precision, int) or not isinstance(scale, int) or precision <= 0 or not 0 <= scale <= precision:
        return None
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(min(precision, 76), scale)


def _pg_type(d: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    oid = d[1]
    simple = {
        16: pa.bool_(),
        20: pa.int64(),
        21: pa.int16(),
        23: pa.int32(),
        26: pa.int64(),
        700: pa.float32(),
        701: pa.float64(),
        25: pa.string(),
        1043: pa.string(),
        1042: pa.string(),
        19: pa.string(),
        18: pa.string(),
        1082: pa.date32(),
        1114: pa.timestamp("us"),
        1184: pa.timestamp("us", tz="UTC"),
        1083: pa.time64("us"),
        1186: pa.duration("us"),
        17: pa.binary(),
        2950: pa.string(),
        114: pa.string(),
        3802: pa.string(),
        869: pa.string(),
        650: pa.string(),
    }
    if oid == 1700:
        return _decimal(d[4], d[5])
    return simple.get(oid)


def _mysql_type(d: Any) -> Any:
    import pyarrow as pa  # noqa: PLC0415

    code = d[1]
    if code in (0, 246):  # DECIMAL, NEWDECIMAL
        precision = d[4] if isinstance(d[4], int) else None
        scale = d[5] if isinstance(d[5], int) else None
        if precision is not None and scale is not None:
            precision -= 1 if scale else 0  # PyMySQL reports the display length (point, and sign if signed)
        return _decimal(precision, scale)
    simple = {
        1: pa.int64(),
        2: pa.int64(),
        3: pa.int64(),
        8: pa.int64(),
        9: pa.int64(),
        13: pa.int64(),
        4: pa.float64(),
        5: pa.float64(),
        10: pa.date32(),
        7: pa.timestamp("us"),
        12: pa.timestamp("us"),
        11: pa.duration("us"),
        245: pa.string(),
        253: pa.string(),
        254: pa.string(),
        15: pa.string(),
    }
    return simple.get(code)
