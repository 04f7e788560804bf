"""Azure Blob Storage without a server: URI forms, the choice of account and credential, lazy imports.

:mod:`taskbox.storage.azure` decides, from the environment and the URI, which account and endpoint to talk to
and with which credential, in flytekit's and adlfs' precedence; nothing here makes a request (credentials are
built, never asked for a token). The server side is test_storage_azure.py, against Azurite.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator

import pytest

from taskbox import redaction
from taskbox.errors import StorageDenied, StorageError
from taskbox.storage import azure


@pytest.fixture(autouse=True)
def _clean_redaction() -> Iterator[None]:
    yield
    redaction.clear()  # choose() registers the secrets it reads; later tests start from nothing


# --------------------------------------------------------------------------------------------------
# Lazy imports
# --------------------------------------------------------------------------------------------------


def test_the_azure_module_imports_no_sdk_until_a_filesystem_is_built() -> None:
    code = (
        "import sys, taskbox.storage, taskbox.storage.azure as a, taskbox.storage.remote\n"
        "a.cache_key('abfs://c@acct.dfs.core.windows.net/p')\n"
        "a.choose({'AZURE_STORAGE_ACCOUNT_NAME': 'acct'}, None)\n"
        "bad = [m for m in sys.modules if m == 'adlfs' or m.startswith('azure')]\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------------------------------
# URI forms and the choice of credential (no server, no network)
# --------------------------------------------------------------------------------------------------


CORE = azure.Location("acct", "core.windows.net")
CHINA = azure.Location("cn1", "core.chinacloudapi.cn")


@pytest.mark.parametrize(
    ("uri", "location", "key"),
    [
        ("abfs://container/a/b", None, "abfs"),
        ("abfss://container/a/b", None, "abfs"),
        ("az://container", None, "abfs"),
        ("abfs://ctr@acct.dfs.core.windows.net/a/b", CORE, "abfs@acct.core.windows.net"),
        ("abfss://ctr@Acct.blob.core.windows.net/", CORE, "abfs@acct.core.windows.net"),
        ("abfs://c@cn1.dfs.core.chinacloudapi.cn/p", CHINA, "abfs@cn1.core.chinacloudapi.cn"),
    ],
)
def test_uri_forms(uri: str, location: azure.Location | None, key: str) -> None:
    assert azure.location_of(uri) == location
    assert azure.cache_key(uri) == key


@pytest.mark.parametrize(
    "uri", ["abfs://c@127.0.0.1:10000/p", "abfs://c@acct.example.com/p", "abfs://u:pw@acct.dfs.core.windows.net/p"]
)
def test_a_host_that_is_not_azure_storage_is_refused(uri: str) -> None:
    with pytest.raises(StorageError, match="unsupported Azure URI") as info:
        azure.location_of(uri)
    assert info.value.recoverable is False
    assert "pw" not in str(info.value)


ACCT = azure.Location("acct", "core.windows.net")
URL = "https://acct.blob.core.windows.net"
KEY8, SAS = "k" * 8, "sv=1&sig=s"
CS = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=Y3N0cmluZy1rZXktdmFsdWU="
SP = {
    "AZURE_STORAGE_CLIENT_ID": "cid",
    "AZURE_STORAGE_CLIENT_SECRET": "csecret-value",
    "AZURE_STORAGE_TENANT_ID": "tid",
}
NAME = {"AZURE_STORAGE_ACCOUNT_NAME": "acct"}
DEFAULT = ("default-credential", "acct", URL, "DefaultAzureCredential")
CHOICES = {
    # id: (environment, the URI's location, (mode, account, account_url, source))
    "connection string beats everything": (
        {
            "AZURE_STORAGE_CONNECTION_STRING": CS,
            "FLYTE_AZURE_STORAGE_ACCOUNT_KEY": KEY8,
            "AZURE_STORAGE_SAS_TOKEN": SAS,
            **SP,
        },
        None,
        ("connection-string", "acct", None, "AZURE_STORAGE_CONNECTION_STRING"),
    ),
    "flytekit's key and account first": (
        {
            "FLYTE_AZURE_STORAGE_ACCOUNT_NAME": "flyte",
            "FLYTE_AZURE_STORAGE_ACCOUNT_KEY": KEY8,
            "AZURE_STORAGE_ACCOUNT_NAME": "other",
            "AZURE_STORAGE_ACCOUNT_KEY": "x" * 8,
        },
        None,
        ("account-key", "flyte", "https://flyte.blob.core.windows.net", "FLYTE_AZURE_STORAGE_ACCOUNT_KEY"),
    ),
    "adlfs' key": (
        {**NAME, "AZURE_STORAGE_ACCOUNT_KEY": KEY8},
        None,
        ("account-key", "acct", URL, "AZURE_STORAGE_ACCOUNT_KEY"),
    ),
    "a key beats a SAS token": (
        {**NAME, "AZURE_STORAGE_ACCOUNT_KEY": KEY8, "AZURE_STORAGE_SAS_TOKEN": SAS},
        None,
        ("account-key", "acct", URL, "AZURE_STORAGE_ACCOUNT_KEY"),
    ),
    "a SAS token beats a service principal": (
        {**NAME, "AZURE_STORAGE_SAS_TOKEN": "?" + SAS, **SP},
        None,
        ("sas", "acct", URL, "AZURE_STORAGE_SAS_TOKEN"),
    ),
    "flytekit's service principal": (
        {"FLYTE_AZURE_CLIENT_ID": "c", "FLYTE_AZURE_CLIENT_SECRET": KEY8, "FLYTE_AZURE_TENANT_ID": "t"},
        ACCT,
        ("service-principal", "acct", URL, "FLYTE_AZURE_CLIENT_SECRET"),
    ),
    "service principal field by field": (
        {"FLYTE_AZURE_CLIENT_ID": "c", "AZURE_STORAGE_CLIENT_SECRET": KEY8, "AZURE_STORAGE_TENANT_ID": "t"},
        ACCT,
        ("service-principal", "acct", URL, "AZURE_STORAGE_CLIENT_SECRET"),
    ),
    "anonymous": ({"AZURE_STORAGE_ANON": "true"}, ACCT, ("anonymous", "acct", URL, "AZURE_STORAGE_ANON")),
    "anon false is not anonymous": ({"AZURE_STORAGE_ANON": "f"}, ACCT, DEFAULT),
    "a client id wins over anon": ({"AZURE_STORAGE_ANON": "1", "FLYTE_AZURE_CLIENT_ID": "c"}, ACCT, DEFAULT),
    "nothing: workload identity": ({}, ACCT, DEFAULT),
    "the URI's account for a token": (
        {"FLYTE_AZURE_STORAGE_ACCOUNT_NAME": "mine"},
        azure.Location("theirs", "core.windows.net"),
        ("default-credential", "theirs", "https://theirs.blob.core.windows.net", "DefaultAzureCredential"),
    ),
    "another cloud's suffix": (
        {},
        azure.Location("cn1", "core.chinacloudapi.cn"),
        ("default-credential", "cn1", "https://cn1.blob.core.chinacloudapi.cn", "DefaultAzureCredential"),
    ),
    "an endpoint (emulator, private endpoint)": (
        {**NAME, "AZURE_STORAGE_ACCOUNT_KEY": KEY8, "AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:9/acct/"},
        None,
        ("account-key", "acct", "http://127.0.0.1:9/acct", "AZURE_STORAGE_ACCOUNT_KEY"),
    ),
}


@pytest.mark.parametrize(("env", "location", "expected"), list(CHOICES.values()), ids=list(CHOICES))
def test_credential_precedence(env: dict[str, str], location: azure.Location | None, expected: tuple) -> None:
    choice = azure.choose(env, location)
    assert (choice.mode, choice.account, choice.account_url, choice.source) == expected


@pytest.mark.parametrize(
    ("env", "kind"),
    [
        ({"AZURE_STORAGE_ACCOUNT_NAME": "mine", "AZURE_STORAGE_ACCOUNT_KEY": "x" * 8}, "account key"),
        ({"FLYTE_AZURE_STORAGE_ACCOUNT_NAME": "mine", "AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=s"}, "SAS token"),
        ({"AZURE_STORAGE_CONNECTION_STRING": CS.replace("=acct;", "=mine;")}, "connection string"),
    ],
)
def test_a_shared_key_is_never_used_for_another_account(env: dict[str, str], kind: str) -> None:
    with pytest.raises(StorageDenied) as info:
        azure.choose(env, azure.Location("theirs", "core.windows.net"))
    assert f"the URI names storage account 'theirs', but the {kind}" in str(info.value)
    assert info.value.recoverable is False


def test_an_endpoint_is_never_used_for_another_account() -> None:
    env = {"AZURE_STORAGE_ACCOUNT_NAME": "mine", "AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:9/mine"}
    with pytest.raises(StorageError, match="AZURE_STORAGE_ENDPOINT serves the configured account 'mine'") as info:
        azure.choose(env, azure.Location("theirs", "core.windows.net"))
    assert info.value.recoverable is False
    assert azure.choose(env, azure.Location("mine", "core.windows.net")).account_url == "http://127.0.0.1:9/mine"


@pytest.mark.parametrize(
    "suffix", ["attacker.example", "core.windows.net.attacker.example", "127.0.0.1.nip.io", "localhost"]
)
@pytest.mark.parametrize(
    "env",
    [{}, {"AZURE_STORAGE_SAS_TOKEN": "sv=1&sig=s"}, dict(SP)],
    ids=["workload identity", "SAS token", "service principal"],
)
def test_a_uri_cannot_send_a_credential_to_a_host_outside_azure(env: dict[str, str], suffix: str) -> None:
    """``abfs://c@acct.dfs.attacker.example/x`` in an input would get the pod's token or SAS: refused first."""
    with pytest.raises(StorageError, match="TASKBOX_AZURE_ENDPOINT_SUFFIXES") as info:
        azure.choose(env, azure.Location("acct", suffix))
    assert info.value.recoverable is False and "sig=s" not in str(info.value)


