"""taskbox.storage.remote: configuration from the environment, caching, atomic writes, denial, extras.

Denied access is shown on a real server: a second moto that enforces IAM (``auth_s3``) answers
InvalidAccessKeyId for unknown keys and AccessDenied for a user whose policy only allows reads. The
GCS emulator has no authentication at all, so GCS denial is covered by the classification tests in
test_storage_retry.py on exceptions produced by gcsfs's own response validation.
"""

from __future__ import annotations

import http.server
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

import servers
from taskbox import storage
from taskbox.errors import StorageDenied, StorageError, StorageNotFound, StorageTransient, Terminated
from taskbox.storage import remote

MiB = 2**20


def run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**os.environ, **env}
    )


# --------------------------------------------------------------------------------------------------
# Lazy imports and missing extras
# --------------------------------------------------------------------------------------------------


def test_local_paths_never_import_fsspec() -> None:
    proc = run_python(
        "import taskbox.storage, sys; taskbox.storage.read_bytes('/etc/hostname'); assert 'fsspec' not in sys.modules"
    )
    assert proc.returncode == 0, proc.stderr


def test_every_local_operation_stays_off_fsspec(tmp_path: Path) -> None:
    code = f"""
import sys, taskbox.storage as s
base = {str(tmp_path)!r}
s.write_bytes(base + '/a/b.txt', b'hi'); assert s.read_bytes('file://' + base + '/a/b.txt') == b'hi'
assert s.exists(base + '/a') and s.size(base + '/a/b.txt') == 2
s.download(base + '/a/b.txt', base + '/c.txt'); s.upload(base + '/c.txt', base + '/d/c.txt')
s.upload(base + '/a', base + '/tree', recursive=True); s.download(base + '/tree', base + '/t2', recursive=True)
s.remove(base + '/a')
import taskbox.storage.remote
bad = [m for m in ('fsspec', 's3fs', 'gcsfs', 'aiohttp', 'botocore', 'adlfs', 'azure') if m in sys.modules]
assert not bad, bad
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("uri", "module", "message"),
    [
        ("s3://bucket/key", "s3fs", "s3:// needs s3fs: pip install 'taskbox[s3]'"),
        ("gs://bucket/key", "gcsfs", "gs:// needs gcsfs: pip install 'taskbox[gcs]'"),
        ("gcs://bucket/key", "gcsfs", "gcs:// needs gcsfs: pip install 'taskbox[gcs]'"),
        ("abfs://container/key", "adlfs", "abfs:// needs adlfs: pip install 'taskbox[azure]'"),
        ("abfss://container/key", "adlfs", "abfss:// needs adlfs: pip install 'taskbox[azure]'"),
        ("az://container/key", "adlfs", "az:// needs adlfs: pip install 'taskbox[azure]'"),
    ],
)
def test_missing_extra_is_a_clear_permanent_error(uri: str, module: str, message: str) -> None:
    code = f"""
import sys
sys.modules[{module!r}] = None  # what an image without the extra looks like to importlib
import taskbox.storage
from taskbox.errors import StorageError
try:
    taskbox.storage.read_bytes({uri!r})
except StorageError as exc:
    assert type(exc) is StorageError, type(exc)
    print(exc.recoverable, exc.code, exc, sep='|')
