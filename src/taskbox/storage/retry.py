"""Retries and exception translation for remote storage: the one boundary third-party errors cross.

Why: s3fs, gcsfs, adlfs, aiohttp, httpx, botocore, the Azure SDK and requests each raise their own exception
types, and their own retry loops disagree (s3fs leaves 5xx to botocore, gcsfs sleeps up to 32 s between
tries, the Azure SDK retries 3 times by default). The
entrypoint needs one answer per failure: *not there* (``StorageNotFound``), *not allowed*
(``StorageDenied``), *try again later* (``StorageTransient``) or *broken* (``StorageError``), because
that answer becomes the RECOVERABLE / NON_RECOVERABLE kind of Flyte's ``error.pb``. So every remote
call runs through :func:`call`, which classifies with one table (the style of httpx's
``map_httpcore_exceptions``), retries only what is transient, and translates the rest.

Classification looks at the exception *and its cause chain* (``__cause__`` / ``__context__``),
because s3fs re-raises botocore's ``ClientError`` as ``PermissionError`` / ``OSError(EBUSY)`` with the
original as cause (and adlfs the Azure SDK's ``ResourceNotFoundError`` as ``FileNotFoundError``, a failed
delete as ``RuntimeError``). A service's error code decides first (S3's ``Error.Code``, Azure's
``x-ms-error-code``), then the HTTP status, then the exception's type. Types are matched by qualified name
across the MRO, so this module imports no backend library and works whichever extras are installed.

Invariants:
    * Only transient failures are retried: 5xx, 408, 429, SlowDown / "reduce your request rate",
      throttling codes (Azure's ``ServerBusy``, ``OperationTimedOut``), timeouts, connection resets and
      refusals, truncated responses (``IncompleteRead``, ``ResponseParserError``, aiohttp
      ``ClientPayloadError`` / ``ServerDisconnectedError``, the Azure SDK's ``ServiceResponseError`` /
      ``IncompleteReadError``). 401, 403, 404 and 409 (a lease, a conflict) are never retried.
    * Attempts are bounded by ``TASKBOX_STORAGE_RETRIES`` (retries after the first attempt, default 5)
      and by ``TASKBOX_STORAGE_RETRY_BUDGET_S`` (default 60 s, measured from the first attempt): a retry
      whose sleep would end past the budget is not started. Delays are full-jitter exponential:
      ``uniform(0, min(cap, base * 2**n))`` with ``base`` from ``TASKBOX_STORAGE_RETRY_BASE_S``
      (default 0.1 s) and a 10 s cap.
    * :class:`taskbox.errors.TaskboxError` raised inside the retried function passes through untouched
      (a size check, ``Terminated`` from the SIGTERM handler) and is never retried.
    * Messages name the operation, the URI and the cause; URIs and causes are scrubbed of userinfo,
      signed-URL query parameters and the values of credential environment variables.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

from taskbox import settings
from taskbox.errors import ConfigError, StorageDenied, StorageError, StorageNotFound, StorageTransient, TaskboxError
from taskbox.redaction import redact_uri, redact_urls

__all__ = [
    "Kind",
    "RetryPolicy",
    "call",
    "classify",
    "redact",
    "redact_uri",
    "to_storage_error",
    "translate",
]

log = logging.getLogger("taskbox.storage")

T = TypeVar("T")

ENV_RETRIES = "TASKBOX_STORAGE_RETRIES"
ENV_BUDGET = "TASKBOX_STORAGE_RETRY_BUDGET_S"
ENV_BASE = "TASKBOX_STORAGE_RETRY_BASE_S"


class Kind(enum.Enum):
    """What a failure means for the caller."""

    NOT_FOUND = "not_found"
    DENIED = "denied"
    TRANSIENT = "transient"
    OTHER = "other"


# --------------------------------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry transient failures.

    Attributes:
        retries: Retries after the first attempt (0 disables retrying).
        budget_s: Total time allowed from the first attempt; no retry starts that would sleep past it.
        base_s: Scale of the first backoff step.
        cap_s: Largest single backoff step.

    """

    retries: int = 5
    budget_s: float = 60.0
    base_s: float = 0.1
    cap_s: float = 10.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RetryPolicy:
        """Read the policy from ``TASKBOX_STORAGE_RETRIES``, ``..._RETRY_BUDGET_S``, ``..._RETRY_BASE_S``.

        An unparsable or negative value is logged and replaced by the default here (a storage call
        never fails on it); :func:`taskbox.settings.validate` fails the run with ``USER:InvalidConfig``
        when its execution context is built.
        """
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            retries=int(_env_number(env, ENV_RETRIES, default.retries, int)),
            budget_s=float(_env_number(env, ENV_BUDGET, default.budget_s, float)),
            base_s=float(_env_number(env, ENV_BASE, default.base_s, float)),
        )

    def delay(self, retry_index: int, rng: Callable[[float, float], float] = random.uniform) -> float:
        """Full-jitter backoff before retry number ``retry_index`` (0-based)."""
        return rng(0.0, min(self.cap_s, self.base_s * (2**retry_index)))