def test_more_endpoint_suffixes_are_configured_and_an_endpoint_ignores_the_uris() -> None:
    stack = azure.Location("acct", "azs.contoso.local")
    env = {"TASKBOX_AZURE_ENDPOINT_SUFFIXES": "other.example, AZS.contoso.local"}
    assert azure.choose(env, stack).account_url == "https://acct.blob.azs.contoso.local"
    for cloud in azure.CLOUD_SUFFIXES:
        assert azure.choose({}, azure.Location("acct", cloud)).account_url == f"https://acct.blob.{cloud}"
    endpoint = {"AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:9/acct"}  # the configured endpoint is the one used
    assert azure.choose(endpoint, stack).account_url == "http://127.0.0.1:9/acct"
    assert azure.choose({"AZURE_STORAGE_CONNECTION_STRING": CS}, stack).account_url is None


def test_no_account_is_a_permanent_configuration_error() -> None:
    with pytest.raises(StorageError, match="no Azure storage account") as info:
        azure.choose({}, None)
    assert info.value.recoverable is False
    with pytest.raises(StorageError, match="needs an account name"):
        azure.choose({"AZURE_STORAGE_ACCOUNT_KEY": "x" * 8, "AZURE_STORAGE_ENDPOINT": "http://127.0.0.1:9"}, None)
    with pytest.raises(StorageError, match="malformed") as info:
        azure.choose({"AZURE_STORAGE_CONNECTION_STRING": "not a connection string"}, None)
    assert "not a connection string" not in str(info.value)


