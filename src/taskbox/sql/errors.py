"""SQL errors and the translation of driver exceptions into them.

Why: whether Flyte retries a failed query depends only on the error's origin and recoverability, and
only the code that knows the driver can tell a syntax error (the author's, final) from a server that is
restarting (the platform's, worth a retry). Drivers report this differently: PostgreSQL through
SQLSTATE codes, MySQL/MariaDB through error numbers, sqlite3 through message text. :func:`translate`
reads all three.

Tree (all from :mod:`taskbox.errors`)::

    UserError
     ├── SqlRejected          the template or a value cannot be compiled safely (before any connection)
     ├── BindLimitExceeded    the values need more bind parameters than the driver takes (USER:InvalidInput)
     ├── QueryFailed          the database refused the statement: syntax, unknown table/column, constraint
     │    └── ReadOnlyViolation   a write in a read-only transaction
     ├── DatabaseRejected     an untrusted database file or archive failed validation
     └── ResultShapeError     the result does not fit the declared outputs (zero or several rows...)
    PlatformError
     ├── DatabaseUnavailable  connection refused or lost, server shutting down, too many connections
     ├── StatementTimeout     the statement ran longer than the configured timeout
     └── TransactionConflict  deadlock, serialization failure, lock wait timeout

Invariants:
    * Messages carry the driver's own message (never the SQLAlchemy wrapper's ``[SQL: ...]`` and
      ``[parameters: ...]`` lines, never a connection URL); secret values are redacted again by the
      entrypoint.
    * Anything not recognised is a recoverable SYSTEM error (flytekit's rule for unknown failures).
"""

from __future__ import annotations

from typing import Any

from taskbox.errors import InputError, PlatformError, TaskboxError, UserError

__all__ = [
    "BindLimitExceeded",
    "DatabaseRejected",
    "DatabaseUnavailable",
    "QueryFailed",
    "ReadOnlyViolation",
    "ResultShapeError",
    "SqlRejected",
    "StatementTimeout",
    "TransactionConflict",
    "translate",
]


class SqlRejected(UserError):
    """The query template, or an input value, cannot be turned into one safe statement."""

    code = "USER:SqlRejected"


class BindLimitExceeded(InputError):
    """The input values need more bind parameters than the database driver takes in one statement."""

    code = "USER:InvalidInput"


class QueryFailed(UserError):
    """The database refused the statement (syntax, unknown object, constraint, permission)."""

    code = "USER:QueryFailed"


class ReadOnlyViolation(QueryFailed):
    """A statement tried to write in a read-only transaction (or in an untrusted SQLite file)."""

    code = "USER:ReadOnlyViolation"


class DatabaseRejected(UserError):
    """An untrusted database file or archive failed validation (traversal, size, triggers...)."""

    code = "USER:DatabaseRejected"


class ResultShapeError(UserError):
    """The query's result does not fit the declared outputs."""

    code = "USER:ResultShape"


class DatabaseUnavailable(PlatformError):
    """The database could not be reached, or went away during the query."""

    code = "SYSTEM:DatabaseUnavailable"


class StatementTimeout(PlatformError):
    """The statement ran longer than the configured timeout and was cancelled."""

    code = "SYSTEM:StatementTimeout"


class TransactionConflict(PlatformError):
    """Deadlock, serialization failure or lock timeout: another transaction was in the way."""

    code = "SYSTEM:TransactionConflict"


