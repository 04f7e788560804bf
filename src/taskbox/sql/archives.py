"""Take the one database file out of an untrusted zip or tar archive.

Why: flytekit's SQLite3Task unpacks a compressed database with ``shutil.unpack_archive``, which writes
every member where its name says, silently skips zip members with ``..`` or a leading ``/``, follows
no size limit and only afterwards checks that exactly one file came out. A database archive is data
from anywhere (an http URL, a bucket someone else writes), so it is validated before anything is
written, and the single database is copied out by streaming, under a byte cap, to a name taskbox
chooses: no member name is ever used as a path.

Invariants:
    * Every member is validated first (regular files and directories only; no absolute names, ``..``,
      NUL, backslashes, duplicates, names over 4096 bytes; no links, devices, FIFOs, setuid/setgid
      bits), and the archive must hold exactly one regular file.
    * Declared sizes are checked against ``max_bytes`` before copying, and the bytes actually copied
      are counted again while copying, so a member that lies about its size still stops at the cap.
    * The output is written to a temporary file in the destination's directory and renamed into
      place; on any failure nothing is left behind.
"""

from __future__ import annotations

import os
import stat
import tarfile
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO

from taskbox.sql.errors import DatabaseRejected

__all__ = ["ArchiveLimits", "extract_single_file", "is_archive"]

MAX_NAME_BYTES = 4096
CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArchiveLimits:
    """Caps applied to an archive.

    Attributes:
        max_bytes: Largest uncompressed database accepted.
        max_members: Most members (files and directories) an archive may list.

    """

    max_bytes: int = 8 * 1024**3
    max_members: int = 1000


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
    """Validate ``archive`` and copy its one regular file to ``dest``.

    Args:
        archive: Local path of a zip or tar (gz, bz2, xz) file.
        dest: Where the file goes (replaced if it exists).
        limits: Size and count caps.

    Returns:
        ``dest``.

    Raises:
        DatabaseRejected: Not an archive, a forbidden member, not exactly one file, or too large.

    """
    limits = limits or ArchiveLimits()
    if zipfile.is_zipfile(archive):
        opener = _zip_member
    elif _is_tar(archive):
        opener = _tar_member
    else:
        raise DatabaseRejected("the database is marked compressed, but the file is neither a zip nor a tar archive")
    directory = os.path.dirname(os.path.abspath(dest))
    os.makedirs(directory, exist_ok=True)
    fd, staging = tempfile.mkstemp(prefix=".db-", dir=directory)
    try:
        with os.fdopen(fd, "wb") as out, opener(archive, limits) as (name, stream):
            copied = 0
            while True:
                chunk = stream.read(CHUNK)
                if not chunk:
                    break
                copied += len(chunk)
                if copied > limits.max_bytes:
                    raise DatabaseRejected(
                        f"archive member {name!r} expands past the limit of {limits.max_bytes} bytes"
                    )
                out.write(chunk)
        os.chmod(staging, 0o644)
        os.replace(staging, dest)
    except BaseException:
        try:
            os.remove(staging)
        except FileNotFoundError:
            pass
        raise
    return dest


def _single(files: list[tuple[str, int]], limits: ArchiveLimits) -> tuple[str, int]:
    if len(files) != 1:
        names = ", ".join(repr(n) for n, _ in files[:5]) + (" ..." if len(files) > 5 else "")
        raise DatabaseRejected(
            f"a compressed database must hold exactly one file; this archive holds {len(files)}"
            + (f": {names}" if files else "")
        )
    name, size = files[0]
    if size > limits.max_bytes:
        raise DatabaseRejected(f"archive member {name!r} declares {size} bytes, over the limit of {limits.max_bytes}")
    return files[0]


@contextmanager
def _zip_member(path: str, limits: ArchiveLimits) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DatabaseRejected(f"the database archive is not a readable zip file: {exc}") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise DatabaseRejected(f"the archive lists {len(infos)} members, more than {limits.max_members}")
        seen: set[str] = set()
        files: list[tuple[str, int]] = []
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
            files.append((normal, info.file_size))
            chosen = info
        name, _ = _single(files, limits)
        assert chosen is not None
        try:
            with zf.open(chosen) as stream:
                yield name, stream
        except (zipfile.BadZipFile, OSError, EOFError, RuntimeError) as exc:  # zlib errors surface as these
            raise DatabaseRejected(f"archive member {name!r} cannot be read: {exc}") from None


@contextmanager
def _tar_member(path: str, limits: ArchiveLimits) -> Iterator[tuple[str, IO[bytes]]]:
    try:
        tf = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DatabaseRejected(f"the database archive is not a readable tar file: {exc}") from None
    with tf:
        seen: set[str] = set()
        files: list[tuple[str, int]] = []
        chosen: tarfile.TarInfo | None = None
        count = 0
        try:
            for member in tf:  # iterating reads headers lazily: a member-count bomb stops at the cap
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
                if member.isreg():
                    files.append((normal, member.size))
                    chosen = member
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DatabaseRejected(f"the database archive is truncated or corrupt: {exc}") from None
        name, _ = _single(files, limits)
        assert chosen is not None
        stream = tf.extractfile(chosen)
        if stream is None:
            raise DatabaseRejected(f"archive member {name!r} cannot be read")
        try:
            with stream:
                yield name, stream
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise DatabaseRejected(f"archive member {name!r} cannot be read: {exc}") from None