def _env_number(env: Mapping[str, str], name: str, default: float, kind: type) -> float:
    try:
        if kind is int:
            return settings.integer(name, int(default), minimum=0, environ=env)
        return settings.seconds(name, float(default), minimum=0, environ=env)
    except ConfigError as exc:
        log.warning("ignoring %s; using %s", exc, default)
        return default


# --------------------------------------------------------------------------------------------------
# Classification: one table
# --------------------------------------------------------------------------------------------------

# Exception types (by "module.QualName", matched anywhere in the MRO) that mean "transient".
_TRANSIENT_TYPES = frozenset(
    {
        "builtins.ConnectionError",  # resets, refusals, aborts, broken pipes
        "builtins.TimeoutError",  # also socket.timeout and asyncio.TimeoutError
        "http.client.IncompleteRead",
        "fsspec.exceptions.FSTimeoutError",
        "botocore.exceptions.HTTPClientError",  # ReadTimeoutError, ConnectionClosedError, ...
        "botocore.exceptions.ConnectionError",  # EndpointConnectionError, ConnectTimeoutError, ...
        "botocore.exceptions.IncompleteReadError",
        "botocore.exceptions.ResponseStreamingError",
        "botocore.parsers.ResponseParserError",  # throttling pages that are not XML (s3fs#484)
        "urllib3.exceptions.ProtocolError",
        "urllib3.exceptions.TimeoutError",
        "aiohttp.client_exceptions.ClientConnectionError",  # ServerDisconnected, ClientOSError, timeouts
        "aiohttp.client_exceptions.ClientPayloadError",  # truncated body
        "requests.exceptions.ConnectionError",
        "requests.exceptions.Timeout",
        "requests.exceptions.ChunkedEncodingError",
        "httpx.TimeoutException",  # connect, read, write, pool
        "httpx.NetworkError",  # ConnectError, ReadError (reset), WriteError, CloseError
        "httpx.RemoteProtocolError",  # disconnected mid-answer, truncated body
        "gcsfs.retry.ChecksumError",
        "google.api_core.exceptions.ServiceUnavailable",
        "google.api_core.exceptions.InternalServerError",
        "google.api_core.exceptions.TooManyRequests",
        "google.api_core.exceptions.DeadlineExceeded",
        "azure.core.exceptions.ServiceRequestError",  # connect failures and timeouts (ServiceRequestTimeoutError)
        "azure.core.exceptions.ServiceResponseError",  # the connection dropped mid-answer, read timeouts
        "azure.core.exceptions.DecodeError",  # a body that does not parse: cut short (IncompleteReadError)
    }
)
_DENIED_TYPES = frozenset(
    {
        "builtins.PermissionError",
        "botocore.exceptions.NoCredentialsError",
        "botocore.exceptions.PartialCredentialsError",
        "botocore.exceptions.CredentialRetrievalError",
        "google.auth.exceptions.DefaultCredentialsError",
        "google.api_core.exceptions.Forbidden",
        "google.api_core.exceptions.Unauthorized",
        "azure.core.exceptions.ClientAuthenticationError",  # also azure-identity's CredentialUnavailableError
    }
)
_NOT_FOUND_TYPES = frozenset(
    {
        "builtins.FileNotFoundError",
        "google.api_core.exceptions.NotFound",
        "azure.core.exceptions.ResourceNotFoundError",
    }
)

