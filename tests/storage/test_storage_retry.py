"""taskbox.storage.retry: the retry policy, the classification table, and retries against a faulty moto.

The classification tests build *real* exception objects from the libraries (botocore, s3fs, gcsfs,
aiohttp, requests, google-auth), mostly through the libraries' own code paths, because that is what
the table has to recognise. The end-to-end tests put :class:`servers.FaultProxy` between s3fs and moto.
No test asserts on elapsed time; clocks and sleeps are injected where the budget matters.
"""

from __future__ import annotations

import http.client
import logging

import aiohttp
import botocore.exceptions
import botocore.parsers
import fsspec.exceptions
import gcsfs.retry
import google.auth.exceptions
import pytest
import requests.exceptions
import s3fs.errors
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

import servers
from taskbox import storage
from taskbox.errors import StorageDenied, StorageError, StorageNotFound, StorageTransient, Terminated
from taskbox.storage import retry
from taskbox.storage.retry import Kind, RetryPolicy


def client_error(code: str, status: int, message: str = "msg", op: str = "GetObject") -> Exception:
    return botocore.exceptions.ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, op
    )


def s3fs_translated(code: str, status: int, message: str = "msg") -> BaseException:
    """What s3fs actually raises: its translation of a ClientError, with the original as cause."""
    return s3fs.errors.translate_boto_error(client_error(code, status, message))


def gcs_error(status: int, body: bytes = b"") -> BaseException:
    """What gcsfs raises for an HTTP status, produced by gcsfs's own response validation."""
    try:
        gcsfs.retry.validate_response(status, body, "b/o/key")
    except Exception as exc:  # noqa: BLE001 - we want whatever gcsfs raises
        return exc
    raise AssertionError("gcsfs accepted the response")


def aiohttp_status(status: int) -> aiohttp.ClientResponseError:
    url = URL("http://127.0.0.1:1/b/k?X-Amz-Signature=deadbeefsecret&x=1")
    info = aiohttp.RequestInfo(url, "GET", CIMultiDictProxy(CIMultiDict()), url)
    return aiohttp.ClientResponseError(info, (), status=status, message="status")


# --------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------

