"""URL redaction (credential query parameters, userinfo): one list of parameter names, one implementation.

The storage layer (:mod:`taskbox.storage.retry`) scrubs URIs and free text with the functions of
:mod:`taskbox.redaction`; every credential parameter is masked in a URI *and* in free text alike.
"""

from __future__ import annotations

import pytest

from taskbox import redaction
from taskbox.storage import retry

SECRET = "s3cr3t-value-42"


def test_storage_uses_the_one_url_redaction() -> None:
    assert retry.redact_uri is redaction.redact_uri


@pytest.mark.parametrize("name", redaction.CREDENTIAL_PARAMS)
def test_every_credential_parameter_is_masked_in_a_uri(name: str) -> None:
    for spelled in (name, name.upper()):
        out = redaction.redact_uri(f"https://h.example/o?v=1&{spelled}={SECRET}")
        assert SECRET not in out
        assert "v=1" in out


@pytest.mark.parametrize("name", redaction.CREDENTIAL_PARAMS)
def test_every_credential_parameter_is_masked_in_free_text(name: str) -> None:
    for spelled in (name, name.upper()):
        text = f"GET https://h.example/o?v=1&{spelled}={SECRET} failed: 500"
        assert SECRET not in redaction.redact_urls(text)
        assert SECRET not in retry.redact(text, environ={})
        assert retry.redact(text, environ={}).endswith(" failed: 500")


def test_userinfo_is_masked_in_a_uri_and_in_text() -> None:
    uri = f"postgresql://reader:{SECRET}@db.example:5432/sales"
    assert redaction.redact_uri(uri) == "postgresql://***@db.example:5432/sales"
    assert redaction.redact_urls(f"cannot reach {uri}") == "cannot reach postgresql://***@db.example:5432/sales"


def test_plain_parameters_and_uris_are_left_alone() -> None:
    for uri in ("s3://bucket/key with space", "gs://b/k?generation=3", "https://h/p?a=1&b=2", "https://h/p?monkey=1"):
        assert redaction.redact_uri(uri) == uri
        assert redaction.redact_urls(uri) == uri


def test_a_uri_that_does_not_parse_is_still_scrubbed() -> None:
    out = redaction.redact_uri(f"http://[::1/o?token={SECRET}")
    assert SECRET not in out