# Service error codes: S3's (``ClientError.response["Error"]["Code"]``) and Azure Storage's (``x-ms-error-code``).
_NOT_FOUND_CODES = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "NoSuchUpload",
        "NoSuchVersion",
        "NotFound",
        "404",
        "BlobNotFound",
        "ContainerNotFound",
        "ResourceNotFound",
        "PathNotFound",  # ADLS Gen2 (dfs)
        "FilesystemNotFound",
    }
)
_DENIED_CODES = frozenset(
    {
        "AccessDenied",
        "AllAccessDisabled",
        "AccountProblem",
        "ExpiredToken",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "InvalidSecurity",
        "InvalidToken",
        "SignatureDoesNotMatch",
        "TokenRefreshRequired",
        "UnrecognizedClientException",
        "Forbidden",
        "401",
        "403",
        "AuthenticationFailed",
        "AuthorizationFailure",
        "AuthorizationPermissionMismatch",
        "AuthorizationProtocolMismatch",
        "AuthorizationResourceTypeMismatch",
        "AuthorizationServiceMismatch",
        "AuthorizationSourceIPMismatch",
        "InsufficientAccountPermissions",
        "InvalidAuthenticationInfo",
        "NoAuthenticationInformation",
        "KeyBasedAuthenticationNotPermitted",
        "AccountIsDisabled",
    }
)
_TRANSIENT_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottled",
        "RequestThrottledException",
        "RequestLimitExceeded",
        "TooManyRequestsException",
        "RequestTimeout",
        "RequestTimeoutException",
        "PriorRequestNotComplete",
        "InternalError",
        "ServiceUnavailable",
        "IncompleteBody",
        "XAmzContentSHA256Mismatch",  # s3fs retries this too: the body was damaged in transit
        "ServerBusy",  # Azure: throttling (503), ingress/egress or request rate over the account's limit
        "OperationTimedOut",  # Azure: 500, the operation did not finish in time
    }
)
_TRANSIENT_PHRASES = ("reduce your request rate", "slow down", "throttl")
_TRANSIENT_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNREFUSED, errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT})


def _kind_of_status(status: int) -> Kind | None:
    if status == 404:
        return Kind.NOT_FOUND
    if status in (401, 403):
        return Kind.DENIED
    if status in (408, 429) or 500 <= status <= 599:
        return Kind.TRANSIENT
    return None


def _type_names(exc: BaseException) -> set[str]:
    return {f"{c.__module__}.{c.__qualname__}" for c in type(exc).__mro__}


def _s3_error(exc: BaseException) -> tuple[str, str, int | None] | None:
    """``(code, message, http_status)`` of a botocore ``ClientError`` (duck-typed), else None."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict) or "Error" not in response:
        return None
    error = response.get("Error") or {}
    status = (response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    return str(error.get("Code", "")), str(error.get("Message", "")), status if isinstance(status, int) else None


def _azure_error(exc: BaseException) -> tuple[str, str, int | None] | None:
    """``(code, message, http_status)`` of an Azure SDK ``HttpResponseError`` (matched by name), else None.

    The code is the service's ``x-ms-error-code`` (``""`` when the answer had none, as a wrapper the SDK
    raises around a failed body read); the message is its first line, without the SDK's appended details.
    """
    if "azure.core.exceptions.HttpResponseError" not in _type_names(exc):
        return None
    code = getattr(exc, "error_code", None)
    code = str(getattr(code, "value", code) or "")  # a StorageErrorCode enum member, or a plain string
    message = str(getattr(exc, "message", "") or getattr(exc, "reason", "") or "").strip().split("\n", 1)[0]
    status = getattr(exc, "status_code", None)
    return code, message, status if isinstance(status, int) else None


def _kind_of_code(code: str, message: str) -> Kind | None:
    if code in _NOT_FOUND_CODES:
        return Kind.NOT_FOUND
    if code in _DENIED_CODES:
        return Kind.DENIED
    text = f"{code} {message}".lower()
    if code in _TRANSIENT_CODES or any(p in text for p in _TRANSIENT_PHRASES):
        return Kind.TRANSIENT
    return None


def _status_of(exc: BaseException) -> int | None:
    """HTTP status: aiohttp ``ClientResponseError.status``, gcsfs ``HttpError.code``, Azure's ``status_code``."""
    for attr in ("status", "code", "status_code"):
        value = getattr(exc, attr, None)
        if isinstance(value, int) and 100 <= value <= 599:
            return value
    return None


