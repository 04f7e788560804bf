"""The one error root of taskbox, and how each error maps onto Flyte's error document.

Why: Flyte decides whether to retry an attempt from two fields of the ``ContainerError`` that the
entrypoint writes to ``error.pb``: ``kind`` (RECOVERABLE / NON_RECOVERABLE) and ``origin`` (USER /
SYSTEM). Deciding those at the point where the failure is understood (a storage backend knows a 503
is transient, an executor knows a syntax error is the user's) is the only place they can be right,
so every error class carries its mapping as class attributes and the entrypoint never guesses.

Invariants:
    * The tree is shallow: ``TaskboxError`` -> ``UserError`` (origin USER) / ``PlatformError`` (origin SYSTEM)
      -> a few leaves.
    * Every class has a stable ``code`` (``"USER:..."`` or ``"SYSTEM:..."``), an ``origin`` and a
      ``recoverable`` flag; an instance may override them for one failure (``code=``, ``recoverable=``).
    * Third-party exceptions are translated at the boundary that raised them (storage, executors,
      literal conversion) with ``raise ... from exc``; anything that escapes untranslated is reported
      by the entrypoint as a recoverable SYSTEM error (flytekit's rule for unknown failures).
    * Messages never carry secret values: they are redacted again when the error document is built.
"""

from __future__ import annotations

from typing import ClassVar, Literal

Origin = Literal["USER", "SYSTEM"]

__all__ = [
    "ConfigError",
    "ExecutorNotFound",
    "ExecutorNotInstalled",
    "InputError",
    "InputTooLarge",
    "InvalidSecretName",
    "OutputError",
    "PipesError",
    "PlatformError",
    "PluginInvalid",
    "RecoverableUserError",
    "SecretNotFound",
    "StorageDenied",
    "StorageError",
    "StorageNotFound",
    "StorageTooLarge",
    "StorageTransient",
    "TaskLoadError",
    "TaskboxError",
    "Terminated",
    "TemplateError",
    "UnsupportedType",
    "UserCodeError",
    "UserError",
]


