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
    * SQLite (through SQLAlchemy): read-only mode opens the file ``mode=ro`` (a missing file is never
      created) with ``query_only`` and an authorizer that denies ``ATTACH`` (``VACUUM INTO`` attaches
      its target, so it is denied before the file exists).
    * Other databases: read-only mode is enforced by refusing statements sqlglot classifies as writes
      (a warning says the database itself does not enforce it).
    * A read-only transaction does not stop a statement from reaching outside it: PostgreSQL's
      ``lo_export``/``lo_import``/``pg_read_file``/``COPY ... TO`` a file and MariaDB's ``INTO OUTFILE``/
      ``DUMPFILE`` and ``LOAD_FILE`` all run inside one for a privileged role (checked on PostgreSQL 15
      and MariaDB 10.11). :func:`read_only_hazard` names such constructs so read-only tasks refuse them
      before connecting; :func:`server_view` first turns MySQL's executable comments into the code the
      server runs, so nothing hides in them.
"""

from __future__ import annotations

import importlib.util
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

log = logging.getLogger("taskbox.sql")

__all__ = [
    "begin_session",
    "bind_limit",
    "check_statement_size",
    "classify",
    "normalise_url",
    "read_only_hazard",
    "server_view",
    "sqlglot_dialect",
    "stream_supported",
    "type_hints",
]

# SQLAlchemy's default DBAPI per backend -> the driver taskbox ships in its ``sql`` extra.
_DEFAULT_DRIVERS = {
    "postgresql": ("psycopg2", "psycopg"),
    "mysql": ("MySQLdb", "pymysql"),
    "mariadb": ("MySQLdb", "pymysql"),
}


# SQLAlchemy backend name -> sqlglot dialect.
_SQLGLOT_DIALECTS = {
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "mssql": "tsql",
    "oracle": "oracle",
    "snowflake": "snowflake",
    "bigquery": "bigquery",
    "redshift": "redshift",
    "duckdb": "duckdb",
    "trino": "trino",
    "presto": "presto",
    "clickhouse": "clickhouse",
    "databricks": "databricks",
}


def sqlglot_dialect(backend: str) -> str | None:
    """Return the sqlglot dialect for a SQLAlchemy backend name (``None``: sqlglot's generic SQL)."""
    return _SQLGLOT_DIALECTS.get(backend.lower())


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


def check_statement_size(conn: Any, backend: str, sql: str, params: Mapping[str, Any]) -> None:
    """Refuse a MySQL/MariaDB statement that its values make larger than the server's ``max_allowed_packet``.

    PyMySQL and mysqlclient write the values into the statement on the client, so there is no limit on
    the number of parameters, but a statement larger than ``max_allowed_packet`` (MariaDB's default:
    16 MiB, about 2 million list items) makes the server drop the connection, which reads as an outage
    (error 2006). The size is bounded cheaply first; the server is asked, and each value rendered as the
    driver will, only for statements that could come near the limit.

    Args:
        conn: The SQLAlchemy connection (inside the session).
        backend: ``url.get_backend_name()``.
        sql: The statement text before expanding lists (one marker per list).
        params: The values; a list expands to its items.

    Raises:
        BindLimitExceeded: The statement with its values is larger than ``max_allowed_packet``.

    """
    if backend not in ("mysql", "mariadb") or not params:
        return
    items = [x for v in params.values() for x in (v if isinstance(v, list) else [v])]
    upper = len(sql.encode()) + sum(_upper_size(x) for x in items)
    if upper < _PACKET_CHECK_BYTES:
        return
    limit = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
    raw = conn.connection.driver_connection
    # PyMySQL's escape() (its literal() is deprecated), mysqlclient's literal(): the text each value becomes.
    literal = getattr(raw, "escape" if type(raw).__module__.startswith("pymysql") else "literal", None)
    if not isinstance(limit, int) or upper < limit - _PACKET_HEADROOM or literal is None:
        return
    size = len(sql.encode())
    for x in items:
        rendered = literal(x)
        size += len(rendered.encode() if isinstance(rendered, str) else rendered) + 2
    if size >= limit - _PACKET_HEADROOM:
        from taskbox.sql.errors import BindLimitExceeded

        raise BindLimitExceeded(
            f"with its values written in, the statement is {size} bytes, more than the database server's "
            f"max_allowed_packet ({limit} bytes); pass fewer list items or smaller values"
        )


_PACKET_CHECK_BYTES = 64 * 1024
_PACKET_HEADROOM = 1024


def _upper_size(value: Any) -> int:
    """At least the bytes the driver writes for ``value`` (escaping at most doubles a string)."""
    if isinstance(value, str):
        return 2 * len(value.encode()) + 3
    if isinstance(value, bytes):
        return 2 * len(value) + 10
    return len(str(value)) + 32


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
    from sqlalchemy import text

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
            conn.connection.driver_connection.set_authorizer(_sqlite_no_attach)
        _sqlite_deadline(conn, timeout_s)
        return True
    if read_only:
        log.warning(
            "the %s database does not get a read-only transaction from taskbox; only statements recognised as "
            "writes are refused. Use a database role without write privileges",
            backend,
        )
    return False


def _sqlite_no_attach(action: int, *_: Any) -> int:
    """SQLite authorizer: deny ``ATTACH`` (and so ``VACUUM INTO``, which attaches its target file)."""
    import sqlite3

    return sqlite3.SQLITE_DENY if action == sqlite3.SQLITE_ATTACH else sqlite3.SQLITE_OK


def _sqlite_deadline(conn: Any, timeout_s: float) -> None:
    import time

    deadline = time.monotonic() + timeout_s
    raw = conn.connection.driver_connection
    raw.set_progress_handler(lambda: 1 if time.monotonic() > deadline else 0, 10_000)


# --------------------------------------------------------------------------------- read-only hazards

# Statement classes (sqlglot expression names) that only read.
_READ_ROOTS = frozenset({"Select", "Union", "Except", "Intersect", "Values", "Subquery", "SetOperation"})
_WRITE_NODES = frozenset(
    {
        "Insert",
        "Update",
        "Delete",
        "Merge",
        "Create",
        "Drop",
        "Alter",
        "AlterTable",
        "TruncateTable",
        "Copy",
        "Grant",
        "Revoke",
        "Into",
        "Lock",
        "Transaction",
        "Commit",
        "Rollback",
        "Set",
        "Use",
        "Analyze",
        "Attach",
        "Detach",
        "LoadData",
    }
)


def classify(sql: str, dialect: str | None) -> tuple[str, str]:
    """Classify one statement with sqlglot: ``(kind, statement class)``, ``("unknown", "")`` if it cannot parse it.

    ``kind`` is ``"read"`` (SELECT/UNION/VALUES, possibly under WITH), ``"write"`` (a node that changes
    data, schema or the session) or ``"unknown"``.
    """
    import sqlglot
    from sqlglot.errors import SqlglotError

    try:
        parsed = [e for e in sqlglot.parse(sql, read=dialect) if e is not None]
    except (SqlglotError, RecursionError, ValueError):
        return "unknown", ""
    if len(parsed) != 1:
        return "unknown", ""
    root = parsed[0]
    statement = type(root).__name__
    if statement == "Command":
        return "unknown", statement
    if any(type(node).__name__ in _WRITE_NODES for node in root.walk()):
        return "write", statement
    if statement in _READ_ROOTS or isinstance(root, sqlglot.exp.Query):
        return "read", statement
    return "unknown", statement


#: Functions a read-only transaction does not contain: they reach the server's files or programs, other
#: sessions, the server's configuration, or run SQL text outside the template. Name -> what it does.
#: Matched by name (case-insensitive, quoted or schema-qualified too) wherever it is called, whatever the
#: dialect: the names are specific enough that a database without them loses nothing.
_HAZARD_FUNCTIONS: dict[str, str] = {
    # PostgreSQL: server files (superuser, pg_read/write_server_files) and large objects.
    **dict.fromkeys(("lo_export",), "writes a file on the database server"),
    **dict.fromkeys(
        ("lo_import", "pg_read_file", "pg_read_binary_file", "pg_stat_file"), "reads a file on the database server"
    ),
    **dict.fromkeys(
        (
            "pg_ls_dir",
            "pg_ls_logdir",
            "pg_ls_waldir",
            "pg_ls_tmpdir",
            "pg_ls_archive_statusdir",
            "pg_ls_logicalsnapdir",
            "pg_ls_logicalmapdir",
            "pg_ls_replslotdir",
            "pg_logdir_ls",
        ),
        "lists files on the database server",
    ),
    **dict.fromkeys(
        ("lo_create", "lo_creat", "lo_unlink", "lo_from_bytea", "lo_put", "lo_truncate", "lo_truncate64", "lowrite"),
        "changes large objects, which a read-only transaction does not always stop",
    ),
    **dict.fromkeys(
        ("pg_file_write", "pg_file_rename", "pg_file_unlink", "pg_file_sync"),
        "changes files on the database server (adminpack)",
    ),
    **dict.fromkeys(
        ("dblink", "dblink_exec", "dblink_connect", "dblink_connect_u", "dblink_send_query", "dblink_open"),
        "runs SQL on another connection, outside the read-only transaction",
    ),
    **dict.fromkeys(
        ("query_to_xml", "query_to_xml_and_xmlschema", "query_to_xmlschema", "ts_stat"),
        "runs SQL text that taskbox cannot classify",
    ),
    **dict.fromkeys(
        ("pg_terminate_backend", "pg_cancel_backend", "pg_log_backend_memory_contexts"),
        "acts on other sessions of the database server",
    ),
    **dict.fromkeys(
        (
            "pg_reload_conf",
            "pg_rotate_logfile",
            "pg_promote",
            "pg_switch_wal",
            "pg_create_restore_point",
            "pg_backup_start",
            "pg_backup_stop",
            "pg_start_backup",
            "pg_stop_backup",
            "pg_create_physical_replication_slot",
            "pg_create_logical_replication_slot",
            "pg_drop_replication_slot",
            "pg_logical_emit_message",
        ),
        "changes the state of the database server",
    ),
    # MySQL / MariaDB (FILE privilege) and the well-known lib_mysqludf_sys functions.
    "load_file": "reads a file on the database server",
    **dict.fromkeys(("sys_exec", "sys_eval"), "runs a program on the database server"),
    # SQLite's file functions (CLI and extensions).
    **dict.fromkeys(("readfile", "writefile", "edit", "load_extension"), "reads or writes files, or loads code"),
}
#: Statements (by their first keyword) that a read-only transaction does not contain.
_HAZARD_STATEMENTS: dict[str, str] = {
    "COPY": "reads or writes a file or runs a program on the database server",
    "DO": "runs a procedural code block that taskbox cannot classify",
    "LOAD": "loads a file into the database server",
    "CHECKPOINT": "changes the state of the database server",
    "VACUUM": "rewrites the database; VACUUM INTO writes a new file",
    "ATTACH": "opens, or creates, another database file",
}
_INTO_FILE = frozenset({"OUTFILE", "DUMPFILE"})
#: sqlglot token types that are quoted string literals (templating.py reads them too).
STRING_TOKENS = frozenset(
    {
        "STRING",
        "NATIONAL_STRING",
        "RAW_STRING",
        "BYTE_STRING",
        "UNICODE_STRING",
        "HEREDOC_STRING",
        "BIT_STRING",
        "HEX_STRING",
        "NATIONAL_RAW_STRING",
    }
)
_LITERAL_TOKENS = STRING_TOKENS | {"NUMBER"}
# MySQL/MariaDB executable comment: /*! body */, /*!NNNNN body */ (MySQL version), /*M!NNNNNN body */ (MariaDB).
_EXECUTABLE_HEAD = re.compile(r"/\*(?:!\d{0,5}|M!\d{0,6})")
_MAX_EXPANSIONS = 8


def read_only_hazard(tokens: Sequence[Any], identifiers: Iterable[str] = ()) -> str:
    """Name the first construct of a statement that a read-only transaction does not contain.

    Args:
        tokens: sqlglot tokens of the statement as the server will read it (see :func:`server_view`).
        identifiers: The allow-listed identifier values the statement may splice in; a quoted
            identifier calls a function too (``"lo_export"(...)``), so a hazardous name among them counts.

    Returns:
        ``"lo_export() (writes a file on the database server)"``-style text, or ``""`` when none.

    """
    words = [(t.token_type.name, t.text) for t in tokens]
    if words and words[0][0] not in _LITERAL_TOKENS:
        first = words[0][1].upper()
        if first in _HAZARD_STATEMENTS:
            return f"a {first} statement ({_HAZARD_STATEMENTS[first]})"
    for i, (kind, text) in enumerate(words):
        if kind in _LITERAL_TOKENS:
            continue
        nxt = words[i + 1] if i + 1 < len(words) else ("", "")
        if nxt[0] == "L_PAREN" and text.lower() in _HAZARD_FUNCTIONS:
            return f"{text}() ({_HAZARD_FUNCTIONS[text.lower()]})"
        if text.upper() == "INTO" and nxt[0] not in _LITERAL_TOKENS and nxt[1].upper() in _INTO_FILE:
            return f"INTO {nxt[1].upper()} (writes a file on the database server)"
    for ident in identifiers:
        last = ident.rsplit(".", 1)[-1].lower()
        if last in _HAZARD_FUNCTIONS:
            return f"{last}() ({_HAZARD_FUNCTIONS[last]}), an allowed value of an identifier input"
    return ""


def server_view(sql: str, dialect: str | None, tokenize: Any) -> tuple[str, list[Any]]:
    """Return the statement as the server reads it, and its tokens.

    MySQL and MariaDB run the body of an executable comment (``/*! ... */``, ``/*!50000 ... */``,
    ``/*M!100100 ... */``) as code; sqlglot reads it as a comment. For the ``mysql`` dialect each such
    comment between tokens (never one inside a string literal) is replaced by its body, whatever its
    version number (so the result is what any server version could run), until none is left.

    Args:
        sql: One statement.
        dialect: The sqlglot dialect.
        tokenize: ``(sql, dialect) -> tokens`` (sqlglot's tokenizer, errors already translated).

    Returns:
        ``(sql, tokens)``.

    Raises:
        ValueError: Executable comments are nested deeper than taskbox expands.

    """
    tokens = tokenize(sql, dialect)
    if dialect != "mysql":
        return sql, tokens
    for _ in range(_MAX_EXPANSIONS):
        pieces: list[str] = []
        prev_end = 0
        changed = False
        for tok in [*tokens, None]:
            start = len(sql) if tok is None else tok.start
            gap = sql[prev_end:start]
            expanded = _expand_gap(gap)
            changed |= expanded != gap
            pieces.append(expanded)
            if tok is not None:
                pieces.append(sql[tok.start : tok.end + 1])
                prev_end = tok.end + 1
        if not changed:
            return sql, tokens
        sql = "".join(pieces)
        tokens = tokenize(sql, dialect)
    raise ValueError("executable comments are nested too deeply")


def _expand_gap(gap: str) -> str:
    """Replace each executable comment in text between tokens (white space and comments) by its body."""
    out: list[str] = []
    i = 0
    while i < len(gap):
        if gap.startswith("/*", i):
            end = gap.find("*/", i + 2)
            end = len(gap) if end < 0 else end
            head = _EXECUTABLE_HEAD.match(gap, i)
            out.append(f" {gap[head.end() : end]} " if head else gap[i : end + 2])
            i = end + 2
        elif gap.startswith(("--", "#"), i):
            newline = gap.find("\n", i)
            newline = len(gap) if newline < 0 else newline
            out.append(gap[i:newline])
            i = newline
        else:
            out.append(gap[i])
            i += 1
    return "".join(out)


def bind_limit(dialect: str | None) -> int | None:
    """Return the most bind parameters one statement may carry on a dialect's driver (``None``: none).

    PostgreSQL's protocol counts parameters in 16 bits; SQLite's default ``SQLITE_MAX_VARIABLE_NUMBER``
    is 32766; SQL Server takes 2100. PyMySQL and mysqlclient interpolate parameters on the client, so
    MySQL and MariaDB have no count limit (only ``max_allowed_packet``).
    """
    return _BIND_LIMITS.get(dialect or "", 65_535)


_BIND_LIMITS: dict[str, int | None] = {"postgres": 65_535, "sqlite": 32_766, "tsql": 2_100, "mysql": None}


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
    import pyarrow as pa

    if not isinstance(precision, int) or not isinstance(scale, int) or precision <= 0 or not 0 <= scale <= precision:
        return None
    return pa.decimal128(precision, scale) if precision <= 38 else pa.decimal256(min(precision, 76), scale)


def _pg_type(d: Any) -> Any:
    import pyarrow as pa

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
    import pyarrow as pa

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
