"""Who is to blame when a file the platform wrote cannot be read: the platform, and a retry may help.

Why: issue 18 item 9. Under ``taskbox execute``, ``fast-execute`` and ``a0`` propeller (or Flyte 2's executor)
writes ``inputs.pb`` before the pod starts, and, under ``execute``, the task template at
``{{.taskTemplatePath}}``. When such a file is missing, refused or damaged, the user's task is not at fault,
and a new attempt may read it whole (an object store not yet consistent, S3's 403 for a key the role may not
list, a write that had not landed). flytekit reports a missing or unparsable ``inputs.pb`` as SYSTEM and
recoverable (measured: tests/golden/errors/). ``taskbox run`` reads the user's own files and keeps the
user-facing classes. The table, with the reasons: docs/reliability.md, *Who is to blame for platform-written
data*.

Invariants:
    * Only the reading of the platform's file is translated: not found (:class:`StorageNotFound`), denied
      (:class:`StorageDenied`) and bytes that do not parse (:class:`taskbox.literals.wire.InputDecodeError`,
      :class:`taskbox.entrypoint.template.TemplateDecodeError`) become :class:`PlatformFileError` (SYSTEM,
      recoverable) with the code ``SYSTEM:<Inputs|Template><NotFound|Denied|Corrupt>``, the original error
      chained as its cause.
    * The error classes of this decision live beside the code that raises them (as ``a0``'s do), not in
      :mod:`taskbox.errors`: the decode errors share their parents' codes, so they are refinements of
      ``USER:InvalidInput``/``USER:InvalidTemplate`` rather than new entries of the error table.
    * Everything else keeps its class: transient storage failures (already SYSTEM, recoverable), a file over
      its cap, bytes nested past protobuf's limit, and values that parse but do not fit the interface (the
      user's: USER, non-recoverable).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Literal, TypeVar

from taskbox.errors import InputError, PlatformError, StorageDenied, StorageNotFound, TaskboxError

__all__ = ["FILES", "PlatformFileError", "from_flyte_runtime", "platform_file_error", "read_platform_file"]

T = TypeVar("T")
Kind = Literal["Inputs", "Template"]


class PlatformFileError(PlatformError):
    """A file the platform wrote for this attempt is missing, refused or does not parse (SYSTEM, recoverable).

    The instance's code names the file and what happened: ``SYSTEM:InputsNotFound``, ``SYSTEM:InputsDenied``,
    ``SYSTEM:InputsCorrupt``, the same three for ``Template``, and ``SYSTEM:InputsUnreadable`` for anything
    else flyte's runtime raised while reading ``inputs.pb``. The storage or decode error is its cause.
    """

    code = "SYSTEM:PlatformFileError"


#: The platform's files, by the word their codes start with.
FILES: dict[Kind, str] = {"Inputs": "inputs.pb", "Template": "the task template"}


def platform_file_error(exc: BaseException, kind: Kind, subject: str | None = None) -> BaseException:
    """Return the platform's error for ``exc`` raised while reading a platform-written file, or ``exc`` itself.

    Args:
        exc: What reading (or parsing) the file raised.
        kind: Which file: ``"Inputs"`` (``inputs.pb``) or ``"Template"``.
        subject: What to call the file in the message, if not ``inputs.pb`` / the template (an offloaded
            input literal that ``inputs.pb`` points to).

    Returns:
        A :class:`PlatformFileError` for a missing, refused or damaged file; ``exc`` for anything else.
    """
    from taskbox.entrypoint.template import TemplateDecodeError
    from taskbox.literals.offload import OffloadedDecodeError
    from taskbox.literals.wire import InputDecodeError

    if isinstance(exc, StorageNotFound):
        what, detail = "NotFound", "does not exist"
    elif isinstance(exc, StorageDenied):
        what, detail = "Denied", "cannot be read: access denied"
    elif isinstance(exc, InputDecodeError | OffloadedDecodeError | TemplateDecodeError):
        what, detail = "Corrupt", "is damaged"
    else:
        return exc
    return _platform_error(kind, what, subject or FILES[kind], detail, exc.message, exc)


def _platform_error(kind: Kind, what: str, subject: str, detail: str, cause: str, exc: BaseException) -> BaseException:
    """The :class:`PlatformFileError` ``SYSTEM:<kind><what>`` for ``subject``, with ``exc`` chained as its cause."""
    error = PlatformFileError(
        f"{subject}, which the platform writes before the task starts, {detail} (a retry may read it whole): {cause}",
        code=f"SYSTEM:{kind}{what}",
    )
    error.__cause__ = exc
    return error


def read_platform_file(read: Callable[[], T], kind: Kind) -> T:
    """Return ``read()``; a missing, refused or damaged file becomes the platform's error.

    Raises:
        PlatformFileError: :func:`platform_file_error` translated what ``read`` raised.
        Exception: Anything else ``read`` raised, unchanged.
    """
    try:
        return read()
    except TaskboxError as exc:
        translated = platform_file_error(exc, kind)
        if translated is exc:
            raise
        raise translated from exc


# Where flyte's own runtime reads ``inputs.pb`` (flyte/_internal/runtime/io.py, ``load_inputs``).
_FLYTE_IO = os.path.join("flyte", "_internal", "runtime", "io.py")
_FLYTE_LOAD_INPUTS = "load_inputs"


def from_flyte_runtime(exc: BaseException) -> BaseException:
    """Classify a failure that escaped flyte's runtime (``a0``'s flyte-sdk tasks) as taskbox's own ``a0`` would.

    flyte 2.12's runtime does not catch a failure to read ``inputs.pb``: it exits 1 without ``error.pb``
    (measured), and the pod failure is retried. An exception raised inside its ``load_inputs`` is the reading
    of the platform's file, so it gets the same code and retry flag as under taskbox's prebuilt ``a0``.

    Returns:
        A :class:`PlatformFileError` when ``exc`` was raised while flyte read ``inputs.pb`` (code
        ``SYSTEM:Inputs<NotFound|Denied|Corrupt|Unreadable>``), an :class:`InputError` for bytes nested past
        protobuf's limit; ``exc`` otherwise.
    """
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_name == _FLYTE_LOAD_INPUTS and code.co_filename.endswith(_FLYTE_IO):
            break
        tb = tb.tb_next
    else:
        return exc
    from google.protobuf.message import DecodeError

    from taskbox.literals.wire import too_deep

    if isinstance(exc, DecodeError) and too_deep(exc):
        return InputError(
            f"inputs.pb is nested deeper than protobuf's limit: not a serialized LiteralMap taskbox can read ({exc})"
        )
    if isinstance(exc, FileNotFoundError):
        what, detail = "NotFound", "does not exist"
    elif isinstance(exc, PermissionError):
        what, detail = "Denied", "cannot be read: access denied"
    elif isinstance(exc, DecodeError):
        what, detail = "Corrupt", "is damaged"
    else:
        what, detail = "Unreadable", "cannot be read"
    return _platform_error("Inputs", what, FILES["Inputs"], detail, f"{type(exc).__name__}: {exc}", exc)
