"""Dataclasses, pydantic models and untyped dicts as msgpack STRUCT scalars (and legacy JSON Structs).

Why: since flytekit 1.14 these travel as ``Scalar.binary{value=msgpack, tag="msgpack"}`` with a
``simple=STRUCT`` type carrying a JSON schema, the msgpack cache-key annotation and, for dataclasses and
pydantic models, ``structure{tag="", dataclass_type}`` (per-field literal types that propeller uses for
attribute access). Older flytekit, ``FLYTE_USE_OLD_DC_FORMAT=true`` and the Flyte console send a JSON
``Scalar.generic`` Struct instead, in which every number is a double.

Invariants:
    * Python values become msgpack the way flytekit's mashumaro encoder writes them: fields in
      declaration order, enums as values, datetimes/dates as ISO strings, timedeltas as seconds,
      files/directories as ``{"path": uri}`` (uploaded first), datasets as ``{"uri", "file_format"}``.
    * Encoding validates every field against its declared type; decoding coerces JSON doubles back to
      ``int`` where an ``int`` is declared (only integral values) and ignores unknown keys.
    * msgpack, json and pydantic are imported only inside the functions that use them.
"""

from __future__ import annotations

import datetime
import enum
import functools
import os
import sys
import typing
from typing import Any

from flyteidl.core import literals_pb2, types_pb2
from google.protobuf import struct_pb2

from taskbox.literals.engine import (
    Mismatch,
    NoneType,
    TypeEngine,
    TypeTransformer,
    is_strict,
    is_union,
    strip_annotated,
)
from taskbox.literals.typeinfo import MSGPACK, describe_python_type, describe_value, msgpack_annotation
from taskbox.literals.types import Directory, File, StructuredDataset

__all__ = [
    "DATACLASS",
    "PYDANTIC",
    "decode_struct",
    "decode_struct_by_type",
    "encode_struct",
    "field_types",
    "from_plain",
    "is_struct_value",
    "to_plain",
]

_VAGUE = (None, Any, object)
LEGACY_FORMAT_ENV = "FLYTE_USE_OLD_DC_FORMAT"


# ------------------------------------------------------------------ helpers


def _is_dataclass(obj: Any) -> bool:
    """``dataclasses.is_dataclass`` without importing dataclasses (which costs ~10 ms at start-up)."""
    cls = obj if isinstance(obj, type) else type(obj)
    return hasattr(cls, "__dataclass_fields__")


def _dataclass_fields(obj: Any) -> tuple[Any, ...]:
    import dataclasses  # lazy: already imported by whoever defined the dataclass

    return dataclasses.fields(obj)


def _missing() -> Any:
    import dataclasses

    return dataclasses.MISSING


def _pydantic() -> Any:
    return sys.modules.get("pydantic")


def _is_model_class(t: Any) -> bool:
    pydantic = _pydantic()
    return pydantic is not None and isinstance(t, type) and issubclass(t, pydantic.BaseModel)


def is_struct_value(value: Any) -> bool:
    """Tell whether ``value`` is a dataclass instance or a pydantic model instance."""
    return (_is_dataclass(value) and not isinstance(value, type)) or _is_model_class(type(value))


@functools.lru_cache(maxsize=512)
def field_types(cls: type) -> dict[str, Any]:
    """Return a dataclass's resolved field type hints (``Annotated`` kept), falling back to ``field.type``."""
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except (NameError, TypeError):
        hints = {}
    return {f.name: hints.get(f.name, f.type) for f in _dataclass_fields(cls)}


def use_legacy_format() -> bool:
    """Flytekit's switch back to JSON Structs (``FLYTE_USE_OLD_DC_FORMAT``, parsed like its str2bool)."""
    return os.environ.get(LEGACY_FORMAT_ENV, "").lower() in ("true", "t", "1")


def _fail(t: Any, value: Any) -> Mismatch:
    return Mismatch(f"expected {describe_python_type(t)}, got {describe_value(value)}")


def _at(segment: str, exc: Exception) -> Mismatch:
    text = str(exc) or type(exc).__name__
    joined = f"{segment}{text}" if text[:1] in ".[" else f"{segment}: {text}"
    return Mismatch(joined)


def pack(obj: Any) -> bytes:
    """Msgpack bytes exactly as ``msgpack.dumps`` (flytekit's encoder) writes them."""
    import msgpack

    return msgpack.packb(obj, use_bin_type=True)


