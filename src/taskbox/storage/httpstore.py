"""Read-only ``http(s)://`` storage through the SSRF guard of the ``http`` executor.

Why: an http(s) URI reaches taskbox from a task template (a SQLite database, a code bundle, an input
document), so fetching it is fetching a URL on a template's behalf: the same rules as the ``http``
executor apply. Every request, and every redirect hop, goes through
:class:`taskbox.net.guard.GuardedTransport`: the host is resolved once, every address must be public
or allow-listed (``TASKBOX_HTTP_ALLOW``), and the connection goes to the address that was checked. The
body is streamed and counted, so a cap holds whatever the server announced.

Invariants:
    * No request leaves for a loopback, private, link-local, CGNAT or reserved address unless
      ``TASKBOX_HTTP_ALLOW`` lists it; a refusal is ``USER:SsrfBlocked`` (not retried), raised before
      any connection. Redirects (at most :data:`MAX_REDIRECTS`) are re-checked hop by hop.
    * Caps count decoded bytes as they arrive (:class:`taskbox.storage.caps.ByteCounter`); a download
      over the cap stops reading, and its temporary file is removed.
    * Retries and classification are :mod:`taskbox.storage.retry`'s: 5xx/408/429, timeouts, resets and
      truncated bodies are transient; 404 is ``StorageNotFound``, 401/403 ``StorageDenied``.
    * Writes, uploads, removes and recursive downloads raise a non-recoverable ``StorageError``.
    * The validator is a strong ``ETag``, else ``Last-Modified`` (with the size); a weak ETag alone is none.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from taskbox.errors import StorageError, StorageNotFound
from taskbox.storage import local, retry
from taskbox.storage.caps import ByteCounter, ObjectInfo

if TYPE_CHECKING:
    import httpx

__all__ = ["download", "exists", "info", "read_bytes", "remove", "size", "upload", "write_bytes"]

#: Redirect hops followed (each one checked by the guard).
MAX_REDIRECTS = 5
#: Name resolver handed to the guard; ``None`` is the system resolver (tests put a stub here).
RESOLVER: Any = None
_CHUNK = 1024 * 1024
_CONNECT_TIMEOUT_S = 10.0
_READ_TIMEOUT_S = 60.0


class HTTPStatus(Exception):
    """A non-success HTTP status (``status`` is read by :func:`taskbox.storage.retry.classify`)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status} {reason}".strip())
        self.status = status


def _resolve(host: str, port: int) -> list[str]:
    """Resolve with the system resolver; a failed lookup is a connection error (transient), like aiohttp's."""
    from taskbox.net.errors import HTTPUnavailable
    from taskbox.net.guard import system_resolver

    try:
        return system_resolver(host, port)
    except HTTPUnavailable as exc:
        raise ConnectionError(str(exc)) from None


def _client() -> httpx.Client:
    try:
        import httpx

        from taskbox.net.guard import AddressPolicy, GuardedTransport
    except ImportError as exc:
        raise StorageError(
            f"http(s):// storage needs httpx: pip install 'taskbox[http]' ({exc})", recoverable=False
        ) from None
    policy = AddressPolicy(resolver=RESOLVER or _resolve)  # reads TASKBOX_HTTP_ALLOW now
    return httpx.Client(
        transport=GuardedTransport(policy),
        follow_redirects=True,
        max_redirects=MAX_REDIRECTS,
        timeout=httpx.Timeout(_READ_TIMEOUT_S, connect=_CONNECT_TIMEOUT_S),
        headers={"Accept-Encoding": "identity"},
        trust_env=False,
    )


@contextmanager
def _response(uri: str, method: str = "GET") -> Iterator[httpx.Response]:
    """One streamed request; non-success statuses raise :class:`HTTPStatus`, bad URLs a USER-side error."""
    import httpx

    with _client() as client:
        try:
            with client.stream(method, uri) as response:
                if not response.is_success:
                    raise HTTPStatus(response.status_code, response.reason_phrase)
                yield response
        except httpx.TooManyRedirects as exc:
            raise StorageError(
                f"{retry.redact_uri(uri)}: more than {MAX_REDIRECTS} redirects", recoverable=False
            ) from exc
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            raise StorageError(f"invalid URL {retry.redact_uri(uri)}: {exc}", recoverable=False) from exc


