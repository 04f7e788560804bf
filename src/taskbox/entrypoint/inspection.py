"""``taskbox inspect FILE``: print a protobuf file of the entrypoint as JSON, its message type told by its bytes.

Why: the files taskbox reads and writes (``inputs.pb``, ``outputs.pb``, ``error.pb``, a task template, an
offloaded literal) are named by whoever wrote them: a template saved as ``task.pb`` or ``inputs.pb`` must
print as what it is. Protobuf's wire format carries no type, and lax parsing accepts most bytes as most
messages, so a kind is chosen only when the bytes parse as it *cleanly* (no field unknown to it, nothing
re-encoded longer or shorter) and *look like it* (a template names a type, an id, an interface or a
container; an error document a textual code; a literal map names each entry and gives each a value).

Invariants:
    * Kinds are tried in a fixed order (template, error, literals, literal, Flyte 2 inputs); the file name is a
      hint only: it breaks a tie, and picks a kind whose bytes look right but carry unknown fields (a newer
      flyteidl's). Without a decision the command fails with one line naming ``--type``, exit 2.
    * ``--type`` is obeyed: the bytes are parsed as that message; ``--flyte2`` reads literal maps as Flyte 2's
      ``Inputs``/``Outputs`` (entries in order, ``context``).
    * Nothing escapes as a traceback: unreadable input (missing, a directory, too large, JSON, damaged bytes)
      is one line on stderr and exit 1 (2 for a type that cannot be told or a usage error).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["KINDS", "InspectError", "detect", "guess_from_name", "main"]

#: ``--type`` -> (module, message class).
KINDS = {
    "literals": ("flyteidl.core.literals_pb2", "LiteralMap"),
    "literal": ("flyteidl.core.literals_pb2", "Literal"),
    "error": ("flyteidl.core.errors_pb2", "ErrorDocument"),
    "template": ("flyteidl.core.tasks_pb2", "TaskTemplate"),
}
#: The order kinds are tried in when the bytes must tell (the most constrained first).
_ORDER = ("template", "error", "literals", "literal", "inputs-v2")
#: The largest file inspected (a LiteralMap costs ~13x its size in protobuf objects).
MAX_BYTES = 256 * 1024 * 1024
EXIT_UNREADABLE = 1
EXIT_USAGE = 2


class InspectError(Exception):
    """One line for stderr, and the exit code."""

    def __init__(self, message: str, code: int = EXIT_UNREADABLE) -> None:
        super().__init__(message)
        self.code = code


def guess_from_name(uri: str) -> str | None:
    """The kind the file name suggests, or ``None`` when it says nothing."""
    name = uri.rstrip("/").rsplit("/", 1)[-1].lower()
    if name.startswith("error"):
        return "error"
    if name.endswith("_offloaded_metadata.pb"):
        return "literal"
    if name in ("task.pb", "task_template.pb") or "template" in name:
        return "template"
    if name.startswith(("inputs", "outputs")):
        return "literals"
    return None


def _message(kind: str) -> Any:
    if kind == "inputs-v2":
        from taskbox.entrypoint.v2messages import v2_message

        return v2_message("inputs")()
    module_name, cls_name = KINDS[kind]
    return getattr(importlib.import_module(module_name), cls_name)()


def _parse(kind: str, data: bytes) -> Any:
    """``data`` parsed as ``kind``, or ``None`` if it does not parse at all."""
    from google.protobuf.message import DecodeError

    message = _message(kind)
    try:
        message.ParseFromString(data)
    except (DecodeError, RecursionError, ValueError):
        return None
    return message


def _clean(message: Any, size: int) -> bool:
    """True if nothing in ``message`` was unknown: dropping unknown fields leaves every byte accounted for."""
    copy = type(message)()
    copy.CopyFrom(message)
    copy.DiscardUnknownFields()
    return copy.ByteSize() == size


def _textual(text: str) -> bool:
    return bool(text) and all(ch.isprintable() or ch in "\n\t\r" for ch in text)


def _looks_like(kind: str, message: Any) -> bool:
    """True if the parsed ``message`` has what a real ``kind`` file has (module doc)."""
    if kind == "template":
        return bool(
            _textual(message.type)
            or _textual(message.id.name)
            or message.HasField("interface")
            or message.HasField("container")
        )
    if kind == "error":
        return message.HasField("error") and _textual(message.error.code)
    if kind == "literals":
        return bool(message.literals) and all(
            _textual(name) and value.WhichOneof("value") is not None for name, value in message.literals.items()
        )
    if kind == "inputs-v2":
        return bool(message.literals) and all(
            _textual(entry.name) and entry.value.WhichOneof("value") is not None for entry in message.literals
        )
    return message.WhichOneof("value") is not None  # a single literal


def detect(data: bytes, hint: str | None = None) -> tuple[str, Any]:
    """Tell the kind of ``data`` and parse it.

    Args:
        data: The file's bytes.
        hint: The kind the file name suggests (:func:`guess_from_name`), or ``None``.

    Returns:
        ``(kind, message)``.

    Raises:
        InspectError: The bytes are empty, parse as no kind, or as more than one (exit 2, naming ``--type``).
    """
    if not data:
        if hint == "literals":  # propeller may write an empty inputs.pb: an empty LiteralMap
            return hint, _message(hint)
        raise InspectError("the file is empty: no message to print (pass --type to read it as one anyway)", EXIT_USAGE)
    parsed = {kind: _parse(kind, data) for kind in _ORDER}
    looks = [k for k in _ORDER if parsed[k] is not None and _looks_like(k, parsed[k])]
    clean = [k for k in looks if _clean(parsed[k], len(data))]
    if "literals" in clean and "inputs-v2" in clean:
        clean.remove("inputs-v2")  # the same bytes: v1's map reads them (pass --flyte2 for v2's order)
    if hint is not None and (hint in clean or (not clean and hint in looks)):
        return hint, parsed[hint]
    if len(clean) == 1:
        return clean[0], parsed[clean[0]]
    choices = ", ".join(sorted(KINDS))
    if clean:
        raise InspectError(
            f"the file parses as more than one message ({', '.join(clean)}); name it with --type {{{choices}}}",
            EXIT_USAGE,
        )
    if data.lstrip()[:1] in (b"{", b"[") or _is_text(data):
        why = "it is text (JSON or YAML?), and inspect reads protobuf files"
    else:
        why = "its bytes parse cleanly as none of inputs/outputs, literal, error document or task template"
    raise InspectError(f"cannot tell the message type: {why}; name it with --type {{{choices}}}", EXIT_USAGE)


def _is_text(data: bytes) -> bool:
    try:
        return _textual(data[:4096].decode("utf-8"))
    except UnicodeDecodeError:
        return False


def _read(uri: str) -> bytes:
    from taskbox import storage
    from taskbox.errors import StorageTooLarge, TaskboxError

    try:
        return storage.read_bytes(uri, max_size=MAX_BYTES)
    except StorageTooLarge as exc:
        raise InspectError(f"{uri} is too large to inspect: {exc}") from None
    except IsADirectoryError:
        raise InspectError(f"{uri} is a directory, not a file") from None
    except (TaskboxError, OSError) as exc:
        raise InspectError(f"cannot read {uri}: {exc}") from None


def _render(kind: str, message: Any, uri: str, flyte2: bool, data: bytes) -> str:
    from google.protobuf.json_format import MessageToJson

    if flyte2 and kind == "literals":
        from taskbox.entrypoint.v2messages import v2_message

        name = uri.rstrip("/").rsplit("/", 1)[-1]
        message = v2_message("outputs" if name.startswith("outputs") else "inputs")()
        message.ParseFromString(data)
    return MessageToJson(message, indent=2)


def _run(ns: argparse.Namespace) -> str:
    from google.protobuf.message import DecodeError

    data = _read(ns.uri)
    if ns.type:
        kind, message = ns.type, _message(ns.type)
        try:
            message.ParseFromString(data)
        except (DecodeError, RecursionError) as exc:
            raise InspectError(f"{ns.uri} is not a serialized {KINDS[ns.type][1]}: {exc}") from None
    else:
        kind, message = detect(data, guess_from_name(ns.uri))
    try:
        return _render(kind, message, ns.uri, ns.flyte2, data)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise InspectError(f"{ns.uri} cannot be printed as {kind}: {exc}") from None


def _say(message: str) -> None:
    print(f"taskbox inspect: {' '.join(message.split())}", file=sys.stderr)


def main(argv: Sequence[str]) -> int:
    """``taskbox inspect``: print the file as JSON; one line on stderr and a non-zero exit otherwise."""
    p = argparse.ArgumentParser(prog="taskbox inspect", description="Print a Flyte .pb file as JSON.")
    p.add_argument("uri", help="path or URI of the file")
    p.add_argument(
        "--type", choices=sorted(KINDS), help="message type (told from the bytes; the file name breaks a tie)"
    )
    p.add_argument(
        "--flyte2",
        action="store_true",
        help="a Flyte 2 (a0) file: inputs/outputs as flyteidl2's Inputs/Outputs (ordered entries, context)",
    )
    ns = p.parse_args(list(argv))
    try:
        text = _run(ns)
    except InspectError as exc:
        _say(str(exc))
        return exc.code
    except Exception as exc:  # noqa: BLE001  # the command's boundary: one line, never a traceback
        _say(f"cannot inspect {ns.uri}: {type(exc).__name__}: {exc}")
        return EXIT_UNREADABLE
    print(text)
    return 0