def test_credentials_are_the_sdks_objects() -> None:
    from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
    from azure.identity.aio import ClientSecretCredential, DefaultAzureCredential

    key = azure.choose({"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_ACCOUNT_KEY": "x" * 8}, None).credential()
    assert isinstance(key, AzureNamedKeyCredential) and key.named_key == ("acct", "x" * 8)
    sas = azure.choose({"AZURE_STORAGE_ACCOUNT_NAME": "acct", "AZURE_STORAGE_SAS_TOKEN": "?sv=1&sig=s"}, None)
    assert isinstance(sas.credential(), AzureSasCredential) and sas.credential().signature == "sv=1&sig=s"
    tokens = [
        azure.choose({"AZURE_STORAGE_ACCOUNT_NAME": "acct", **SP}, None).credential(),
        azure.choose({"AZURE_STORAGE_ACCOUNT_NAME": "acct"}, None).credential(),
        azure.choose({"AZURE_STORAGE_ACCOUNT_NAME": "acct", "FLYTE_AZURE_CLIENT_ID": "cid"}, None).credential(),
    ]
    assert [type(t) for t in tokens] == [ClientSecretCredential, DefaultAzureCredential, DefaultAzureCredential]
    assert azure.choose({"AZURE_STORAGE_ANON": "yes"}, ACCT).credential() is None
    for token in tokens:  # built, never asked for a token (that would leave the machine)
        asyncio.run(token.close())


def test_secrets_are_registered_and_never_shown() -> None:
    sig = "c2lnbmF0dXJlLXZhbHVl%3D"
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": CS,
        "FLYTE_AZURE_STORAGE_ACCOUNT_KEY": "flyte-account-key-value",
        "AZURE_STORAGE_SAS_TOKEN": f"sv=2024-11-04&sp=r&sig={sig}",
        "FLYTE_AZURE_CLIENT_SECRET": "client-secret-value",
    }
    choice = azure.choose(env, None)
    shown = repr(choice)
    text = " ".join(["Y3N0cmluZy1rZXktdmFsdWU=", "flyte-account-key-value", sig, "client-secret-value", CS])
    redacted = redaction.redact(text)
    for secret in ("Y3N0cmluZy1rZXktdmFsdWU=", "flyte-account-key-value", sig, "client-secret-value"):
        assert secret not in shown
        assert secret not in redacted
    assert "c2lnbmF0dXJlLXZhbHVl=" not in redaction.redact("sig c2lnbmF0dXJlLXZhbHVl= decoded")
