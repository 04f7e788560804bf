"""Azure Blob Storage for :mod:`taskbox.storage.remote`: ``abfs://``, ``abfss://`` and ``az://`` on adlfs.

Why: Flyte on Azure hands a task ``abfs://container@account.dfs.core.windows.net/...`` URIs, which flytekit
reads through adlfs (Flyte 2 through obstore). :mod:`taskbox.storage.remote`'s shared path serves them like
``s3://`` and ``gs://`` (retries, size checks, caps, atomic commits); this module decides what is Azure's
own: the account and endpoint, the credential, and the SDK client under adlfs, built without SDK retries.

URI forms: ``abfs://container/path`` (also ``abfss://``, ``az://``: the account comes from the settings)
and ``abfs://container@account.dfs.core.windows.net/path`` (or ``.blob.``, any cloud's suffix: the account
and the endpoint's suffix come from the URI), as flytekit accepts them.

Credentials, first match wins. flytekit hands its ``FLYTE_AZURE_*`` values to adlfs, which falls back to its
own ``AZURE_STORAGE_*`` variable field by field and lets a connection string override everything; the
same order here:

    1. ``AZURE_STORAGE_CONNECTION_STRING``: endpoint and credential together.
    2. An account key: ``FLYTE_AZURE_STORAGE_ACCOUNT_KEY``, else ``AZURE_STORAGE_ACCOUNT_KEY``.
    3. A SAS token: ``AZURE_STORAGE_SAS_TOKEN``.
    4. A service principal: client id, secret and tenant, each ``FLYTE_AZURE_{CLIENT_ID,CLIENT_SECRET,
       TENANT_ID}`` else ``AZURE_STORAGE_{CLIENT_ID,CLIENT_SECRET,TENANT_ID}``.
    5. Anonymous (public containers): ``AZURE_STORAGE_ANON`` set to anything but false/0/f (adlfs' rule),
       and no client id.
    6. The Azure SDK's ``DefaultAzureCredential`` (azure-identity, imported only then): AKS workload
       identity, managed identity, ``AZURE_CLIENT_ID``/``AZURE_CLIENT_SECRET``/``AZURE_TENANT_ID``, the az
       CLI. A client id of step 4 without a secret names the user-assigned identity to use.

Account: ``FLYTE_AZURE_STORAGE_ACCOUNT_NAME``, else ``AZURE_STORAGE_ACCOUNT_NAME``, else the URI's, else a
connection string's ``AccountName``. Endpoint: the connection string's; else ``AZURE_STORAGE_ENDPOINT`` (a
whole URL, e.g. Azurite's ``http://127.0.0.1:10000/devstoreaccount1``); else, as in production,
``https://ACCOUNT.blob.core.windows.net`` (the URI's suffix for other clouds: Azure's sovereign clouds'
suffixes, and those listed in ``TASKBOX_AZURE_ENDPOINT_SUFFIXES`` for Azure Stack Hub).

Invariants:
    * Importing this module imports neither adlfs nor the Azure SDK: they load when the first Azure
      filesystem is built (:mod:`taskbox.storage.remote` imports this module only for an Azure URI).
    * The SDK client is built here with ``retry_total=0``: :mod:`taskbox.storage.retry` makes every retry,
      so its attempt counts and time budget are the real ones. Left underneath, as gcsfs's inner retries
      are: azure-storage-blob re-reads a download whose body came short up to 3 times (hard-coded).
    * A write is one block blob committed in one step: a single Put Blob up to :data:`_SINGLE_PUT_MAX`
      (4 MiB), else Put Block for each block, one at a time, and one Put Block List. Uncommitted blocks are
      never visible under the blob's name (readers see the old blob or none) and the service discards
      them: nothing to abort. A write interrupted by SIGTERM (its coroutine cancelled) sends no Put Block
      List; only a Put Blob whose body was already handed to the connection may still complete.
    * A shared key (account key, SAS token, connection string) belongs to one account: a URI naming
      another account is refused with ``StorageDenied`` before any request is made.
    * Requests go only to Azure's storage hosts, or to the endpoint configured: a URI's endpoint suffix
      (``container@account.dfs.SUFFIX``) must be one of :data:`CLOUD_SUFFIXES` or listed in
      ``TASKBOX_AZURE_ENDPOINT_SUFFIXES``, else the URI is refused before any request (a URI from an input
      would otherwise send the pod's bearer token or a SAS token to a host of its choosing).
    * Every secret read here (keys, SAS tokens and their signatures, client secrets, a connection
      string's key) is registered with :mod:`taskbox.redaction`, so no log line or error shows it.
    * The SDK's request log (every request and response, headers included, at INFO: about 12 lines a
      request) is shown only when the root logger is at DEBUG, as botocore's and gcsfs's are: at
      taskbox's default level, INFO, an ``echo`` run logged 276 lines instead of 3.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl

from taskbox import redaction, settings
from taskbox.errors import StorageDenied, StorageError

if TYPE_CHECKING:
    from azure.storage.blob.aio import BlobServiceClient

__all__ = ["INSTALL_HINT", "PROTOCOL", "SCHEMES", "Choice", "Location", "cache_key", "choose", "filesystem_options"]

#: The canonical protocol (one filesystem per account for all three schemes).
PROTOCOL = "abfs"
SCHEMES = ("abfs", "abfss", "az")
INSTALL_HINT = "pip install 'taskbox[azure]'"

# Block blob uploads (module-level so tests can lower them). One Put Blob only up to 4 MiB, not the SDK's
# 64 MiB: the SDK hands a Put Blob's whole body to aiohttp at once, and a cancelled request's connection
# is closed gracefully, which still sends everything buffered, so a cancelled 64 MiB Put Blob would land.
# Above 4 MiB a cancelled write has sent blocks at most, never the Put Block List that commits them.
_SINGLE_PUT_MAX = 4 * 2**20
_BLOCK_SIZE = 4 * 2**20
# Blocks and ranged GETs one at a time, as s3fs's parts: the SDK neither cancels nor awaits its other
# parallel block uploads when one fails, so they would go on behind the failure (and log "Task exception
# was never retrieved" when collected).
_CONCURRENCY = 1

_DEFAULT_SUFFIX = "core.windows.net"
#: Blob endpoint suffixes of Azure's clouds (public, China, US Government, the retired Germany cloud).
CLOUD_SUFFIXES = (_DEFAULT_SUFFIX, "core.chinacloudapi.cn", "core.usgovcloudapi.net", "core.cloudapi.de")
_SDK_REQUEST_LOGGER = "azure.core.pipeline.policies.http_logging_policy"
_AUTHORITY = re.compile(r"^(?P<container>[^@/:]+)@(?P<account>[a-z0-9]{3,24})\.(?:dfs|blob)\.(?P<suffix>[a-z0-9.-]+)$")
_FALSE_WORDS = ("false", "0", "f", "")


class Location(NamedTuple):
    """The account a URI names (``container@account.dfs.SUFFIX``)."""

    account: str
    suffix: str


def location_of(uri: str) -> Location | None:
    """The account and endpoint suffix named in ``uri``'s authority, or None for ``abfs://container/path``.

    Raises:
        StorageError: Not recoverable: ``container@host`` whose host is not an Azure storage host.
    """
    authority = uri.partition("://")[2].partition("/")[0]
    if "@" not in authority:
        return None
    match = _AUTHORITY.match(authority.lower())
    if match is None:
        raise StorageError(
            f"unsupported Azure URI {redaction.redact_uri(uri)}: expected abfs://container/path or "
            "abfs://container@account.dfs.core.windows.net/path",
            recoverable=False,
        )
    return Location(match["account"], match["suffix"])


def cache_key(uri: str) -> str:
    """The filesystem cache key: one instance for the configured account, one per account a URI names."""
    location = location_of(uri)
    return PROTOCOL if location is None else f"{PROTOCOL}@{location.account}.{location.suffix}"


# --------------------------------------------------------------------------------------------------
# Choosing a credential (pure: no SDK import, no network)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Choice:
    """What to connect to and how: the outcome of the precedence in the module docstring.

    Attributes:
        mode: ``connection-string``, ``account-key``, ``sas``, ``service-principal``, ``anonymous`` or
            ``default-credential``.
        account: The storage account (``None`` only with a connection string or an endpoint URL).
        account_url: The blob service URL (``None`` with a connection string, which names its own).
        source: The variables the credential came from (for messages; never their values).
        secret: The key, SAS token, client secret or connection string (keyword only).
        client_id: A service principal's, or the user-assigned identity to use (keyword only).
        tenant_id: A service principal's tenant (keyword only).

    ``repr`` shows no secret.
    """

    mode: str
    account: str | None
    account_url: str | None
    source: str
    secret: str | None = field(default=None, kw_only=True)
    client_id: str | None = field(default=None, kw_only=True)
    tenant_id: str | None = field(default=None, kw_only=True)

    def __repr__(self) -> str:
        where = self.account_url or "the connection string's endpoint"
        return f"Choice({self.mode} from {self.source}, account {self.account!r} at {where})"

    def credential(self) -> Any:
        """Build the SDK credential object (``None`` for anonymous access and connection strings)."""
        if self.mode == "account-key":
            from azure.core.credentials import AzureNamedKeyCredential

            return AzureNamedKeyCredential(self.account or "", self.secret or "")
        if self.mode == "sas":
            from azure.core.credentials import AzureSasCredential

            return AzureSasCredential(self.secret or "")
        if self.mode == "service-principal":
            from azure.identity.aio import ClientSecretCredential

            return ClientSecretCredential(self.tenant_id or "", self.client_id or "", self.secret or "")
        if self.mode == "default-credential":
            from azure.identity.aio import DefaultAzureCredential

            if self.client_id:  # a user-assigned identity: managed identity or AKS workload identity
                return DefaultAzureCredential(
                    managed_identity_client_id=self.client_id, workload_identity_client_id=self.client_id
                )
            return DefaultAzureCredential()
        return None

    def client(self, credential: Any) -> BlobServiceClient:
        """Build the async SDK client: no SDK retries, explicit block sizes, its request log at DEBUG only."""
        from azure.storage.blob.aio import BlobServiceClient

        _quiet_request_log()

        options: dict[str, Any] = {
            "retry_total": 0,  # taskbox.storage.retry retries; the SDK must not multiply its attempts
            "max_single_put_size": _SINGLE_PUT_MAX,
            "max_block_size": _BLOCK_SIZE,
            "user_agent": "taskbox",
        }
        if self.mode == "connection-string":
            return BlobServiceClient.from_connection_string(self.secret or "", **options)
        return BlobServiceClient(self.account_url or "", credential=credential, **options)


def _quiet_request_log() -> None:
    """Keep the SDK's per-request INFO lines out of the log unless the root logger is at DEBUG.

    A level set on that logger already (by the user, or by an earlier call) is left alone.
    """
    logger = logging.getLogger(_SDK_REQUEST_LOGGER)
    if logger.level == logging.NOTSET and not logging.getLogger().isEnabledFor(logging.DEBUG):
        logger.setLevel(logging.WARNING)


def _first(env: Mapping[str, str], *names: str) -> tuple[str | None, str]:
    """The first of ``names`` that is set: ``(value, name)``; ``(None, "")`` when none is."""
    for name in names:
        value = settings.string(name, environ=env)
        if value:
            return value, name
    return None, ""


def _connection_string_account(connection_string: str) -> str | None:
    from azure.core.utils import parse_connection_string  # lazy: azure-core, only with a connection string

    try:
        parts = parse_connection_string(connection_string, case_sensitive_keys=False)
    except ValueError:
        raise StorageError(
            "AZURE_STORAGE_CONNECTION_STRING is malformed (expected Key=Value;... pairs)", recoverable=False
        ) from None
    for key in ("accountkey", "sharedaccesssignature"):
        _register(parts.get(key))
    return parts.get("accountname")


def _register(secret: str | None) -> None:
    """Mask ``secret`` everywhere from now on; for a SAS token, its signature on its own too."""
    if not secret:
        return
    redaction.register(secret)
    for name, value in parse_qsl(secret.lstrip("?"), keep_blank_values=True):
        if name.lower() == "sig":
            redaction.register(value)


def choose(env: Mapping[str, str], location: Location | None) -> Choice:
    """Pick the account, endpoint and credential for one account, in flytekit's and adlfs' precedence.

    Args:
        env: The environment.
        location: The account a URI names, or ``None``.

    Returns:
        The :class:`Choice`; its secrets are registered with :mod:`taskbox.redaction`.

    Raises:
        StorageDenied: A shared key configured for one account, and a URI naming another.
        StorageError: Not recoverable: no account to talk to, a malformed connection string, or an endpoint
            (``AZURE_STORAGE_ENDPOINT``) configured for one account and a URI naming another.
    """
    configured, _ = _first(env, "FLYTE_AZURE_STORAGE_ACCOUNT_NAME", "AZURE_STORAGE_ACCOUNT_NAME")
    named = location.account if location is not None else None
    endpoint = settings.string("AZURE_STORAGE_ENDPOINT", environ=env)
    connection_string = settings.string("AZURE_STORAGE_CONNECTION_STRING", environ=env)
    key, key_source = _first(env, "FLYTE_AZURE_STORAGE_ACCOUNT_KEY", "AZURE_STORAGE_ACCOUNT_KEY")
    sas = settings.string("AZURE_STORAGE_SAS_TOKEN", environ=env)
    client_id, _ = _first(env, "FLYTE_AZURE_CLIENT_ID", "AZURE_STORAGE_CLIENT_ID")
    client_secret, secret_source = _first(env, "FLYTE_AZURE_CLIENT_SECRET", "AZURE_STORAGE_CLIENT_SECRET")
    tenant_id, _ = _first(env, "FLYTE_AZURE_TENANT_ID", "AZURE_STORAGE_TENANT_ID")
    for secret in (key, sas, client_secret, connection_string):
        _register(secret)

    def shared_key_account(kind: str, own: str | None, source: str) -> str | None:
        if named is not None and own is not None and own.lower() != named:
            raise StorageDenied(
                f"the URI names storage account {named!r}, but the {kind} ({source}) is for account {own!r}"
            )
        return own or named

    if connection_string:
        own = _connection_string_account(connection_string) or configured
        account = shared_key_account("connection string", own, "AZURE_STORAGE_CONNECTION_STRING")
        return Choice("connection-string", account, None, "AZURE_STORAGE_CONNECTION_STRING", secret=connection_string)
    account = named or configured
    if account is None and endpoint is None:
        raise StorageError(
            "no Azure storage account: set FLYTE_AZURE_STORAGE_ACCOUNT_NAME (or AZURE_STORAGE_ACCOUNT_NAME), "
            "or name it in the URI: abfs://container@account.dfs.core.windows.net/path",
            recoverable=False,
        )
    if endpoint and named is not None and configured is not None and configured.lower() != named:
        raise StorageError(
            f"the URI names storage account {named!r}, but AZURE_STORAGE_ENDPOINT serves the configured "
            f"account {configured!r}",
            recoverable=False,
        )
    suffix = location.suffix if location is not None else _DEFAULT_SUFFIX
    allowed = (*CLOUD_SUFFIXES, *(x.lower() for x in settings.items("TASKBOX_AZURE_ENDPOINT_SUFFIXES", environ=env)))
    if not endpoint and suffix not in allowed:
        raise StorageError(
            f"the URI names the endpoint suffix {suffix!r}, which is not an Azure cloud's "
            f"({', '.join(CLOUD_SUFFIXES)}): list it in TASKBOX_AZURE_ENDPOINT_SUFFIXES (Azure Stack Hub) "
            "or set AZURE_STORAGE_ENDPOINT",
            recoverable=False,
        )
    url = endpoint.rstrip("/") if endpoint else f"https://{account}.blob.{suffix}"
    if key:
        account = shared_key_account("account key", configured, key_source)
        if account is None:
            raise StorageError(
                f"{key_source} needs an account name: set FLYTE_AZURE_STORAGE_ACCOUNT_NAME (or "
                "AZURE_STORAGE_ACCOUNT_NAME), or name it in the URI",
                recoverable=False,
            )
        return Choice("account-key", account, url, key_source, secret=key)
    if sas:
        account = shared_key_account("SAS token", configured, "AZURE_STORAGE_SAS_TOKEN")
        return Choice("sas", account, url, "AZURE_STORAGE_SAS_TOKEN", secret=sas.lstrip("?"))
    if client_id and client_secret and tenant_id:
        return Choice(
            "service-principal",
            account,
            url,
            secret_source,
            secret=client_secret,
            client_id=client_id,
            tenant_id=tenant_id,
        )
    anon = settings.string("AZURE_STORAGE_ANON", environ=env)
    if not client_id and anon is not None and anon.lower() not in _FALSE_WORDS:
        return Choice("anonymous", account, url, "AZURE_STORAGE_ANON")
    return Choice("default-credential", account, url, "DefaultAzureCredential", client_id=client_id)


# --------------------------------------------------------------------------------------------------
# The filesystem
# --------------------------------------------------------------------------------------------------


@functools.cache
def _filesystem_class() -> type:
    """The adlfs filesystem, with the SDK client built by :meth:`Choice.client` (defined on first use)."""
    from adlfs import AzureBlobFileSystem

    class TaskboxBlobFileSystem(AzureBlobFileSystem):  # type: ignore[misc]  # adlfs has no type information
        """``AzureBlobFileSystem`` whose service client taskbox builds (credential, endpoint, no SDK retries)."""

        def __init__(self, *, taskbox_choice: Choice, **kwargs: Any) -> None:
            self._taskbox_choice = taskbox_choice
            super().__init__(**kwargs)

        def do_connect(self) -> None:
            # Called by adlfs' __init__ once its attributes are set; self.credential is ours (see options).
            choice = self._taskbox_choice
            self.service_client = choice.client(self.credential)
            self.account_url = choice.account_url or self.service_client.url

    TaskboxBlobFileSystem.__qualname__ = "TaskboxBlobFileSystem"  # as logs show it (not "<locals>")
    return TaskboxBlobFileSystem


def filesystem_options(env: Mapping[str, str], uri: str) -> tuple[type, dict[str, Any]]:
    """The filesystem class and its arguments for the account ``uri`` names (or the configured one).

    adlfs is given the credential object itself (or the connection string, or ``anon=True``), so that it
    builds none of its own from the environment; the client is built in ``do_connect`` from the choice.

    Raises:
        StorageError: See :func:`choose`.
    """
    choice = choose(env, location_of(uri))
    credential = choice.credential()
    options: dict[str, Any] = {
        "taskbox_choice": choice,
        "account_name": choice.account,
        "credential": credential,
        "anon": choice.mode == "anonymous",
        "max_concurrency": _CONCURRENCY,
    }
    if choice.mode == "connection-string":
        options["connection_string"] = choice.secret
    return _filesystem_class(), options