CASES = [
    # S3 through s3fs
    ("s3 NoSuchKey", lambda: s3fs_translated("NoSuchKey", 404), Kind.NOT_FOUND),
    ("s3 HEAD 404", lambda: s3fs_translated("404", 404, "Not Found"), Kind.NOT_FOUND),
    ("s3 NoSuchBucket", lambda: s3fs_translated("NoSuchBucket", 404), Kind.NOT_FOUND),
    ("s3 AccessDenied", lambda: s3fs_translated("AccessDenied", 403), Kind.DENIED),
    ("s3 HEAD 403", lambda: s3fs_translated("403", 403, "Forbidden"), Kind.DENIED),
    ("s3 InvalidAccessKeyId", lambda: s3fs_translated("InvalidAccessKeyId", 403), Kind.DENIED),
    ("s3 SignatureDoesNotMatch", lambda: s3fs_translated("SignatureDoesNotMatch", 403), Kind.DENIED),
    ("s3 ExpiredToken", lambda: s3fs_translated("ExpiredToken", 400), Kind.DENIED),
    ("s3 SlowDown", lambda: s3fs_translated("SlowDown", 503), Kind.TRANSIENT),
    ("s3 ServiceUnavailable", lambda: s3fs_translated("ServiceUnavailable", 503), Kind.TRANSIENT),
    ("s3 InternalError", lambda: s3fs_translated("InternalError", 500), Kind.TRANSIENT),
    ("s3 Throttling 400", lambda: client_error("Throttling", 400), Kind.TRANSIENT),
    ("s3 RequestTimeout", lambda: client_error("RequestTimeout", 400), Kind.TRANSIENT),
    ("s3 429", lambda: client_error("TooManyRequests", 429), Kind.TRANSIENT),
    ("s3 502 unknown code", lambda: client_error("BadGateway", 502), Kind.TRANSIENT),
    ("s3 reduce request rate", lambda: client_error("Odd", 400, "Please reduce your request rate."), Kind.TRANSIENT),
    ("s3 InvalidArgument", lambda: s3fs_translated("InvalidArgument", 400), Kind.OTHER),
    ("s3 EntityTooLarge", lambda: client_error("EntityTooLarge", 400), Kind.OTHER),
    # botocore transport
    (
        "endpoint refused",
        lambda: botocore.exceptions.EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
        Kind.TRANSIENT,
    ),
    ("read timeout", lambda: botocore.exceptions.ReadTimeoutError(endpoint_url="http://127.0.0.1:1"), Kind.TRANSIENT),
    (
        "connection closed",
        lambda: botocore.exceptions.ConnectionClosedError(endpoint_url="http://127.0.0.1:1"),
        Kind.TRANSIENT,
    ),
    (
        "incomplete read",
        lambda: botocore.exceptions.IncompleteReadError(actual_bytes=1, expected_bytes=9),
        Kind.TRANSIENT,
    ),
    ("parser error", lambda: botocore.parsers.ResponseParserError("Unable to parse response"), Kind.TRANSIENT),
    ("no credentials", lambda: botocore.exceptions.NoCredentialsError(), Kind.DENIED),
    # aiohttp
    ("payload truncated", lambda: aiohttp.ClientPayloadError("Response payload is not completed"), Kind.TRANSIENT),
    ("server disconnected", lambda: aiohttp.ServerDisconnectedError(), Kind.TRANSIENT),
    ("client os error", lambda: aiohttp.ClientOSError(104, "Connection reset by peer"), Kind.TRANSIENT),
    ("aiohttp 503", lambda: aiohttp_status(503), Kind.TRANSIENT),
    ("aiohttp 408", lambda: aiohttp_status(408), Kind.TRANSIENT),
    ("aiohttp 401", lambda: aiohttp_status(401), Kind.DENIED),
    ("aiohttp 404", lambda: aiohttp_status(404), Kind.NOT_FOUND),
    ("aiohttp 400", lambda: aiohttp_status(400), Kind.OTHER),
    # gcsfs
    ("gcs 404", lambda: gcs_error(404), Kind.NOT_FOUND),
    ("gcs 403", lambda: gcs_error(403, b'{"error": {"message": "caller lacks storage.objects.get"}}'), Kind.DENIED),
    ("gcs 401", lambda: gcs_error(401, b'{"error": {"message": "Invalid Credentials"}}'), Kind.DENIED),
    ("gcs 429", lambda: gcs_error(429, b'{"error": {"message": "rate"}}'), Kind.TRANSIENT),
    ("gcs 503", lambda: gcs_error(503, b'{"error": {"message": "backend"}}'), Kind.TRANSIENT),
    ("gcs 502", lambda: gcs_error(502), Kind.TRANSIENT),
    ("gcs 412", lambda: gcs_error(412), Kind.OTHER),
    ("gcs checksum", lambda: gcsfs.retry.ChecksumError("md5 mismatch"), Kind.TRANSIENT),
    ("google default creds", lambda: google.auth.exceptions.DefaultCredentialsError("none"), Kind.DENIED),
    # standard library, fsspec, requests
    ("reset", lambda: ConnectionResetError(104, "Connection reset by peer"), Kind.TRANSIENT),
    ("refused", lambda: ConnectionRefusedError(111, "Connection refused"), Kind.TRANSIENT),
    ("timeout", lambda: TimeoutError(), Kind.TRANSIENT),
    ("http.client incomplete", lambda: http.client.IncompleteRead(b"abc", 10), Kind.TRANSIENT),
    ("fsspec timeout", lambda: fsspec.exceptions.FSTimeoutError(), Kind.TRANSIENT),
    ("requests connection", lambda: requests.exceptions.ConnectionError("boom"), Kind.TRANSIENT),
    ("requests chunked", lambda: requests.exceptions.ChunkedEncodingError("boom"), Kind.TRANSIENT),
    ("file not found", lambda: FileNotFoundError("b/k"), Kind.NOT_FOUND),
    ("permission", lambda: PermissionError("nope"), Kind.DENIED),
    ("value error", lambda: ValueError("Bad Request"), Kind.OTHER),
]