def unpack(data: bytes) -> Any:
    """Decode msgpack; non-string map keys are allowed (``dict[int, str]`` payloads)."""
    import msgpack

    return msgpack.unpackb(data, raw=False, strict_map_key=False)


def plain_to_struct(obj: dict[str, Any]) -> struct_pb2.Struct:
    """JSON data -> ``google.protobuf.Struct`` (numbers become doubles)."""
    if not isinstance(obj, dict) or not all(isinstance(k, str) for k in obj):
        raise Mismatch("a JSON Struct needs a dict with str keys")
    out = struct_pb2.Struct()
    out.update(obj)
    return out


def value_to_plain(value: struct_pb2.Value) -> Any:
    """``google.protobuf.Value`` -> JSON data (numbers stay floats)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return struct_to_plain(value.struct_value)
    if kind == "list_value":
        return [value_to_plain(v) for v in value.list_value.values]
    if kind in (None, "null_value"):
        return None
    return getattr(value, kind)


def struct_to_plain(struct: struct_pb2.Struct) -> dict[str, Any]:
    """``google.protobuf.Struct`` -> dict, keys in sorted order.

    A ``Struct``'s fields are a protobuf map, whose iteration order changes from process to process; a
    dict built in that order would be re-encoded (msgpack) with a different key order on every run, and
    Flyte's cache keys and data-catalog hashes depend on the output bytes. Sorted keys make equal inputs
    give byte-identical outputs (``tests/golden/test_deterministic_outputs.py``).
    """
    fields = struct.fields
    return {key: value_to_plain(fields[key]) for key in sorted(fields)}


# ------------------------------------------------------------------ python -> plain


def to_plain(ctx: Any, value: Any, t: Any) -> Any:
    """Convert a value of declared type ``t`` to msgpack/JSON data, validating it on the way.

    Args:
        ctx: Conversion context (files, directories and datasets inside are uploaded through it).
        value: The value.
        t: Its declared type; ``None``/``Any`` serialise by the value's own type.

    Raises:
        Mismatch: The value does not fit ``t``; the message gives the path (``.field[2]``).

    """
    t = strip_annotated(t)
    if t in _VAGUE:
        return _plain_by_value(ctx, value)
    if is_union(t):
        return _union(ctx, value, typing.get_args(t), to_plain, _value_fits_exactly)
    origin = typing.get_origin(t) or t
    if t is NoneType:
        if value is not None:
            raise _fail(t, value)
        return None
    if t is bool or t is int or t is float or t is str or t is bytes:
        return _plain_scalar(value, t)
    if t is datetime.datetime or t is datetime.date or t is datetime.timedelta:
        return _plain_time(value, t)
    if isinstance(t, type) and issubclass(t, enum.Enum):
        raw = value.value if isinstance(value, enum.Enum) else value
        if raw not in [m.value for m in t]:
            raise _fail(t, value)
        return raw
    args = typing.get_args(t)
    if origin is list:
        if not isinstance(value, list):
            raise _fail(t, value)
        out_list = []
        for i, item in enumerate(value):
            try:
                out_list.append(to_plain(ctx, item, args[0] if args else None))
            except (TypeError, ValueError) as exc:
                raise _at(f"[{i}]", exc) from exc
        return out_list
    if origin is dict:
        if not isinstance(value, dict):
            raise _fail(t, value)
        key_t, item_t = args if len(args) == 2 else (None, None)
        out_dict = {}
        for key, item in value.items():
            try:
                out_dict[to_plain(ctx, key, key_t)] = to_plain(ctx, item, item_t)
            except (TypeError, ValueError) as exc:
                raise _at(f"[{key!r}]", exc) from exc
        return out_dict
    if isinstance(t, type) and issubclass(t, (File, Directory, StructuredDataset)):
        return _plain_handle(ctx, value, t)
    if _is_model_class(t):
        if isinstance(value, dict):
            value = t.model_validate(value)
        if not isinstance(value, t):
            raise _fail(t, value)
        import json

        return json.loads(value.model_dump_json())
    if _is_dataclass(t):
        return _plain_dataclass(ctx, value, t)
    raise Mismatch(f"{describe_python_type(t)} cannot be stored inside a dataclass or dict")


def _plain_scalar(value: Any, t: type) -> Any:
    if t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif t is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif t is str and isinstance(value, enum.Enum) and isinstance(value.value, str):
        return value.value
    else:
        ok = isinstance(value, t)
    if not ok:
        raise _fail(t, value)
    return value


def _plain_time(value: Any, t: type) -> Any:
    if t is datetime.timedelta:
        if not isinstance(value, datetime.timedelta):
            raise _fail(t, value)
        return value.total_seconds()
    if not isinstance(value, t) or (t is datetime.date and isinstance(value, datetime.datetime)):
        raise _fail(t, value)
    return typing.cast("datetime.date | datetime.time", value).isoformat()


def _plain_handle(ctx: Any, value: Any, t: type) -> dict[str, Any]:
    literal = TypeEngine.to_literal(value, t, ctx=ctx)
    if issubclass(t, StructuredDataset):
        sd = literal.scalar.structured_dataset
        return {"uri": sd.uri, "file_format": sd.metadata.structured_dataset_type.format}
    return {"path": literal.scalar.blob.uri}


def _plain_dataclass(ctx: Any, value: Any, t: type) -> dict[str, Any]:
    if isinstance(value, dict):
        value = from_plain(ctx, value, t)
    hints = field_types(t)
    if not _is_dataclass(value) or isinstance(value, type):
        raise _fail(t, value)
    if not isinstance(value, t) and {f.name for f in _dataclass_fields(value)} != set(hints):
        raise _fail(t, value)
    out = {}
    for name, hint in hints.items():
        try:
            out[name] = to_plain(ctx, getattr(value, name), hint)
        except (TypeError, ValueError) as exc:
            raise _at(f".{name}", exc) from exc
    return out


def _plain_by_value(ctx: Any, value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, float, str, bytes)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain_by_value(ctx, v) for v in value]
    if isinstance(value, dict):
        return {_plain_by_value(ctx, k): _plain_by_value(ctx, v) for k, v in value.items()}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if is_struct_value(value) or isinstance(value, (File, Directory, StructuredDataset)):
        return to_plain(ctx, value, type(value))
    raise Mismatch(f"cannot serialise {describe_value(value)} into a struct")


def _value_fits_exactly(value: Any, t: Any) -> bool:
    t = strip_annotated(t)
    if t is NoneType:
        return value is None
    origin = typing.get_origin(t) or t
    return isinstance(origin, type) and type(value) is origin


def _union(ctx: Any, value: Any, args: tuple[Any, ...], convert: Any, exact: Any) -> Any:
    """Try the union's members: exact-type matches first, then the others in declaration order."""
    ordered = [a for a in args if exact(value, a)] + [a for a in args if not exact(value, a)]
    for arg in ordered:
        try:
            return convert(ctx, value, arg)
        except (TypeError, ValueError):
            continue
    members = " | ".join(describe_python_type(a) for a in args)
    raise Mismatch(f"expected one of {members}, got {describe_value(value)}")


