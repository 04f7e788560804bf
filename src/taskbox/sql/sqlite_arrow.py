"""The fast path from a SQLite query to Parquet: the ADBC SQLite driver, in a forked child process.

Why: Python's :mod:`sqlite3` builds a tuple of Python objects for every row, and that alone takes
about 2.1 s for 1,000,000 rows of five columns (flytekit pays the same through pandas). The ADBC
SQLite driver (``adbc-driver-sqlite``, Apache Arrow) steps the statement in C and fills Arrow
record batches directly: the same rows take about 0.9 s, and written to Parquet by a second thread
while the next batches are read, about 0.8 s in all. The driver cannot cancel a running statement
(``AdbcStatementCancel`` is ``NOT_IMPLEMENTED`` in 1.13), so it runs in a child process forked for
the query, which the parent kills when the statement's deadline passes or the task is terminated.
The child also keeps a crash inside the driver away from the entrypoint, which must still write
``error.pb``.

Invariants:
    * Only a statement that passed :meth:`taskbox.sql.sqlite.ReadOnlyConnection.check_statement`
      (prepared under the read-only authorizer on a file that passed its integrity checks) runs here,
      with the same text and the same parameters (bound by position, in the order SQLite numbers
      named parameters: first appearance), on the same file opened ``mode=ro&immutable=1`` with
      ``query_only=ON`` and ``trusted_schema=OFF``: the file the checked connection reads
      (:attr:`~taskbox.sql.sqlite.ReadOnlyConnection.path`, a private snapshot when the database has
      a write-ahead log or journal). A file with ``-wal`` or ``-journal`` beside it is never read here,
      since an immutable reader would ignore them: :class:`Unsupported`.
    * The child writes one local staging file and nothing else; publishing is the caller's.
    * Timeout and termination are exact: the child is killed (``SIGKILL``) and waited for before
      :class:`~taskbox.sql.errors.StatementTimeout` or :class:`~taskbox.errors.Terminated` is raised.
    * Whatever this path would not do exactly as the :mod:`sqlite3` path raises :class:`Unsupported`
      before or instead of a result, and the caller runs the :mod:`sqlite3` path, whose behaviour
      and error messages are the reference: the driver not installed, a parameter other than
      ``None``/``int``/``float``/``str``/``bytes``, a column whose values do not fit the type
      inferred from its first rows, any failure in the child. A wrong result is never returned.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import pathlib
import select
import signal
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from taskbox.errors import Terminated
from taskbox.sql.errors import StatementTimeout

__all__ = ["Unsupported", "available", "stream_to_parquet"]

_BINDABLE = (type(None), int, float, str, bytes)
INFER_ROWS = 1024  # rows per driver batch: the rows both paths type the columns from
_POLL_S = 0.05
_MAX_REPORT = 1 << 20


class Unsupported(Exception):
    """This query cannot take the fast path; run it through :mod:`sqlite3` instead."""


def available() -> bool:
    """Whether the ADBC SQLite driver is installed (no import)."""
    return importlib.util.find_spec("adbc_driver_sqlite") is not None


def reference_schema(cursor: Any, columns: list[str]) -> Any:
    """The Arrow schema the :mod:`sqlite3` path gives a result, from its first :data:`INFER_ROWS` rows.

    Args:
        cursor: A :mod:`sqlite3` cursor that has just executed the statement.
        columns: Its column names.

    Raises:
        Unsupported: A column has only NULLs in these rows and more rows follow (the sqlite3 path
            would look further to type it).
        ResultShapeError: The rows mix types in a column (the sqlite3 path's own error).

    """
    from taskbox.sql.results import _Schema  # lazy: the reference's own inference

    rows = cursor.fetchmany(INFER_ROWS)
    schema = _Schema(columns, [])
    schema.observe(rows)
    more = len(rows) == INFER_ROWS
    if more and not all(schema.resolved):
        raise Unsupported("a column has only NULLs in the first rows")
    return schema.finish(more_rows=more)


def stream_to_parquet(
    path: str,
    sql: str,
    params: Mapping[str, Any],
    out: str,
    *,
    reference: Callable[[], Any],
    deadline: float,
    timeout_seconds: float,
    cancelled: Any = None,
    batch_rows: int = 65_536,
    compression: str = "snappy",
) -> tuple[int, list[str]]:
    """Run ``sql`` on the database file at ``path`` and write all its rows to the Parquet file ``out``.

    The driver types each column from its first batch and, unlike the :mod:`sqlite3` path, turns a
    column that mixes numbers and text there into text. So its batches hold :data:`INFER_ROWS` rows,
    and while the child reads, the parent computes the schema the :mod:`sqlite3` path would give from
    the same first rows (``reference``); the result is used only if the two agree. A type change
    after the first batch fails in the driver (then the :mod:`sqlite3` path runs).

    Args:
        path: The local, validated database file.
        sql: The statement (already checked by ``check_statement``).
        params: Named parameters in order of first appearance in ``sql``.
        out: Local Parquet file to write (the caller removes it on failure).
        reference: Returns the :mod:`sqlite3` path's schema (see :func:`reference_schema`); what it
            raises is raised (after the child is stopped).
        deadline: ``time.monotonic()`` value after which the statement is stopped.
        timeout_seconds: The configured timeout, for the message.
        cancelled: An event; when set, the statement is stopped with ``Terminated``.
        batch_rows: Rows per Parquet row group (at most).
        compression: Parquet codec.

    Returns:
        ``(row count, column names)``.

    Raises:
        Unsupported: Run the query through :mod:`sqlite3` instead.
        StatementTimeout: The deadline passed.
        Terminated: ``cancelled`` was set.

    """
    values = list(params.values())
    if not available() or any(type(v) not in _BINDABLE for v in values):  # bool is bound as sqlite3 binds it, below
        raise Unsupported
    from taskbox.sql.sqlite_snapshot import has_sidecar

    if has_sidecar(path):
        raise Unsupported("the file has a write-ahead log or journal beside it; only its snapshot may be read")
    values = [int(v) if isinstance(v, bool) else v for v in values]
    # Loaded before the fork, so no import runs in the child while another thread of the parent holds a lock.
    import adbc_driver_manager  # noqa: F401
    import adbc_driver_sqlite  # noqa: F401
    import pyarrow as pa
    import pyarrow.parquet

    bound = pa.record_batch([pa.array([v]) for v in values], names=list(params)) if values else None
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        os.close(read_fd)
        _child(write_fd, path, sql, bound, out, max(1, batch_rows), compression)
    os.close(write_fd)
    try:
        expected = reference()
    except BaseException:
        _kill(pid)
        os.close(read_fd)
        raise
    report = _wait(pid, read_fd, deadline, timeout_seconds, cancelled)
    if not report.get("ok"):
        raise Unsupported(report.get("error", "the fast path failed"))
    written = pyarrow.parquet.read_schema(out)
    if not written.equals(expected):
        raise Unsupported(f"the driver typed the result {written.types}, the sqlite3 path {expected.types}")
    return int(report["rows"]), [str(c) for c in report["columns"]]


def _wait(pid: int, fd: int, deadline: float, timeout_seconds: float, cancelled: Any) -> dict[str, Any]:
    """Collect the child's report while watching the deadline and the cancellation event."""
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            if cancelled is not None and cancelled.is_set():
                _kill(pid)
                raise Terminated("the query was interrupted: the task is being terminated")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                _kill(pid)
                raise StatementTimeout(f"the query ran longer than the statement timeout of {timeout_seconds:g} s")
            ready, _, _ = select.select([fd], [], [], min(_POLL_S, remaining))
            if not ready:
                continue
            chunk = os.read(fd, 65_536)
            if not chunk:
                break
            size += len(chunk)
            if size <= _MAX_REPORT:
                chunks.append(chunk)
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    try:
        report = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        report = {}
    if os.waitstatus_to_exitcode(status) != 0 and report.get("ok"):
        report = {"error": f"the child process ended with status {status}"}
    return report if isinstance(report, dict) else {}


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _child(fd: int, path: str, sql: str, bound: Any, out: str, batch_rows: int, compression: str) -> None:
    """Run in the forked child: write the Parquet file, report as JSON on ``fd``, and ``_exit``."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        rows, columns = _copy(path, sql, bound, out, batch_rows, compression)
        report = {"ok": True, "rows": rows, "columns": columns}
        code = 0
    except BaseException as exc:  # noqa: BLE001 - everything is reported to the parent
        from taskbox.redaction import redact  # lazy: only a failing child pays for it

        report = {"ok": False, "error": redact(f"{type(exc).__name__}: {exc}")[:4096]}  # redact, then cut
    try:
        os.write(fd, json.dumps(report).encode())
    finally:
        os._exit(code)


def _copy(path: str, sql: str, bound: Any, out: str, batch_rows: int, compression: str) -> tuple[int, list[str]]:
    """Read the statement's batches in a thread and write them to Parquet here."""
    import queue
    import threading

    import adbc_driver_manager
    import adbc_driver_sqlite
    import pyarrow as pa
    import pyarrow.parquet as pq

    uri = pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro&immutable=1"
    database = adbc_driver_sqlite.connect(uri)
    connection = adbc_driver_manager.AdbcConnection(database)
    statement = adbc_driver_manager.AdbcStatement(connection)
    for pragma in ("PRAGMA query_only = ON", "PRAGMA trusted_schema = OFF"):
        statement.set_sql_query(pragma)
        statement.execute_update()
    statement.set_options(**{"adbc.sqlite.query.batch_rows": str(INFER_ROWS)})
    statement.set_sql_query(sql)
    if bound is not None:
        statement.bind(bound)
    stream, _ = statement.execute_query()
    reader = pa.RecordBatchReader._import_from_c(stream.address)
    columns = list(reader.schema.names)
    if len(set(columns)) != len(columns):
        raise ValueError("duplicate column names")  # the sqlite3 path says which, as a USER error
    batches: Any = queue.Queue(maxsize=2)

    def read() -> None:
        try:
            for batch in reader:
                batches.put(batch)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer
            batches.put(exc)
            return
        batches.put(None)

    reading = threading.Thread(target=read, name="taskbox-adbc-read", daemon=True)
    reading.start()
    from taskbox.sql.results import dictionary_columns

    def next_batch() -> Any:
        batch = batches.get()
        if isinstance(batch, BaseException):
            raise batch
        if batch is not None:
            batch.validate(full=True)  # text that is not UTF-8 (a BLOB read as TEXT) fails here
        return batch

    rows = 0
    first = next_batch()
    group: list[Any] = [] if first is None else [first]
    dictionary = dictionary_columns(first) if first is not None else True
    with pq.ParquetWriter(out, reader.schema, compression=compression, use_dictionary=dictionary) as writer:

        def flush() -> None:
            table = pa.Table.from_batches(group, schema=reader.schema)
            writer.write_table(table, row_group_size=max(1, table.num_rows))
            group.clear()

        batch = first
        while batch is not None:
            rows += batch.num_rows
            if sum(b.num_rows for b in group) >= batch_rows:
                flush()
            batch = next_batch()
            if batch is not None:
                group.append(batch)
        if group or rows == 0:
            flush()
    reading.join()
    return rows, columns
