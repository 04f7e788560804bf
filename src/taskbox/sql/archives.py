"""Take the one database file out of an untrusted zip or tar archive.

Why: flytekit's SQLite3Task unpacks a compressed database with ``shutil.unpack_archive``, which writes
every member where its name says, silently skips zip members with ``..`` or a leading ``/``, follows
no size limit and only afterwards checks that exactly one file came out. A database archive is data
from anywhere (an http URL, a bucket someone else writes), so it is validated before anything is
written, and the single database is copied out by streaming, under a byte cap, to a name taskbox
chooses: no member name is ever used as a path.

Invariants:
    * Every member is validated (regular files and directories only; no absolute names, ``..``,
      NUL, backslashes, duplicates, names over 4096 bytes; no links, devices, FIFOs, setuid/setgid
      bits), and the archive must hold exactly one regular file.
    * Expansion is capped twice: at ``max_bytes`` and at ``max_ratio`` times the archive's size (never
      below ``ratio_floor``). A member's declared size is checked against both before any of its
      bytes are read, and the bytes actually decompressed are counted while streaming (for a tar,
      every byte of the decompressed stream, headers included), so a decompression bomb stops at the
      cap, whatever its headers say.
    * The first 16 bytes of the member must be the SQLite header (``SQLite format 3`` and a NUL); they are
      checked before anything else is written.
    * A tar is read in one forward pass over a stream taskbox decompresses itself (gzip, bzip2, xz or
      none, told by the magic bytes): nothing is decompressed twice and no seek happens.
    * The output is written to a temporary file in the destination's directory and renamed into
      place; on any failure nothing is left behind.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import stat
import tarfile
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from typing import IO, Any

from taskbox.sql.errors import DatabaseRejected

__all__ = ["SQLITE_HEADER", "ArchiveLimits", "extract_single_file", "is_archive"]

MAX_NAME_BYTES = 4096
CHUNK = 1024 * 1024
SQLITE_HEADER = b"SQLite format 3\x00"
TAR_HEADER_ALLOWANCE = 8 * 1024  # decompressed tar bytes allowed per member beside the file's own (headers, pax, names)
_STREAM_ERRORS = (tarfile.TarError, EOFError, OSError, zlib.error, lzma.LZMAError, RuntimeError, NotImplementedError)


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied to an archive.

    Attributes:
        max_bytes: Largest uncompressed database accepted.
        max_members: Most members (files and directories) an archive may list.
        max_ratio: Largest uncompressed size, as a multiple of the archive's size.
        ratio_floor: Sizes up to this many bytes are never rejected for their ratio.

    """

    max_bytes: int = 8 * 1024**3
    max_members: int = 1000
    max_ratio: int = 200
    ratio_floor: int = 64 * 1024**2

    def cap(self, compressed: int) -> int:
        """Return the most bytes a member of an archive of ``compressed`` bytes may expand to."""
        return min(self.max_bytes, max(self.ratio_floor, self.max_ratio * max(compressed, 1)))

    def too_big(self, name: str, size: int, compressed: int, *, declared: bool) -> DatabaseRejected:
        """Return the error for a member of ``size`` bytes over :meth:`cap`."""
        verb = "declares" if declared else "expands past"
        if size > self.max_bytes:
            return DatabaseRejected(f"archive member {name!r} {verb} {size} bytes, over the limit of {self.max_bytes}")
        return DatabaseRejected(
            f"archive member {name!r} {verb} {size} bytes, more than {self.max_ratio} times the archive's "
            f"{compressed} bytes (a decompression bomb?)"
        )


def is_archive(path: str) -> bool:
    """Tell whether ``path`` is a zip file or a (possibly compressed) tar file."""
    return zipfile.is_zipfile(path) or _is_tar(path)


def _is_tar(path: str) -> bool:
    try:
        return tarfile.is_tarfile(path)
    except (OSError, tarfile.TarError):
        return False


