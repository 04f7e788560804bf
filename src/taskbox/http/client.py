"""Send one logical request: retries, manual redirects through the guard, a streamed and capped body.

Why: httpx retries only connect errors, follows redirects with only ``Authorization`` stripped on a
cross-origin hop, and reads bodies of any size. A task needs bounded retries that respect the server
(``Retry-After``), redirects it opted into with each hop re-checked and every secret header dropped
when the origin changes, and a body that cannot exhaust the pod's memory.

Invariants:
    * Connect errors are retried for every method (nothing was sent); 429/502/503/504, read timeouts
      and broken connections only for idempotent methods, or any method when an idempotency key
      header is configured (one key, the same in every attempt).
    * Backoff is full jitter, ``uniform(0, min(max, base * 2**attempt))``; a ``Retry-After`` is honoured
      as the wait, and one longer than ``retry_after_max_s`` or beyond the budget/deadline fails at once.
    * Origin-bound credentials: a secret header (and ``Authorization``, ``Cookie``,
      ``Proxy-Authorization``) is sent only to a request whose origin (scheme, host, port) is one of the
      Caller's ``secret_origins`` (the configured URL's origin and the config's ``secret_origins``). The
      rule is applied in :meth:`Caller._send_once`, the one place every request passes (first request,
      retries, redirect hops, next pages, http-job submit/status/result/cancel), so no redirect or
      pagination history can carry a secret to another origin.
    * Redirects are followed only when enabled, at most ``max_redirects`` hops; 303 (and 301/302 after a
      POST) turn into a body-less GET.
    * A request that can never be sent (invalid URL or host, unsendable header value) is
      :class:`~taskbox.net.errors.RequestNotSendable` (USER, not retried).
    * The body is counted after decoding (gzip/deflate/br) while it streams and the read stops at
      ``max_body_bytes``; bodies over ``file_threshold_bytes`` are spilled to a file in the run's
      working directory.
    * One :class:`httpx.Client` per caller, so connections are reused within a run.
"""

from __future__ import annotations

import contextlib
import email.utils
import logging
import os
import random
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

import httpx

from taskbox import settings
from taskbox.errors import ConfigError
from taskbox.net.errors import (
    HTTPStatusError,
    HTTPUnavailable,
    ResponseTooLarge,
    SsrfBlocked,
    TLSVerificationFailed,
    TooManyRedirects,
    body_excerpt,
    never_sendable,
)
from taskbox.net.guard import AddressPolicy, GuardedTransport

__all__ = ["BACKOFF_ENV", "Caller", "Origin", "Reply", "origin_of"]

Origin = tuple[str, str, int]

log = logging.getLogger("taskbox.http")

BACKOFF_ENV = "TASKBOX_HTTP_BACKOFF_BASE_S"
REDIRECTS = frozenset({301, 302, 303, 307, 308})
ALWAYS_DROPPED = ("authorization", "cookie", "proxy-authorization")


class Reply:
    """A finished response: status, headers, final URL and the body (in memory or in a file).

    Attributes:
        status: Status code.
        headers: Response headers.
        url: The URL that answered (after redirects).
        size: Decoded body size in bytes.
        path: The spilled body's file, when it exceeded the file threshold.

    """

    __slots__ = ("_body", "headers", "path", "size", "status", "url")

    def __init__(
        self, status: int, headers: httpx.Headers, url: httpx.URL, body: bytes | None, path: str | None, size: int
    ) -> None:
        self.status = status
        self.headers = headers
        self.url = url
        self._body = body
        self.path = path
        self.size = size

    def body(self) -> bytes:
        """The whole body (read from the spill file if there is one)."""
        if self._body is None:
            with open(self.path or "", "rb") as fh:
                return fh.read()
        return self._body