# ------------------------------------------------------------------ plain -> python


def from_plain(ctx: Any, obj: Any, t: Any) -> Any:
    """Convert msgpack/JSON data to a value of type ``t`` (the inverse of :func:`to_plain`).

    Integral floats become ``int`` where ``int`` is declared (legacy JSON Structs hold only doubles).

    Raises:
        Mismatch: The data does not fit ``t``.

    """
    t = strip_annotated(t)
    if t in _VAGUE:
        return obj
    if is_union(t):
        return _union(ctx, obj, typing.get_args(t), from_plain, _plain_fits_exactly)
    if t is NoneType:
        if obj is not None:
            raise _fail(t, obj)
        return None
    if t is int:
        if isinstance(obj, float) and obj.is_integer():
            return int(obj)
        return _plain_scalar(obj, int)
    if t is float:
        return float(_plain_scalar(obj, float))
    if t in (bool, str, bytes):
        return _plain_scalar(obj, t)
    if t is datetime.timedelta:
        return datetime.timedelta(seconds=_plain_scalar(obj, float))
    if t is datetime.datetime or t is datetime.date:
        return t.fromisoformat(_plain_scalar(obj, str))
    if isinstance(t, type) and issubclass(t, enum.Enum):
        from taskbox.literals.primitives import EnumTransformer

        return EnumTransformer.from_plain(obj, t)
    origin = typing.get_origin(t) or t
    args = typing.get_args(t)
    if origin is list:
        if not isinstance(obj, list):
            raise _fail(t, obj)
        out_list = []
        for i, item in enumerate(obj):
            try:
                out_list.append(from_plain(ctx, item, args[0] if args else None))
            except (TypeError, ValueError) as exc:
                raise _at(f"[{i}]", exc) from exc
        return out_list
    if origin is dict:
        if not isinstance(obj, dict):
            raise _fail(t, obj)
        key_t, item_t = args if len(args) == 2 else (None, None)
        out_dict = {}
        for key, item in obj.items():
            if key_t is int and isinstance(key, str):
                key = int(key)  # JSON object keys are strings
            try:
                out_dict[from_plain(ctx, key, key_t)] = from_plain(ctx, item, item_t)
            except (TypeError, ValueError) as exc:
                raise _at(f"[{key!r}]", exc) from exc
        return out_dict
    if not isinstance(obj, dict):
        raise _fail(t, obj)
    if isinstance(t, type) and issubclass(t, (File, Directory)):
        if not isinstance(obj.get("path"), str):
            raise Mismatch(f"{t.__name__} data needs a 'path'")
        handle = t(uri=obj["path"])
        handle._ctx = ctx
        return handle
    if isinstance(t, type) and issubclass(t, StructuredDataset):
        if not isinstance(obj.get("uri"), str):
            raise Mismatch("StructuredDataset data needs a 'uri'")
        sd = t(uri=obj["uri"], file_format=obj.get("file_format") or "")
        sd._ctx = ctx
        sd.in_place = True
        return sd
    if _is_model_class(t):
        return t.model_validate(obj, strict=False, context={"deserialize": True})
    if _is_dataclass(t):
        return _dataclass_from_plain(ctx, obj, t)
    raise Mismatch(f"{describe_python_type(t)} cannot be read from a struct")