"""
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"False|SYSTEM:StorageError|{message}"


def test_unknown_protocol_is_a_permanent_error() -> None:
    with pytest.raises(StorageError) as info:
        storage.read_bytes("nosuchproto://x/y")
    assert info.value.recoverable is False
    assert "nosuchproto://" in str(info.value)


# --------------------------------------------------------------------------------------------------
# Filesystem cache
# --------------------------------------------------------------------------------------------------


def test_one_instance_per_protocol(s3_server, gcs_server, fresh_filesystems) -> None:
    assert remote.filesystem("s3://a/b") is remote.filesystem("s3a://c/d")
    assert remote.filesystem("gs://a/b") is remote.filesystem("gcs://c/d")
    assert remote.filesystem("s3://a") is not remote.filesystem("gs://a")
    first = remote.filesystem("s3://a")
    remote.reset_filesystems()
    assert remote.filesystem("s3://a") is not first


def _child_reads(uri: str, parent_fs_id: int, queue: multiprocessing.Queue) -> None:
    try:
        data = storage.read_bytes(uri)
        # The parent's instance is still alive in the child's copy of memory, so a new one has a new id.
        queue.put((data, id(remote.filesystem(uri)) != parent_fs_id))
    except BaseException as exc:  # noqa: BLE001 - report anything to the parent
        queue.put((repr(exc), False))


def test_forked_child_builds_its_own_filesystem(s3_base: str) -> None:
    uri = storage.join(s3_base, "fork.txt")
    storage.write_bytes(uri, b"from the parent")
    parent_fs = remote.filesystem(uri)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_reads, args=(uri, id(parent_fs), queue))
    child.start()
    result = queue.get(timeout=60)
    child.join(timeout=60)
    assert result == (b"from the parent", True)
    assert child.exitcode == 0
    assert storage.read_bytes(uri) == b"from the parent"  # the parent's instance still works
    assert remote.filesystem(uri) is parent_fs


# --------------------------------------------------------------------------------------------------
# Configuration from the environment
# --------------------------------------------------------------------------------------------------


def test_flyte_endpoint_variable(s3_server, s3_base: str, monkeypatch: pytest.MonkeyPatch, fresh_filesystems) -> None:
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("FLYTE_AWS_ENDPOINT", s3_server.endpoint)
    uri = storage.join(s3_base, "flyte-endpoint.txt")
    storage.write_bytes(uri, b"via FLYTE_AWS_ENDPOINT")
    assert storage.read_bytes(uri) == b"via FLYTE_AWS_ENDPOINT"


def test_service_specific_endpoint_wins(
    s3_server, s3_base: str, monkeypatch: pytest.MonkeyPatch, fresh_filesystems, retry_env
) -> None:
    retry_env(0)
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{servers.free_port()}")  # nothing listens
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_server.endpoint)
    uri = storage.join(s3_base, "s3-endpoint.txt")
    storage.write_bytes(uri, b"via AWS_ENDPOINT_URL_S3")
    assert storage.read_bytes(uri) == b"via AWS_ENDPOINT_URL_S3"


def test_gcs_options_from_env() -> None:
    from gcsfs.core import GCSFileSystem

    cls, options = remote._gcs_class_and_options({"STORAGE_EMULATOR_HOST": "http://127.0.0.1:9"})
    assert cls is GCSFileSystem and options == {"token": "anon"}
    _, options = remote._gcs_class_and_options({"GOOGLE_APPLICATION_CREDENTIALS": "/var/run/key.json"})
    assert options == {"token": "/var/run/key.json"}
    _, options = remote._gcs_class_and_options({})
    assert options == {}


def test_s3_options_from_env() -> None:
    assert remote._s3_options({}) == {"config_kwargs": {"retries": {"total_max_attempts": 1}}}
    options = remote._s3_options(
        {"FLYTE_AWS_ENDPOINT": "http://127.0.0.1:9", "FLYTE_AWS_ACCESS_KEY_ID": "k", "FLYTE_AWS_SECRET_ACCESS_KEY": "s"}
    )
    assert options["client_kwargs"] == {"endpoint_url": "http://127.0.0.1:9"}
    assert (options["key"], options["secret"]) == ("k", "s")


def test_emulator_uses_the_plain_gcs_client(gcs_server, fresh_filesystems) -> None:
    assert type(remote.filesystem("gs://x")).__module__ == "gcsfs.core"


# --------------------------------------------------------------------------------------------------
# Denied, on an IAM-enforcing moto
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def as_reader(auth_s3, monkeypatch: pytest.MonkeyPatch, fresh_filesystems, fast_retries) -> Iterator[object]:
    monkeypatch.setenv("AWS_ENDPOINT_URL", auth_s3.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", auth_s3.reader_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", auth_s3.reader_secret)
    remote.reset_filesystems()
    yield auth_s3


def test_reader_may_read(as_reader) -> None:
    assert storage.read_bytes(f"s3://{as_reader.bucket}/{as_reader.seed_key}") == b"seed"


def test_write_without_permission_is_denied(as_reader) -> None:
    uri = f"s3://{as_reader.bucket}/forbidden.txt"
    with pytest.raises(StorageDenied) as info:
        storage.write_bytes(uri, b"nope")
    assert info.value.recoverable is False
    assert uri in str(info.value) and "AccessDenied" in str(info.value)
    assert as_reader.reader_secret not in str(info.value)
    with pytest.raises(StorageDenied):
        storage.remove(f"s3://{as_reader.bucket}/{as_reader.seed_key}")
    assert storage.read_bytes(f"s3://{as_reader.bucket}/{as_reader.seed_key}") == b"seed"


@pytest.mark.parametrize("operation", ["read", "exists", "size", "write"])
def test_unknown_credentials_are_denied(as_reader, monkeypatch: pytest.MonkeyPatch, operation: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret-value-123")
    remote.reset_filesystems()
    uri = f"s3://{as_reader.bucket}/{as_reader.seed_key}"
    calls = {
        "read": lambda: storage.read_bytes(uri),
        "exists": lambda: storage.exists(uri),
        "size": lambda: storage.size(uri),
        "write": lambda: storage.write_bytes(uri, b"x"),
    }
    with pytest.raises(StorageDenied) as info:
        calls[operation]()  # exists() must not pretend the object is missing
    assert "not-the-secret-value-123" not in str(info.value)


def test_flyte_credentials_win_over_aws_ones(as_reader, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong-secret")
    monkeypatch.setenv("FLYTE_AWS_ACCESS_KEY_ID", as_reader.reader_key)
    monkeypatch.setenv("FLYTE_AWS_SECRET_ACCESS_KEY", as_reader.reader_secret)
    remote.reset_filesystems()
    assert storage.read_bytes(f"s3://{as_reader.bucket}/{as_reader.seed_key}") == b"seed"


# --------------------------------------------------------------------------------------------------
# Atomic writes and multipart uploads
# --------------------------------------------------------------------------------------------------


def _multipart_uploads(s3_server, prefix: str) -> list[dict]:
    key_prefix = prefix.split(f"s3://{s3_server.bucket}/", 1)[1]
    listing = s3_server.client().list_multipart_uploads(Bucket=s3_server.bucket, Prefix=key_prefix)
    return listing.get("Uploads", [])


@pytest.mark.parametrize("store", ["s3", "azure"])
def test_failed_put_leaves_the_old_object(store: str, request: pytest.FixtureRequest, retry_env) -> None:
    """A PUT (S3) or Put Blob (Azure) cut on its way up: the old object stays, whole."""
    proxy: servers.FaultProxy = request.getfixturevalue(f"{store}_proxy")
    retry_env(0)
    uri = storage.join(request.getfixturevalue(f"{store}_base"), "outputs.pb")
    storage.write_bytes(uri, b"old complete object")
    proxy.rule = servers.FailFirst(None, servers.CutUpstream(after_bytes=64 * 1024), method="PUT")
    with pytest.raises(StorageTransient):
        storage.write_bytes(uri, os.urandom(MiB))
    proxy.rule = None
    assert storage.read_bytes(uri) == b"old complete object"


def test_failed_put_leaves_no_object(s3_proxy: servers.FaultProxy, s3_base: str, retry_env) -> None:
    retry_env(0)
    uri = storage.join(s3_base, "new.pb")
    s3_proxy.rule = servers.FailFirst(None, servers.CutUpstream(after_bytes=64 * 1024), method="PUT")
    with pytest.raises(StorageTransient):
        storage.write_bytes(uri, os.urandom(MiB))
    s3_proxy.rule = None
    assert not storage.exists(uri)


def test_write_is_a_single_put(s3_proxy: servers.FaultProxy, s3_base: str) -> None:
    storage.write_bytes(storage.join(s3_base, "one.bin"), os.urandom(3 * MiB))
    writes = [(m, p) for m, p in s3_proxy.requests if m in ("PUT", "POST")]
    assert len(writes) == 1 and "uploadId" not in writes[0][1] and "uploads" not in writes[0][1]


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make multipart uploads happen at test sizes: 5 MiB parts (the S3 minimum)."""
    monkeypatch.setattr(remote, "_S3_SINGLE_PUT_MAX", 10 * MiB)
    monkeypatch.setattr(remote, "_S3_PART_SIZE", 5 * MiB)


