"""Reading the entrypoint's protobuf files: size-capped, with a typed error for bad bytes.

Why: ``inputs.pb`` and the task template come from storage that the task does not control. Both are
read whole (protobuf has no streaming parser), so both are capped before they are read, and bytes that
do not parse become a typed error instead of a protobuf ``DecodeError``: the caller's decode error for
damaged bytes, its plain user error for bytes nested past protobuf's limit (sound, but unreadable here).
Who is to blame for a damaged file is the caller's decision (:mod:`taskbox.entrypoint.blame`).
"""

from __future__ import annotations

from typing import Any, TypeVar

from taskbox import settings, storage
from taskbox.errors import InputTooLarge, StorageTooLarge, UserError

M = TypeVar("M")


def read_capped(uri: str, *, limit_env: str, default_limit: int, what: str) -> bytes:
    """Read the whole file at ``uri`` under its size cap.

    Raises:
        InputTooLarge: The file is over the cap (refused before it is downloaded).
        StorageError: The file cannot be read.
    """
    limit = settings.integer(limit_env, default_limit)
    try:
        return storage.read_bytes(uri, max_size=limit)
    except StorageTooLarge as exc:
        raise InputTooLarge(f"the {what} file is too large: {exc} (raise {limit_env} to allow it)") from None


def parse_into(
    data: bytes, message: M, *, uri: str, error: type[UserError], what: str, nested_error: type[UserError] | None = None
) -> M:
    """Fill ``message`` from ``data`` (read from ``uri``); errors as :func:`read_message`."""
    from google.protobuf.message import DecodeError

    msg: Any = message
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        from taskbox.literals.wire import too_deep

        if too_deep(exc):
            raise (nested_error or error)(
                f"{uri} is nested deeper than protobuf's limit: not a serialized {what} taskbox can read ({exc})"
            ) from None
        raise error(f"{uri} is not a serialized {what}: {exc}") from None
    return message


def read_message(
    uri: str,
    message: M,
    *,
    limit_env: str,
    default_limit: int,
    error: type[UserError],
    what: str,
    nested_error: type[UserError] | None = None,
) -> M:
    """Fill ``message`` from the serialized bytes at ``uri``.

    Args:
        uri: Where the file is.
        message: An empty protobuf message to parse into.
        limit_env: Environment variable that overrides the size cap.
        default_limit: The size cap in bytes.
        error: The error class for bytes that do not parse.
        what: The message's name, for the error ("TaskTemplate").
        nested_error: The error class for bytes refused only for their nesting (``error`` if ``None``).

    Returns:
        ``message``, filled.

    Raises:
        InputTooLarge: The file is over the cap (refused before it is downloaded).
        UserError: ``error``, for bytes that do not parse; ``nested_error`` for bytes nested too deep.
        StorageError: The file cannot be read (not found, denied, transient failures past the retries).
    """
    data = read_capped(uri, limit_env=limit_env, default_limit=default_limit, what=what)
    return parse_into(data, message, uri=uri, error=error, what=what, nested_error=nested_error)