@pytest.mark.parametrize(("make", "kind"), [(m, k) for _, m, k in CASES], ids=[c[0] for c in CASES])
def test_classify(make, kind: Kind) -> None:
    assert retry.classify(make()) is kind


def test_classify_sees_through_a_wrapper() -> None:
    try:
        try:
            raise client_error("SlowDown", 503)
        except Exception as inner:
            raise RuntimeError("wrapped by some library") from inner
    except RuntimeError as outer:
        assert retry.classify(outer) is Kind.TRANSIENT


@pytest.mark.parametrize(
    ("exc", "cls"),
    [
        (s3fs_translated("NoSuchKey", 404, "The specified key does not exist."), StorageNotFound),
        (s3fs_translated("AccessDenied", 403, "Access Denied"), StorageDenied),
        (s3fs_translated("SlowDown", 503, "Please reduce your request rate."), StorageTransient),
        (s3fs_translated("InvalidArgument", 400, "bad"), StorageError),
    ],
    ids=["not-found", "denied", "transient", "other"],
)
def test_to_storage_error_names_uri_and_cause(exc: BaseException, cls: type) -> None:
    err = retry.to_storage_error(exc, uri="s3://bucket/key", action="read", attempts=3)
    assert type(err) is cls
    assert "s3://bucket/key" in str(err)
    code = exc.__cause__.response["Error"]["Code"]  # type: ignore[union-attr]
    assert code in str(err)


def test_messages_never_carry_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI-secret-value")
    exc = ConnectionResetError("reset while sending secret wJalrXUtnFEMI-secret-value")
    uri = "https://user:hunter22@example.invalid/o?X-Amz-Signature=abcdef123&X-Amz-Credential=AKIAX&v=1"
    msg = str(retry.to_storage_error(exc, uri=uri, action="read"))
    for secret in ("wJalrXUtnFEMI-secret-value", "hunter22", "abcdef123", "AKIAX"):
        assert secret not in msg
    assert "v=1" in msg
    msg = str(retry.to_storage_error(aiohttp_status(400), uri="s3://b/k", action="read"))
    assert "deadbeefsecret" not in msg


def test_redact_uri_leaves_plain_uris_alone() -> None:
    for uri in ("s3://bucket/key with space", "gs://b/k?generation=3", "https://h/p?a=1&b=2"):
        assert retry.redact_uri(uri) == uri


def test_disk_full_keeps_its_code() -> None:
    import errno

    err = retry.to_storage_error(OSError(errno.ENOSPC, "No space left on device"), uri="s3://b/k", action="download")
    assert err.code == "SYSTEM:DiskFull"


# --------------------------------------------------------------------------------------------------
# Policy and the retry loop (injected clock and sleep)
# --------------------------------------------------------------------------------------------------


def test_policy_defaults_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    assert RetryPolicy.from_env({}) == RetryPolicy(retries=5, budget_s=60.0, base_s=0.1, cap_s=10.0)
    policy = RetryPolicy.from_env(
        {"TASKBOX_STORAGE_RETRIES": "2", "TASKBOX_STORAGE_RETRY_BUDGET_S": "7.5", "TASKBOX_STORAGE_RETRY_BASE_S": "0"}
    )
    assert (policy.retries, policy.budget_s, policy.base_s) == (2, 7.5, 0.0)


def test_policy_ignores_bad_values_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="taskbox.storage"):
        policy = RetryPolicy.from_env({"TASKBOX_STORAGE_RETRIES": "lots", "TASKBOX_STORAGE_RETRY_BUDGET_S": "-1"})
    assert (policy.retries, policy.budget_s) == (5, 60.0)
    assert "TASKBOX_STORAGE_RETRIES" in caplog.text and "TASKBOX_STORAGE_RETRY_BUDGET_S" in caplog.text


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=3.0)
    highest = [policy.delay(n, rng=lambda lo, hi: hi) for n in range(6)]
    assert highest == [0.5, 1.0, 2.0, 3.0, 3.0, 3.0]
    assert all(policy.delay(n, rng=lambda lo, hi: lo) == 0.0 for n in range(6))
    assert all(0.0 <= policy.delay(n) <= 3.0 for n in range(20))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def flaky(failures: list[BaseException], result: str = "ok"):
    calls = []

    def fn() -> str:
        calls.append(1)
        if failures:
            raise failures.pop(0)
        return result

    return fn, calls


