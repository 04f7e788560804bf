"""Fetch a code bundle and extract it safely, once, atomically.

Why: a code bundle is untrusted data from blob storage. ``tarfile.extractall`` writes ``../`` and
absolute members (CVE-2007-4559) and even the PEP 706 ``data`` filter has been bypassed (CVE-2025-4517
and friends), so every member is validated here first and the filter is only layer two. Pods restart
and several processes may start from the same bundle, so extraction happens under a lock, into a
staging directory, and a tree is trusted only when it carries the completion marker.

Invariants:
    * The compressed size is checked (``storage.size``) before anything is downloaded.
    * Every member is validated before any is written: regular files and directories only; no
      absolute names, ``..``, NUL, backslashes, non-UTF-8 names, names over 4096 bytes or duplicates;
      no links, devices, FIFOs or setuid/setgid bits; member count, running total of sizes and
      compression ratio capped (the checks run header by header, so a bomb aborts early). A truncated
      or corrupt gzip stream is rejected too.
    * Only shapes a file system can hold pass: no file used as a directory (``pkg`` then ``pkg/m.py``)
      or replaced by one (``pkg/m.py`` then ``pkg``), nothing under the completion marker's name, no
      name part over 255 bytes, at most :data:`MAX_DEPTH` levels, no path past ``PATH_MAX`` once
      joined to the staging directory, modification times a ``time_t`` holds, and at most
      ``max_members`` files and directories counting the directories names imply. So a bundle that
      cannot be written is ``BundleRejected`` before anything is written, never an ``OSError`` of its
      own making taken for the node's.
    * Extraction goes into a fresh ``mkdtemp`` staging directory next to ``dest`` (``filter="data"``
      where available), modes are normalised to 0o644/0o755, a marker file is written last, and the
      staging directory is renamed onto ``dest`` with ``os.replace``.
    * An ``fcntl.flock`` on ``.<dest>.lock`` next to ``dest`` serialises extractions: the first does
      the work, the others find the marker and return. A ``dest`` without the marker (or with another
      bundle's marker) and leftover staging/download files are removed and the work redone.
    * On any failure only taskbox's own temporary files are removed; nothing outside ``dest`` changes.
    * A file-system failure while extracting (disk full, quota, EIO) is raised as the ``OSError`` it
      is, never as ``BundleRejected``: the bundle is not at fault and a retry elsewhere may succeed.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator

from taskbox import storage
from taskbox.bundles.errors import BundleRejected
from taskbox.errors import StorageTooLarge

__all__ = ["MARKER", "Limits", "fetch_and_extract", "validate_archive"]

MARKER = ".taskbox-bundle-complete"
MAX_NAME_BYTES = 4096
MAX_PART_BYTES = 255  # NAME_MAX
MAX_DEPTH = 256  # levels of directories; os.walk and shutil.rmtree recurse once per level
PATH_MAX = 4096  # bytes with the terminating NUL (Linux)
_MAX_MTIME = 2**40  # seconds either side of 1970 (some 35,000 years): every time_t holds it
_ABSENT = object()
_CHUNK = 1024 * 1024
_TAR_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, UnicodeError)


def _environment_failure(exc: BaseException) -> bool:
    """True for an ``OSError`` of the file system (disk full, quota, EIO: it carries an errno).

    gzip and tarfile report a corrupt stream as ``OSError`` subclasses without an errno
    (``gzip.BadGzipFile``); those are the bundle's fault. A failure with an errno is the node's, and
    must keep its own (SYSTEM, retryable) classification instead of becoming ``BundleRejected``.
    """
    return isinstance(exc, OSError) and exc.errno is not None


log = logging.getLogger("taskbox")
_FILTER_ERRORS: tuple[type[Exception], ...] = (tarfile.FilterError,) if hasattr(tarfile, "FilterError") else ()


class Limits:
    """Caps applied to a bundle (keyword arguments override the defaults).

    (A plain class: importing ``dataclasses`` costs ~10 ms, paid by the first start of every pod.)

    Attributes:
        max_compressed: Largest bundle object (bytes) that is downloaded at all.
        max_total: Largest running total of member sizes (uncompressed bytes).
        max_members: Most members (files and directories).
        max_ratio: Largest uncompressed:compressed ratio, enforced once the total passes ``ratio_floor``.
        ratio_floor: Totals up to this many bytes are never rejected for their ratio.
        max_trailing: Most bytes accepted after the tar end-of-archive marker.

    """

    __slots__ = ("max_compressed", "max_members", "max_ratio", "max_total", "max_trailing", "ratio_floor")

    def __init__(
        self,
        *,
        max_compressed: int = 512 * 1024**2,
        max_total: int = 1024**3,
        max_members: int = 100_000,
        max_ratio: int = 200,
        ratio_floor: int = 64 * 1024**2,
        max_trailing: int = 16 * 1024**2,
    ) -> None:
        self.max_compressed = max_compressed
        self.max_total = max_total
        self.max_members = max_members
        self.max_ratio = max_ratio
        self.ratio_floor = ratio_floor
        self.max_trailing = max_trailing

    def _fields(self) -> tuple[int, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Limits) and self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash(self._fields())

    def __repr__(self) -> str:
        return "Limits(" + ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__) + ")"


def _check_name(name: str, seen: set[str]) -> str:
    """Validate one member name and return it normalised (no ``.`` parts, no trailing ``/``)."""
    if not name or "\x00" in name:
        raise BundleRejected(name, "empty name or NUL character")
    try:
        encoded = name.encode("utf-8")
    except UnicodeEncodeError:
        raise BundleRejected(name, "name is not valid UTF-8") from None
    if len(encoded) > MAX_NAME_BYTES:
        raise BundleRejected(name[:64] + "...", f"name longer than {MAX_NAME_BYTES} bytes")
    if "\\" in name:
        raise BundleRejected(name, "backslash in name")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise BundleRejected(name, "absolute name")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise BundleRejected(name, "name climbs out with '..'")
    normal = "/".join(parts)
    if not normal:
        raise BundleRejected(name, "name has no path")
    if parts[0] == MARKER:
        raise BundleRejected(name, "name is reserved for taskbox's completion marker")
    if len(parts) > MAX_DEPTH:
        raise BundleRejected(name[:64] + "...", f"name is {len(parts)} levels deep (at most {MAX_DEPTH})")
    if any(len(part.encode("utf-8")) > MAX_PART_BYTES for part in parts):
        raise BundleRejected(name[:64] + "...", f"a part of the name is longer than {MAX_PART_BYTES} bytes")
    if normal in seen:
        raise BundleRejected(name, "duplicate name")
    seen.add(normal)
    return normal


class _Validator:
    """Header-by-header validation state shared by both passes over an archive.

    Args:
        limits: Caps.
        compressed: The archive's size, for the ratio cap.
        root: The directory members are written under, for ``PATH_MAX``; ``None``: the names alone.

    """

    def __init__(self, limits: Limits, compressed: int, root: str | None = None) -> None:
        self.limits = limits
        self.compressed = max(compressed, 1)
        self.seen: set[str] = set()
        self.count = 0
        self.total = 0
        self.room = PATH_MAX - 1 - (len(os.fsencode(root)) + 1 if root else 0)
        self.tree: dict[str, object] = {}  # directory part -> its tree; a regular file -> None
        self.entries = 0  # files and directories, implied ones included

    def _add_entry(self, normal: str) -> None:
        self.entries += 1
        if self.entries > self.limits.max_members:
            raise BundleRejected(
                normal, f"more than {self.limits.max_members} files and directories (counting implied directories)"
            )

    def place(self, normal: str, is_dir: bool) -> None:
        """Check that ``normal`` fits the tree built so far (no file used as, or replacing, a directory)."""
        if len(normal.encode("utf-8")) > self.room:
            raise BundleRejected(normal[:64] + "...", f"path is too long once extracted (over {PATH_MAX} bytes)")
        parts = normal.split("/")
        node = self.tree
        for i, part in enumerate(parts[:-1]):
            child = node.get(part, _ABSENT)
            if child is None:
                raise BundleRejected(normal, f"{'/'.join(parts[: i + 1])!r} is a file, used as a directory")
            if child is _ABSENT:
                child = node[part] = {}
                self._add_entry(normal)
            node = child  # type: ignore[assignment]
        existing = node.get(parts[-1], _ABSENT)
        if existing is _ABSENT:
            node[parts[-1]] = {} if is_dir else None
            self._add_entry(normal)
        elif existing is None or not is_dir:  # a file twice, a directory then a file: _check_name's dup
            raise BundleRejected(normal, "a directory of that name is already in the archive")

    def check(self, member: tarfile.TarInfo) -> None:
        limits = self.limits
        self.count += 1
        if self.count > limits.max_members:
            raise BundleRejected(None, f"more than {limits.max_members} members")
        normal = _check_name(member.name, self.seen)
        if member.issym() or member.islnk():
            raise BundleRejected(normal, f"links are not allowed (-> {member.linkname!r})")
        if not (member.isreg() or member.isdir()):
            raise BundleRejected(normal, "not a regular file or directory (device, FIFO or other special member)")
        if member.mode & (stat.S_ISUID | stat.S_ISGID):
            raise BundleRejected(normal, "setuid or setgid bit")
        mtime = member.mtime
        if not isinstance(mtime, (int, float)) or not -_MAX_MTIME <= mtime <= _MAX_MTIME:  # NaN fails too
            raise BundleRejected(normal, f"modification time {mtime!r} is out of range")
        self.place(normal, member.isdir())
        if member.isreg():
            if member.size < 0:
                raise BundleRejected(normal, "negative size")
            self.total += member.size
            if self.total > limits.max_total:
                raise BundleRejected(normal, f"uncompressed size passes the limit of {limits.max_total} bytes")
            if self.total > limits.ratio_floor and self.total > limits.max_ratio * self.compressed:
                raise BundleRejected(normal, f"compression ratio over {limits.max_ratio}:1 (a decompression bomb?)")


def validate_archive(path: str, limits: Limits | None = None, *, root: str | None = None) -> list[str]:
    """Validate every member of a local ``tar.gz`` without writing anything.

    Args:
        path: Local path of the archive.
        limits: Caps; defaults to :class:`Limits`.
        root: The directory it will be extracted under (names must fit ``PATH_MAX`` below it), if known.

    Returns:
        The normalised member names, in archive order.

    Raises:
        BundleRejected: The first rule broken, or a truncated/corrupt archive.

    """
    limits = limits or Limits()
    validator = _Validator(limits, os.path.getsize(path), root)
    try:
        with tarfile.open(path, mode="r:gz") as tf:
            for member in tf:  # headers are read lazily: a bomb or a count bomb stops at its cap
                validator.check(member)
            _drain(tf, limits)
    except BundleRejected:
        raise
    except _TAR_ERRORS as exc:
        if _environment_failure(exc):
            raise
        raise BundleRejected(None, f"truncated or corrupt archive: {exc}") from None
    return sorted(validator.seen)


def _drain(tf: tarfile.TarFile, limits: Limits) -> None:
    """Read the gzip stream to its end so a truncated or corrupt tail is detected."""
    stream = tf.fileobj
    if stream is None:  # pragma: no cover - always set for files opened by path
        return
    left = limits.max_trailing
    while True:
        chunk = stream.read(min(_CHUNK, left + 1))
        if not chunk:
            return
        left -= len(chunk)
        if left < 0:
            raise BundleRejected(None, f"more than {limits.max_trailing} bytes after the end of the archive")


def _extract_into(path: str, staging: str, limits: Limits) -> None:
    """Second pass: re-validate each member and write it into ``staging``."""
    validator = _Validator(limits, os.path.getsize(path), staging)
    try:
        with tarfile.open(path, mode="r:gz") as tf:
            members = []
            for member in tf:
                validator.check(member)
                members.append(member)
            if hasattr(tarfile, "data_filter"):
                tf.extractall(staging, members=members, filter="data")
            else:  # Debian's 3.11.2 has no filter: write the validated members ourselves
                _extract_plain(tf, members, staging)
    except BundleRejected:
        raise
    except _FILTER_ERRORS as exc:
        refused = getattr(getattr(exc, "tarinfo", None), "name", None)
        raise BundleRejected(refused, f"refused by the data filter: {exc}") from None
    except _TAR_ERRORS as exc:
        if _environment_failure(exc):
            raise
        raise BundleRejected(None, f"truncated or corrupt archive: {exc}") from None


def _extract_plain(tf: tarfile.TarFile, members: list[tarfile.TarInfo], staging: str) -> None:
    """Write validated members without tarfile's extraction logic (no links, no owners, no modes)."""
    for member in members:
        target = os.path.join(staging, *[p for p in member.name.split("/") if p not in ("", ".")])
        if member.isdir():
            os.makedirs(target, exist_ok=True)
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        source = tf.extractfile(member)
        if source is None:
            raise BundleRejected(member.name, "cannot be read")
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
        mode = 0o700 if member.mode & 0o111 else 0o600  # _normalise reads the owner exec bit
        with source, os.fdopen(os.open(target, flags, mode), "wb") as out:
            shutil.copyfileobj(source, out, _CHUNK)


