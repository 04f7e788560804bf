"""Facts about ``LiteralType`` and ``Literal`` messages that every transformer needs.

Why: error messages must name the expected and the actual type in words a person reads ("list<integer>",
"str 'abc'"), union decoding must compare types the way propeller does (ignoring metadata, annotations
and structure), and offloading must state a literal's type when no interface is at hand. Keeping these
helpers apart from the dispatch code keeps both small and lets transformers import them without cycles.

Invariants:
    * Nothing here imports a transformer or performs I/O; every function is pure.
    * :func:`essence` never mutates its argument (it copies before clearing fields).
    * :func:`infer_literal_type` mirrors flyteidl's ``LiteralTypeForLiteral``: a collection or map takes
      the type of its first element, an empty one is typed ``NONE``.
"""

from __future__ import annotations

import reprlib
import types
import typing
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

__all__ = [
    "MSGPACK",
    "describe_literal",
    "describe_python_type",
    "describe_type",
    "describe_value",
    "essence",
    "infer_literal_type",
    "is_castable",
    "msgpack_annotation",
    "tagged",
]

MSGPACK = "msgpack"
"""``Binary.tag`` of msgpack payloads and the value of the ``serialization-format`` annotation."""

_SIMPLE_NAMES = {v: k.lower() for k, v in types_pb2.SimpleType.items()}
_SCHEMA_COLUMN_TO_SIMPLE = {
    types_pb2.SchemaType.SchemaColumn.INTEGER: types_pb2.INTEGER,
    types_pb2.SchemaType.SchemaColumn.FLOAT: types_pb2.FLOAT,
    types_pb2.SchemaType.SchemaColumn.STRING: types_pb2.STRING,
    types_pb2.SchemaType.SchemaColumn.BOOLEAN: types_pb2.BOOLEAN,
    types_pb2.SchemaType.SchemaColumn.DATETIME: types_pb2.DATETIME,
    types_pb2.SchemaType.SchemaColumn.DURATION: types_pb2.DURATION,
}
_repr = reprlib.Repr()
_repr.maxstring = 60
_repr.maxother = 60


def schema_column_simple_type(column_type: int) -> int:
    """Map a legacy ``SchemaColumnType`` to the ``SimpleType`` StructuredDataset columns use."""
    return _SCHEMA_COLUMN_TO_SIMPLE.get(column_type, types_pb2.STRING)


def msgpack_annotation() -> types_pb2.TypeAnnotation:
    """Build the annotation flytekit puts on msgpack-encoded STRUCT types (it feeds the cache key)."""
    ann = types_pb2.TypeAnnotation()
    ann.annotations.update({"cache-key-metadata": {"serialization-format": MSGPACK}})
    return ann


def tagged(lt: types_pb2.LiteralType, tag: str) -> types_pb2.LiteralType:
    """Return a copy of ``lt`` whose ``structure`` is exactly ``{tag}``, as flytekit tags union variants."""
    out = types_pb2.LiteralType()
    out.CopyFrom(lt)
    out.ClearField("structure")
    out.structure.tag = tag
    return out


def essence(lt: types_pb2.LiteralType) -> types_pb2.LiteralType:
    """Return a copy of ``lt`` without metadata, annotation and structure (what propeller compares)."""
    out = types_pb2.LiteralType()
    out.CopyFrom(lt)
    for name in ("metadata", "annotation", "structure"):
        out.ClearField(name)
    return out


def is_castable(upstream: types_pb2.LiteralType, downstream: types_pb2.LiteralType) -> bool:
    """Whether a value of type ``upstream`` may be read as ``downstream`` (flytekit's ``_are_types_castable``)."""
    if upstream == downstream:
        return True
    up_kind = upstream.WhichOneof("type")
    down_kind = downstream.WhichOneof("type")
    if up_kind == "union_type":
        return all(is_castable(v, downstream) for v in upstream.union_type.variants)
    if down_kind == "union_type" and any(is_castable(upstream, v) for v in downstream.union_type.variants):
        return True
    if up_kind == "collection_type":
        return down_kind == "collection_type" and is_castable(upstream.collection_type, downstream.collection_type)
    if up_kind == "map_value_type":
        return down_kind == "map_value_type" and is_castable(upstream.map_value_type, downstream.map_value_type)
    if up_kind == "structured_dataset_type":
        if down_kind != "structured_dataset_type":
            return False
        up_fmt, down_fmt = upstream.structured_dataset_type.format, downstream.structured_dataset_type.format
        return not up_fmt or not down_fmt or up_fmt == down_fmt
    if up_kind == "enum_type" and down_kind == "simple" and downstream.simple == types_pb2.STRING:
        return True
    if up_kind == "blob" and down_kind == "blob":
        up_b, down_b = upstream.blob, downstream.blob
        return up_b.dimensionality == down_b.dimensionality and (
            not up_b.format or not down_b.format or up_b.format == down_b.format
        )
    return essence(upstream) == essence(downstream)


def describe_type(lt: types_pb2.LiteralType) -> str:
    """Short human name for a ``LiteralType``: ``integer``, ``list<string>``, ``union<int | none>``..."""
    kind = lt.WhichOneof("type")
    if kind == "simple":
        if lt.simple == types_pb2.STRUCT and "title" in lt.metadata.fields:
            return f"struct {lt.metadata.fields['title'].string_value}"
        return _SIMPLE_NAMES.get(lt.simple, str(lt.simple))
    if kind == "collection_type":
        return f"list<{describe_type(lt.collection_type)}>"
    if kind == "map_value_type":
        return f"map<str, {describe_type(lt.map_value_type)}>"
    if kind == "union_type":
        return "union<" + " | ".join(v.structure.tag or describe_type(v) for v in lt.union_type.variants) + ">"
    if kind == "enum_type":
        return "enum{" + ", ".join(repr(v) for v in lt.enum_type.values) + "}"
    if kind == "blob":
        what = "directory" if lt.blob.dimensionality == types_pb2.BlobType.MULTIPART else "file"
        return f"{what}({lt.blob.format})" if lt.blob.format else what
    if kind == "structured_dataset_type":
        fmt = lt.structured_dataset_type.format
        return f"structured dataset({fmt})" if fmt else "structured dataset"
    if kind == "schema":
        return "schema"
    return "untyped"


