"""Caps count received bytes, validators, and the SSRF guard on http(s) storage (issue 14 items 7, 10, 11).

The http cases run against :mod:`lying_http` on 127.0.0.1 (allowed with ``TASKBOX_HTTP_ALLOW``, as a
deployment would allow an internal server). SSRF cases name hosts through the HTTP guard tests' stub
resolver inside the loopback-only tripwire, so no packet leaves for a forbidden address.
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
from lying_http import Route, fixed, lying_server, repeated

from taskbox import storage
from taskbox.errors import StorageError, StorageNotFound, StorageTooLarge, StorageTransient
from taskbox.net.errors import SsrfBlocked

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "http"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from test_fuzz_parsing import loopback_only
from test_http_guard import stub_resolver

CAP = 64 * 1024
BIG = 32 * 1024 * 1024  # what the liar streams; far past the cap, small enough for a slow failure before the fix


@pytest.fixture
def allow_loopback(monkeypatch):
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "127.0.0.1")


LIARS = {
    # HEAD says 10 bytes; GET announces the truth and streams it.
    "head-lies": Route(body=repeated(BIG), head_length=10, get_length=BIG),
    # HEAD says 10; GET has no length and streams until it closes the connection.
    "no-length": Route(body=repeated(BIG), head_length=10, framing="close"),
    # No length anywhere; a chunked answer.
    "chunked": Route(body=repeated(BIG), framing="chunked"),
}


@pytest.mark.parametrize("name", sorted(LIARS))
def test_download_stops_at_the_cap_whatever_the_server_announced(allow_loopback, tmp_path, name):
    with lying_server(LIARS) as server:
        dst = tmp_path / "dl" / "db"
        with pytest.raises(StorageTooLarge, match="over the limit") as info:
            storage.download(server.url(name), str(dst), max_bytes=CAP)
        assert info.value.recoverable is False
        assert not server.stats.completed.get(name), "the client must stop reading at the cap"
    assert not dst.exists()
    assert os.listdir(tmp_path / "dl") == [], "the partial file is removed"


@pytest.mark.parametrize("name", sorted(LIARS))
def test_read_bytes_stops_at_the_cap(allow_loopback, name):
    with lying_server(LIARS) as server:
        with pytest.raises(StorageTooLarge):
            storage.read_bytes(server.url(name), max_size=CAP)
        assert not server.stats.completed.get(name)


def test_under_the_cap_is_read_whole(allow_loopback, tmp_path):
    routes = {
        "ok": Route(body=fixed(b"abc"), head_length=3, get_length=3),
        "chunked": Route(body=fixed(b"abc"), framing="chunked"),
    }
    with lying_server(routes) as server:
        for name in routes:
            assert storage.read_bytes(server.url(name), max_size=3) == b"abc"
            storage.download(server.url(name), str(tmp_path / name), max_bytes=3)
            assert (tmp_path / name).read_bytes() == b"abc"


def test_local_file_that_grows_while_read_is_stopped(tmp_path, monkeypatch):
    """fstat says small; the file grows before the bytes are read: the count, not fstat, decides."""
    src = tmp_path / "grows.bin"
    src.write_bytes(b"x" * 10)
    real_fstat = os.fstat

    def fstat_then_grow(fd):
        result = real_fstat(fd)
        with open(src, "ab") as fh:
            fh.write(b"y" * (CAP * 4))
        return result

    monkeypatch.setattr(os, "fstat", fstat_then_grow)
    with pytest.raises(StorageTooLarge):
        storage.read_bytes(str(src), max_size=CAP)
    src.write_bytes(b"x" * 10)
    dst = tmp_path / "out" / "copy"
    with pytest.raises(StorageTooLarge):
        storage.download(str(src), str(dst), max_bytes=CAP)
    monkeypatch.setattr(os, "fstat", real_fstat)
    assert not dst.exists() and os.listdir(tmp_path / "out") == []


def test_local_caps_hold_for_plain_files(tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"x" * 100)
    with pytest.raises(StorageTooLarge):
        storage.download(str(src), str(tmp_path / "g"), max_bytes=99)
    assert not (tmp_path / "g").exists()
    assert storage.download(str(src), str(tmp_path / "g"), max_bytes=100) == str(tmp_path / "g")
    assert (tmp_path / "g").read_bytes() == b"x" * 100


# ----------------------------------------------------------------------------------------- validators


def test_http_validators(allow_loopback):
    routes = {
        "strong": Route(body=fixed(b"abc"), head_length=3, get_length=3, etag='"v1"'),
        "weak": Route(body=fixed(b"abc"), head_length=3, get_length=3, etag='W/"v1"'),
        "dated": Route(body=fixed(b"abc"), head_length=3, get_length=3, last_modified="Mon, 07 Dec 2026 05:00:00 GMT"),
        "bare": Route(body=fixed(b"abc"), head_length=3, get_length=3),
    }
    with lying_server(routes) as server:
        assert storage.info(server.url("strong")) == storage.ObjectInfo(3, 'etag:"v1"')
        assert storage.fingerprint(server.url("weak")) is None
        assert storage.fingerprint(server.url("dated")) == "last-modified:Mon, 07 Dec 2026 05:00:00 GMT:3"
        assert storage.fingerprint(server.url("bare")) is None


def test_local_validator_is_a_content_hash(tmp_path):
    f = tmp_path / "f"
    f.write_bytes(b"a" * 4096)
    first = storage.fingerprint(str(f))
    stat = f.stat()
    f.write_bytes(b"b" * 4096)
    os.utime(f, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same size, same mtime: only the bytes differ
    assert first is not None and first.startswith("sha256:")
    assert storage.fingerprint(str(f)) != first
    assert storage.info(str(f)).size == 4096


def test_remote_validators_from_info_dicts():
    from taskbox.storage.caps import validator_from_info as _validator

    assert _validator({"ETag": '"abc"', "VersionId": "v7"}) == "version:v7"
    assert _validator({"ETag": '"abc"', "VersionId": "null"}) == 'etag:"abc"'
    assert _validator({"generation": "1700000000", "etag": "CJ"}) == "generation:1700000000"
    assert _validator({"size": 3}) is None


# -------------------------------------------------------------------------------------------- SSRF


def test_loopback_is_refused_without_an_allow_list(monkeypatch, tmp_path):
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW", raising=False)
    routes = {"latest/meta-data/": Route(body=fixed(b"secret"), head_length=6, get_length=6)}
    with lying_server(routes) as server:
        for call in (
            lambda: storage.read_bytes(server.url("latest/meta-data/")),
            lambda: storage.size(server.url("latest/meta-data/")),
            lambda: storage.download(server.url("latest/meta-data/"), str(tmp_path / "x")),
        ):
            with pytest.raises(SsrfBlocked) as info:
                call()
            assert info.value.code == "USER:SsrfBlocked" and info.value.recoverable is False
        assert server.stats.requests == [], "refused before any connection"


def test_redirect_to_another_internal_port_is_refused(monkeypatch):
    """The allow-list names one loopback server; its 302 to another loopback port must be re-checked."""
    with lying_server({"inner": Route(body=fixed(b"internal"), head_length=8, get_length=8)}) as inner:
        outer_routes = {"db": Route(redirect=inner.url("inner"))}
        with lying_server(outer_routes) as outer:
            port = outer.server.server_address[1]
            # Allow one server by name ("outer.test", stub-resolved to 127.0.0.1), not loopback as a whole.
            monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "outer.test")
            monkeypatch.setattr(
                "taskbox.storage.httpstore.RESOLVER",
                lambda host, p: ["127.0.0.1"] if host == "outer.test" else stub_resolver(host, p),
            )
            with pytest.raises(SsrfBlocked):
                storage.read_bytes(f"http://outer.test:{port}/db")
            assert outer.stats.requests == [("GET", "db")]
        assert inner.stats.requests == []


def test_redirect_to_the_metadata_service_is_refused(monkeypatch):
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "127.0.0.1")
    monkeypatch.setattr("taskbox.storage.httpstore.RESOLVER", stub_resolver)
    with lying_server({"db": Route(redirect="http://metadata.test/latest/meta-data/")}) as server:
        with loopback_only(), pytest.raises(SsrfBlocked):
            storage.download(server.url("db"), "/nonexistent-dir-never-written/x")
        assert server.stats.requests == [("GET", "db")]


@pytest.mark.parametrize("host", ["metadata.test", "private.test", "169.254.169.254", "[fd00:ec2::254]"])
def test_forbidden_hosts_are_refused_before_connecting(monkeypatch, host):
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW", raising=False)
    monkeypatch.setattr("taskbox.storage.httpstore.RESOLVER", stub_resolver)
    with loopback_only(), pytest.raises(SsrfBlocked):
        storage.read_bytes(f"http://{host}/latest/meta-data/")


def test_http_errors_keep_their_storage_classification(allow_loopback):
    with lying_server({}) as server:
        with pytest.raises(StorageNotFound):
            storage.read_bytes(server.url("absent"))
        assert not storage.exists(server.url("absent"))
    with pytest.raises(StorageError):
        storage.download("http://127.0.0.1:1/x", "/tmp/never", recursive=True)


def test_fsspec_never_serves_http():
    from taskbox.storage import remote

    with pytest.raises(StorageError, match="SSRF guard"):
        remote.filesystem("https://example.invalid/x")


def test_threads_do_not_share_state(allow_loopback):
    with lying_server({"a": Route(body=fixed(b"abc"), head_length=3, get_length=3)}) as server:
        results: list[bytes] = []
        threads = [
            threading.Thread(target=lambda: results.append(storage.read_bytes(server.url("a")))) for _ in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [b"abc"] * 4


# ------------------------------------------------------------------------------- every backend


@pytest.mark.parametrize("trust_reported_size", [True, False])
def test_download_cap_on_every_backend(storage_base, tmp_path, monkeypatch, trust_reported_size):
    """Local, S3 (moto) and GCS (emulator): the cap holds from the reported size and, when a store
    under-reports (played by ignoring its reported size), by counting the chunks written."""
    from taskbox.storage import remote

    monkeypatch.setattr(remote, "_TRUST_REPORTED_SIZE", trust_reported_size)
    uri = storage.join(storage_base, "obj.bin")
    storage.write_bytes(uri, b"z" * (300 * 1024))
    dst = tmp_path / "dl" / "obj.bin"
    with pytest.raises(StorageTooLarge):
        storage.download(uri, str(dst), max_bytes=100 * 1024)
    assert not dst.exists() and os.listdir(tmp_path / "dl") == []
    storage.download(uri, str(dst), max_bytes=300 * 1024)
    assert dst.stat().st_size == 300 * 1024


def test_validator_changes_with_same_size_rewrites_on_every_backend(storage_base):
    uri = storage.join(storage_base, "db.sqlite")
    storage.write_bytes(uri, b"a" * 8192)
    first = storage.info(uri)
    storage.write_bytes(uri, b"b" * 8192)
    second = storage.info(uri)
    assert first.size == second.size == 8192
    assert first.validator and second.validator and first.validator != second.validator
    assert storage.info(uri).validator == second.validator, "stable while unchanged"


# ------------------------------------------------------------------- retries on the guarded client


def test_httpx_failures_are_classified_like_other_backends():
    import httpx

    from taskbox.storage.httpstore import HTTPStatus
    from taskbox.storage.retry import Kind, classify

    request = httpx.Request("GET", "http://127.0.0.1/x")
    assert classify(httpx.ConnectError("refused", request=request)) is Kind.TRANSIENT
    assert classify(httpx.ReadTimeout("slow", request=request)) is Kind.TRANSIENT
    assert classify(httpx.RemoteProtocolError("peer closed", request=request)) is Kind.TRANSIENT
    assert classify(HTTPStatus(503, "Service Unavailable")) is Kind.TRANSIENT
    assert classify(HTTPStatus(429, "Too Many Requests")) is Kind.TRANSIENT
    assert classify(HTTPStatus(404, "Not Found")) is Kind.NOT_FOUND
    assert classify(HTTPStatus(403, "Forbidden")) is Kind.DENIED
    assert classify(HTTPStatus(400, "Bad Request")) is Kind.OTHER


def test_transient_http_answers_are_retried_and_truncated_bodies_removed(allow_loopback, monkeypatch, tmp_path):
    monkeypatch.setenv("TASKBOX_STORAGE_RETRY_BASE_S", "0")
    monkeypatch.setenv("TASKBOX_STORAGE_RETRIES", "2")
    routes = {
        "flaky": Route(body=fixed(b"abc"), head_length=3, get_length=3, fail_first=2),
        "truncated": Route(body=fixed(b"only ten b"), head_length=1000, get_length=1000, close=True),
    }
    with lying_server(routes) as server:
        storage.download(server.url("flaky"), str(tmp_path / "flaky"))
        assert (tmp_path / "flaky").read_bytes() == b"abc"
        assert [m for m, n in server.stats.requests if n == "flaky"] == ["GET"] * 3
        (tmp_path / "t").mkdir()
        with pytest.raises(StorageTransient) as info:
            storage.download(server.url("truncated"), str(tmp_path / "t" / "x"))
        assert info.value.recoverable
        assert os.listdir(tmp_path / "t") == []