def _normalise(staging: str) -> None:
    """Set modes to 0o755/0o644 and check that only directories and regular files were written."""
    for dirpath, dirnames, filenames in os.walk(staging):
        os.chmod(dirpath, 0o755)
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode):
                continue
            if not stat.S_ISREG(st.st_mode):
                raise BundleRejected(os.path.relpath(path, staging), "extraction produced a non-regular file")
            os.chmod(path, 0o755 if st.st_mode & 0o100 else 0o644)


def _marker_ok(dest: str, name: str) -> bool:
    try:
        with open(os.path.join(dest, MARKER), encoding="utf-8") as fh:
            return fh.read() == name
    except OSError:
        return False


@contextlib.contextmanager
def _locked(lock_path: str) -> Iterator[None]:
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


def fetch_and_extract(uri: str, dest_dir: str, *, limits: Limits | None = None) -> str:
    """Download the bundle at ``uri`` and install its tree as ``dest_dir``, once.

    ``dest_dir`` is owned by taskbox: if it exists without this bundle's completion marker (a
    half-extracted leftover, or another bundle) it is removed and the bundle extracted again.

    Args:
        uri: The bundle (``*.tar.gz``) path or URI.
        dest_dir: The directory the bundle's contents become.
        limits: Caps; defaults to :class:`Limits`.

    Returns:
        The extracted directory (absolute ``dest_dir``).

    Raises:
        BundleRejected: The bundle breaks a rule or is corrupt (USER, non-recoverable).
        taskbox.errors.StorageError: The bundle cannot be fetched.
        OSError: The local file system failed (disk full, quota...); the caller classifies it.

    """
    limits = limits or Limits()
    dest = os.path.abspath(dest_dir)
    parent, base = os.path.split(dest)
    if not base:
        raise BundleRejected(None, f"destination {dest_dir!r} has no name")
    os.makedirs(parent, exist_ok=True)
    name = os.path.basename(uri.rstrip("/"))
    stage_prefix = f".{base}.staging-"
    download_prefix = f".{base}.download-"
    with _locked(os.path.join(parent, f".{base}.lock")):
        if _marker_ok(dest, name):
            return dest
        for entry in os.listdir(parent):  # leftovers of a crashed attempt, ours by name
            if entry.startswith((stage_prefix, download_prefix)):
                _remove(os.path.join(parent, entry))
        size = storage.size(uri)
        if size > limits.max_compressed:
            raise BundleRejected(None, f"bundle is {size} bytes, over the limit of {limits.max_compressed}")
        fd, archive = tempfile.mkstemp(prefix=download_prefix, dir=parent)
        os.close(fd)
        staging = None
        try:
            log.info("downloading code bundle %s (%d bytes)", uri, size)
            try:  # counted while received: the size reported above is a hint, not a promise
                storage.download(uri, archive, max_bytes=limits.max_compressed)
            except StorageTooLarge:
                raise BundleRejected(None, f"bundle is over the limit of {limits.max_compressed} bytes") from None
            validate_archive(archive, limits, root=os.path.join(parent, stage_prefix + "X" * 8))  # mkdtemp's
            staging = tempfile.mkdtemp(prefix=stage_prefix, dir=parent)
            _extract_into(archive, staging, limits)
            _normalise(staging)
            with open(os.path.join(staging, MARKER), "w", encoding="utf-8") as fh:
                fh.write(name)
                fh.flush()
                os.fsync(fh.fileno())
            if os.path.lexists(dest):
                _remove(dest)
            os.replace(staging, dest)
            staging = None
            log.info("extracted code bundle %s into %s", name, dest)
        finally:
            _remove(archive)
            if staging is not None:
                _remove(staging)
    return dest
