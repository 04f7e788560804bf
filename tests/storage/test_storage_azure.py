"""Azure Blob Storage (``abfs://``, ``abfss://``, ``az://``) against Azurite on 127.0.0.1.

The conformance suite (test_storage_api.py, test_storage_caps.py...) runs on Azure through ``storage_base``;
this module covers what is Azure's own, on a real server: configurations that reach it (flytekit's
``FLYTE_AZURE_*``, adlfs' ``AZURE_STORAGE_*``, a connection string, a read-only SAS token, a URI naming the
account), block blob commits, the SDK's retries being off (a fault proxy counts the attempts), and Azure's
errors translated into the storage codes: real SDK exceptions, from Azurite itself or from the proxy's
answers. The choice of credential without a server: test_storage_azure_config.py.
"""

from __future__ import annotations

import base64
import logging
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

import servers
from taskbox import redaction, storage
from taskbox.errors import StorageDenied, StorageError, StorageNotFound, StorageTransient, Terminated
from taskbox.storage import azure, remote, retry
from taskbox.storage.retry import Kind

MiB = 2**20
WRONG_KEY = base64.b64encode(b"not the account key, but 64 bytes long like one ..............!!").decode()


@pytest.fixture(autouse=True)
def _clean_redaction() -> Iterator[None]:
    yield
    redaction.clear()  # choose() registers the secrets it reads; later tests start from nothing


# --------------------------------------------------------------------------------------------------
# Against Azurite: configurations that reach it
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def no_connection_string(azure_server, monkeypatch: pytest.MonkeyPatch, fresh_filesystems) -> servers.AzureServer:
    """The session's connection string removed: the test configures Azurite its own way."""
    monkeypatch.delenv("AZURE_STORAGE_CONNECTION_STRING")
    monkeypatch.setenv("AZURE_STORAGE_ENDPOINT", azure_server.blob_endpoint)
    return azure_server


def _round_trip(uri: str, data: bytes) -> None:
    storage.write_bytes(uri, data)
    assert storage.read_bytes(uri) == data
    assert storage.size(uri) == len(data)


