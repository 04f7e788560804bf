"""Local file system backend: plain paths and ``file://`` URIs, standard library only.

Invariants:
    * ``write_bytes`` writes a temporary file in the target directory, fsyncs it and moves it into
      place (``os.replace``), so a reader (or a killed writer) never leaves a partial file under the final name;
      ``upload``/``download`` of a file copy to a temporary file the same way and remove it when the copy
      fails (a full disk), and their errors name the destination.
    * ``OSError`` is translated here: ENOENT -> ``StorageNotFound``, EACCES/EPERM/EROFS ->
      ``StorageDenied``, ENOSPC -> ``StorageError`` (recoverable: another node may have room),
      anything else -> ``StorageError``.
    * Caps (``read_bytes(max_size=)``, ``download(max_bytes=)``) count the bytes actually read, not
      the size ``stat`` reported: a file that grows while it is read is stopped at the cap.
    * ``info`` reports a content hash (SHA-256) as the validator: it reads the whole file.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager

from taskbox.errors import StorageDenied, StorageError, StorageNotFound
from taskbox.storage.caps import ByteCounter, ObjectInfo

_DENIED = {errno.EACCES, errno.EPERM, errno.EROFS}
_CHUNK = 1024 * 1024


def to_path(uri: str) -> str:
    """Turn ``file:///x``, ``file://localhost/x``, ``local://x`` or a plain path into a path."""
    if "://" not in uri:
        return uri
    from urllib.parse import unquote, urlsplit  # lazy: urllib.parse costs ~5 ms; plain paths skip it

    parts = urlsplit(uri)
    if parts.scheme.lower() == "local":
        return unquote(parts.netloc + parts.path)
    if parts.netloc not in ("", "localhost"):
        raise StorageError(f"file URI with a remote host is not supported: {uri}", recoverable=False)
    return unquote(parts.path)


@contextmanager
def translate(uri: str) -> Iterator[None]:
    """Map ``OSError`` raised inside the block to the storage error tree."""
    try:
        yield
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError) or exc.errno == errno.ENOENT:
            raise StorageNotFound(f"not found: {uri}") from exc
        if exc.errno in _DENIED:
            raise StorageDenied(f"permission denied: {uri}: {reason}") from exc
        if exc.errno == errno.ENOSPC:
            raise StorageError(f"no space left on device writing {uri}", code="SYSTEM:DiskFull") from exc
        raise StorageError(f"local storage error on {uri}: {reason}") from exc


def partial_beside(local_path: str, shown_uri: str) -> str:
    """Create the temporary ``.<name>.*.part`` file a download of ``shown_uri`` fills before its rename.

    Args:
        local_path: The download's final path (its directory is created if missing).
        shown_uri: The source, already redacted, for the error message.

    Returns:
        The temporary file's path, beside ``local_path`` (same file system, so ``os.replace`` is atomic).

    Raises:
        StorageError: ``local_path`` is a directory (not recoverable).

    """
    import tempfile  # lazy: only downloads pay for it

    directory = os.path.dirname(os.path.abspath(local_path))
    with translate(local_path):
        if os.path.isdir(local_path):
            raise StorageError(f"cannot download {shown_uri} over a directory: {local_path}", recoverable=False)
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(local_path)}.", suffix=".part", dir=directory)
        os.close(fd)
    return tmp


def read_bytes(uri: str, *, max_size: int | None = None) -> bytes:
    """Read a whole file, refusing one larger than ``max_size`` (its size first, then the bytes read)."""
    path = to_path(uri)
    with translate(uri), open(path, "rb") as fh:
        if max_size is None:
            return fh.read()
        counter = ByteCounter(uri, max_size)
        counter.check_reported(os.fstat(fh.fileno()).st_size)
        data = fh.read(max_size + 1)  # one byte past the cap tells a file that grew since fstat
        counter.add(len(data))
        return data


def info(uri: str) -> ObjectInfo:
    """Size and content hash (``sha256:<hex>``) of a file; reads it whole."""
    import hashlib  # lazy: loads OpenSSL; not on the entrypoint's own path

    path = to_path(uri)
    digest = hashlib.sha256()
    size = 0
    with translate(uri), open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return ObjectInfo(size, f"sha256:{digest.hexdigest()}")


def write_bytes(uri: str, data: bytes) -> None:
    """Atomically replace the file at ``uri`` with ``data``."""
    path = to_path(uri)
    directory = os.path.dirname(path) or "."
    with translate(uri):
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with _quiet():
                os.unlink(tmp)
            raise


@contextmanager
def _quiet() -> Iterator[None]:
    try:
        yield
    except OSError:
        pass


def exists(uri: str) -> bool:
    """True if a file or directory exists."""
    return os.path.exists(to_path(uri))


def size(uri: str) -> int:
    """File size in bytes."""
    with translate(uri):
        return os.stat(to_path(uri)).st_size


def remove(uri: str) -> None:
    """Delete a file or directory tree; missing is fine."""
    path = to_path(uri)
    with translate(uri):
        if os.path.isdir(path) and not os.path.islink(path):
            import shutil

            shutil.rmtree(path)
        else:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass


def _copy_capped(src: str, tmp: str, counter: ByteCounter) -> None:
    """Copy ``src`` to ``tmp`` chunk by chunk, counting (the source may grow while it is read)."""
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        counter.check_reported(os.fstat(fin.fileno()).st_size)
        while chunk := fin.read(_CHUNK):
            counter.add(len(chunk))
            fout.write(chunk)


def _copy(src: str, dst: str, *, recursive: bool, src_uri: str, dst_uri: str, max_bytes: int | None = None) -> None:
    import shutil  # lazy: not needed on the entrypoint's own path

    with translate(src_uri):
        if recursive:
            if not os.path.isdir(src):
                raise StorageNotFound(f"not a directory: {src_uri}")
            shutil.copytree(src, dst, dirs_exist_ok=True)
            return
        if os.path.isdir(src):
            raise StorageError(f"{src_uri} is a directory; copy it recursively", recoverable=False)
        os.stat(src)  # a missing source is reported as the source
    if os.path.abspath(src) == os.path.abspath(dst):
        return
    # Like write_bytes: a temporary file beside the target, then os.replace, so a full disk or a kill never
    # leaves a partial file under the final name; errors name the destination (the disk that is full).
    directory = os.path.dirname(dst) or "."
    with translate(dst_uri):
        os.makedirs(directory, exist_ok=True)
        tmp = os.path.join(directory, f".{os.path.basename(dst)}.{os.getpid()}.tmp")
        try:
            if max_bytes is None:
                shutil.copyfile(src, tmp)
            else:
                _copy_capped(src, tmp, ByteCounter(src_uri, max_bytes))
            os.replace(tmp, dst)
        except BaseException:
            with _quiet():
                os.unlink(tmp)
            raise


def download(uri: str, local_path: str, *, recursive: bool = False, max_bytes: int | None = None) -> str:
    """Copy a local file or tree to ``local_path``; a single file stops at ``max_bytes`` bytes read."""
    if recursive and max_bytes is not None:
        raise StorageError("max_bytes applies to a single file, not a recursive copy", recoverable=False)
    _copy(to_path(uri), local_path, recursive=recursive, src_uri=uri, dst_uri=local_path, max_bytes=max_bytes)
    return local_path


def upload(local_path: str, uri: str, *, recursive: bool = False) -> str:
    """Copy ``local_path`` to the local destination ``uri``."""
    _copy(local_path, to_path(uri), recursive=recursive, src_uri=local_path, dst_uri=uri)
    return uri