def _check_name(name: str, seen: set[str]) -> str:
    """Validate one member name; return its normalised form (no trailing ``/``)."""
    if not name or "\x00" in name:
        raise DatabaseRejected(f"archive member {name!r} has an empty name or a NUL character")
    if len(name.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        raise DatabaseRejected(f"archive member name is longer than {MAX_NAME_BYTES} bytes")
    if "\\" in name:
        raise DatabaseRejected(f"archive member {name!r} contains a backslash")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise DatabaseRejected(f"archive member {name!r} has an absolute path")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise DatabaseRejected(f"archive member {name!r} climbs out of the archive with '..'")
    normal = "/".join(parts)
    if not normal:
        raise DatabaseRejected(f"archive member {name!r} has no name")
    if normal in seen:
        raise DatabaseRejected(f"archive member {normal!r} appears more than once")
    seen.add(normal)
    return normal


def extract_single_file(archive: str, dest: str, limits: ArchiveLimits | None = None) -> str:
    """Validate ``archive`` and copy its one regular file, a SQLite database, to ``dest``.

    Args:
        archive: Local path of a zip or tar (gz, bz2, xz) file.
        dest: Where the file goes (replaced if it exists).
        limits: Size, ratio and count caps.

    Returns:
        ``dest``.

    Raises:
        DatabaseRejected: Not an archive, a forbidden member, not exactly one file, not a SQLite
            database, or too large (in bytes or against the archive's size).

    """
    limits = limits or ArchiveLimits()
    extract = _extract_zip if zipfile.is_zipfile(archive) else _extract_tar
    compressed = os.path.getsize(archive)
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".db-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out:
            extract(archive, out, limits, compressed)
        os.chmod(staging, 0o644)
        os.replace(staging, dest)
    except BaseException:
        try:
            os.remove(staging)
        except FileNotFoundError:
            pass
        raise
    return dest


def _copy(name: str, stream: IO[bytes], out: IO[bytes], limits: ArchiveLimits, compressed: int) -> None:
    """Stream one member to ``out``: the SQLite header first, then the rest under the cap."""
    cap = limits.cap(compressed)
    head = b""
    while len(head) < len(SQLITE_HEADER):
        more = stream.read(len(SQLITE_HEADER) - len(head))
        if not more:
            break
        head += more
    if head != SQLITE_HEADER:
        raise DatabaseRejected(
            f"archive member {name!r} is not a SQLite 3 database (its first bytes are not the SQLite header)"
        )
    copied, chunk = 0, head
    while chunk:
        copied += len(chunk)
        if copied > cap:
            raise limits.too_big(name, copied, compressed, declared=False)
        out.write(chunk)
        chunk = stream.read(CHUNK)


def _single(files: list[str]) -> str:
    if len(files) != 1:
        names = ", ".join(repr(n) for n in files[:5]) + (" ..." if len(files) > 5 else "")
        raise DatabaseRejected(
            f"a compressed database must hold exactly one file; this archive holds {len(files)}"
            + (f": {names}" if files else "")
        )
    return files[0]


def _extract_zip(path: str, out: IO[bytes], limits: ArchiveLimits, compressed: int) -> None:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatabaseRejected(f"the database archive is not a readable zip file: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise DatabaseRejected(f"the archive lists {len(infos)} members, more than {limits.max_members}")
        seen: set[str] = set()
        files: list[str] = []
        chosen: zipfile.ZipInfo | None = None
        for info in infos:
            normal = _check_name(info.filename, seen)
            mode = info.external_attr >> 16  # Unix mode, when the creator recorded one
            file_type = stat.S_IFMT(mode)
            if file_type and file_type not in (stat.S_IFREG, stat.S_IFDIR):
                raise DatabaseRejected(f"archive member {normal!r} is not a regular file or directory")
            if mode & (stat.S_ISUID | stat.S_ISGID):
                raise DatabaseRejected(f"archive member {normal!r} has the setuid or setgid bit")
            if info.is_dir():
                continue
            files.append(normal)
            chosen = info
        name = _single(files)
        assert chosen is not None
        if chosen.file_size > limits.cap(compressed):
            raise limits.too_big(name, chosen.file_size, compressed, declared=True)
        try:
            with zf.open(chosen) as stream:
                _copy(name, stream, out, limits, compressed)
        except _STREAM_ERRORS as exc:
            raise DatabaseRejected(f"archive member {name!r} cannot be read: {exc}") from None


class _Capped:
    """A read-only stream that fails once more than ``cap`` bytes have been read from it."""

    def __init__(self, raw: Any, cap: int, compressed: int, limits: ArchiveLimits) -> None:
        self._raw, self._cap, self._compressed, self._limits = raw, cap, compressed, limits
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(CHUNK if size is None or size < 0 else size)
        self.total += len(data)
        if self.total > self._cap:
            raise DatabaseRejected(
                f"the tar stream expands past {self._cap} bytes for an archive of {self._compressed} bytes "
                f"(more than {self._limits.max_ratio}:1 or over the limit of {self._limits.max_bytes} bytes; "
                "a decompression bomb?)"
            )
        return data


def _decompressing(raw: IO[bytes]) -> Any:
    """``raw`` decompressed as its magic bytes say (gzip, bzip2, xz), or ``raw`` itself."""
    magic = raw.read(6)
    raw.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(b"\xfd7zXZ\x00"):
        return lzma.LZMAFile(raw)
    return raw


def _extract_tar(path: str, out: IO[bytes], limits: ArchiveLimits, compressed: int) -> None:
    """One forward pass: validate each header, copy the regular file when its header comes by."""
    with open(path, "rb") as raw:
        budget = limits.cap(compressed) + CHUNK + limits.max_members * TAR_HEADER_ALLOWANCE
        stream = _Capped(_decompressing(raw), budget, compressed, limits)
        try:
            tf = tarfile.open(fileobj=stream, mode="r|")  # type: ignore[call-overload]
        except tarfile.ReadError:
            raise DatabaseRejected(
                "the database is marked compressed, but the file is neither a zip nor a tar archive"
            ) from None
        except _STREAM_ERRORS as exc:
            raise DatabaseRejected(f"the database archive is truncated or corrupt: {exc}") from None
        with tf:
            seen: set[str] = set()
            files: list[str] = []
            count = 0
            try:
                for member in tf:  # headers are read one at a time: a bomb stops at the first cap it passes
                    count += 1
                    if count > limits.max_members:
                        raise DatabaseRejected(f"the archive lists more than {limits.max_members} members")
                    normal = _check_name(member.name, seen)
                    if member.issym() or member.islnk():
                        raise DatabaseRejected(f"archive member {normal!r} is a link")
                    if not (member.isreg() or member.isdir()):
                        raise DatabaseRejected(f"archive member {normal!r} is not a regular file or directory")
                    if member.mode & (stat.S_ISUID | stat.S_ISGID):
                        raise DatabaseRejected(f"archive member {normal!r} has the setuid or setgid bit")
                    if not member.isreg():
                        continue
                    files.append(normal)
                    if len(files) > 1:
                        continue  # counted for the message, never read
                    if member.size > limits.cap(compressed):
                        raise limits.too_big(normal, member.size, compressed, declared=True)
                    data = tf.extractfile(member)
                    if data is None:
                        raise DatabaseRejected(f"archive member {normal!r} cannot be read")
                    _copy(normal, data, out, limits, compressed)
            except _STREAM_ERRORS as exc:
                raise DatabaseRejected(f"the database archive is truncated or corrupt: {exc}") from None
        _single(files)