# PostgreSQL SQLSTATE -> error class. Exact codes first, then the two-character class.
_PG_EXACT: dict[str, type[TaskboxError]] = {
    "25006": ReadOnlyViolation,  # read_only_sql_transaction
    "57014": StatementTimeout,  # query_canceled (statement_timeout)
    "55P03": TransactionConflict,  # lock_not_available (lock_timeout)
    "40001": TransactionConflict,  # serialization_failure
    "40P01": TransactionConflict,  # deadlock_detected
    "57P01": DatabaseUnavailable,  # admin_shutdown
    "57P02": DatabaseUnavailable,  # crash_shutdown
    "57P03": DatabaseUnavailable,  # cannot_connect_now
    "57P05": DatabaseUnavailable,  # idle_session_timeout
    "25P03": StatementTimeout,  # idle_in_transaction_session_timeout
}
_PG_CLASS: dict[str, type[TaskboxError]] = {
    "08": DatabaseUnavailable,  # connection exception
    "53": DatabaseUnavailable,  # insufficient resources
    "58": DatabaseUnavailable,  # system error
    "40": TransactionConflict,  # transaction rollback
    "42": QueryFailed,  # syntax error or access rule violation
    "22": QueryFailed,  # data exception
    "23": QueryFailed,  # integrity constraint violation
    "0A": QueryFailed,  # feature not supported
    "21": QueryFailed,  # cardinality violation
    "25": QueryFailed,  # invalid transaction state
    "28": QueryFailed,  # invalid authorization specification (wrong password)
    "2B": QueryFailed,
    "2D": QueryFailed,
    "38": QueryFailed,  # external routine exception
    "39": QueryFailed,
    "3D": QueryFailed,  # invalid catalog name (unknown database)
    "3F": QueryFailed,  # invalid schema name
    "44": QueryFailed,  # with check option violation
    "P0": QueryFailed,  # PL/pgSQL raise
}

# MySQL / MariaDB error numbers -> error class.
_MYSQL: dict[int, type[TaskboxError]] = {
    1792: ReadOnlyViolation,  # ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
    1290: ReadOnlyViolation,  # ER_OPTION_PREVENTS_STATEMENT (--read-only)
    3024: StatementTimeout,  # ER_QUERY_TIMEOUT (MySQL max_execution_time)
    1969: StatementTimeout,  # ER_STATEMENT_TIMEOUT (MariaDB max_statement_time)
    1317: StatementTimeout,  # ER_QUERY_INTERRUPTED
    1213: TransactionConflict,  # ER_LOCK_DEADLOCK
    1205: TransactionConflict,  # ER_LOCK_WAIT_TIMEOUT
    1040: DatabaseUnavailable,  # ER_CON_COUNT_ERROR (too many connections)
    1053: DatabaseUnavailable,  # ER_SERVER_SHUTDOWN
    1077: DatabaseUnavailable,  # ER_NORMAL_SHUTDOWN
    1152: DatabaseUnavailable,  # ER_ABORTING_CONNECTION
    1927: DatabaseUnavailable,  # ER_CONNECTION_KILLED
    2002: DatabaseUnavailable,  # CR_CONNECTION_ERROR
    2003: DatabaseUnavailable,  # CR_CONN_HOST_ERROR (connection refused)
    2006: DatabaseUnavailable,  # CR_SERVER_GONE_ERROR
    2013: DatabaseUnavailable,  # CR_SERVER_LOST
    2055: DatabaseUnavailable,  # CR_SERVER_LOST_EXTENDED
}

# libpq connection failures (no SQLSTATE) that retrying cannot fix.
_PG_CONNECT_USER_ERRORS = (
    "authentication failed",
    "no pg_hba.conf entry",
    "does not exist",
    "no password supplied",
    "permission denied",
)

# sqlite3 message fragments (lower case) -> error class, checked in order.
_SQLITE: tuple[tuple[str, type[TaskboxError]], ...] = (
    ("interrupted", StatementTimeout),
    ("not authorized", ReadOnlyViolation),
    ("authorization denied", ReadOnlyViolation),
    ("readonly database", ReadOnlyViolation),
    ("attempt to write", ReadOnlyViolation),
    ("query_only", ReadOnlyViolation),
    ("database is locked", TransactionConflict),
    ("database table is locked", TransactionConflict),
    ("disk i/o error", DatabaseUnavailable),
    ("unable to open database", DatabaseUnavailable),
    ("file is not a database", DatabaseRejected),
    ("malformed", DatabaseRejected),
)


