"""Secrets follow Flyte's lookup conventions and are registered for redaction when read."""

import logging

import pytest

from taskbox import redaction
from taskbox.errors import InvalidSecretName, SecretNotFound
from taskbox.secrets import SecretStore

SECRET = "s3cr3t-Value-42"


@pytest.fixture(autouse=True)
def _clean_redactor():
    redaction.clear()
    yield
    redaction.clear()


def test_env_var_with_flytekit_default_prefix():
    store = SecretStore({"_FSEC_DB_PASSWORD": f"  {SECRET}\n"})
    assert store.get("db", "password") == SECRET


def test_env_var_with_group_version_and_custom_prefix():
    store = SecretStore({"FLYTE_SECRETS_ENV_PREFIX": "MY_", "MY_DB_V2_PASSWORD": SECRET})
    assert store.env_var_name("db", "password", "v2") == "MY_DB_V2_PASSWORD"
    assert store.get("db", "password", "v2") == SECRET


def test_custom_env_var_name_wins():
    store = SecretStore({"PGPASSWORD": SECRET, "_FSEC_DB_PASSWORD": "other-value"})
    assert store.get("db", "password", env_var="PGPASSWORD") == SECRET


def test_file_under_flyte_secrets_dir(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "pw_password").write_text(SECRET + "\n")
    store = SecretStore({"FLYTE_SECRETS_DEFAULT_DIR": str(tmp_path), "FLYTE_SECRETS_FILE_PREFIX": "pw_"})
    assert store.get("db", "password") == SECRET


def test_oversized_secret_file_is_refused(tmp_path):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "password").write_bytes(b"x" * (64 * 1024 + 1))
    with pytest.raises(InvalidSecretName, match="larger than"):
        SecretStore({"FLYTE_SECRETS_DEFAULT_DIR": str(tmp_path)}).get("db", "password")


@pytest.mark.parametrize("group", ["../../etc", "a/b", "..", ".", "a b", ""])
def test_names_that_could_escape_are_refused(group):
    with pytest.raises(InvalidSecretName):
        SecretStore({}).get(group, "key")


def test_missing_secret_names_both_places_and_no_value(tmp_path):
    store = SecretStore({"FLYTE_SECRETS_DEFAULT_DIR": str(tmp_path), "_FSEC_OTHER_KEY": SECRET})
    with pytest.raises(SecretNotFound) as info:
        store.get("db", "password")
    message = str(info.value)
    assert "_FSEC_DB_PASSWORD" in message
    assert str(tmp_path / "db" / "password") in message
    assert SECRET not in message


def test_values_read_are_redacted_in_all_forms():
    SecretStore({"_FSEC_API_TOKEN": "tok/en+va=lue"}).get("api", "token")
    text = "plain tok/en+va=lue url tok%2Fen%2Bva%3Dlue b64 dG9rL2VuK3ZhPWx1ZQ=="
    assert redaction.redact(text) == "plain *** url *** b64 ***"


def test_short_values_are_not_masked_letter_by_letter():
    redaction.register("ab")
    assert redaction.redact("a cab") == "a cab"


def test_logging_filter_redacts_args_and_tracebacks(caplog):
    SecretStore({"_FSEC_DB_PASSWORD": SECRET}).get("db", "password")
    logger = logging.getLogger("taskbox.test")
    handler_filter = redaction.RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        try:
            raise RuntimeError(f"auth failed for {SECRET}")
        except RuntimeError:
            logger.exception("connecting with %s", SECRET)
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert SECRET not in caplog.text
    assert "connecting with ***" in caplog.text
    assert "auth failed for ***" in caplog.text
