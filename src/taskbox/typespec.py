"""The type language of ``taskbox run`` interfaces: ``int``, ``list[str]``, ``table``... -> ``LiteralType``.

Why: an executor says which outputs its config implies (``results: table`` for a query) without
building protobuf by hand, and a user declares an interface in the same words; both go through
:func:`parse_type`. It is a leaf of the core (it imports the literal engine only when called), so
executors use it without importing the entrypoint; ``taskbox.entrypoint.plainio.parse_type`` re-exports it.

Example:
    >>> parse_type("list[int]").collection_type.simple == parse_type("int").simple
    True

Invariants:
    * :func:`format_type` is the inverse for the types the language can say: ``parse_type(format_type(t))`` is
      ``t`` for every ``t = parse_type(spec)``; a type it cannot say (binary, a schema's columns) is a ``ConfigError``.
    * A spec is a type-language string or a ``LiteralType`` (a message, or its protobuf JSON mapping);
      anything else, or an unknown name, is a ``ConfigError`` naming the spec.
    * flyteidl, the literal engine and protobuf's ``json_format`` are imported on first use only.

"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any

from taskbox.errors import ConfigError

__all__ = ["format_type", "parse_type"]


def _split_top(text: str, sep: str) -> list[str]:
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _python_type(spec: str) -> Any:
    import typing

    from taskbox.literals import Directory, File, StructuredDataset

    spec = spec.strip()
    if spec.endswith("?"):
        return typing.Optional[_python_type(spec[:-1])]  # noqa: UP045
    alternatives = _split_top(spec, "|")
    if len(alternatives) > 1:
        return typing.Union[tuple(_python_type(a) for a in alternatives)]  # noqa: UP007
    name, bracket, rest = spec.partition("[")
    name = name.strip().lower()
    args = _split_top(rest[:-1], ",") if bracket and rest.endswith("]") else []
    if bracket and not rest.endswith("]"):
        raise ValueError(f"unbalanced brackets in {spec!r}")
    simple = {
        "int": int, "integer": int, "float": float, "str": str, "string": str, "bool": bool, "boolean": bool,
        "datetime": datetime.datetime, "date": datetime.datetime, "duration": datetime.timedelta,
        "timedelta": datetime.timedelta, "json": dict, "struct": dict, "none": type(None),
    }  # fmt: skip
    if name in simple and not args:
        return simple[name]
    if name in ("file", "dir", "directory"):
        base: Any = File if name == "file" else Directory  # both take a format: File["csv"]
        return base[args[0]] if args else base
    if name in ("table", "dataset", "structureddataset") and len(args) <= 1:
        if not args:
            return StructuredDataset
        from taskbox.literals.tableformats import FORMATS  # table[csv]: the declared storage format

        fmt = args[0].strip().lower()
        if fmt not in FORMATS:
            raise ValueError(f"a table's format is one of {', '.join(FORMATS)}, got {fmt!r}")
        return typing.Annotated[StructuredDataset, fmt]
    if name in ("list", "array") and len(args) == 1:
        return list[_python_type(args[0])]  # type: ignore[misc]
    if name in ("dict", "map") and len(args) in (1, 2):
        if len(args) == 2 and args[0].strip().lower() not in ("str", "string"):
            raise ValueError("map keys are strings")
        return dict[str, _python_type(args[-1])]  # type: ignore[misc]
    if name in ("optional",) and len(args) == 1:
        return typing.Optional[_python_type(args[0])]  # noqa: UP045
    if name == "enum" and args:
        from taskbox.literals.engine import dynamic_enum

        return dynamic_enum(tuple(a.strip().strip("'\"") for a in args))
    raise ValueError(f"unknown type {spec!r}")


def parse_type(spec: Any) -> Any:
    """Turn a declared type into a ``LiteralType``.

    Args:
        spec: A type-language string (``int``, ``float``, ``str``, ``bool``, ``datetime``, ``duration``,
            ``json`` (a struct), ``file``, ``file[csv]``, ``dir``, ``table``, ``table[csv]``, ``list[T]``,
            ``dict[str, T]``, ``T?``/``optional[T]``, ``A | B``, ``enum[a, b]``), or a ``LiteralType`` in
            protobuf's JSON mapping (a mapping such as ``{"simple": "INTEGER"}``).

    Raises:
        ConfigError: The spec is neither.

    """
    from flyteidl.core import types_pb2

    if isinstance(spec, types_pb2.LiteralType):
        return spec
    if isinstance(spec, Mapping):
        from google.protobuf.json_format import ParseDict, ParseError

        try:
            return ParseDict(dict(spec), types_pb2.LiteralType())
        except ParseError as exc:
            raise ConfigError(f"{spec!r} is not a LiteralType: {exc}") from None
    if not isinstance(spec, str):
        raise ConfigError(f"a type is a string such as 'int' or 'list[str]', got {spec!r}")
    from taskbox.literals import TypeEngine

    try:
        return TypeEngine.to_literal_type(_python_type(spec))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the type {spec!r}: {exc}") from None


_SIMPLE_NAMES = {
    "INTEGER": "int", "FLOAT": "float", "STRING": "str", "BOOLEAN": "bool", "DATETIME": "datetime",
    "DURATION": "duration", "STRUCT": "json", "NONE": "none",
}  # fmt: skip


def format_type(literal_type: Any) -> str:
    """Say a ``LiteralType`` in the type language (the inverse of :func:`parse_type` for what it can say).

    Args:
        literal_type: A ``flyteidl.core.types_pb2.LiteralType``.

    Returns:
        A type-language string, such as ``"list[int]"`` or ``"table[csv]"``.

    Raises:
        ConfigError: The type has no name in the language (binary, a table's column schema, a dataclass schema).

    Example:
        >>> format_type(parse_type("dict[str, list[int]]"))
        'dict[str, list[int]]'

    """
    from flyteidl.core import types_pb2

    lt = literal_type
    kind = lt.WhichOneof("type")
    if kind == "simple":
        name = _SIMPLE_NAMES.get(types_pb2.SimpleType.Name(lt.simple))
        if name is not None and not (name == "json" and lt.HasField("metadata")):
            return name
    elif kind == "collection_type":
        return f"list[{format_type(lt.collection_type)}]"
    elif kind == "map_value_type":
        return f"dict[str, {format_type(lt.map_value_type)}]"
    elif kind == "blob":
        base = "dir" if lt.blob.dimensionality == types_pb2.BlobType.MULTIPART else "file"
        return f"{base}[{lt.blob.format}]" if lt.blob.format else base
    elif kind == "structured_dataset_type" and not lt.structured_dataset_type.columns:
        fmt = lt.structured_dataset_type.format
        return f"table[{fmt}]" if fmt else "table"
    elif kind == "enum_type" and lt.enum_type.values:
        return f"enum[{', '.join(lt.enum_type.values)}]"
    elif kind == "union_type" and lt.union_type.variants:
        variants = [format_type(v) for v in lt.union_type.variants]
        if len(variants) == 2 and variants[1] == "none" and "|" not in variants[0]:
            return f"{variants[0]}?"
        return " | ".join(variants)
    raise ConfigError(f"the type {_describe(lt)} has no name in the type language (declare it as a LiteralType)")


def _describe(literal_type: Any) -> str:
    from google.protobuf.json_format import MessageToJson

    return MessageToJson(literal_type, indent=None)