def test_failed_multipart_write_is_aborted(s3_server, s3_proxy, s3_base: str, small_parts, retry_env) -> None:
    retry_env(0)
    uri = storage.join(s3_base, "big.bin")
    s3_proxy.rule = servers.FailFirst(
        None, servers.s3_error(500, "InternalError"), method="PUT", path_contains="partNumber=2"
    )
    with pytest.raises(StorageTransient):
        storage.write_bytes(uri, os.urandom(11 * MiB))
    assert any("uploads" in p for m, p in s3_proxy.requests if m == "POST")  # a multipart upload did start
    assert any(m == "DELETE" and "uploadId" in p for m, p in s3_proxy.requests)  # ... and was aborted
    assert _multipart_uploads(s3_server, s3_base) == []
    assert not storage.exists(uri)


def test_failed_multipart_upload_is_aborted(
    s3_server, s3_proxy, s3_base: str, small_parts, retry_env, tmp_path: Path
) -> None:
    retry_env(0)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(11 * MiB))
    uri = storage.join(s3_base, "uploaded.bin")
    s3_proxy.rule = servers.FailFirst(None, servers.Reset(), method="PUT", path_contains="partNumber=3")
    with pytest.raises(StorageTransient):
        storage.upload(str(src), uri)
    assert _multipart_uploads(s3_server, s3_base) == []
    assert not storage.exists(uri)