def test_call_retries_transient_then_succeeds() -> None:
    clock = FakeClock()
    fn, calls = flaky([client_error("SlowDown", 503), ConnectionResetError()])
    assert retry.call(fn, uri="s3://b/k", action="read", policy=RetryPolicy(), sleep=clock.sleep, clock=clock) == "ok"
    assert len(calls) == 3 and len(clock.sleeps) == 2


@pytest.mark.parametrize(
    "exc",
    [
        client_error("AccessDenied", 403),
        client_error("NoSuchKey", 404),
        client_error("InvalidAccessKeyId", 403),
        client_error("InvalidArgument", 400),
    ],
)
def test_call_never_retries_permanent_failures(exc: BaseException) -> None:
    clock = FakeClock()
    fn, calls = flaky([exc])
    with pytest.raises(StorageError) as info:
        retry.call(fn, uri="s3://b/k", action="read", policy=RetryPolicy(), sleep=clock.sleep, clock=clock)
    assert not isinstance(info.value, StorageTransient)
    assert len(calls) == 1 and clock.sleeps == []
    assert info.value.__cause__ is exc


def test_call_stops_after_the_attempt_limit() -> None:
    clock = FakeClock()
    fn, calls = flaky([client_error("SlowDown", 503) for _ in range(10)])
    with pytest.raises(StorageTransient) as info:
        retry.call(fn, uri="s3://b/k", action="read", policy=RetryPolicy(retries=3), sleep=clock.sleep, clock=clock)
    assert len(calls) == 4
    assert "after 4 attempts" in str(info.value) and "SlowDown" in str(info.value)


def test_call_stops_at_the_time_budget() -> None:
    clock = FakeClock()
    policy = RetryPolicy(retries=1000, budget_s=5.0, base_s=1.0, cap_s=1.0)
    fn, calls = flaky([ConnectionResetError() for _ in range(1000)])
    with pytest.raises(StorageTransient):
        retry.call(fn, uri="s3://b/k", action="read", policy=policy, sleep=clock.sleep, clock=clock)
    assert clock.now <= 5.0  # no sleep ever ran past the budget
    assert len(calls) < 1000


def test_call_passes_taskbox_errors_through_untouched() -> None:
    clock = FakeClock()
    terminated = Terminated()
    fn, calls = flaky([terminated])
    with pytest.raises(Terminated) as info:
        retry.call(fn, uri="s3://b/k", action="write", policy=RetryPolicy(), sleep=clock.sleep, clock=clock)
    assert info.value is terminated and len(calls) == 1


def test_zero_retries_means_one_attempt() -> None:
    clock = FakeClock()
    fn, calls = flaky([ConnectionResetError()])
    with pytest.raises(StorageTransient) as info:
        retry.call(fn, uri="s3://b/k", action="read", policy=RetryPolicy(retries=0), sleep=clock.sleep, clock=clock)
    assert len(calls) == 1 and "after 1 attempt " in str(info.value)


# --------------------------------------------------------------------------------------------------
# End to end: a fault proxy in front of moto (and one in front of the GCS emulator)
# --------------------------------------------------------------------------------------------------


def _gets(proxy: servers.FaultProxy, key: str) -> int:
    return sum(1 for method, path in proxy.requests if method == "GET" and path.split("?")[0].endswith(key))


def test_slowdown_is_retried_then_succeeds(s3_proxy: servers.FaultProxy, s3_base: str) -> None:
    uri = storage.join(s3_base, "slow.bin")
    storage.write_bytes(uri, b"payload")
    s3_proxy.rule = servers.FailFirst(2, servers.s3_error(503, "SlowDown"), method="GET")
    assert storage.read_bytes(uri) == b"payload"
    assert _gets(s3_proxy, "slow.bin") == 3


