"""The error tree's Flyte mapping: origin, recoverability and code of every class."""

import pytest

from taskbox import errors

EXPECTED = {
    errors.UserError: ("USER", False),
    errors.RecoverableUserError: ("USER", True),
    errors.UserCodeError: ("USER", False),
    errors.TaskLoadError: ("USER", False),
    errors.TemplateError: ("USER", False),
    errors.ConfigError: ("USER", False),
    errors.InputError: ("USER", False),
    errors.InputTooLarge: ("USER", False),
    errors.OutputError: ("USER", False),
    errors.ExecutorNotFound: ("USER", False),
    errors.ExecutorNotInstalled: ("USER", False),
    errors.SecretNotFound: ("USER", False),
    errors.InvalidSecretName: ("USER", False),
    errors.UnsupportedType: ("USER", False),
    errors.PlatformError: ("SYSTEM", True),
    errors.StorageError: ("SYSTEM", True),
    errors.StorageTransient: ("SYSTEM", True),
    errors.StorageNotFound: ("SYSTEM", False),
    errors.StorageDenied: ("SYSTEM", False),
    errors.StorageTooLarge: ("SYSTEM", False),
    errors.PluginInvalid: ("SYSTEM", False),
    errors.PipesError: ("SYSTEM", False),
    errors.Terminated: ("SYSTEM", True),
}


@pytest.mark.parametrize("cls", list(EXPECTED), ids=lambda c: c.__name__)
def test_each_class_carries_its_flyte_mapping(cls):
    exc = cls("boom") if cls is not errors.Terminated else cls()
    origin, recoverable = EXPECTED[cls]
    assert exc.origin == origin
    assert exc.recoverable is recoverable
    assert exc.code.startswith(f"{origin}:")
    assert isinstance(exc, errors.TaskboxError)


def test_every_public_error_is_covered():
    public = {getattr(errors, n) for n in errors.__all__} - {errors.TaskboxError}
    assert public == set(EXPECTED)


def test_codes_are_unique():
    codes = [cls.code for cls in EXPECTED]
    assert len(codes) == len(set(codes))


def test_instance_overrides_do_not_leak_to_the_class():
    exc = errors.StorageError("disk full", code="SYSTEM:DiskFull", recoverable=False)
    assert (exc.code, exc.recoverable) == ("SYSTEM:DiskFull", False)
    assert (errors.StorageError.code, errors.StorageError.recoverable) == ("SYSTEM:StorageError", True)
    assert str(exc) == "disk full"
