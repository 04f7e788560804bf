"""A private, consistent snapshot of a SQLite database that has a write-ahead log or journal beside it.

Why: :func:`taskbox.sql.sqlite.open_read_only` opens an untrusted file ``immutable``: no locks, no
``-shm`` file, nothing written beside it, which also works in a read-only image. But an immutable
reader ignores ``<file>-wal``, so rows a writer committed there without a checkpoint are silently
missing, and it reads a file left half-written by a writer that died mid-transaction as if it were
whole. When such a file is present, SQLite itself reads the database (log included, under its
locks) and the committed state is copied with the backup API into a private file, which is then
opened ``immutable`` like any other.

Invariants:
    * A snapshot is made whenever ``-wal`` or ``-journal`` exists beside the real path (symlinks
      resolved, as SQLite resolves them). It is copied in one read transaction opened ``mode=ro``,
      so it is one committed state, and it lives in a new 0700 directory under the caller's
      directory (the run's working directory); the caller removes that directory.
    * The source is never written and nothing is rolled back: a hot journal (a writer died
      mid-transaction) needs a rollback, which a read-only connection refuses
      (``SQLITE_READONLY_ROLLBACK``), so it is a USER error naming the journal.
    * A log without ``-shm`` (its writer is gone) is read from a private copy of the file and its
      log, so nothing is created beside the database; if the files change while they are copied (a
      writer started), the database is read in place instead, under the writer's locks.
    * A writer holding its lock longer than :data:`BUSY_TIMEOUT_S` is a recoverable
      :class:`~taskbox.sql.errors.TransactionConflict`; a failure to write the snapshot is a recoverable
      :class:`~taskbox.sql.errors.DatabaseUnavailable`; any other failure to read the file with its log is
      :class:`~taskbox.sql.errors.DatabaseRejected`.
"""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import sqlite3
import tempfile
import time

from taskbox.sql.errors import DatabaseRejected, DatabaseUnavailable, TransactionConflict

__all__ = ["BUSY_TIMEOUT_S", "SIDECARS", "has_sidecar", "make_snapshot"]

log = logging.getLogger("taskbox.sql")

SIDECARS = ("-wal", "-journal")
BUSY_TIMEOUT_S = 10.0


def has_sidecar(path: str) -> bool:
    """Whether a write-ahead log or rollback journal exists beside the database at ``path``."""
    real = os.path.realpath(path)
    return any(os.path.lexists(real + suffix) for suffix in SIDECARS)


def make_snapshot(path: str, directory: str | None) -> str | None:
    """Copy the committed state of the database at ``path`` into a new private directory.

    Args:
        path: The database file (already known to start with the SQLite header).
        directory: Where the private directory is created (``None``: the temp directory).

    Returns:
        The private directory, holding the snapshot as ``database``; ``None`` when there is no log or
        journal beside ``path`` (the file alone is the database).

    Raises:
        DatabaseRejected: A hot journal, or the file cannot be read with its log.
        TransactionConflict: A writer kept the database locked.
        DatabaseUnavailable: The snapshot could not be written.

    """
    if not has_sidecar(path):
        return None
    real = os.path.realpath(path)
    if directory is not None:
        os.makedirs(directory, exist_ok=True)
    private = tempfile.mkdtemp(prefix="sqlite-snapshot-", dir=directory)
    try:
        present = [s for s in SIDECARS if os.path.lexists(real + s)]
        log.info("reading the database %s with its %s", path, " and ".join(present))
        source = real
        if "-wal" in present and not os.path.lexists(real + "-shm"):
            source = _private_copy(real, present, os.path.join(private, "copy")) or real
        _backup(source, os.path.join(private, "database"), real)
        shutil.rmtree(os.path.join(private, "copy"), ignore_errors=True)
    except BaseException:
        shutil.rmtree(private, ignore_errors=True)
        raise
    return private


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _private_copy(real: str, present: list[str], directory: str) -> str | None:
    """Copy the file and its log/journal (never ``-shm``); ``None`` if any of them changed meanwhile."""
    names = ["", *present]
    before = [_identity(real + name) for name in names]
    os.mkdir(directory, 0o700)
    for name in names:
        shutil.copyfile(real + name, os.path.join(directory, "database" + name))
    if [_identity(real + name) for name in names] != before or os.path.lexists(real + "-shm"):
        return None
    return os.path.join(directory, "database")


def _backup(source: str, target: str, real: str) -> None:
    """Copy the committed state of ``source`` (opened read-only, log included) into the new file ``target``."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    uri = pathlib.Path(source).as_uri() + "?mode=ro"
    try:
        src = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=BUSY_TIMEOUT_S)
    except sqlite3.Error as exc:
        raise _error(exc, real) from None
    try:
        src.execute("PRAGMA trusted_schema = OFF")
        src.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_schema").fetchone()  # takes the read lock: one committed state
        dst = sqlite3.connect(target, isolation_level=None)
        try:
            src.backup(dst, progress=lambda *_: _check_deadline(deadline))
        finally:
            dst.close()
    except sqlite3.Error as exc:
        raise _error(exc, real) from None
    finally:
        src.close()


def _check_deadline(deadline: float) -> None:
    """Stop a backup that :mod:`sqlite3` would otherwise retry for ever while the source stays locked."""
    if time.monotonic() > deadline:
        raise sqlite3.OperationalError("database is locked")


def _error(exc: sqlite3.Error, real: str) -> Exception:
    name = getattr(exc, "sqlite_errorname", "") or ""
    base = os.path.basename(real)
    if name == "SQLITE_READONLY_ROLLBACK":
        return DatabaseRejected(
            f"the database {base!r} has a hot rollback journal ({base}-journal): a writer stopped in the middle "
            "of a transaction, and only a rollback, which a read-only reader must not do, makes the file "
            "consistent again. Open it once with a writable SQLite connection (for example `sqlite3 "
            f"{base} 'PRAGMA quick_check'`), or remove the journal if that transaction does not matter"
        )
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")) or "locked" in str(exc).lower():
        return TransactionConflict(
            f"the database {base!r} stayed locked by a writer for more than {BUSY_TIMEOUT_S:g} s: {exc}"
        )
    if name.startswith(("SQLITE_FULL", "SQLITE_IOERR", "SQLITE_NOMEM")):
        return DatabaseUnavailable(f"the snapshot of the database {base!r} could not be written: {exc}")
    return DatabaseRejected(f"the database {base!r} cannot be read with its write-ahead log or journal: {exc}")