def describe_python_type(t: Any) -> str:
    """Readable name of a Python type hint (``int``, ``list[int]``, ``Optional[str]``, ``Union[int, str]``)."""
    if t is None or t is type(None):
        return "None"
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if origin is typing.Annotated:
        return describe_python_type(args[0])
    if origin is typing.Union or isinstance(t, types.UnionType):
        if len(args) == 2 and type(None) in args:
            return f"Optional[{describe_python_type(next(a for a in args if a is not type(None)))}]"
        return "Union[" + ", ".join(describe_python_type(a) for a in args) + "]"
    if origin is not None and args:
        name = getattr(origin, "__qualname__", None) or repr(origin).replace("typing.", "")
        return f"{name}[{', '.join(describe_python_type(a) for a in args)}]"
    if isinstance(t, type):
        return t.__name__
    return repr(t).replace("typing.", "")


def describe_value(value: Any) -> str:
    """``<type> <short repr>`` of a value for error messages."""
    return f"{type(value).__name__} {_repr.repr(value)}"


def describe_literal(lit: literals_pb2.Literal) -> str:
    """Short description of what a literal holds (``integer literal 3``, ``collection literal of 2``)."""
    kind = lit.WhichOneof("value")
    if kind == "collection":
        return f"collection literal of {len(lit.collection.literals)}"
    if kind == "map":
        return f"map literal of {len(lit.map.literals)}"
    if kind == "offloaded_metadata":
        return f"offloaded literal at {lit.offloaded_metadata.uri}"
    if kind != "scalar":
        return "empty literal"
    scalar = lit.scalar
    skind = scalar.WhichOneof("value")
    if skind == "primitive":
        pkind = scalar.primitive.WhichOneof("value")
        if pkind is None:
            return "empty primitive literal"
        value = getattr(scalar.primitive, pkind)
        shown = _repr.repr(value) if pkind in ("integer", "float_value", "string_value", "boolean") else ""
        return f"{pkind.replace('_value', '')} literal {shown}".rstrip()
    if skind == "none_type":
        return "none literal"
    if skind == "blob":
        dim = "multipart" if scalar.blob.metadata.type.dimensionality == types_pb2.BlobType.MULTIPART else "single"
        return f"{dim} blob literal {scalar.blob.uri}"
    if skind == "binary":
        return f"binary literal (tag {scalar.binary.tag!r})"
    if skind == "generic":
        return "generic struct literal"
    if skind == "union":
        return f"union literal tagged {scalar.union.type.structure.tag!r}"
    if skind == "structured_dataset":
        return f"structured dataset literal {scalar.structured_dataset.uri}"
    if skind == "schema":
        return f"schema literal {scalar.schema.uri}"
    return f"{skind} literal" if skind else "empty scalar literal"


def _simple(kind: int) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=kind)


def infer_literal_type(lit: literals_pb2.Literal) -> types_pb2.LiteralType:
    """Derive a ``LiteralType`` from a literal alone (flyteidl's ``LiteralTypeForLiteral``).

    Args:
        lit: Any literal.

    Returns:
        Its type; collections and maps are typed by their first element (``NONE`` when empty).

    """
    kind = lit.WhichOneof("value")
    if kind == "collection":
        items = lit.collection.literals
        inner = infer_literal_type(items[0]) if items else _simple(types_pb2.NONE)
        return types_pb2.LiteralType(collection_type=inner)
    if kind == "map":
        values = list(lit.map.literals.values())
        inner = infer_literal_type(values[0]) if values else _simple(types_pb2.NONE)
        return types_pb2.LiteralType(map_value_type=inner)
    if kind == "offloaded_metadata":
        return lit.offloaded_metadata.inferred_type
    scalar = lit.scalar
    skind = scalar.WhichOneof("value")
    if skind == "primitive":
        pkind = scalar.primitive.WhichOneof("value")
        simple = {
            "integer": types_pb2.INTEGER,
            "float_value": types_pb2.FLOAT,
            "string_value": types_pb2.STRING,
            "boolean": types_pb2.BOOLEAN,
            "datetime": types_pb2.DATETIME,
            "duration": types_pb2.DURATION,
        }.get(pkind or "", types_pb2.NONE)
        return _simple(simple)
    if skind == "blob":
        return types_pb2.LiteralType(blob=scalar.blob.metadata.type)
    if skind == "binary":
        if scalar.binary.tag == MSGPACK:
            return types_pb2.LiteralType(simple=types_pb2.STRUCT, annotation=msgpack_annotation())
        return _simple(types_pb2.BINARY)
    if skind == "generic":
        return _simple(types_pb2.STRUCT)
    if skind == "union":
        return scalar.union.type
    if skind == "structured_dataset":
        return types_pb2.LiteralType(structured_dataset_type=scalar.structured_dataset.metadata.structured_dataset_type)
    if skind == "schema":
        return types_pb2.LiteralType(schema=scalar.schema.type)
    if skind == "error":
        return _simple(types_pb2.ERROR)
    return _simple(types_pb2.NONE)