def _classify_one(exc: BaseException) -> Kind | None:
    """Decide from this one exception alone; None when it carries no decisive signal."""
    s3 = _s3_error(exc)
    if s3 is not None:
        code, message, status = s3
        kind = _kind_of_code(code, message)
        if kind is not None:
            return kind
        return _kind_of_status(status) if status is not None else Kind.OTHER
    azure = _azure_error(exc)
    if azure is not None:  # undecided (no code, no status: a credential's failure, a body cut short): by type
        code, message, status = azure
        kind = _kind_of_code(code, message) or (_kind_of_status(status) if status is not None else None)
        if kind is not None:
            return kind
    names = _type_names(exc)
    if names & _NOT_FOUND_TYPES:
        return Kind.NOT_FOUND
    if names & _DENIED_TYPES:
        return Kind.DENIED
    if names & _TRANSIENT_TYPES:
        return Kind.TRANSIENT
    status = _status_of(exc)
    if status is not None and not isinstance(exc, OSError):
        kind = _kind_of_status(status)
        if kind is not None:
            return kind
    if isinstance(exc, OSError):
        if exc.errno in _TRANSIENT_ERRNOS:
            return Kind.TRANSIENT
        text = str(exc)
        if text.startswith("Forbidden"):  # gcsfs raises a plain OSError for HTTP 403
            return Kind.DENIED
        if any(p in text.lower() for p in _TRANSIENT_PHRASES):
            return Kind.TRANSIENT
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen and len(seen) < 32:
        seen.add(id(current))
        yield current
        current = current.__cause__ or (None if current.__suppress_context__ else current.__context__)


def classify(exc: BaseException) -> Kind:
    """Classify a backend exception, looking through its cause chain.

    The outermost link with a decisive signal wins: s3fs's ``PermissionError`` is DENIED without
    looking at the ``ClientError`` under it, while its generic ``OSError(EIO)`` defers to the cause.

    Args:
        exc: Any exception raised by fsspec or a backend.

    Returns:
        The :class:`Kind` of the failure (``OTHER`` when nothing in the chain is recognised).

    """
    for link in _chain(exc):
        kind = _classify_one(link)
        if kind is not None:
            return kind
    return Kind.OTHER


# --------------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------------

_SECRET_ENV = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "FLYTE_AWS_SECRET_ACCESS_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_CLIENT_SECRET",
    "FLYTE_AZURE_STORAGE_ACCOUNT_KEY",
    "FLYTE_AZURE_CLIENT_SECRET",
)


def redact(text: str, environ: Mapping[str, str] | None = None) -> str:
    """Scrub URL userinfo, signed-URL parameters (:func:`taskbox.redaction.redact_urls`) and credential env values."""
    env = os.environ if environ is None else environ
    text = redact_urls(text)
    for name in _SECRET_ENV:
        value = env.get(name, "")
        if len(value) >= 6:
            text = text.replace(value, "***")
    return text


# --------------------------------------------------------------------------------------------------
# Translation
# --------------------------------------------------------------------------------------------------

_MAX_CAUSE = 500


