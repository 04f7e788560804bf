"""Azure's secrets in text (issue 21): SAS signatures, connection strings' keys, container names that are not users.

``abfs://container@account.dfs.core.windows.net/path`` puts a container's name where a URL has userinfo: it is
kept (it names the data, and hides nothing). A connection string's ``AccountKey=`` and ``SharedAccessSignature=``
are masked wherever they appear; so is a SAS token's ``sig=``. What :mod:`taskbox.storage.azure` reads from the
environment is registered, so the logging filter masks it in any encoding.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import pytest

from taskbox import redaction
from taskbox.storage import azure, retry

KEY = "Zm9vYmFyLWFjY291bnQta2V5LXZhbHVlLTEyMzQ1Njc4OTA="
SIG = "k7Zc9Q1%2Fsecret%2Bsig%3D"
SAS = f"sv=2024-11-04&ss=b&srt=co&sp=rl&se=2030-01-01T00:00:00Z&sig={SIG}"
CONNECTION = f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={KEY};EndpointSuffix=core.windows.net"


@pytest.fixture(autouse=True)
def _clean() -> None:
    redaction.clear()
    yield
    redaction.clear()


@pytest.mark.parametrize("scheme", ["abfs", "abfss", "az", "wasbs"])
def test_a_container_name_is_not_userinfo(scheme: str) -> None:
    uri = f"{scheme}://flyte-data@acct.dfs.core.windows.net/metadata/inputs.pb"
    assert redaction.redact_uri(uri) == uri
    assert redaction.redact_urls(f"cannot read {uri}: 403") == f"cannot read {uri}: 403"


def test_userinfo_with_a_password_is_still_masked() -> None:
    assert redaction.redact_uri("abfs://user:pw-secret@acct.dfs.core.windows.net/p") == (
        "abfs://***@acct.dfs.core.windows.net/p"
    )
    assert "pw-secret" not in redaction.redact_urls("see abfs://user:pw-secret@acct.dfs.core.windows.net/p")
    assert redaction.redact_uri("https://flyte-data@acct.blob.core.windows.net/c/b") == (
        "https://***@acct.blob.core.windows.net/c/b"
    )


def test_sas_signature_is_masked_in_a_uri_and_in_text() -> None:
    url = f"https://acct.blob.core.windows.net/c/inputs.pb?{SAS}"
    for out in (redaction.redact_uri(url), redaction.redact_urls(f"GET {url} failed"), retry.redact(url, environ={})):
        assert SIG not in out and "k7Zc9Q1" not in out
        assert "sp=rl" in out  # the permissions are not a secret
    assert SIG not in redaction.redact_urls(f"token: ?{SAS}")


@pytest.mark.parametrize(
    "text",
    [
        CONNECTION,
        f"ValueError: bad connection string '{CONNECTION}'",
        f"AccountName=acct;accountkey={KEY}",
        f"BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature={SAS}",
        f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=reader;SharedAccessKey={KEY}",
    ],
    ids=["whole", "quoted", "lower-case key", "sas", "service bus"],
)
def test_connection_string_secrets_are_masked_in_text(text: str) -> None:
    out = redaction.redact_urls(text)
    assert KEY not in out and SIG not in out and "k7Zc9Q1" not in out
    assert "acct" in out or "reader" in out  # names stay readable


def test_storage_messages_mask_the_azure_variables() -> None:
    env = {
        "AZURE_STORAGE_ACCOUNT_KEY": KEY,
        "AZURE_STORAGE_SAS_TOKEN": SAS,
        "AZURE_STORAGE_CONNECTION_STRING": CONNECTION,
        "FLYTE_AZURE_STORAGE_ACCOUNT_KEY": "flyte-key-" + KEY[:20],
        "FLYTE_AZURE_CLIENT_SECRET": "flyte-client-secret-value",
        "AZURE_STORAGE_CLIENT_SECRET": "adlfs-client-secret-value",
        "AZURE_CLIENT_SECRET": "sdk-client-secret-value",
    }
    text = " | ".join(env.values())
    out = retry.redact(text, environ=env)
    for value in env.values():
        assert value not in out


def test_secrets_read_for_azure_are_masked_in_logs_in_any_encoding(caplog: pytest.LogCaptureFixture) -> None:
    env = {
        "AZURE_STORAGE_CONNECTION_STRING": CONNECTION,
        "FLYTE_AZURE_STORAGE_ACCOUNT_KEY": "flyte-account-key-value",
        "AZURE_STORAGE_SAS_TOKEN": SAS,
        "AZURE_STORAGE_CLIENT_SECRET": "adlfs-client-secret-value",
    }
    azure.choose(env, None)
    logger = logging.getLogger("taskbox.test.azure")
    handler_filter = redaction.RedactingFilter()
    logger.addFilter(handler_filter)
    try:
        with caplog.at_level(logging.INFO, logger="taskbox.test.azure"):
            logger.info("key %s, url-encoded %s", KEY, quote(KEY, safe=""))
            logger.info(
                "flytekit's %s and the client secret %s", "flyte-account-key-value", "adlfs-client-secret-value"
            )
            logger.info("signature alone: %s", SIG)
    finally:
        logger.removeFilter(handler_filter)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (KEY, quote(KEY, safe=""), "flyte-account-key-value", "adlfs-client-secret-value", SIG):
        assert secret not in logged
    assert logged.count(redaction.MASK) >= 5