class TaskboxError(Exception):
    """Root of every error taskbox raises on purpose.

    Args:
        message: What went wrong, for a person; shown in Flyte's UI.
        code: Overrides the class's error code for this failure.
        recoverable: Overrides the class's retry decision for this failure.
    """

    code: ClassVar[str] = "SYSTEM:Unknown"
    origin: ClassVar[Origin] = "SYSTEM"
    recoverable: ClassVar[bool] = True

    def __init__(self, message: str, *, code: str | None = None, recoverable: bool | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # per-instance override of the ClassVar
        if recoverable is not None:
            self.recoverable = recoverable  # type: ignore[misc]

    def __str__(self) -> str:
        return self.message


class UserError(TaskboxError):
    """The task's inputs, template, configuration or user code are wrong; retrying will not help."""

    code = "USER:Error"
    origin = "USER"
    recoverable = False


class RecoverableUserError(UserError):
    """A user-side failure the user marked as worth retrying (Flyte's FlyteRecoverableException).

    Public as ``taskbox.RecoverableError``: user code raises it directly, or wraps the real cause with
    ``raise RecoverableError("rate limited") from exc``; Flyte then retries the attempt (within the
    task's ``retries``).
    """

    code = "USER:Recoverable"
    recoverable = True

    def __init__(self, message: object = "recoverable user error", **kwargs: object) -> None:
        super().__init__(str(message), **kwargs)  # type: ignore[arg-type]  # any object, like Exception


class UserCodeError(UserError):
    """A ``@taskbox.task`` function raised; the instance's code names the exception (``USER:ValueError``).

    The user's exception is the ``__cause__``, so its traceback is in the error document.
    """

    code = "USER:RuntimeError"


class TaskLoadError(UserError):
    """The user task cannot be loaded: module not found, import failed, name missing or not a task."""

    code = "USER:TaskLoadError"


class TemplateError(UserError):
    """The TaskTemplate cannot be read or does not fit the executor (bad bytes, unknown task type)."""

    code = "USER:InvalidTemplate"


class ConfigError(UserError):
    """The template's ``custom`` config does not validate against the executor's config model."""

    code = "USER:InvalidConfig"


class InputError(UserError):
    """Inputs are unreadable, missing, unexpected or of the wrong type for the declared interface."""

    code = "USER:InvalidInput"


class InputTooLarge(InputError):
    """An input file is larger than its cap; refused before it is downloaded.

    Not recoverable: the same bytes come back on every retry. The caps: ``TASKBOX_MAX_INPUTS_BYTES``
    (``inputs.pb``), ``TASKBOX_MAX_TEMPLATE_BYTES`` (the task template), 64 MiB for a JSON/YAML
    document given to ``taskbox run`` (``--inputs``, ``--config``, ``--template``).
    """

    code = "USER:InputTooLarge"


class OutputError(UserError):
    """A produced value does not match the declared output interface."""

    code = "USER:InvalidOutput"


class UnsupportedType(UserError):
    """A Python type or LiteralType that taskbox cannot convert (pickled objects, bytes, ...)."""

    code = "USER:UnsupportedType"


class ExecutorNotFound(UserError):
    """The template names an executor (or task type) that no installed plugin provides."""

    code = "USER:ExecutorNotFound"


class ExecutorNotInstalled(UserError):
    """The executor is known, but its optional dependencies are missing from this image."""

    code = "USER:ExecutorNotInstalled"


class SecretNotFound(UserError):
    """A requested secret is in neither of Flyte's lookup locations."""

    code = "USER:SecretNotFound"


class InvalidSecretName(UserError):
    """A secret group or key holds characters that could escape the secrets directory."""

    code = "USER:InvalidSecretName"


class PlatformError(TaskboxError):
    """The platform failed (storage, network, the node); retrying the attempt may well succeed."""

    code = "SYSTEM:Error"
    origin = "SYSTEM"
    recoverable = True


class StorageError(PlatformError):
    """Blob storage failed for a reason that is not classified more precisely."""

    code = "SYSTEM:StorageError"


class StorageTransient(StorageError):
    """Throttling, 5xx, timeouts, connection resets: still failing after the retry budget."""

    code = "SYSTEM:StorageTransient"


class StorageNotFound(StorageError):
    """The object does not exist. Not recoverable: retrying will not make it appear."""

    code = "SYSTEM:StorageNotFound"
    recoverable = False


class StorageDenied(StorageError):
    """Credentials are missing or lack permission. Not recoverable without a change of configuration."""

    code = "SYSTEM:StorageDenied"
    recoverable = False


class StorageTooLarge(StorageError):
    """The object is larger than the caller's cap (checked from its size before it is read)."""

    code = "SYSTEM:StorageTooLarge"
    recoverable = False


class PluginInvalid(PlatformError):
    """An installed executor plugin does not satisfy the executor contract (a broken image)."""

    code = "SYSTEM:InvalidPlugin"
    recoverable = False


class PipesError(PlatformError):
    """Dagster Pipes cannot be spoken (:mod:`taskbox.entrypoint.pipes`); retrying will not help.

    A malformed ``DAGSTER_PIPES_CONTEXT`` / ``DAGSTER_PIPES_MESSAGES``, an unreadable context file, an
    unwritable messages destination, or no ``dagster-pipes`` package: a retry gets the same variables.
    """

    code = "SYSTEM:PipesError"
    recoverable = False


class Terminated(PlatformError):
    """The container was asked to stop (SIGTERM) before the task finished."""

    code = "SYSTEM:Terminated"

    def __init__(self, message: str = "terminated by SIGTERM before the task finished", **kwargs: object) -> None:
        super().__init__(message, **kwargs)  # type: ignore[arg-type]
