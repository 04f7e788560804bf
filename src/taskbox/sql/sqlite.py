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
      (unless allowed) finding no triggers. A cached file carries the record of those checks.
    * A local file used in place is checked once per (path, inode, size, change times): the record of
      the check is kept in the cache, not the file.
    * Cache entries appear atomically (temporary directory renamed into place, under a lock) and are
      reused only while the source's size is unchanged.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import pathlib
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from taskbox import storage
from taskbox.errors import Terminated
from taskbox.sql.archives import ArchiveLimits, extract_single_file
from taskbox.sql.errors import DatabaseRejected, StatementTimeout

__all__ = ["DatabaseCache", "FetchLimits", "ReadOnlyConnection", "fetch_database", "open_read_only"]

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


@dataclass(frozen=True)
class FetchLimits:
    """Caps for fetching a database.

    Attributes:
        max_download_bytes: Largest object downloaded (checked with a HEAD before downloading).
        archive: Caps applied when unpacking a compressed database.

    """

    max_download_bytes: int = 8 * 1024**3
    archive: ArchiveLimits = ArchiveLimits()


def cache_root() -> str:
    """``$TASKBOX_CACHE_DIR/sqlite`` or ``<tmp>/taskbox-cache-<uid>/sqlite``."""
    base = os.environ.get("TASKBOX_CACHE_DIR") or os.path.join(tempfile.gettempdir(), f"taskbox-cache-{os.getuid()}")
    return os.path.join(base, "sqlite")


@dataclass(frozen=True)
class CachedDatabase:
    """A local database file, possibly a cache entry.

    Attributes:
        path: The local file.
        cached: It was already in the cache (no download this run).
        checked: It passed validation in an earlier run.

    """

    path: str
    cached: bool
    checked: bool
    _cache: DatabaseCache | None = None
    _key: tuple[str, bool, int] | None = None

    _in_place: bool = False

    def mark_checked(self) -> None:
        """Record that the file passed validation (a no-op outside the cache)."""
        if self._cache is None or self._key is None or self.checked:
            return
        if self._in_place:
            self._cache.record_check(self._key[0], self._key[2])
        else:
            self._cache.mark_checked(*self._key)

    def discard(self) -> None:
        """Drop the cache entry or check record (after the file failed validation)."""
        if self._cache is None or self._key is None:
            return
        if self._in_place:
            self._cache.forget_check(self._key[0])
        else:
            self._cache.discard(self._key[0], self._key[1])


class DatabaseCache:
    """A directory of downloaded databases, one entry per (source URI, compressed) pair.

    Args:
        root: The cache directory (created on demand, mode 0700).

    """

    def __init__(self, root: str | None = None) -> None:
        self.root = root or cache_root()

    def _entry(self, uri: str, compressed: bool) -> str:
        key = hashlib.sha256(json.dumps([uri, compressed]).encode()).hexdigest()
        return os.path.join(self.root, key)

    @contextlib.contextmanager
    def _lock(self, entry: str) -> Iterator[None]:
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        with open(entry + ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def get(self, uri: str, compressed: bool, source_size: int) -> CachedDatabase | None:
        """Return the cached entry for this source, if its recorded size still matches."""
        entry = self._entry(uri, compressed)
        try:
            with open(os.path.join(entry, "source.json")) as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            return None
        path = os.path.join(entry, "database")
        if meta.get("uri") != uri or meta.get("size") != source_size or not os.path.isfile(path):
            return None
        return CachedDatabase(path, True, bool(meta.get("checked")), self, (uri, compressed, source_size))

    def put(self, uri: str, compressed: bool, source_size: int, fill: Callable[[str], None]) -> CachedDatabase:
        """Create (or replace) the entry; ``fill(path)`` writes the database file to ``path``."""
        entry = self._entry(uri, compressed)
        with self._lock(entry):
            existing = self.get(uri, compressed, source_size)
            if existing is not None:  # another process filled it while we waited
                return existing
            staging = tempfile.mkdtemp(prefix=".fill-", dir=self.root)
            try:
                fill(os.path.join(staging, "database"))
                _write_meta(staging, uri, source_size, checked=False)
                if os.path.isdir(entry):
                    shutil.rmtree(entry, ignore_errors=True)
                os.replace(staging, entry)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return CachedDatabase(os.path.join(entry, "database"), False, False, self, (uri, compressed, source_size))

    def mark_checked(self, uri: str, compressed: bool, source_size: int) -> None:
        """Record that the entry passed validation, so later runs skip the integrity check."""
        entry = self._entry(uri, compressed)
        with self._lock(entry):
            if self.get(uri, compressed, source_size) is not None:
                _write_meta(entry, uri, source_size, checked=True)

    def discard(self, uri: str, compressed: bool) -> None:
        """Remove the entry (after it failed validation)."""
        entry = self._entry(uri, compressed)
        with self._lock(entry):
            shutil.rmtree(entry, ignore_errors=True)

    # A local file used in place is not copied; only the record that it passed validation is kept, keyed
    # by its path, inode, size and change times, so an edited or replaced file is checked again.

    def _check_record(self, key: str) -> str:
        return os.path.join(self.root, "checked-" + hashlib.sha256(key.encode()).hexdigest() + ".json")

    def is_checked(self, key: str, size: int) -> bool:
        """Whether the local file identified by ``key`` passed validation at this ``size``."""
        try:
            with open(self._check_record(key)) as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            return False
        return meta.get("key") == key and meta.get("size") == size

    def record_check(self, key: str, size: int) -> None:
        """Record that the local file identified by ``key`` passed validation."""
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        record = self._check_record(key)
        tmp = f"{record}.{os.getpid()}.tmp"
        with open(tmp, "w") as fh:
            json.dump({"key": key, "size": size}, fh)
        os.replace(tmp, record)

    def forget_check(self, key: str) -> None:
        """Drop the record for ``key``."""
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._check_record(key))


