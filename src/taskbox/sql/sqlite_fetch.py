"""Fetch and cache an untrusted SQLite database file: validators, a private cache root, counted caps.

Why: downloading a large database is the slow part of a SQLite task, so the file (once validated by
:func:`taskbox.sql.sqlite.open_read_only`) is kept in a per-container cache and reused by later runs
with the same source. A cache is only as good as the question "is this still the same file?" and the
answer "nobody else wrote this entry", so both are answered strictly here.

Invariants:
    * A local uncompressed file is used in place; its check record is kept per (path, device, inode,
      size, change times in ns), so an edited or replaced file is checked again.
    * Everything else is downloaded with the received bytes counted against ``max_download_bytes``
      (:func:`taskbox.storage.download`), whatever size the store reported; over the cap is
      ``DatabaseRejected`` (USER) and nothing is left behind.
    * Cache entries are keyed by (source, compressed) and reused only while the source's strong
      validator (:func:`taskbox.storage.info`: ETag, GCS generation, S3 version id, SHA-256 of a local
      file) equals the recorded one; the record of the integrity check lives in the entry, under the
      same validator. A source without a strong validator is never served from the cache, and one whose
      validator changed during the download is used once and not cached.
    * Entries appear atomically (a staging directory renamed into place, under a lock).
    * The cache root and its parent (``TASKBOX_CACHE_DIR``, or ``<tmp>/taskbox-cache-<uid>``) must be
      directories owned by the current user with mode 0700, checked with ``lstat`` (a symbolic link is
      refused) before anything in them is read; they are created so. A root that fails is never read: a
      warning is logged and a private per-process directory is used instead. Entries and check records
      are trusted only when they are ours and not writable by others.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import stat
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from taskbox import settings, storage
from taskbox.errors import StorageTooLarge
from taskbox.sql.archives import ArchiveLimits, extract_single_file
from taskbox.sql.errors import DatabaseRejected

__all__ = ["CachedDatabase", "DatabaseCache", "FetchLimits", "cache_root", "fetch_database"]

log = logging.getLogger("taskbox.sql")


@dataclass(frozen=True)
class FetchLimits:
    """Caps for fetching a database.

    Attributes:
        max_download_bytes: Largest object downloaded: refused early from the size the store reports,
            and counted on the bytes received, so a server that under-reports is stopped at the cap.
        archive: Caps applied when unpacking a compressed database.

    """

    max_download_bytes: int = 8 * 1024**3
    archive: ArchiveLimits = ArchiveLimits()


def cache_root() -> str:
    """``$TASKBOX_CACHE_DIR/sqlite`` or ``<tmp>/taskbox-cache-<uid>/sqlite`` (trusted only once verified)."""
    base = settings.path("TASKBOX_CACHE_DIR") or os.path.join(tempfile.gettempdir(), f"taskbox-cache-{os.getuid()}")
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
    _key: tuple[str, bool, Any] | None = None

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


_fallback_root: str | None = None


def _private_fallback_root() -> str:
    """Return a fresh private directory for this process (mode 0700, removed at exit), for a refused root."""
    global _fallback_root
    if _fallback_root is None or not os.path.isdir(_fallback_root):
        import atexit

        _fallback_root = tempfile.mkdtemp(prefix="taskbox-cache-private-")
        atexit.register(shutil.rmtree, _fallback_root, True)
    return _fallback_root


def _untrusted(path: str, *, directory: bool, private: bool) -> str | None:
    """Say why ``path`` cannot be trusted, or return ``None`` if it can.

    Untrusted: not ours, a symbolic link (``lstat``: never followed), or writable by others (with
    ``private``: any access by others).
    """
    st = os.lstat(path)
    kind_ok = stat.S_ISDIR(st.st_mode) if directory else stat.S_ISREG(st.st_mode)
    if not kind_ok:
        return f"{path} is not a {'directory' if directory else 'regular file'} (a symbolic link is refused)"
    if st.st_uid != os.geteuid():
        return f"{path} is owned by uid {st.st_uid}, not by this user (uid {os.geteuid()})"
    mode = stat.S_IMODE(st.st_mode)
    if mode & (0o077 if private else 0o022):
        return f"{path} has mode {mode:04o}; it must be {'0700' if directory else '0600'}, private to this user"
    return None


def _open_private(path: str, flags: int) -> int:
    """``os.open`` with mode 0600, never following a symbolic link."""
    return os.open(path, flags | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)


class DatabaseCache:
    """A directory of downloaded databases, one entry per (source URI, compressed) pair.

    The root must be a directory owned by the current user with mode 0700 (it is created so). A root that
    exists with another owner, group or world access bits, or as a symbolic link, is refused: a warning
    is logged and a private temporary directory is used for this process instead, so a root planted by
    another local user is never read. An entry is reused only when its files are ours and private, its
    recorded validator equals the source's current strong validator, and its size is the recorded one.

    Args:
        root: The cache directory (default :func:`cache_root`; created on demand, mode 0700).

    """

    def __init__(self, root: str | None = None) -> None:
        self.root = root or cache_root()
        self._verified = False

    def _ready(self, *, create: bool) -> bool:
        """Verify the root (and its parent) before any use; ``False`` when it does not exist (and not ``create``)."""
        if self._verified:
            return True
        parent = os.path.dirname(os.path.abspath(self.root))
        try:
            if create:
                os.makedirs(os.path.dirname(parent), exist_ok=True)
                for directory in (parent, self.root):
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(directory, 0o700)
            elif not os.path.lexists(self.root):
                return False
            problem = _untrusted(parent, directory=True, private=True) or _untrusted(
                self.root, directory=True, private=True
            )
        except OSError as exc:
            problem = f"{self.root} cannot be used: {exc.strerror or exc}"
        if problem is not None:
            fallback = _private_fallback_root()
            log.warning(
                "the SQLite cache directory is refused (%s): using a private directory for this run instead (%s); "
                "fix it, or point TASKBOX_CACHE_DIR at a directory of your own with mode 0700",
                problem,
                fallback,
            )
            self.root = fallback
        self._verified = True
        return True

    def _entry(self, uri: str, compressed: bool) -> str:
        key = hashlib.sha256(json.dumps([uri, compressed]).encode()).hexdigest()
        return os.path.join(self.root, key)

    @contextlib.contextmanager
    def _lock(self, entry: str) -> Iterator[None]:
        self._ready(create=True)
        fd = _open_private(entry + ".lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def get(self, uri: str, compressed: bool, validator: str | None) -> CachedDatabase | None:
        """Return the cached entry for this source, if it is ours and its validator still matches.

        Args:
            uri: The source (a URI, or a local file's absolute path).
            compressed: The source is an archive.
            validator: The source's current strong validator; ``None`` never matches.

        """
        if validator is None or not self._ready(create=False):
            return None
        entry = self._entry(uri, compressed)
        path = os.path.join(entry, "database")
        meta_path = os.path.join(entry, "source.json")
        try:
            problem = (
                _untrusted(entry, directory=True, private=True)
                or _untrusted(meta_path, directory=False, private=False)
                or _untrusted(path, directory=False, private=False)
            )
            if problem is not None:
                log.warning("ignoring the SQLite cache entry for %s: %s", uri, problem)
                return None
            with open(meta_path) as fh:
                meta = json.load(fh)
            actual_size = os.lstat(path).st_size
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or meta.get("uri") != uri or meta.get("validator") != validator:
            return None
        if meta.get("size") != actual_size:
            return None
        return CachedDatabase(path, True, meta.get("checked") is True, self, (uri, compressed, validator))

    def put(self, uri: str, compressed: bool, validator: str, fill: Callable[[str], None]) -> CachedDatabase:
        """Create (or replace) the entry; ``fill(path)`` writes the database file to ``path``."""
        entry = self._entry(uri, compressed)
        with self._lock(entry):
            existing = self.get(uri, compressed, validator)
            if existing is not None:  # another process filled it while we waited
                return existing
            staging = tempfile.mkdtemp(prefix=".fill-", dir=self.root)
            try:
                database = os.path.join(staging, "database")
                fill(database)
                os.chmod(database, 0o600)
                _write_meta(staging, uri, validator, os.lstat(database).st_size, checked=False)
                if os.path.lexists(entry):
                    shutil.rmtree(entry, ignore_errors=True)
                os.replace(staging, entry)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
        return CachedDatabase(os.path.join(entry, "database"), False, False, self, (uri, compressed, validator))

    def mark_checked(self, uri: str, compressed: bool, validator: str) -> None:
        """Record that the entry passed validation, so later runs skip the integrity check."""
        entry = self._entry(uri, compressed)
        with self._lock(entry):
            if self.get(uri, compressed, validator) is not None:
                size = os.lstat(os.path.join(entry, "database")).st_size
                _write_meta(entry, uri, validator, size, checked=True)

    def discard(self, uri: str, compressed: bool) -> None:
        """Remove the entry (after it failed validation)."""
        entry = self._entry(uri, compressed)
        with self._lock(entry):
            shutil.rmtree(entry, ignore_errors=True)

    # A local file used in place is not copied; only the record that it passed validation is kept, keyed
    # by its path, device, inode, size and change times (nanoseconds), so an edited or replaced file is
    # checked again. Records are trusted only when ours and private, like entries.

    def _check_record(self, key: str) -> str:
        return os.path.join(self.root, "checked-" + hashlib.sha256(key.encode()).hexdigest() + ".json")

    def is_checked(self, key: str, size: int) -> bool:
        """Whether the local file identified by ``key`` passed validation at this ``size``."""
        if not self._ready(create=False):
            return False
        record = self._check_record(key)
        try:
            if _untrusted(record, directory=False, private=False) is not None:
                return False
            with open(record) as fh:
                meta = json.load(fh)
        except (OSError, ValueError):
            return False
        return isinstance(meta, dict) and meta.get("key") == key and meta.get("size") == size

    def record_check(self, key: str, size: int) -> None:
        """Record that the local file identified by ``key`` passed validation."""
        self._ready(create=True)
        record = self._check_record(key)
        tmp = f"{record}.{os.getpid()}.tmp"
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as fh:
            json.dump({"key": key, "size": size}, fh)
        os.replace(tmp, record)

    def forget_check(self, key: str) -> None:
        """Drop the record for ``key``."""
        if not self._ready(create=False):
            return
        with contextlib.suppress(FileNotFoundError):
            os.remove(self._check_record(key))


def _write_meta(directory: str, uri: str, validator: str, size: int, *, checked: bool) -> None:
    tmp = os.path.join(directory, ".source.json.tmp")
    with contextlib.suppress(FileNotFoundError):
        os.remove(tmp)
    with os.fdopen(_open_private(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL), "w") as fh:
        json.dump({"uri": uri, "validator": validator, "size": size, "checked": checked}, fh)
    os.replace(tmp, os.path.join(directory, "source.json"))


class _SourceChanged(Exception):
    """The source's validator changed while it was being downloaded."""


def _download_capped(uri: str, path: str, limits: FetchLimits) -> None:
    try:
        storage.download(uri, path, max_bytes=limits.max_download_bytes)
    except StorageTooLarge:
        raise DatabaseRejected(
            f"the database at {uri} is over the limit of {limits.max_download_bytes} bytes (counted while "
            "downloading; raise max_download_bytes to allow it)"
        ) from None


def fetch_database(
    uri: str,
    *,
    compressed: bool,
    working_dir: str,
    limits: FetchLimits | None = None,
    cache: DatabaseCache | None = None,
) -> CachedDatabase:
    """Make the database at ``uri`` available as a local, unpacked file.

    A local uncompressed file is used in place. Anything else is downloaded (the reported size checked
    first, the received bytes counted), unpacked if ``compressed``, and kept in the cache for later runs
    under the source's strong validator (:func:`taskbox.storage.info`: ETag, generation, version id, or a
    content hash for local files). A source without one is downloaded every time, never cached; a source
    whose validator changed during the download is used for this run but not cached.

    Raises:
        DatabaseRejected: Too large, or a bad archive.
        StorageError: The download failed.

    """
    limits = limits or FetchLimits()
    cache = cache or DatabaseCache()
    if storage.is_local(uri) and not compressed:
        from taskbox.storage import local

        size = storage.size(uri)
        _check_reported_size(uri, size, limits)
        key = _local_key(uri)
        checked = cache.is_checked(key, size)
        return CachedDatabase(local.to_path(uri), False, checked, cache, (key, False, size), _in_place=True)
    source = storage.info(uri)
    _check_reported_size(uri, source.size, limits)
    key_uri = uri if not storage.is_local(uri) else _local_path(uri)
    hit = cache.get(key_uri, compressed, source.validator)
    if hit is not None:
        log.info("using the cached copy of the database %s", uri)
        return hit

    def fill(path: str) -> None:
        if not compressed:
            _download_capped(uri, path, limits)
        else:
            os.makedirs(working_dir, exist_ok=True)
            archive = os.path.join(working_dir, f"archive-{os.getpid()}-{threading.get_ident()}")
            try:
                _download_capped(uri, archive, limits)
                extract_single_file(archive, path, limits.archive)
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.remove(archive)

    def fill_unchanged(path: str) -> None:
        fill(path)
        if storage.info(uri).validator != source.validator:
            raise _SourceChanged

    log.info("fetching the database %s", uri)
    if source.validator is not None:
        try:
            return cache.put(key_uri, compressed, source.validator, fill_unchanged)
        except _SourceChanged:
            log.warning("the database %s changed while it was downloaded: fetching it again, uncached", uri)
    else:
        log.info("the database %s has no strong validator (ETag, generation, version): it is not cached", uri)
    os.makedirs(working_dir, exist_ok=True)
    path = os.path.join(working_dir, f"database-{os.getpid()}-{threading.get_ident()}")
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    try:
        fill(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)
        raise
    return CachedDatabase(path, False, False)


def _check_reported_size(uri: str, size: int | None, limits: FetchLimits) -> None:
    if size is not None and size > limits.max_download_bytes:
        raise DatabaseRejected(f"the database at {uri} is {size} bytes, over the limit of {limits.max_download_bytes}")


def _local_path(uri: str) -> str:
    from taskbox.storage import local

    return os.path.abspath(local.to_path(uri))


def _local_key(uri: str) -> str:
    path = _local_path(uri)
    st = os.stat(path)
    return f"{path}#{st.st_dev}:{st.st_ino}:{st.st_mtime_ns}:{st.st_ctime_ns}"