def test_multipart_write_retried_after_a_failed_part(s3_server, s3_proxy, s3_base: str, small_parts) -> None:
    uri = storage.join(s3_base, "retried.bin")
    payload = os.urandom(11 * MiB)
    s3_proxy.rule = servers.FailFirst(1, servers.s3_error(503, "SlowDown"), method="PUT", path_contains="partNumber=2")
    storage.write_bytes(uri, payload)
    assert storage.read_bytes(uri) == payload
    assert _multipart_uploads(s3_server, s3_base) == []


def test_interrupted_write_is_cancelled(s3_proxy: servers.FaultProxy, s3_base: str, interrupt_when) -> None:
    """A write abandoned by the entrypoint (SIGTERM) must not land later from fsspec's loop thread."""
    uri = storage.join(s3_base, "outputs.pb")
    stall = servers.Stall(after_bytes=MiB)
    s3_proxy.rule = servers.FailFirst(1, stall, method="PUT")
    interrupt_when(stall.stalled)
    with pytest.raises(Terminated):
        storage.write_bytes(uri, os.urandom(32 * MiB))  # larger than the socket buffers: still sending
    stall.release.set()
    assert stall.finished.wait(timeout=60)
    assert stall.outcome == ["client gave up"]
    assert not storage.exists(uri)


