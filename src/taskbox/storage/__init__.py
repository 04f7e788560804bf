"""Blob storage for the entrypoint: local paths natively, everything else through fsspec.

Why: every task start reads ``inputs.pb`` (and often a template) and ends by writing one commit file.
On local storage that must cost nothing beyond the file system calls, so local paths and ``file://``
URIs are served by :mod:`taskbox.storage.local` with the standard library only; ``s3://``, ``gs://``,
``gcs://``, ``abfs://`` / ``abfss://`` / ``az://`` (Azure, :mod:`taskbox.storage.azure`) and other fsspec
protocols load fsspec and the backend lazily, on first use, in :mod:`taskbox.storage.remote`;
``http(s)://`` is read through the ``http`` executor's SSRF guard in :mod:`taskbox.storage.httpstore` (an
http URI comes from a template: it is fetched on its behalf).

Invariants:
    * Every function raises only :class:`taskbox.errors.StorageError` subclasses for storage
      failures: ``StorageNotFound``, ``StorageDenied``, ``StorageTransient`` (after retries).
    * :func:`write_bytes` is atomic: readers see the old object, or the whole new one (local: temp file
      and ``os.replace``; object stores: a single PUT, or parts/blocks committed in one request).
    * URIs are joined with :func:`join`, never by pasting strings.
    * Caps count received bytes: :func:`read_bytes` (``max_size``) and :func:`download` (``max_bytes``)
      refuse early from a reported size, then stop at the first byte past the cap whatever was reported,
      remove any partial file and raise ``StorageTooLarge`` (not recoverable).
    * Every ``http(s)://`` request and redirect hop passes the SSRF guard (``TASKBOX_HTTP_ALLOW``).
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING

from taskbox.storage import local
from taskbox.storage.caps import ObjectInfo

if TYPE_CHECKING:
    from types import ModuleType

__all__ = [
    "ObjectInfo",
    "download",
    "exists",
    "fingerprint",
    "info",
    "is_local",
    "join",
    "protocol_of",
    "read_bytes",
    "remove",
    "size",
    "upload",
    "write_bytes",
]

_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})
_HTTP_PROTOCOLS = frozenset({"http", "https"})


def protocol_of(uri: str) -> str:
    """Return the URI's scheme in lower case (``""`` for a plain path).

    Args:
        uri: A path or URI.

    Returns:
        The scheme, ``"gs"`` and ``"gcs"`` kept apart as written.

    """
    head, sep, _ = uri.partition("://")
    if not sep or "/" in head:
        return ""
    return head.lower()


def is_local(uri: str) -> bool:
    """True for plain paths and ``file://`` URIs, which never need fsspec."""
    return protocol_of(uri) in _LOCAL_PROTOCOLS


def _backend(uri: str) -> ModuleType:
    if is_local(uri):
        return local
    if protocol_of(uri) in _HTTP_PROTOCOLS:
        from taskbox.storage import httpstore  # lazy: httpx, only for http(s) URIs

        return httpstore
    from taskbox.storage import remote  # lazy: deferred: fsspec costs ~0.2 s to import

    return remote


def join(base: str, *parts: str) -> str:
    """Join path segments onto a path or URI, keeping its scheme and bucket.

    Args:
        base: A path or URI (``/tmp/out``, ``file:///tmp/out``, ``s3://bucket/prefix``).
        *parts: Relative segments; each must be non-empty and must not climb out with ``..``.

    Returns:
        The joined path or URI.

    Raises:
        ValueError: A segment is absolute, empty or contains ``..``.

    """
    for part in parts:
        if not part or part.startswith("/") or ".." in part.split("/"):
            raise ValueError(f"invalid path segment {part!r}")
    scheme, sep, rest = base.partition("://")
    if sep and "/" not in scheme:
        return f"{scheme}://{posixpath.join(rest, *parts)}" if rest else f"{scheme}://{'/'.join(parts)}"
    return posixpath.join(base, *parts)


def read_bytes(uri: str, *, max_size: int | None = None) -> bytes:
    """Read a whole object.

    Args:
        uri: Where to read.
        max_size: Refuse (``StorageTooLarge``, not recoverable) objects larger than this many bytes:
            from the size the store reports before reading, and by counting the bytes received.

    Returns:
        The object's bytes.

    """
    return _backend(uri).read_bytes(uri, max_size=max_size)


def write_bytes(uri: str, data: bytes) -> None:
    """Write a whole object atomically, replacing any previous one."""
    _backend(uri).write_bytes(uri, data)


def exists(uri: str) -> bool:
    """True if an object (or a directory prefix) exists at ``uri``."""
    return _backend(uri).exists(uri)


def size(uri: str) -> int:
    """Size of the object at ``uri`` in bytes."""
    return _backend(uri).size(uri)


def remove(uri: str) -> None:
    """Delete an object; a missing object is not an error."""
    _backend(uri).remove(uri)


def download(uri: str, local_path: str, *, recursive: bool = False, max_bytes: int | None = None) -> str:
    """Copy an object (or, with ``recursive``, a whole prefix) to a local path.

    Args:
        uri: The object (or prefix).
        local_path: The destination; a single object appears there whole or not at all.
        recursive: Copy every object under the prefix.
        max_bytes: Single objects only: stop at the first byte past this many bytes received, remove
            the partial file and raise ``StorageTooLarge`` (not recoverable).

    Returns:
        ``local_path``.

    """
    if max_bytes is None:
        return _backend(uri).download(uri, local_path, recursive=recursive)
    return _backend(uri).download(uri, local_path, recursive=recursive, max_bytes=max_bytes)


def info(uri: str) -> ObjectInfo:
    """Size and strong validator of the object at ``uri``, without downloading it (local: hashes it).

    The validator is ``None`` when the store offers nothing strong (an http server with only a weak
    ETag): a cache must then not reuse an earlier copy.
    """
    return _backend(uri).info(uri)


def fingerprint(uri: str) -> str | None:
    """Return the strong validator of :func:`info` alone."""
    return info(uri).validator


def upload(local_path: str, uri: str, *, recursive: bool = False) -> str:
    """Copy a local file (or, with ``recursive``, a directory tree) to ``uri``.

    Returns:
        ``uri``.

    """
    return _backend(uri).upload(local_path, uri, recursive=recursive)