def _dataclass_from_plain(ctx: Any, obj: dict[str, Any], t: type) -> Any:
    hints = field_types(t)
    kwargs: dict[str, Any] = {}
    late: dict[str, Any] = {}
    for field in _dataclass_fields(t):
        if field.name in obj:
            try:
                value = from_plain(ctx, obj[field.name], hints[field.name])
            except (TypeError, ValueError) as exc:
                raise _at(f".{field.name}", exc) from exc
            (kwargs if field.init else late)[field.name] = value
        elif field.init and field.default is _missing() and field.default_factory is _missing():
            raise Mismatch(f".{field.name}: missing")
    instance = t(**kwargs)
    for name, value in late.items():
        object.__setattr__(instance, name, value)
    return instance


def _plain_fits_exactly(obj: Any, t: Any) -> bool:
    t = strip_annotated(t)
    origin = typing.get_origin(t) or t
    if t is NoneType:
        return obj is None
    if t in (int, float, bool, str, bytes) or origin in (list, dict):
        return type(obj) is origin
    return isinstance(obj, dict) and (_is_dataclass(t) or _is_model_class(t))


# ------------------------------------------------------------------ literals


def struct_literal_type(
    schema: dict[str, Any] | None, fields: dict[str, types_pb2.LiteralType] | None
) -> types_pb2.LiteralType:
    """``simple=STRUCT`` with the msgpack annotation, optional JSON schema and per-field types."""
    lt = types_pb2.LiteralType(simple=types_pb2.STRUCT, annotation=msgpack_annotation())
    if schema is not None:
        lt.metadata.update(schema)
    if fields is not None:
        lt.structure.SetInParent()
        for name, field_lt in fields.items():
            lt.structure.dataclass_type[name].CopyFrom(field_lt)
    return lt


def _field_literal_types(hints: dict[str, Any]) -> dict[str, types_pb2.LiteralType]:
    out = {}
    for name, hint in hints.items():
        try:
            out[name] = TypeEngine.to_literal_type(hint)
        except Exception:  # noqa: BLE001 - flytekit skips fields it cannot type, and so do we
            continue
    return out


def encode_struct(ctx: Any, value: Any, python_type: Any, *, dict_literal: bool) -> literals_pb2.Literal:
    """Encode a dict/dataclass/model as a msgpack STRUCT literal (or a JSON Struct in legacy mode)."""
    plain = to_plain(ctx, value, python_type)
    literal = literals_pb2.Literal()
    if use_legacy_format():
        literal.scalar.generic.CopyFrom(plain_to_struct(plain))
        if dict_literal:
            literal.metadata["format"] = "json"
    else:
        literal.scalar.binary.value = pack(plain)
        literal.scalar.binary.tag = MSGPACK
    return literal


