"""Errors of the HTTP executor, each mapped onto Flyte's error document.

Why: whether an HTTP failure is worth retrying is known only where it happens: a 404 is the user's,
a 503 after the retry budget is the platform's.

Invariants:
    * 4xx other than 408/429 -> USER non-recoverable; 5xx (after retries), 408/429, timeouts and
      connection failures -> SYSTEM recoverable; a response that does not fit the outputs -> USER.
    * A server certificate that does not verify -> USER non-recoverable, not retried: the same
      certificate comes back on every attempt, and the fix is configuration (the CA in ``SSL_CERT_FILE``).
    * A request that can never be sent (a URL httpx cannot parse, an unsupported scheme, a malformed
      host, a header value h11 or the ASCII codec refuses) -> USER non-recoverable
      (:class:`RequestNotSendable`): :func:`never_sendable` translates the library's exceptions at the
      one place requests are built and sent, as httpx's ``map_httpcore_exceptions`` does for its own.
    * Messages hold at most :data:`MAX_BODY_IN_MESSAGE` characters of a response body, redacted BEFORE
      they are cut (a cut through a secret would leave its prefix unmasked); the entrypoint redacts
      secrets again when it writes the error document.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from taskbox.errors import ConfigError, OutputError, PlatformError, UserError

MAX_BODY_IN_MESSAGE = 512
#: How much of a body is decoded and redacted before the excerpt is cut (room for the longest secret form).
REDACT_WINDOW_BYTES = 64 * 1024


class SsrfBlocked(UserError):
    """The URL's scheme or (resolved) address is not allowed by the SSRF guard."""

    code = "USER:SsrfBlocked"


class HTTPStatusError(UserError):
    """The server answered with a status the task does not expect (4xx other than 408/429)."""

    code = "USER:HTTPStatus"


class HTTPUnavailable(PlatformError):
    """5xx, 408 or 429 after the retry budget, a timeout or a connection failure."""

    code = "SYSTEM:HTTPUnavailable"


class TLSVerificationFailed(UserError):
    """The server's certificate does not verify against the trusted CAs (self-signed, expired, wrong host)."""

    code = "USER:TLSVerificationFailed"


class ResponseTooLarge(UserError):
    """The decoded response body exceeded ``max_body_bytes``."""

    code = "USER:ResponseTooLarge"


class TooManyRedirects(UserError):
    """More redirect hops than ``max_redirects``."""

    code = "USER:TooManyRedirects"


class ResponseShapeError(OutputError):
    """The response does not hold what the declared outputs ask for."""

    code = "USER:ResponseShape"


class RequestNotSendable(ConfigError):
    """The request can never be sent: its URL, host or a header value is invalid (the same on every attempt).

    The code stays ``USER:InvalidConfig``: what is invalid is the request the config describes.
    """


def _unsendable_types() -> tuple[type[BaseException], ...]:
    import httpx

    types: list[type[BaseException]] = [httpx.InvalidURL, httpx.UnsupportedProtocol, httpx.LocalProtocolError,
                                        UnicodeEncodeError]  # fmt: skip
    with contextlib.suppress(ImportError):
        import idna

        types.append(idna.IDNAError)
    with contextlib.suppress(ImportError):
        import h11

        types.append(h11.LocalProtocolError)
    return tuple(types)


@contextlib.contextmanager
def never_sendable(method: str, url: Any) -> Iterator[None]:
    """Translate the exceptions that mean "this request can never be sent" into :class:`RequestNotSendable`.

    Wraps building and sending one request. httpx.InvalidURL / UnsupportedProtocol (the URL), IDNA errors
    (the host), UnicodeEncodeError (a non-ASCII header value) and h11/httpx ``LocalProtocolError`` (a header
    value with CR, LF or NUL) are raised before a byte is sent and come back on every attempt. Network
    errors pass through unchanged.

    Args:
        method: The request's method (for the message).
        url: The request's URL (for the message; user info is never part of it).

    """
    try:
        yield
    except _unsendable_types() as exc:
        from taskbox.redaction import redact

        raise RequestNotSendable(
            f"{method} {url}: this request can never be sent ({type(exc).__name__}: {redact(str(exc))}); "
            "fix the URL, host or header value in the config or the inputs"
        ) from None


def body_excerpt(body: bytes) -> str:
    """A short, printable excerpt of a response body for an error message, redacted before it is cut."""
    from taskbox.redaction import redact

    text = redact(body[:REDACT_WINDOW_BYTES].decode("utf-8", errors="replace"))
    return text[:MAX_BODY_IN_MESSAGE] + ("..." if len(text) > MAX_BODY_IN_MESSAGE else "")