def _write_meta(directory: str, uri: str, size: int, *, checked: bool) -> None:
    tmp = os.path.join(directory, ".source.json.tmp")
    with open(tmp, "w") as fh:
        json.dump({"uri": uri, "size": size, "checked": checked}, fh)
    os.replace(tmp, os.path.join(directory, "source.json"))


def fetch_database(
    uri: str,
    *,
    compressed: bool,
    working_dir: str,
    limits: FetchLimits | None = None,
    cache: DatabaseCache | None = None,
) -> CachedDatabase:
    """Make the database at ``uri`` available as a local, unpacked file.

    A local uncompressed file is used in place. Anything else is downloaded (after a size check),
    unpacked if ``compressed``, and kept in the cache for later runs.

    Raises:
        DatabaseRejected: Too large, or a bad archive.
        StorageError: The download failed.

    """
    limits = limits or FetchLimits()
    cache = cache or DatabaseCache()
    size = storage.size(uri)
    if size > limits.max_download_bytes:
        raise DatabaseRejected(f"the database at {uri} is {size} bytes, over the limit of {limits.max_download_bytes}")
    if storage.is_local(uri) and not compressed:
        from taskbox.storage import local  # noqa: PLC0415

        key = _local_key(uri)
        checked = cache.is_checked(key, size)
        return CachedDatabase(local.to_path(uri), False, checked, cache, (key, False, size), _in_place=True)
    key_uri = uri if not storage.is_local(uri) else _local_key(uri)
    hit = cache.get(key_uri, compressed, size)
    if hit is not None:
        log.info("using the cached copy of the database %s", uri)
        return hit

    def fill(path: str) -> None:
        if not compressed:
            storage.download(uri, path)
            return
        os.makedirs(working_dir, exist_ok=True)
        archive = os.path.join(working_dir, f"archive-{os.getpid()}-{threading.get_ident()}")
        try:
            storage.download(uri, archive)
            extract_single_file(archive, path, limits.archive)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(archive)

    log.info("fetching the database %s", uri)
    return cache.put(key_uri, compressed, size, fill)


def _local_key(uri: str) -> str:
    from taskbox.storage import local  # noqa: PLC0415

    path = os.path.abspath(local.to_path(uri))
    st = os.stat(path)
    return f"{path}#{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"


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
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
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

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


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


def open_read_only(path: str, *, check: bool = True, allow_triggers: bool = False) -> ReadOnlyConnection:
    """Open ``path`` as an untrusted, read-only database.

    Args:
        path: Local database file.
        check: Run ``PRAGMA quick_check`` and the trigger check (skip for a file already checked).
        allow_triggers: Accept a database that defines triggers.

    Raises:
        DatabaseRejected: Not a database, corrupt, or (unless allowed) defines triggers.

    """
    _check_header(path)
    uri = pathlib.Path(os.path.abspath(path)).as_uri() + "?mode=ro&immutable=1"
    try:
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
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
        conn.close()
        raise DatabaseRejected(f"the database file is not usable: {exc}") from None
    except BaseException:
        conn.close()
        raise
    return ReadOnlyConnection(conn)


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