def test_interrupted_multipart_write_is_aborted(
    s3_server, s3_proxy: servers.FaultProxy, s3_base: str, small_parts, interrupt_when
) -> None:
    """Cancelling skips s3fs's own abort (it catches Exception only); taskbox aborts the upload itself."""
    uri = storage.join(s3_base, "big.bin")
    stall = servers.Stall(after_bytes=MiB)
    s3_proxy.rule = servers.FailFirst(1, stall, method="PUT", path_contains="partNumber=2")
    interrupt_when(stall.stalled)
    with pytest.raises(Terminated):
        storage.write_bytes(uri, os.urandom(11 * MiB))
    stall.release.set()
    assert stall.finished.wait(timeout=60)
    assert _multipart_uploads(s3_server, s3_base) == []
    assert not storage.exists(uri)


def test_size_is_verified_after_write(s3_proxy: servers.FaultProxy, s3_base: str, monkeypatch) -> None:
    uri = storage.join(s3_base, "verified.bin")
    storage.write_bytes(uri, b"12345")
    heads = [p for m, p in s3_proxy.requests if m == "HEAD"]
    assert heads, "write_bytes must check the stored size"

    fs = remote.filesystem(uri)
    real_info = fs._info

    async def info_reporting_a_short_object(path: str, **kwargs: object) -> dict:
        return {**(await real_info(path, **kwargs)), "size": 4}

    monkeypatch.setattr(fs, "_info", info_reporting_a_short_object)
    with pytest.raises(StorageError, match="size check failed"):
        storage.write_bytes(uri, b"12345")


# --------------------------------------------------------------------------------------------------
# Guards
# --------------------------------------------------------------------------------------------------


def test_remove_refuses_a_whole_bucket(s3_server, s3_base: str) -> None:
    keep = storage.join(s3_base, "keep.txt")
    storage.write_bytes(keep, b"k")
    with pytest.raises(StorageError) as info:
        storage.remove(f"s3://{s3_server.bucket}")
    assert info.value.recoverable is False
    assert storage.exists(keep)


@pytest.mark.parametrize("name", ["p/../x", "p/./x", "p/a//b", "p/a\\b", "p/.."])
def test_recursive_download_refuses_escaping_names(name: str) -> None:
    with pytest.raises(StorageError, match="escapes the destination"):
        remote._relative_parts(name, "p")


def test_relative_parts_skips_directory_markers() -> None:
    assert remote._relative_parts("p/sub/", "p") is None
    assert remote._relative_parts("p/sub/file", "p") == ["sub", "file"]


# --------------------------------------------------------------------------------------------------
# http(s):// is read-only
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def http_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "127.0.0.1")  # loopback is refused unless allowed (SSRF guard)
    (tmp_path / "hello.txt").write_bytes(b"hello over http")
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_reads(http_root: str, tmp_path: Path) -> None:
    uri = f"{http_root}/hello.txt"
    assert storage.read_bytes(uri) == b"hello over http"
    assert storage.exists(uri)
    assert storage.size(uri) == len(b"hello over http")
    dst = tmp_path / "dl" / "hello.txt"
    storage.download(uri, str(dst))
    assert dst.read_bytes() == b"hello over http"
    with pytest.raises(StorageError, match="over the limit"):
        storage.read_bytes(uri, max_size=3)


def test_http_missing(http_root: str) -> None:
    assert not storage.exists(f"{http_root}/absent.txt")
    with pytest.raises(StorageNotFound):
        storage.read_bytes(f"{http_root}/absent.txt")


@pytest.mark.parametrize("operation", ["write", "remove", "upload"])
def test_http_is_read_only(http_root: str, tmp_path: Path, operation: str) -> None:
    uri = f"{http_root}/hello.txt"
    (tmp_path / "f").write_bytes(b"x")
    calls = {
        "write": lambda: storage.write_bytes(uri, b"x"),
        "remove": lambda: storage.remove(uri),
        "upload": lambda: storage.upload(str(tmp_path / "f"), uri),
    }
    with pytest.raises(StorageError, match="read-only") as info:
        calls[operation]()
    assert info.value.recoverable is False
    assert (tmp_path / "hello.txt").read_bytes() == b"hello over http"