def _reported_size(response: httpx.Response) -> int | None:
    if response.headers.get("content-encoding", "identity").lower() not in ("", "identity"):
        return None  # the length is of the encoded body
    raw = response.headers.get("content-length", "")
    return int(raw) if raw.isdigit() else None


def _validator(response: httpx.Response, size: int | None) -> str | None:
    etag = response.headers.get("etag", "").strip()
    if etag and not etag.startswith("W/"):
        return f"etag:{etag}"
    modified = response.headers.get("last-modified", "").strip()
    if modified and size is not None:
        return f"last-modified:{modified}:{size}"
    return None


def info(uri: str) -> ObjectInfo:
    """Size and validator from a HEAD (a GET whose body is not read, when HEAD is refused)."""

    def op() -> ObjectInfo:
        try:
            with _response(uri, "HEAD") as response:
                size = _reported_size(response)
                return ObjectInfo(size, _validator(response, size))
        except HTTPStatus as exc:
            if exc.status not in (405, 501):
                raise
        with _response(uri) as response:
            size = _reported_size(response)
            return ObjectInfo(size, _validator(response, size))

    return retry.call(op, uri=uri, action="stat")


def exists(uri: str) -> bool:
    """Whether the URL answers a HEAD (or GET) with a success status."""
    try:
        info(uri)
    except StorageNotFound:
        return False
    return True


def size(uri: str) -> int:
    """Return the size the server reports; ``StorageError`` (not recoverable) when it reports none."""
    reported = info(uri).size
    if reported is None:
        raise StorageError(f"the server did not report a size for {retry.redact_uri(uri)}", recoverable=False)
    return reported


def _stream(uri: str, counter: ByteCounter, sink: Any) -> None:
    with _response(uri) as response:
        counter.check_reported(_reported_size(response))
        for chunk in response.iter_bytes(_CHUNK):
            counter.add(len(chunk))
            sink(chunk)


def read_bytes(uri: str, *, max_size: int | None = None) -> bytes:
    """GET the whole body, stopping with ``StorageTooLarge`` at the first byte past ``max_size``."""

    def op() -> bytes:
        parts: list[bytes] = []
        _stream(uri, ByteCounter(retry.redact_uri(uri), max_size), parts.append)
        return b"".join(parts)

    return retry.call(op, uri=uri, action="read")


def download(uri: str, local_path: str, *, recursive: bool = False, max_bytes: int | None = None) -> str:
    """GET the body into a temporary file beside ``local_path``, renamed into place when complete.

    Raises:
        StorageTooLarge: More than ``max_bytes`` arrived (the partial file is removed).
        StorageError: ``recursive`` (an http server has no listing), or the download failed.

    """
    if recursive:
        raise StorageError(
            f"cannot download {retry.redact_uri(uri)} recursively: http(s) has no listing", recoverable=False
        )
    tmp = local.partial_beside(local_path, retry.redact_uri(uri))

    def op() -> None:
        with open(tmp, "wb") as fh:  # truncated on each attempt
            _stream(uri, ByteCounter(retry.redact_uri(uri), max_bytes), fh.write)

    try:
        retry.call(op, uri=uri, action="download")
        with local.translate(local_path):
            os.replace(tmp, local_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return local_path


def _read_only(uri: str) -> StorageError:
    scheme = uri.partition("://")[0].lower()
    return StorageError(f"{scheme}:// is read-only: cannot write {retry.redact_uri(uri)}", recoverable=False)


def write_bytes(uri: str, data: bytes) -> None:
    """Refused: http(s) storage is read-only."""
    raise _read_only(uri)


def remove(uri: str) -> None:
    """Refused: http(s) storage is read-only."""
    raise _read_only(uri)


def upload(local_path: str, uri: str, *, recursive: bool = False) -> str:
    """Refused: http(s) storage is read-only."""
    raise _read_only(uri)
