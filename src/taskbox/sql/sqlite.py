"""Fetch, cache and open an untrusted SQLite database file, read-only.

Why: a SQLite task's database is a file from anywhere (the image, a bucket, an http URL). SQLite's own
guidance for untrusted files (sqlite.org/security.html) is: open it read-only, do not let the schema
run code (``trusted_schema=OFF``, defensive mode), bound the work a statement may do, and check the
file's integrity before use. Downloading a large database is the slow part of such a task, so the
validated file is kept in a per-container cache and reused by later runs with the same source.

Invariants:
    * The connection is ``file:...?mode=ro&immutable=1`` with ``query_only=ON``,
      ``trusted_schema=OFF``, ``SQLITE_DBCONFIG_DEFENSIVE`` (Python 3.12+), and an authorizer that
      allows only reading: SELECT, reads of columns, functions (not ``load_extension``), recursive CTEs
      and a few read-only introspection pragmas. ATTACH, writes and schema changes are denied.
    * A progress handler stops a statement once its deadline passes or the run is cancelled.
    * A file is used only after: the SQLite header check, ``PRAGMA quick_check`` returning ``ok`` and
      (unless allowed) finding no triggers. Fetching and caching (strong validators, a private cache
      root, caps counted on received bytes) are :mod:`taskbox.sql.sqlite_fetch`'s, re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pathlib
import shutil
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from taskbox.errors import Terminated
from taskbox.sql.errors import DatabaseRejected, StatementTimeout
from taskbox.sql.sqlite_fetch import CachedDatabase, DatabaseCache, FetchLimits, cache_root, fetch_database

__all__ = [
    "CachedDatabase",
    "DatabaseCache",
    "FetchLimits",
    "ReadOnlyConnection",
    "cache_root",
    "fetch_database",
    "open_read_only",
]

log = logging.getLogger("taskbox.sql")

SQLITE_HEADER = b"SQLite format 3\x00"
PROGRESS_STEPS = 10_000  # virtual-machine instructions between deadline checks

# Pragmas a query may read: introspection pragmas whose argument names a table or index, and value pragmas
# without an argument (with one they would set the value). All others are denied.
_TABLE_PRAGMAS = frozenset({"table_info", "table_xinfo", "index_list", "index_info", "index_xinfo", "foreign_key_list"})
_VALUE_PRAGMAS = frozenset(
    {
        "table_list",
        "collation_list",
        "function_list",
        "pragma_list",
        "user_version",
        "schema_version",
        "page_count",
        "page_size",
        "encoding",
        "freelist_count",
        "application_id",
    }
)
_DENIED_FUNCTIONS = frozenset({"load_extension", "fts3_tokenizer", "readfile", "writefile", "edit"})


# ------------------------------------------------------------------------------------------ opening


def _authorizer(action: int, arg1: str | None, arg2: str | None, db: str | None, trigger: str | None) -> int:
    if action in (sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE):
        return sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_FUNCTION:
        return sqlite3.SQLITE_DENY if (arg2 or "").lower() in _DENIED_FUNCTIONS else sqlite3.SQLITE_OK
    if action == sqlite3.SQLITE_PRAGMA:
        pragma = (arg1 or "").lower()
        allowed = pragma in _TABLE_PRAGMAS or (pragma in _VALUE_PRAGMAS and arg2 is None)
        return sqlite3.SQLITE_OK if allowed else sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_DENY


class ReadOnlyConnection:
    """A read-only :class:`sqlite3.Connection` with a per-statement deadline.

    Use :meth:`deadline` around each statement (execution and fetching).

    Args:
        conn: The connection.
        path: The file it reads: the database itself, or a private snapshot of it (see
            :func:`open_read_only`). Anything else that reads the database (the ADBC child) reads this.
        snapshot_dir: The snapshot's private directory, removed by :meth:`close`.

    """

    def __init__(self, conn: sqlite3.Connection, path: str = "", snapshot_dir: str | None = None) -> None:
        self.conn = conn
        self.path = path
        self.snapshot_dir = snapshot_dir
        self._deadline: float | None = None
        self._cancelled: Any = None
        self.timed_out = False
        self.was_cancelled = False
        conn.set_progress_handler(self._progress, PROGRESS_STEPS)

    def _progress(self) -> int:
        if self._cancelled is not None and self._cancelled.is_set():
            self.was_cancelled = True
            return 1
        if self._deadline is not None and time.monotonic() > self._deadline:
            self.timed_out = True
            return 1
        return 0

    @contextlib.contextmanager
    def deadline(self, seconds: float, cancelled: Any = None) -> Iterator[None]:
        """Interrupt any statement running after ``seconds`` (or when ``cancelled`` is set)."""
        self._deadline = time.monotonic() + seconds
        self._cancelled = cancelled
        self.timed_out = self.was_cancelled = False
        try:
            yield
        except sqlite3.DatabaseError as exc:
            # The SIGTERM handler sets ``cancelled``, then raises Terminated wherever the main thread is:
            # inside a callback sqlite3 swallows that exception and reports "interrupted" (progress
            # handler) or "not authorized" (authorizer, while the statement is being prepared).
            if self.was_cancelled or (cancelled is not None and cancelled.is_set()):
                raise Terminated("the query was interrupted: the task is being terminated") from None
            if self.timed_out and isinstance(exc, sqlite3.OperationalError):
                raise StatementTimeout(f"the query ran longer than the statement timeout of {seconds:g} s") from exc
            raise
        finally:
            self._deadline = None

    def check_statement(self, sql: str, params: Any) -> None:
        """Prepare ``sql`` under the authorizer and stop before it does any work.

        SQLite calls the authorizer while it prepares a statement, so this proves the statement reads
        only, names existing tables and columns, and binds ``params``, at the cost of a prepare. The
        progress handler interrupts the first step.

        Raises:
            sqlite3.Error: What preparing the statement raised (denied, syntax, unknown names...).

        """
        self.conn.set_progress_handler(_stop_at_once, 1)
        try:
            self.conn.execute(sql, params).close()
        except sqlite3.OperationalError as exc:
            if str(exc) != "interrupted":
                raise
        finally:
            self.conn.set_progress_handler(self._progress, PROGRESS_STEPS)

    @property
    def snapshot(self) -> bool:
        """Whether :attr:`path` is a private snapshot (its check says nothing about the file itself)."""
        return self.snapshot_dir is not None

    def close(self) -> None:
        """Close the connection (and remove the snapshot)."""
        try:
            self.conn.close()
        finally:
            if self.snapshot_dir is not None:
                shutil.rmtree(self.snapshot_dir, ignore_errors=True)


def _stop_at_once() -> int:
    return 1


def _check_header(path: str) -> None:
    try:
        with open(path, "rb") as fh:
            header = fh.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise DatabaseRejected(f"the database file cannot be read: {exc.strerror}") from None
    if header != SQLITE_HEADER:
        raise DatabaseRejected("the file is not a SQLite 3 database (its header does not match)")


def open_read_only(
    path: str, *, check: bool = True, allow_triggers: bool = False, snapshot_dir: str | None = None
) -> ReadOnlyConnection:
    """Open ``path`` as an untrusted, read-only database.

    A file opened ``immutable`` is read without its write-ahead log or rollback journal. So when
    ``<file>-wal`` or ``<file>-journal`` exists, the database is first copied, as SQLite itself reads
    it (log included, under its locks), into a private snapshot that is opened instead (see
    :mod:`taskbox.sql.sqlite_snapshot`; :attr:`ReadOnlyConnection.path` names the file read). A snapshot
    is always checked (``check`` is ignored): a check recorded for the file says nothing about its log.

    Args:
        path: Local database file.
        check: Run ``PRAGMA quick_check`` and the trigger check (skip for a file already checked).
        allow_triggers: Accept a database that defines triggers.
        snapshot_dir: Where a snapshot is made (the run's working directory; default the temp directory).

    Raises:
        DatabaseRejected: Not a database, corrupt, (unless allowed) defines triggers, or a hot
            rollback journal beside it.
        TransactionConflict: A writer kept the database locked.
        DatabaseUnavailable: The snapshot could not be written.

    """
    from taskbox.sql.sqlite_snapshot import make_snapshot

    _check_header(path)
    snapshot_dir = make_snapshot(path, snapshot_dir)
    target = path if snapshot_dir is None else os.path.join(snapshot_dir, "database")
    check = check or snapshot_dir is not None
    uri = pathlib.Path(os.path.abspath(target)).as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        if snapshot_dir is not None:
            shutil.rmtree(snapshot_dir, ignore_errors=True)
        raise DatabaseRejected(f"the database file cannot be opened: {exc}") from None
    try:
        if hasattr(conn, "setconfig"):  # Python 3.12+
            conn.setconfig(sqlite3.SQLITE_DBCONFIG_DEFENSIVE, True)  # type: ignore[attr-defined]
        conn.execute("PRAGMA trusted_schema = OFF")
        conn.execute("PRAGMA query_only = ON")
        conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        if check:
            _validate(conn, allow_triggers=allow_triggers)
        conn.set_authorizer(_authorizer)
    except sqlite3.DatabaseError as exc:
        _close(conn, snapshot_dir)
        raise DatabaseRejected(f"the database file is not usable: {exc}") from None
    except BaseException:
        _close(conn, snapshot_dir)
        raise
    return ReadOnlyConnection(conn, target, snapshot_dir)


def _close(conn: sqlite3.Connection, snapshot_dir: str | None) -> None:
    conn.close()
    if snapshot_dir is not None:
        shutil.rmtree(snapshot_dir, ignore_errors=True)


def _validate(conn: sqlite3.Connection, *, allow_triggers: bool) -> None:
    result = [row[0] for row in conn.execute("PRAGMA quick_check(5)")]
    if result != ["ok"]:
        raise DatabaseRejected(f"the database failed SQLite's integrity check: {'; '.join(map(str, result))}")
    if not allow_triggers:
        triggers = [row[0] for row in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger' LIMIT 5")]
        if triggers:
            raise DatabaseRejected(
                f"the database defines triggers ({', '.join(map(repr, triggers))}); a database file from outside "
                "is untrusted and a read-only query never needs triggers, so it is refused. Set allow_triggers: "
                "true in the task config if the file is trusted"
            )