class Caller:
    """Sends requests for one task run with one connection pool.

    Args:
        policy: The SSRF address policy.
        config: The :class:`taskbox.http.config.HTTPConfig`.
        working_dir: Where large bodies are spilled.
        secret_headers: Names of headers whose values are secrets (sent only to ``secret_origins``).
        cancelled: An event set when the run is stopping.
        secret_origins: URLs (or origins) the secret headers may be sent to; when none is given, the
            origin of the first request's URL (the configured URL).

    """

    def __init__(self, policy: AddressPolicy, config: Any, working_dir: str, secret_headers: Iterable[str] = (),
                 cancelled: Any = None, secret_origins: Iterable[Any] = ()) -> None:  # fmt: skip
        self.config = config
        self.working_dir = working_dir
        self.secret_headers = {h.lower() for h in secret_headers}
        self.bound_headers = self.secret_headers | set(ALWAYS_DROPPED)
        self.secret_origins: set[Origin] = set()
        for origin in secret_origins:
            with contextlib.suppress(httpx.InvalidURL, UnicodeError):  # an invalid URL fails in request()
                self.secret_origins.add(origin_of(origin))
        self.cancelled = cancelled
        timeout = httpx.Timeout(
            connect=config.connect_timeout_s,
            read=config.read_timeout_s,
            write=config.read_timeout_s,
            pool=config.read_timeout_s,
        )
        self.client = httpx.Client(
            transport=GuardedTransport(policy), timeout=timeout, follow_redirects=False, trust_env=False
        )
        self.backoff_base = settings.seconds(BACKOFF_ENV, config.retry.backoff_base_s)
        self.idempotency_key = uuid.uuid4().hex if config.retry.idempotency_key_header else None
        self.deadline = time.monotonic() + config.timeout_s

    def close(self) -> None:
        """Close the connection pool."""
        self.client.close()

    def __enter__(self) -> Caller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ request

    def request(self, method: str, url: httpx.URL | str, *, headers: Mapping[str, str], **body: Any) -> Reply:
        """Send a request, following redirects if configured, and return the successful reply.

        Args:
            method: HTTP method.
            url: Target URL.
            headers: Request headers (secret ones included; each request gets them only if its origin
                is one of the secret origins).
            **body: ``json=``, ``data=`` or ``params=`` for :meth:`httpx.Client.build_request`.

        Raises:
            HTTPStatusError: An unexpected 4xx (other than 408/429) or any other unexpected status.
            HTTPUnavailable: 5xx/408/429 after retries, timeouts, connection failures.
            TooManyRedirects: More hops than allowed.
            ResponseTooLarge: The body exceeded the cap.

        """
        cfg = self.config
        headers = dict(headers)
        if self.idempotency_key and cfg.retry.idempotency_key_header not in headers:
            headers[cfg.retry.idempotency_key_header] = self.idempotency_key
        try:
            url = httpx.URL(url)
        except (httpx.InvalidURL, UnicodeError) as exc:  # e.g. a host httpx cannot parse ("0251.0376.0251.0376")
            raise ConfigError(f"the request URL {str(url)!r} is not a valid URL: {exc}") from None
        if not self.secret_origins:
            self.secret_origins.add(origin_of(url))
        for _hop in range(cfg.max_redirects + 1):
            if url.scheme not in ("http", "https"):  # httpx would send a host-less file:///x as a relative URL
                raise SsrfBlocked(f"URL scheme {url.scheme!r} is not allowed; only http and https")
            reply = self._send_with_retries(method, url, headers, body)
            if not (cfg.follow_redirects and reply.status in REDIRECTS and "location" in reply.headers):
                return self._checked(method, reply)
            with never_sendable(method, _loggable(reply.url)):
                target = reply.url.join(reply.headers["location"])
            if reply.status == 303 or (reply.status in (301, 302) and method == "POST"):
                method, body = "GET", {k: v for k, v in body.items() if k == "params"}
                headers = {k: v for k, v in headers.items() if k.lower() not in ("content-type", "content-length")}
            log.info("following redirect %d to %s", reply.status, _loggable(target))
            url = target
        raise TooManyRedirects(f"more than {cfg.max_redirects} redirects (last to {_loggable(url)})")

    def _checked(self, method: str, reply: Reply) -> Reply:
        if self.config.is_success(reply.status):
            return reply
        what = f"{method} {_loggable(reply.url)} answered {reply.status}: {body_excerpt(reply.body())}"
        if 400 <= reply.status < 500 and reply.status not in (408, 429):
            raise HTTPStatusError(what)
        if reply.status >= 500 or reply.status in (408, 429):
            raise HTTPUnavailable(what)
        raise HTTPStatusError(what + " (not an expected status)")

    def _send_with_retries(self, method: str, url: httpx.URL, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        retry = self.config.retry
        retry_any = self.config.retryable_method() if method == self.config.method else method in ("GET", "HEAD")
        waited = 0.0
        attempt = 0
        while True:
            attempt += 1
            reason: str
            retry_after: float | None = None
            last: Reply | None = None
            try:
                reply = self._send_once(method, url, headers, body)
            except httpx.ConnectError as exc:
                _raise_if_certificate_rejected(exc, url)
                reason, can_retry = f"cannot connect to {_loggable(url)}: {exc}", True
            except httpx.ConnectTimeout:
                reason, can_retry = f"connecting to {_loggable(url)} timed out", True
            except httpx.TimeoutException as exc:
                reason, can_retry = f"{method} {_loggable(url)} timed out ({type(exc).__name__})", retry_any
            except (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError) as exc:
                reason, can_retry = f"{method} {_loggable(url)} failed: {type(exc).__name__}: {exc}", retry_any
            else:
                if reply.status not in retry.statuses or self.config.is_success(reply.status):
                    return reply
                if not retry_any:
                    log.info(
                        "%s %s answered %d; not retried: %s is not idempotent and no idempotency key is configured",
                        method,
                        _loggable(url),
                        reply.status,
                        method,
                    )
                    return reply
                reason, can_retry = f"{method} {_loggable(url)} answered {reply.status}", True
                retry_after = _retry_after(reply.headers.get("retry-after"))
                if retry_after is not None and retry_after > retry.retry_after_max_s:
                    log.warning("%s; Retry-After %.0f s exceeds retry_after_max_s, not waiting", reason, retry_after)
                    return reply
                last = reply
            if not can_retry:
                raise HTTPUnavailable(
                    reason + f"; not retried: {method} is not idempotent and no idempotency key is configured"
                )
            if attempt >= retry.max_attempts:
                return self._give_up(last, reason, attempt)
            cap = min(retry.backoff_max_s, self.backoff_base * (2 ** (attempt - 1)))
            delay = retry_after if retry_after is not None else random.uniform(0, cap)
            if waited + delay > retry.budget_s or time.monotonic() + delay > self.deadline:
                return self._give_up(last, reason + " (retry budget exhausted)", attempt)
            log.warning("%s; retry %d/%d in %.2f s", reason, attempt, retry.max_attempts - 1, delay)
            if self.cancelled is not None and self.cancelled.wait(delay):
                raise HTTPUnavailable("the run was stopped while waiting to retry")
            if self.cancelled is None:
                time.sleep(delay)
            waited += delay

    @staticmethod
    def _give_up(last: Reply | None, reason: str, attempt: int) -> Reply:
        if last is not None:
            return last
        raise HTTPUnavailable(f"{reason}; gave up after {attempt} attempt(s)")

    def _send_once(self, method: str, url: httpx.URL, headers: dict[str, str], body: dict[str, Any]) -> Reply:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise httpx.ReadTimeout("overall deadline passed")
        if origin_of(url) not in self.secret_origins:
            headers = {k: v for k, v in headers.items() if k.lower() not in self.bound_headers}
        with never_sendable(method, _loggable(url)):
            request = self.client.build_request(method, url, headers=headers, **body)
            response = self.client.send(request, stream=True)
        try:
            chunks: list[bytes] = []
            size = 0
            spill = None
            path = None
            cap, threshold = self.config.max_body_bytes, self.config.file_threshold_bytes
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > cap:
                    raise ResponseTooLarge(
                        f"{method} {_loggable(url)}: the response body exceeds max_body_bytes={cap} (decoded)"
                    )
                if time.monotonic() > self.deadline:
                    raise httpx.ReadTimeout("overall deadline passed while reading the body")
                if spill is None and size > threshold:
                    os.makedirs(self.working_dir, exist_ok=True)
                    fd, path = tempfile.mkstemp(prefix="http-body-", dir=self.working_dir)
                    spill = os.fdopen(fd, "wb")
                    spill.writelines(chunks)
                    chunks = []
                if spill is not None:
                    spill.write(chunk)
                else:
                    chunks.append(chunk)
            if spill is not None:
                spill.close()
        finally:
            response.close()
        log.info("%s %s -> %d (%d bytes)", method, _loggable(url), response.status_code, size)
        return Reply(
            response.status_code, response.headers, request.url, None if path else b"".join(chunks), path, size
        )


def origin_of(url: httpx.URL | str | tuple[str, str, int]) -> Origin:
    """The origin ``(scheme, host, port)`` of a URL, lower case, with the scheme's default port filled in."""
    if isinstance(url, tuple):
        return url
    url = httpx.URL(url)
    scheme = url.scheme.lower()
    return (scheme, url.host.lower(), url.port or (443 if scheme == "https" else 80))


def _loggable(url: httpx.URL) -> str:
    """The URL without user info (secrets in it are redacted by the logging filter too)."""
    return str(url.copy_with(username=None, password=None)) if url.userinfo else str(url)


def _raise_if_certificate_rejected(exc: httpx.ConnectError, url: httpx.URL) -> None:
    """Raise :class:`TLSVerificationFailed` when ``exc`` comes from certificate verification."""
    import ssl

    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            raise TLSVerificationFailed(
                f"the TLS certificate of {_loggable(url)} does not verify ({cause.verify_message or cause.reason}; "
                "CERTIFICATE_VERIFY_FAILED); if the server uses a private CA, give its certificate through "
                "SSL_CERT_FILE"
            ) from None
        cause = cause.__cause__ or cause.__context__


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