def test_flytekit_variables(no_connection_string, azure_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    server = no_connection_string
    monkeypatch.setenv("FLYTE_AZURE_STORAGE_ACCOUNT_NAME", server.account)
    monkeypatch.setenv("FLYTE_AZURE_STORAGE_ACCOUNT_KEY", server.key)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", WRONG_KEY)  # flytekit's own variable wins
    _round_trip(storage.join(azure_base, "flytekit.txt"), b"via FLYTE_AZURE_*")


def test_adlfs_variables(no_connection_string, azure_base: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", no_connection_string.account)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_KEY", no_connection_string.key)
    _round_trip(storage.join(azure_base, "adlfs.txt"), b"via AZURE_STORAGE_*")


def test_connection_string_wins_as_in_adlfs(
    azure_base: str, monkeypatch: pytest.MonkeyPatch, fresh_filesystems
) -> None:
    monkeypatch.setenv("FLYTE_AZURE_STORAGE_ACCOUNT_KEY", WRONG_KEY)
    _round_trip(storage.join(azure_base, "cs.txt"), b"via AZURE_STORAGE_CONNECTION_STRING")


def test_read_only_sas_token(
    no_connection_string, azure_base: str, monkeypatch: pytest.MonkeyPatch, fast_retries
) -> None:
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    server = no_connection_string
    uri = storage.join(azure_base, "seed.txt")
    server.client().get_blob_client(server.container, uri.split(f"{server.container}/", 1)[1]).upload_blob(b"seed")
    sas = generate_container_sas(
        server.account,
        server.container,
        account_key=server.key,
        permission=ContainerSasPermissions(read=True, list=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", server.account)
    monkeypatch.setenv("AZURE_STORAGE_SAS_TOKEN", sas)
    assert storage.read_bytes(uri) == b"seed"
    with pytest.raises(StorageDenied) as info:
        storage.write_bytes(storage.join(azure_base, "forbidden.txt"), b"no")
    assert "AuthorizationPermissionMismatch" in str(info.value)
    signature = dict(p.split("=", 1) for p in sas.split("&"))["sig"]
    assert signature not in str(info.value) and signature not in redaction.redact(f"sig={signature}")


def test_uri_naming_the_account(azure_server, azure_base: str, fresh_filesystems) -> None:
    prefix = azure_base.split(f"abfs://{azure_server.container}/", 1)[1]
    named = f"abfs://{azure_server.container}@{azure_server.account}.dfs.core.windows.net/{prefix}/named.txt"
    _round_trip(named, b"container@account")
    assert storage.read_bytes(storage.join(azure_base, "named.txt")) == b"container@account"
    assert remote.filesystem("abfs://c/x") is remote.filesystem("abfss://c/y") is remote.filesystem("az://c/z")
    assert remote.filesystem(named) is not remote.filesystem("abfs://c/x")  # one instance per named account


def test_uri_naming_another_account_is_refused_before_any_request(azure_proxy: servers.FaultProxy) -> None:
    with pytest.raises(StorageDenied, match="names storage account 'someoneelse'"):
        storage.read_bytes("abfs://taskbox-test@someoneelse.dfs.core.windows.net/x")
    assert azure_proxy.requests == []


def test_filesystem_is_adlfs_with_the_sdk_retries_off(azure_server, fresh_filesystems) -> None:
    from adlfs import AzureBlobFileSystem

    fs = remote.filesystem(azure_server.uri("x"))
    assert isinstance(fs, AzureBlobFileSystem)
    assert fs.service_client.url.startswith(azure_server.blob_endpoint)


@pytest.mark.parametrize(("level", "shown"), [(logging.INFO, False), (logging.DEBUG, True)])
def test_the_sdks_request_log_shows_at_debug_only(
    azure_base: str, fresh_filesystems, caplog: pytest.LogCaptureFixture, level: int, shown: bool
) -> None:
    """The SDK logs every request and response at INFO (about 12 lines each): taskbox's default level is INFO."""
    sdk_log = logging.getLogger(azure._SDK_REQUEST_LOGGER)
    sdk_log.setLevel(logging.NOTSET)  # as in a fresh process
    try:
        caplog.set_level(level)
        _round_trip(storage.join(azure_base, "logged.txt"), b"logged")
    finally:
        sdk_log.setLevel(logging.NOTSET)
    assert any(record.name == azure._SDK_REQUEST_LOGGER for record in caplog.records) is shown


# --------------------------------------------------------------------------------------------------
# Against Azurite: errors
# --------------------------------------------------------------------------------------------------


def test_missing_container_is_not_found(azure_server, fast_retries) -> None:
    uri = "abfs://no-such-container-taskbox/x.bin"
    for call in (lambda: storage.read_bytes(uri), lambda: storage.write_bytes(uri, b"x")):
        with pytest.raises(StorageNotFound) as info:
            call()
        assert "ContainerNotFound" in str(info.value)
    with pytest.raises(StorageNotFound):
        storage.size(uri)
    assert not storage.exists(uri)


@pytest.mark.parametrize("operation", ["read", "exists", "size", "write", "remove"])
def test_wrong_key_is_denied(
    azure_server, azure_base: str, monkeypatch: pytest.MonkeyPatch, fresh_filesystems, fast_retries, operation: str
) -> None:
    uri = storage.join(azure_base, "seed.txt")
    storage.write_bytes(uri, b"seed")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string(key=WRONG_KEY))
    remote.reset_filesystems()
    calls = {
        "read": lambda: storage.read_bytes(uri),
        "exists": lambda: storage.exists(uri),  # must not pretend the object is missing
        "size": lambda: storage.size(uri),
        "write": lambda: storage.write_bytes(uri, b"x"),
        "remove": lambda: storage.remove(uri),
    }
    with pytest.raises(StorageDenied) as info:
        calls[operation]()
    assert info.value.recoverable is False
    assert uri in str(info.value)
    assert WRONG_KEY not in str(info.value) and "AccountKey" not in str(info.value)


def test_remove_refuses_a_whole_container(azure_server, azure_base: str) -> None:
    keep = storage.join(azure_base, "keep.txt")
    storage.write_bytes(keep, b"k")
    for whole in (f"abfs://{azure_server.container}", f"az://{azure_server.container}/"):
        with pytest.raises(StorageError, match="refusing to remove a whole bucket"):
            storage.remove(whole)
    assert storage.exists(keep)


# Real SDK exceptions for HTTP answers: the proxy answers, the SDK (no retries) raises what it raises.
ANSWERS = [
    (404, "BlobNotFound", Kind.NOT_FOUND),
    (404, "ContainerNotFound", Kind.NOT_FOUND),
    (404, "ResourceNotFound", Kind.NOT_FOUND),
    (403, "AuthenticationFailed", Kind.DENIED),
    (403, "AuthorizationFailure", Kind.DENIED),
    (403, "AuthorizationPermissionMismatch", Kind.DENIED),
    (401, "NoAuthenticationInformation", Kind.DENIED),
    (503, "ServerBusy", Kind.TRANSIENT),
    (500, "OperationTimedOut", Kind.TRANSIENT),
    (500, "InternalError", Kind.TRANSIENT),
    (502, "SomethingNew", Kind.TRANSIENT),
    (429, "TooManyRequests", Kind.TRANSIENT),
    (409, "LeaseIdMissing", Kind.OTHER),
    (409, "BlobArchived", Kind.OTHER),
    (412, "ConditionNotMet", Kind.OTHER),
    (400, "InvalidHeaderValue", Kind.OTHER),
]


@pytest.mark.parametrize(("status", "code", "kind"), ANSWERS, ids=[f"{s}-{c}" for s, c, _ in ANSWERS])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_sdk_errors_are_classified(azure_server, status: int, code: str, kind: Kind, method: str) -> None:
    from azure.storage.blob import BlobServiceClient

    with servers.FaultProxy(azure_server.endpoint) as proxy:
        proxy.rule = servers.FailFirst(None, servers.azure_error(status, code, "The answer."))
        client = BlobServiceClient.from_connection_string(
            azure_server.connection_string(endpoint=proxy.endpoint), retry_total=0
        )
        blob = client.get_blob_client(azure_server.container, "any.bin")
        with pytest.raises(HttpResponseError) as info:
            blob.download_blob().readall() if method == "GET" else blob.get_blob_properties()
    assert retry.classify(info.value) is kind
    error = retry.to_storage_error(info.value, uri="abfs://c/any.bin", action="read")
    assert code in str(error) and "<?xml" not in str(error)


def _raised_from(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException as cause:
            raise outer from cause
    except BaseException as exc:  # noqa: BLE001 - we want the chained exception
        return exc


def _wrapped_by_the_sdk(inner: BaseException) -> BaseException:
    """What azure-storage-blob raises when a download's body keeps coming short (its own 3 tries are up)."""
    return _raised_from(HttpResponseError(inner, error=inner), inner)


def _no_identity() -> BaseException:
    from azure.identity import CredentialUnavailableError

    return CredentialUnavailableError("no managed identity endpoint")


TRANSPORT = [
    ("connect failure", lambda: ServiceRequestError("Cannot connect to host"), Kind.TRANSIENT),
    ("dropped answer", lambda: ServiceResponseError("Server disconnected"), Kind.TRANSIENT),
    ("body cut short", lambda: IncompleteReadError("Connection broken"), Kind.TRANSIENT),
    ("body cut short thrice", lambda: _wrapped_by_the_sdk(IncompleteReadError("cut")), Kind.TRANSIENT),
    ("credential failed", lambda: ClientAuthenticationError("no token"), Kind.DENIED),
    ("no identity", _no_identity, Kind.DENIED),
    ("adlfs not found", lambda: _raised_from(FileNotFoundError(2, "gone"), ResourceNotFoundError("x")), Kind.NOT_FOUND),
    ("adlfs failed remove", lambda: _raised_from(RuntimeError("Failed"), ServiceResponseError("x")), Kind.TRANSIENT),
]


@pytest.mark.parametrize(("make", "kind"), [(m, k) for _, m, k in TRANSPORT], ids=[c[0] for c in TRANSPORT])
def test_transport_and_credential_errors_are_classified(make, kind: Kind) -> None:
    assert retry.classify(make()) is kind


# --------------------------------------------------------------------------------------------------
# Retries by status through the fault proxy: attempt counts are taskbox's alone
# --------------------------------------------------------------------------------------------------


def _puts(proxy: servers.FaultProxy) -> list[str]:
    return [path for method, path in proxy.requests if method == "PUT"]


def test_server_busy_is_retried_by_taskbox_alone(azure_proxy: servers.FaultProxy, azure_base: str) -> None:
    uri = storage.join(azure_base, "outputs.pb")
    azure_proxy.rule = servers.FailFirst(2, servers.azure_error(503, "ServerBusy"), method="PUT")
    storage.write_bytes(uri, b"committed")
    assert len(_puts(azure_proxy)) == 3  # two refused, one accepted: the SDK retried nothing itself
    assert storage.read_bytes(uri) == b"committed"


def test_past_the_retry_budget_is_transient(azure_proxy: servers.FaultProxy, azure_base: str, retry_env) -> None:
    retry_env(2)
    uri = storage.join(azure_base, "outputs.pb")
    azure_proxy.rule = servers.FailFirst(None, servers.azure_error(503, "ServerBusy"), method="PUT")
    with pytest.raises(StorageTransient) as info:
        storage.write_bytes(uri, b"never")
    assert len(_puts(azure_proxy)) == 3
    assert "3 attempts" in str(info.value) and "ServerBusy" in str(info.value)
    assert info.value.recoverable is True
    azure_proxy.rule = None
    assert not storage.exists(uri)


@pytest.mark.parametrize(
    ("action", "method"),
    [
        (servers.azure_error(500, "OperationTimedOut"), "GET"),
        (servers.Reset(), "GET"),
        (servers.azure_error(503, "ServerBusy"), "HEAD"),
        (servers.Truncate(), "GET"),
    ],
    ids=["500-OperationTimedOut", "reset", "503-HEAD", "truncated"],
)
def test_transient_reads_are_retried(azure_proxy: servers.FaultProxy, azure_base: str, action, method: str) -> None:
    uri = storage.join(azure_base, "inputs.pb")
    storage.write_bytes(uri, os.urandom(100_000))
    expected = storage.read_bytes(uri)
    azure_proxy.rule = servers.FailFirst(1, action, method=method)
    assert storage.read_bytes(uri, max_size=1 << 20) == expected


def test_denied_is_not_retried(azure_proxy: servers.FaultProxy, azure_base: str) -> None:
    azure_proxy.rule = servers.FailFirst(None, servers.azure_error(403, "AuthorizationFailure"))
    with pytest.raises(StorageDenied):
        storage.read_bytes(storage.join(azure_base, "inputs.pb"))
    assert len(azure_proxy.requests) == 1


# --------------------------------------------------------------------------------------------------
# Commits: one Put Blob, or blocks committed by one Put Block List; nothing partial under the name
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Staged blocks at test sizes: above 1 MiB, 256 KiB blocks and one Put Block List."""
    monkeypatch.setattr(azure, "_SINGLE_PUT_MAX", MiB)
    monkeypatch.setattr(azure, "_BLOCK_SIZE", 256 * 1024)
    remote.reset_filesystems()


def test_write_is_a_single_put_blob(azure_proxy: servers.FaultProxy, azure_base: str) -> None:
    storage.write_bytes(storage.join(azure_base, "one.bin"), os.urandom(4 * MiB))  # the most one Put Blob sends
    puts = _puts(azure_proxy)
    assert len(puts) == 1 and "comp=" not in puts[0]
    assert any(method == "HEAD" for method, _ in azure_proxy.requests)  # the size check


def test_large_write_is_committed_in_one_step(azure_proxy: servers.FaultProxy, azure_base: str, small_blocks) -> None:
    uri = storage.join(azure_base, "big.bin")
    payload = os.urandom(3 * MiB // 2)
    storage.write_bytes(uri, payload)
    puts = _puts(azure_proxy)
    assert sum("comp=block&" in p or p.endswith("comp=block") for p in puts) == 6
    assert sum("comp=blocklist" in p for p in puts) == 1
    assert storage.read_bytes(uri) == payload


@pytest.mark.parametrize("fail", ["comp=blocklist", "comp=block&"])
def test_failed_block_commit_leaves_the_old_blob(
    azure_proxy: servers.FaultProxy, azure_base: str, small_blocks, retry_env, fail: str
) -> None:
    retry_env(0)
    old, new = storage.join(azure_base, "outputs.pb"), storage.join(azure_base, "never.pb")
    storage.write_bytes(old, b"old complete object")
    azure_proxy.rule = servers.FailFirst(
        None, servers.azure_error(500, "InternalError"), method="PUT", path_contains=fail
    )
    for uri in (old, new):
        with pytest.raises(StorageTransient):
            storage.write_bytes(uri, os.urandom(3 * MiB // 2))
    azure_proxy.rule = None
    assert storage.read_bytes(old) == b"old complete object"
    assert not storage.exists(new)


def test_interrupted_write_is_cancelled(azure_proxy: servers.FaultProxy, azure_base: str, interrupt_when) -> None:
    """A write abandoned by the entrypoint (SIGTERM) must not land later from fsspec's loop thread."""
    uri = storage.join(azure_base, "outputs.pb")
    stall = servers.Stall(after_bytes=MiB)
    azure_proxy.rule = servers.FailFirst(1, stall, method="PUT")
    interrupt_when(stall.stalled)
    with pytest.raises(Terminated):
        storage.write_bytes(uri, os.urandom(32 * MiB))  # 8 blocks: the first one stalls
    stall.release.set()
    assert stall.finished.wait(timeout=60)  # the block may still arrive (uncommitted, invisible)
    time.sleep(0.5)
    assert not any("comp=blocklist" in path for path in _puts(azure_proxy))  # never committed
    assert not storage.exists(uri)


def test_size_is_verified_after_write(
    azure_server, azure_base: str, monkeypatch: pytest.MonkeyPatch, fresh_filesystems
) -> None:
    uri = storage.join(azure_base, "verified.bin")
    fs = remote.filesystem(uri)
    real_info = fs._info

    async def info_reporting_a_short_blob(path: str, **kwargs: object) -> dict:
        return {**(await real_info(path, **kwargs)), "size": 4}

    monkeypatch.setattr(fs, "_info", info_reporting_a_short_blob)
    with pytest.raises(StorageError, match="size check failed"):
        storage.write_bytes(uri, b"12345")


def test_info_has_the_etag_as_validator(azure_base: str) -> None:
    uri = storage.join(azure_base, "db.sqlite")
    storage.write_bytes(uri, b"one")
    first = storage.info(uri)
    storage.write_bytes(uri, b"two")
    second = storage.info(uri)
    assert first.size == second.size == 3
    assert first.validator and first.validator.startswith("etag:") and first.validator != second.validator