def test_500_on_put_is_retried(s3_proxy: servers.FaultProxy, s3_base: str) -> None:
    uri = storage.join(s3_base, "put500.bin")
    s3_proxy.rule = servers.FailFirst(
        1, servers.s3_error(500, "InternalError", "We encountered an internal error."), method="PUT"
    )
    storage.write_bytes(uri, b"data after a 500")
    assert storage.read_bytes(uri) == b"data after a 500"


@pytest.mark.parametrize("fault", [servers.Reset(), servers.Truncate()], ids=["reset", "truncated"])
def test_resets_and_truncated_bodies_are_retried(
    s3_proxy: servers.FaultProxy, s3_base: str, fault, caplog: pytest.LogCaptureFixture
) -> None:
    """aiohttp itself re-sends an idempotent request once when a reused connection drops, so three
    faults are injected: at least one has to reach (and be retried by) taskbox's own loop."""
    uri = storage.join(s3_base, "cut.bin")
    payload = bytes(range(256)) * 64
    storage.write_bytes(uri, payload)
    s3_proxy.rule = servers.FailFirst(3, fault, method="GET")
    with caplog.at_level(logging.WARNING, logger="taskbox.storage"):
        assert storage.read_bytes(uri) == payload
    assert "transient failure" in caplog.text
    assert _gets(s3_proxy, "cut.bin") == 4


def test_gives_up_after_the_attempt_limit(s3_proxy: servers.FaultProxy, s3_base: str, retry_env) -> None:
    retry_env(3)
    uri = storage.join(s3_base, "always-slow.bin")
    storage.write_bytes(uri, b"x")
    s3_proxy.rule = servers.FailFirst(None, servers.s3_error(503, "SlowDown"), method="GET")
    with pytest.raises(StorageTransient) as info:
        storage.read_bytes(uri)
    assert _gets(s3_proxy, "always-slow.bin") == 4
    assert info.value.recoverable is True
    assert uri in str(info.value) and "SlowDown" in str(info.value) and "after 4 attempts" in str(info.value)


def test_gives_up_when_the_budget_is_spent(s3_proxy: servers.FaultProxy, s3_base: str, retry_env) -> None:
    retry_env(10_000, budget_s=0.3, base_s=0.05)
    uri = storage.join(s3_base, "budget.bin")
    storage.write_bytes(uri, b"x")
    s3_proxy.rule = servers.FailFirst(None, servers.s3_error(503, "SlowDown"), method="GET")
    with pytest.raises(StorageTransient):
        storage.read_bytes(uri)
    assert 1 <= _gets(s3_proxy, "budget.bin") < 10_000


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (servers.s3_error(403, "AccessDenied", "Access Denied"), StorageDenied),
        (servers.s3_error(401, "Unauthorized", "Unauthorized"), StorageDenied),
        (servers.s3_error(404, "NoSuchKey", "The specified key does not exist."), StorageNotFound),
    ],
    ids=["403", "401", "404"],
)
def test_denied_and_not_found_are_not_retried(s3_proxy: servers.FaultProxy, s3_base: str, response, error) -> None:
    uri = storage.join(s3_base, "perm.bin")
    storage.write_bytes(uri, b"x")
    s3_proxy.rule = servers.FailFirst(None, response, method="GET")
    with pytest.raises(error):
        storage.read_bytes(uri)
    assert _gets(s3_proxy, "perm.bin") == 1


def test_connection_refused_is_transient(
    monkeypatch: pytest.MonkeyPatch, fresh_filesystems, retry_env, s3_server
) -> None:
    retry_env(2)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{servers.free_port()}")
    with pytest.raises(StorageTransient) as info:
        storage.read_bytes("s3://taskbox-test/anything")
    assert "after 3 attempts" in str(info.value)


def test_gcs_503_recovers(gcs_proxy: servers.FaultProxy, gcs_base: str) -> None:
    """gcsfs retries 503 itself (its loop cannot be switched off per instance); the read still succeeds."""
    uri = storage.join(gcs_base, "g.bin")
    storage.write_bytes(uri, b"gcs payload")
    gcs_proxy.rule = servers.FailFirst(
        1,
        servers.Respond(503, b'{"error": {"code": 503, "message": "busy"}}', {"Content-Type": "application/json"}),
        method="GET",
    )
    assert storage.read_bytes(uri) == b"gcs payload"