def _driver_error(exc: BaseException) -> BaseException:
    """Return the DBAPI exception under SQLAlchemy's wrapper (``exc.orig``), or ``exc`` itself."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def _driver_message(err: BaseException) -> str:
    diag = getattr(err, "diag", None)  # psycopg: the server's primary message and detail
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    if primary:
        detail = getattr(diag, "message_detail", None)
        hint = getattr(diag, "message_hint", None)
        return " ".join(
            p for p in (primary, f"DETAIL: {detail}" if detail else "", f"HINT: {hint}" if hint else "") if p
        )
    args: tuple[Any, ...] = tuple(getattr(err, "args", ()))
    if len(args) == 2 and isinstance(args[0], int) and isinstance(args[1], str):  # PyMySQL (errno, message)
        return f"({args[0]}) {args[1]}"
    return str(err).strip() or type(err).__name__


def _classify(err: BaseException) -> type[TaskboxError] | None:
    module = type(err).__module__
    args = getattr(err, "args", ())
    sqlstate = getattr(err, "sqlstate", None) or getattr(err, "pgcode", None)
    if module.startswith(("psycopg", "psycopg2")) and isinstance(sqlstate, str) and sqlstate:
        return _PG_EXACT.get(sqlstate) or _PG_CLASS.get(sqlstate[:2])
    if module.startswith(("pymysql", "MySQLdb")):  # error numbers, not SQLSTATEs (PyMySQL sets a generic one)
        if args and isinstance(args[0], int):
            known = _MYSQL.get(args[0])
            if known is not None:
                return known
            return QueryFailed if 1000 <= args[0] < 2000 or 3000 <= args[0] < 5000 else DatabaseUnavailable
        return None
    if module == "sqlite3":
        text = str(err).lower()
        for fragment, cls in _SQLITE:
            if fragment in text:
                return cls
        name = type(err).__name__
        if name in ("IntegrityError", "ProgrammingError", "DataError", "OperationalError", "Warning", "DatabaseError"):
            return QueryFailed  # syntax errors, unknown tables and columns, constraints
        return None
    name = type(err).__name__
    if name in ("OperationalError",) and module.startswith("psycopg"):
        # No SQLSTATE: the connection itself failed. Wrong credentials or names are the task's to fix;
        # refused, reset or unresolvable connections may pass.
        text = str(err).lower()
        if any(f in text for f in _PG_CONNECT_USER_ERRORS):
            return QueryFailed
        return DatabaseUnavailable
    if name in ("ProgrammingError", "IntegrityError", "DataError"):
        return QueryFailed
    return None


def translate(exc: BaseException, *, what: str = "query") -> TaskboxError:
    """Translate a driver (or SQLAlchemy-wrapped) exception into a taskbox error.

    Args:
        exc: The exception the driver raised.
        what: What was being done, for the message ("query", "connect", ...).

    Returns:
        A :class:`QueryFailed`, :class:`ReadOnlyViolation`, :class:`StatementTimeout`,
        :class:`DatabaseUnavailable`, :class:`TransactionConflict` or :class:`DatabaseRejected`;
        an unknown failure becomes a recoverable ``PlatformError``.

    """
    if isinstance(exc, TaskboxError):
        return exc
    err = _driver_error(exc)
    if isinstance(err, TimeoutError):
        return StatementTimeout(f"{what} timed out: {_driver_message(err)}")
    if isinstance(err, (ConnectionError, OSError)) and not type(err).__module__.startswith(("sqlite3", "psycopg")):
        return DatabaseUnavailable(f"{what} failed: cannot reach the database: {_driver_message(err)}")
    cls = _classify(err)
    message = _driver_message(err)
    if cls is None:
        return PlatformError(f"{what} failed ({type(err).__name__}): {message}", code="SYSTEM:DatabaseError")
    prefix = {
        StatementTimeout: f"{what} exceeded the statement timeout",
        ReadOnlyViolation: f"{what} tried to write in a read-only transaction",
        DatabaseUnavailable: f"{what} failed: the database is unavailable",
        TransactionConflict: f"{what} failed: conflict with another transaction",
    }.get(cls, f"{what} failed")
    return cls(f"{prefix}: {message}")
