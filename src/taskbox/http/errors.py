"""Errors of the HTTP executor, each mapped onto Flyte's error document.

Why: whether an HTTP failure is worth retrying is known only where it happens: a 404 is the user's,
a 503 after the retry budget is the platform's.

Invariants:
    * 4xx other than 408/429 -> USER non-recoverable; 5xx (after retries), 408/429, timeouts and
      connection failures -> SYSTEM recoverable; a response that does not fit the outputs -> USER.
    * A server certificate that does not verify -> USER non-recoverable, not retried: the same
      certificate comes back on every attempt, and the fix is configuration (the CA in ``SSL_CERT_FILE``).
    * Messages hold at most :data:`MAX_BODY_IN_MESSAGE` characters of a response body; the entrypoint
      redacts secrets again when it writes the error document.
"""

from __future__ import annotations

from taskbox.errors import OutputError, PlatformError, UserError

MAX_BODY_IN_MESSAGE = 512


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


def body_excerpt(body: bytes) -> str:
    """A short, printable excerpt of a response body for an error message."""
    text = body[: MAX_BODY_IN_MESSAGE * 4].decode("utf-8", errors="replace")
    return text[:MAX_BODY_IN_MESSAGE] + ("..." if len(text) > MAX_BODY_IN_MESSAGE else "")