def _describe(exc: BaseException) -> str:
    """Summarise the cause, scrubbed: the most specific link of the chain (a service's error code and message)."""
    links = list(_chain(exc))
    for link in links:
        service = _s3_error(link) or _azure_error(link)
        if service is not None and (service[0] or service[2] is not None):
            code, message, status = service
            label = code or f"HTTP {status}"
            text = f"{label}: {message}" if message and message != label else label
            return _clip(redact(text))
    best = next((link for link in links if _classify_one(link) is not None), exc)
    text = str(best).strip() or type(best).__name__
    if type(best).__name__ not in text:
        text = f"{type(best).__name__}: {text}"
    return _clip(redact(text))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_CAUSE else text[: _MAX_CAUSE - 3] + "..."


def to_storage_error(
    exc: BaseException,
    *,
    uri: str,
    action: str,
    attempts: int = 1,
    elapsed_s: float | None = None,
) -> StorageError:
    """Build the taskbox error for a backend exception (the caller raises it ``from exc``).

    Args:
        exc: The backend exception.
        uri: The URI being worked on (redacted in the message).
        action: A verb for the message: ``"read"``, ``"write"``, ``"list"``...
        attempts: How many attempts were made, reported for transient failures.
        elapsed_s: Time spent across attempts, reported for transient failures.

    Returns:
        ``StorageNotFound``, ``StorageDenied``, ``StorageTransient`` or ``StorageError``.

    """
    if isinstance(exc, StorageError):
        return exc
    safe_uri = redact_uri(uri)
    cause = _describe(exc)
    kind = classify(exc)
    if kind is Kind.NOT_FOUND:
        return StorageNotFound(f"not found: {safe_uri} ({cause})")
    if kind is Kind.DENIED:
        return StorageDenied(f"permission denied: {action} {safe_uri}: {cause}")
    if kind is Kind.TRANSIENT:
        spent = f" over {elapsed_s:.1f} s" if elapsed_s is not None else ""
        tries = f"{attempts} attempt{'s' if attempts != 1 else ''}"
        return StorageTransient(f"{action} {safe_uri} still failing after {tries}{spent}: {cause}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return StorageError(f"no space left on device during {action} {safe_uri}", code="SYSTEM:DiskFull")
    return StorageError(f"{action} {safe_uri} failed: {cause}")


@contextmanager
def translate(uri: str, action: str) -> Iterator[None]:
    """Map any non-taskbox exception raised in the block to the storage error tree (no retries)."""
    try:
        yield
    except TaskboxError:
        raise
    except Exception as exc:
        raise to_storage_error(exc, uri=uri, action=action) from exc


def call(
    fn: Callable[[], T],
    *,
    uri: str,
    action: str,
    policy: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> T:
    """Run ``fn`` with retries on transient failures, translating whatever escapes.

    Args:
        fn: The operation; it must be safe to repeat (every storage operation here is: a PUT of the
            same bytes, a GET, a HEAD, a delete).
        uri: The URI, for messages.
        action: A verb for messages and logs.
        policy: Overrides :meth:`RetryPolicy.from_env`.
        sleep: Injected for tests.
        clock: Injected for tests.

    Returns:
        Whatever ``fn`` returns.

    Raises:
        StorageError: A subclass chosen by :func:`classify`; ``StorageTransient`` once the attempts or
            the time budget are used up.

    """
    policy = policy or RetryPolicy.from_env()
    start = clock()
    attempt = 0
    while True:
        attempt += 1
        try:
            return fn()
        except TaskboxError:
            raise
        except Exception as exc:
            kind = classify(exc)
            elapsed = clock() - start
            if kind is Kind.TRANSIENT and attempt <= policy.retries:
                delay = policy.delay(attempt - 1)
                if elapsed + delay <= policy.budget_s:
                    log.warning(
                        "storage %s %s: transient failure (%s); retry %d/%d in %.2f s",
                        action,
                        redact_uri(uri),
                        _describe(exc),
                        attempt,
                        policy.retries,
                        delay,
                    )
                    sleep(delay)
                    continue
            raise to_storage_error(exc, uri=uri, action=action, attempts=attempt, elapsed_s=elapsed) from exc