def _plain_of(literal: literals_pb2.Literal) -> Any:
    if literal.WhichOneof("value") != "scalar":
        raise Mismatch()
    scalar = literal.scalar
    kind = scalar.WhichOneof("value")
    if kind == "binary":
        if scalar.binary.tag != MSGPACK:
            raise Mismatch(f"unsupported binary tag {scalar.binary.tag!r}")
        return unpack(scalar.binary.value)
    if kind == "generic":
        if literal.metadata.get("format") == "pickle":
            raise Mismatch("pickled values are not supported")
        return struct_to_plain(scalar.generic)
    raise Mismatch()


def decode_struct(ctx: Any, literal: literals_pb2.Literal, python_type: Any) -> Any:
    """Decode a msgpack or JSON STRUCT literal into ``python_type``."""
    return from_plain(ctx, _plain_of(literal), python_type)


def decode_struct_by_type(ctx: Any, literal: literals_pb2.Literal, lt: types_pb2.LiteralType) -> Any:
    """Decode a STRUCT literal to plain data; JSON doubles become ints where ``dataclass_type`` says INTEGER."""
    plain = _plain_of(literal)
    if literal.scalar.WhichOneof("value") == "generic":
        plain = _coerce_ints(plain, lt)
    return plain


def _coerce_ints(obj: Any, lt: types_pb2.LiteralType) -> Any:
    kind = lt.WhichOneof("type")
    if isinstance(obj, float) and obj.is_integer():
        ints = kind == "simple" and lt.simple == types_pb2.INTEGER
        if kind == "union_type":
            variants = {v.simple for v in lt.union_type.variants if v.WhichOneof("type") == "simple"}
            ints = types_pb2.INTEGER in variants and types_pb2.FLOAT not in variants
        return int(obj) if ints else obj
    if isinstance(obj, list) and kind == "collection_type":
        return [_coerce_ints(v, lt.collection_type) for v in obj]
    if isinstance(obj, dict):
        if kind == "map_value_type":
            return {k: _coerce_ints(v, lt.map_value_type) for k, v in obj.items()}
        fields = lt.structure.dataclass_type
        if fields:
            return {k: _coerce_ints(v, fields[k]) if k in fields else v for k, v in obj.items()}
    return obj


# ------------------------------------------------------------------ transformers


class DataclassTransformer(TypeTransformer[Any]):
    """Any ``@dataclass`` (flytekit's "Object-Dataclass-Transformer")."""

    def handles(self, python_type: Any) -> bool:
        return isinstance(python_type, type) and _is_dataclass(python_type)

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        lt = types_pb2.LiteralType()
        lt.ParseFromString(_dataclass_literal_type_bytes(strip_annotated(t)))
        return lt

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if not is_struct_value(value) and (is_strict() or not isinstance(value, dict)):
            raise Mismatch()
        return encode_struct(ctx, value, strip_annotated(python_type), dict_literal=False)

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> Any:
        return decode_struct(ctx, literal, strip_annotated(expected_python_type))


@functools.lru_cache(maxsize=256)
def _dataclass_literal_type_bytes(t: type) -> bytes:
    from taskbox.literals.schema import json_schema

    lt = struct_literal_type(json_schema(t), _field_literal_types(field_types(t)))
    return lt.SerializeToString(deterministic=True)


class PydanticTransformer(TypeTransformer[Any]):
    """``pydantic.BaseModel`` subclasses (flytekit's "Pydantic Transformer"); pydantic loads lazily."""

    @property
    def python_type(self) -> Any:
        import pydantic

        return pydantic.BaseModel

    def handles(self, python_type: Any) -> bool:
        return _is_model_class(python_type)

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        t = strip_annotated(t)
        hints = {name: info.annotation for name, info in t.model_fields.items()}
        return struct_literal_type(t.model_json_schema(), _field_literal_types(hints))

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if not _is_model_class(type(value)) and (is_strict() or not isinstance(value, dict)):
            raise Mismatch()
        return encode_struct(ctx, value, strip_annotated(python_type), dict_literal=False)

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> Any:
        return decode_struct(ctx, literal, strip_annotated(expected_python_type))


DATACLASS = DataclassTransformer("Object-Dataclass-Transformer", object)
PYDANTIC = PydanticTransformer("Pydantic Transformer", None)
