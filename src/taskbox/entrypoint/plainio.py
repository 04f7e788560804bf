"""Plain JSON/YAML values <-> Flyte literals, for ``taskbox run`` (files in, files out, like Flyte's copilot).

Why: orchestrators other than Flyte pass strings and files. ``taskbox run`` takes inputs as plain JSON or
YAML values (or ``name=value`` strings) and converts them by the task's declared ``LiteralType`` before the
executor sees them, exactly as ``inputs.pb`` would have been; it writes outputs back as plain values
(tables and files as their URIs) beside ``outputs.pb``. Interfaces can be declared in a small type
language (``int``, ``list[str]``, ``table``...) instead of protobuf.

Invariants:
    * A plain value that does not fit its declared type is an :class:`~taskbox.errors.InputError` naming
      the input, never a silent coercion: ``"5"`` is an ``int`` only when it came as text (a flag or an
      environment variable), where everything is text.
    * Files, directories and tables given as paths or URIs are passed by reference (never copied).
    * Output plain forms: strings, numbers, booleans and ``null`` as JSON scalars, datetimes as ISO 8601
      (``Z`` for UTC), durations as seconds, files/directories/tables as URIs, structs as objects.
    * PyYAML is imported only when a YAML document is read (``pip install 'taskbox[run]'``).
    * Every JSON/YAML document a user gives (inputs, templates, configs, interfaces) is parsed by
      :func:`taskbox.entrypoint.documents.parse_document` alone (alias bombs and scalars that cannot be
      built are the document's error; see that module).
    * Numbers that cannot be what their type says are the input's error: an integer outside int64, a
      float that is NaN, infinite or too large for a double, a duration out of range; structs carry no
      NaN or infinity (as a template's config, which JSON cannot carry either).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any

from taskbox.entrypoint.documents import parse_document
from taskbox.errors import ConfigError, InputError, InputTooLarge, OutputError, StorageTooLarge, TaskboxError
from taskbox.typespec import parse_type  # the type language (re-exported: existing callers)

__all__ = [
    "infer_type",
    "literal_to_plain",
    "load_document",
    "parse_document",
    "parse_type",
    "plain_to_literal",
    "render_output_file",
    "text_to_plain",
]

PLAIN_DOCUMENT_MAX_BYTES = 64 * 1024 * 1024  # a --inputs/--config JSON or YAML file, read whole

_UTC = datetime.UTC
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


# ------------------------------------------------------------------ documents


def load_document(ref: str, *, what: str, error: type[TaskboxError] = ConfigError) -> Any:
    """Read a JSON/YAML document from a path or URI, or take ``ref`` itself when it is inline JSON/YAML.

    ``ref`` is inline when it starts with ``{`` or ``[`` (after white space) or holds a newline; a ``.json``
    file must be JSON, anything else is read as JSON or YAML.

    Raises:
        ConfigError (or ``error``): Unreadable or malformed.

    """
    from taskbox import storage

    stripped = ref.lstrip()
    if stripped.startswith(("{", "[")) or "\n" in ref:
        text, name = ref, f"inline {what}"
    else:
        try:
            data = storage.read_bytes(ref, max_size=PLAIN_DOCUMENT_MAX_BYTES)
        except StorageTooLarge as exc:
            raise InputTooLarge(f"{what} {ref} is too large to read as a document: {exc}") from None
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise error(f"{what} {ref} is not UTF-8 text") from None
        name = f"{what} {ref}"
    try:
        return parse_document(text, yaml_ok=not ref.endswith(".json"), what=name)
    except ConfigError as exc:
        raise error(exc.message) from None


def infer_type(value: Any, name: str) -> Any:
    """Return the ``LiteralType`` of a plain value whose input was not declared (a JSON number, string...).

    Raises:
        InputError: ``null`` or an empty list, whose type cannot be told.

    """
    if isinstance(value, bool):
        return parse_type("bool")
    if isinstance(value, int):
        return parse_type("int")
    if isinstance(value, float):
        return parse_type("float")
    if isinstance(value, str):
        return parse_type("str")
    if isinstance(value, datetime.date):  # YAML reads timestamps
        return parse_type("datetime")
    if isinstance(value, dict):
        return parse_type("json")
    if isinstance(value, list) and value:
        from flyteidl.core import types_pb2

        return types_pb2.LiteralType(collection_type=infer_type(value[0], name))
    raise InputError(
        f"input {name!r}: cannot tell the type of {json.dumps(value)}; declare it (interface.inputs.{name})"
    )


# ------------------------------------------------------------------ plain -> literal


def text_to_plain(text: str, literal_type: Any | None) -> Any:
    """Read a ``name=value`` string or an environment variable as a plain value.

    A declared string takes the text as it is; anything else is read as JSON when it parses, else as the
    text itself (so ``5`` is a number, ``abc`` and ``2026-01-01`` are strings).
    """
    if literal_type is not None and literal_type.WhichOneof("type") == "simple":
        from flyteidl.core import types_pb2

        if literal_type.simple == types_pb2.STRING:
            return text
    try:
        return json.loads(text)
    except (ValueError, RecursionError):  # too deep for JSON: the text itself, which the declared type refuses
        return text


def _seconds(seconds: float) -> datetime.timedelta:
    """A duration of ``seconds``, or ``ValueError`` when no ``timedelta`` can hold it (NaN, inf, too long)."""
    try:
        if math.isfinite(seconds):
            return datetime.timedelta(seconds=seconds)
    except (OverflowError, ValueError):
        pass
    raise ValueError(f"a duration of {_short(seconds)} seconds is out of range (at most 999999999 days)")


def _short(value: Any) -> str:
    """A number for a message: a huge integer is cut (Python refuses to print past its digit limit)."""
    if isinstance(value, int) and value.bit_length() > 128:
        return f"an integer of about {int(value.bit_length() * 0.30103)} digits"
    return repr(value)


def _parse_duration(value: Any) -> datetime.timedelta:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return _seconds(float(value))
        except OverflowError:
            raise ValueError(f"a duration of {_short(value)} seconds is out of range") from None
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = None
        if seconds is not None:
            return _seconds(seconds)
        parts = _DURATION_PART.findall(text)
        if parts and "".join(n + u for n, u in parts) == text.replace(" ", ""):
            scale = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600, "d": 86400}
            return _seconds(sum(float(n) * scale[u] for n, u in parts))
    raise ValueError(f"expected seconds or a duration such as '1h30m', got {value!r}")


def _parse_int(text: str) -> int:
    """Read a decimal integer; one longer than int64 can be is refused before Python parses it."""
    text = text.strip()
    digits = text.lstrip("+-").replace("_", "")
    if digits.isdigit() and len(digits.lstrip("0")) > 19:
        raise ValueError(f"{text[:20]}... ({len(digits)} digits) is outside the int64 range")
    return int(text)


def _to_float(value: Any) -> float:
    """A finite float from a number or its text; NaN, infinity and overflow are refused."""
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except OverflowError:
        raise ValueError(f"{_short(value)} is too large for a float") from None
    if not math.isfinite(number):
        raise ValueError(f"{value!r} is not a finite number (taskbox run takes no NaN or infinity)")
    return number


def _check_finite(value: Any) -> None:
    """Refuse a struct holding NaN or infinity (JSON cannot carry them; as for a template's config)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ValueError(f"a struct cannot hold {item!r} (JSON has no NaN or infinity)")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _coerce_simple(value: Any, simple: int) -> Any:
    from flyteidl.core import types_pb2

    if simple == types_pb2.INTEGER:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            return _parse_int(value)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif simple == types_pb2.FLOAT:
        if isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
            return _to_float(value)
    elif simple == types_pb2.STRING:
        if isinstance(value, str):
            return value
    elif simple == types_pb2.BOOLEAN:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
    elif simple == types_pb2.DATETIME:
        if isinstance(value, str):
            value = datetime.datetime.fromisoformat(value.strip())
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            value = datetime.datetime.combine(value, datetime.time.min)
        if isinstance(value, datetime.datetime):
            return value if value.tzinfo is not None else value.replace(tzinfo=_UTC)
    elif simple == types_pb2.DURATION:
        return _parse_duration(value)
    elif simple == types_pb2.STRUCT:
        if isinstance(value, str):
            value = json.loads(value)
        if isinstance(value, dict):
            _check_finite(value)
            return value
    elif simple == types_pb2.NONE:
        if value is None:
            return None
    raise ValueError(f"expected {types_pb2.SimpleType.Name(simple).lower()}, got {json.dumps(value, default=str)}")


def _coerce(value: Any, lt: Any) -> Any:
    """Turn a plain value into the Python value the literal engine encodes as ``lt``."""
    kind = lt.WhichOneof("type")
    if kind == "simple":
        return _coerce_simple(value, lt.simple)
    if kind == "union_type":
        problems = []
        for variant in lt.union_type.variants:
            try:
                return _coerce(value, variant)
            except (ValueError, TypeError) as exc:
                problems.append(str(exc))
        raise ValueError("; ".join(problems) or "the union has no variants")
    if kind in ("collection_type", "map_value_type") and isinstance(value, str):
        value = json.loads(value)
    if kind == "collection_type":
        if not isinstance(value, list):
            raise ValueError(f"expected a list, got {json.dumps(value, default=str)}")
        return [_coerce(item, lt.collection_type) for item in value]
    if kind == "map_value_type":
        if not isinstance(value, dict):
            raise ValueError(f"expected an object, got {json.dumps(value, default=str)}")
        return {str(k): _coerce(v, lt.map_value_type) for k, v in value.items()}
    if kind == "enum_type":
        if not isinstance(value, str) or value not in lt.enum_type.values:
            raise ValueError(f"expected one of {list(lt.enum_type.values)}, got {json.dumps(value, default=str)}")
        return value
    if kind == "blob":
        from taskbox.literals import TypeEngine

        uri = value.get("path") if isinstance(value, dict) else value
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"expected a path or URI, got {json.dumps(value, default=str)}")
        return TypeEngine.guess_python_type(lt)(uri=uri)
    if kind in ("structured_dataset_type", "schema"):
        from taskbox.literals import StructuredDataset

        uri = value.get("uri") if isinstance(value, dict) else value
        if not isinstance(uri, str) or not uri:
            raise ValueError(f"expected a table's URI, got {json.dumps(value, default=str)}")
        fmt = (value.get("file_format") if isinstance(value, dict) else None) or "parquet"
        if kind == "structured_dataset_type" and lt.structured_dataset_type.format:
            fmt = lt.structured_dataset_type.format
        return StructuredDataset(uri=uri, file_format=fmt, in_place=True)
    raise ValueError(f"taskbox run cannot read a plain value for the type {kind}")


def plain_to_literal(name: str, value: Any, literal_type: Any, ctx: Any) -> Any:
    """Convert an input's plain value to a ``Literal`` of its declared type.

    Raises:
        InputError: The value does not fit (names the input and the type).

    """
    from taskbox.literals import TypeEngine
    from taskbox.literals.typeinfo import describe_type

    try:
        return TypeEngine.to_literal(_coerce(value, literal_type), literal_type=literal_type, ctx=ctx)
    except (ValueError, TypeError, ArithmeticError, RecursionError, OutputError) as exc:
        detail = exc.message if isinstance(exc, OutputError) else str(exc)
        raise InputError(f"input {name!r} ({describe_type(literal_type)}): {detail}") from None


# ------------------------------------------------------------------ literal -> plain


def _iso(value: datetime.datetime) -> str:
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _scalar_to_plain(scalar: Any) -> Any:
    kind = scalar.WhichOneof("value")
    if kind == "primitive":
        p = scalar.primitive
        which = p.WhichOneof("value")
        if which == "datetime":
            return _iso(p.datetime.ToDatetime(tzinfo=_UTC))
        if which == "duration":
            return p.duration.ToTimedelta().total_seconds()
        return getattr(p, which) if which else None
    if kind == "blob":
        return scalar.blob.uri
    if kind == "structured_dataset":
        return scalar.structured_dataset.uri
    if kind == "schema":
        return scalar.schema.uri
    if kind == "none_type" or kind is None:
        return None
    if kind == "union":
        return literal_to_plain(scalar.union.value)
    if kind == "generic":
        from google.protobuf.json_format import MessageToDict

        return MessageToDict(scalar.generic)
    if kind == "binary":
        if scalar.binary.tag == "msgpack":
            import msgpack

            return msgpack.unpackb(scalar.binary.value, strict_map_key=False)
        import base64

        return base64.b64encode(scalar.binary.value).decode()
    if kind == "error":
        return scalar.error.message
    raise OutputError(f"cannot show a {kind} scalar as a plain value")


def literal_to_plain(literal: Any) -> Any:
    """Return a ``Literal`` as a JSON value (see the module's invariants for the forms)."""
    kind = literal.WhichOneof("value")
    if kind == "offloaded_metadata":
        from taskbox.literals import offload

        return literal_to_plain(offload.load_offloaded(literal))
    if kind == "collection":
        return [literal_to_plain(item) for item in literal.collection.literals]
    if kind == "map":
        return {key: literal_to_plain(item) for key, item in literal.map.literals.items()}
    if kind == "scalar":
        return _scalar_to_plain(literal.scalar)
    return None


def render_output_file(plain: Any) -> bytes:
    """One output's file: a string as its raw text, a number or boolean as text, anything else as JSON."""
    if isinstance(plain, str):
        return plain.encode("utf-8")
    if isinstance(plain, bool):
        return b"true" if plain else b"false"
    if isinstance(plain, (int, float)):
        return repr(plain).encode() if isinstance(plain, float) else str(plain).encode()
    return json.dumps(plain, ensure_ascii=False, default=str).encode("utf-8")
