"""Lists and dicts: ``list[T]`` as a literal collection, ``dict[str, T]`` as a literal map.

Why: flytekit's ``ListTransformer`` ("Typed List") and ``DictTransformer`` ("Typed Dict") define the
encoding; the dict transformer also owns *untyped* dicts (``dict``, ``dict[int, str]``...), which
travel as msgpack STRUCT scalars and carry the union tag ``Typed Dict`` too.

Invariants:
    * Elements are converted through :class:`~taskbox.literals.engine.TypeEngine`, so nesting,
      offloaded elements and unions work at any depth; errors name the failing index or key
      (``[2]['k']: expected int, got str 'x'``).
    * Only ``list`` values become collections (tuples are rejected, as in flytekit); map keys must be
      ``str``.
    * Collections/maps delivered as msgpack ``Binary`` (propeller's attribute access) decode as well.
"""

from __future__ import annotations

import typing
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError
from taskbox.literals.engine import Mismatch, TypeEngine, TypeTransformer, is_strict, reprefix, strip_annotated
from taskbox.literals.primitives import msgpack_value
from taskbox.literals.typeinfo import msgpack_annotation

__all__ = ["DICT", "LIST", "REGISTERED", "decode_by_type", "encode_by_type"]


def _args(t: Any) -> tuple[Any, ...]:
    return typing.get_args(strip_annotated(t)) if t is not None else ()


def _kind(lt: types_pb2.LiteralType | None) -> str | None:
    return lt.WhichOneof("type") if lt is not None else None


class ListTransformer(TypeTransformer[list]):  # type: ignore[type-arg]
    """``list[T]`` <-> ``Literal.collection`` / ``LiteralType.collection_type``."""

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        args = _args(t)
        if not args:
            raise TypeError("a list needs an element type, e.g. list[int]")
        return types_pb2.LiteralType(collection_type=TypeEngine.to_literal_type(args[0]))

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if not isinstance(value, list):
            raise Mismatch()
        args = _args(python_type)
        item_type = args[0] if args else None
        if _kind(expected) == "collection_type":
            item_lt = expected.collection_type
        elif item_type is not None:
            item_lt = TypeEngine.to_literal_type(item_type)
        else:
            raise Mismatch()
        literal = literals_pb2.Literal()
        literal.collection.SetInParent()  # an empty list is still a collection
        items = literal.collection.literals
        for i, item in enumerate(value):
            try:
                items.append(TypeEngine.to_literal(item, item_type, literal_type=item_lt, ctx=ctx))
            except OutputError as exc:
                raise reprefix(exc, f"[{i}]") from exc
        return literal

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> list:  # type: ignore[type-arg]
        args = _args(expected_python_type)
        item_type = args[0] if args else None
        kind = literal.WhichOneof("value")
        if kind == "scalar" and literal.scalar.WhichOneof("value") == "binary":
            from taskbox.literals import structs

            return structs.from_plain(ctx, msgpack_value(literal.scalar), expected_python_type)
        if kind != "collection":
            raise Mismatch()
        out = []
        for i, item in enumerate(literal.collection.literals):
            try:
                out.append(TypeEngine.to_python_value(item, item_type, ctx=ctx))
            except InputError as exc:
                raise reprefix(exc, f"[{i}]") from exc
        return out


class DictTransformer(TypeTransformer[dict]):  # type: ignore[type-arg]
    """``dict[str, T]`` <-> ``Literal.map``; any other dict <-> msgpack STRUCT."""

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        args = _args(t)
        if args and args[0] is str and args[1] not in (typing.Any, object):
            return types_pb2.LiteralType(map_value_type=TypeEngine.to_literal_type(args[1]))
        return types_pb2.LiteralType(simple=types_pb2.STRUCT, annotation=msgpack_annotation())

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if _kind(expected) == "simple" and expected.simple == types_pb2.STRUCT:
            from taskbox.literals import structs

            if not isinstance(value, dict):
                if is_strict() or not structs.is_struct_value(value):
                    raise Mismatch()
                return TypeEngine.to_literal(value, type(value), literal_type=expected, ctx=ctx)
            return structs.encode_struct(ctx, value, python_type, dict_literal=True)
        if not isinstance(value, dict):
            raise Mismatch()
        args = _args(python_type)
        value_type = args[1] if len(args) == 2 else None
        if _kind(expected) == "map_value_type":
            value_lt = expected.map_value_type
        elif value_type is not None:
            value_lt = TypeEngine.to_literal_type(value_type)
        else:
            raise Mismatch()
        literal = literals_pb2.Literal()
        literal.map.SetInParent()  # an empty dict is still a map
        entries = literal.map.literals
        for key, item in value.items():
            if not isinstance(key, str):
                raise Mismatch(f"map keys must be str, got {type(key).__qualname__} {key!r}")
            try:
                entries[key].CopyFrom(TypeEngine.to_literal(item, value_type, literal_type=value_lt, ctx=ctx))
            except OutputError as exc:
                raise reprefix(exc, f"[{key!r}]") from exc
        return literal

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> dict:  # type: ignore[type-arg]
        kind = literal.WhichOneof("value")
        if kind == "scalar" and literal.scalar.WhichOneof("value") in ("binary", "generic"):
            from taskbox.literals import structs

            return structs.decode_struct(ctx, literal, expected_python_type)
        if kind != "map":
            raise Mismatch()
        args = _args(expected_python_type)
        if args and args[0] is not str:
            raise Mismatch(f"a map literal has str keys, not {args[0]!r}")
        value_type = args[1] if len(args) == 2 else None
        out = {}
        for key, item in literal.map.literals.items():
            try:
                out[key] = TypeEngine.to_python_value(item, value_type, ctx=ctx)
            except InputError as exc:
                raise reprefix(exc, f"[{key!r}]") from exc
        return out


LIST = ListTransformer("Typed List", list)
DICT = DictTransformer("Typed Dict", dict)

REGISTERED: list[tuple[TypeTransformer[Any], list[Any] | None]] = [(LIST, None), (DICT, None)]


def encode_by_type(ctx: Any, value: Any, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    """Encode a list or dict driven only by a ``collection_type`` / ``map_value_type``."""
    if lt.WhichOneof("type") == "collection_type":
        return LIST.to_literal(ctx, value, list, lt)
    return DICT.to_literal(ctx, value, dict, lt)


def decode_by_type(ctx: Any, literal: literals_pb2.Literal, lt: types_pb2.LiteralType) -> Any:
    """Decode a collection or map literal driven only by its declared ``LiteralType``."""
    if lt.WhichOneof("type") == "collection_type":
        if literal.WhichOneof("value") != "collection":
            raise Mismatch()
        out = []
        for i, item in enumerate(literal.collection.literals):
            try:
                out.append(TypeEngine.to_python_value(item, literal_type=lt.collection_type, ctx=ctx))
            except InputError as exc:
                raise reprefix(exc, f"[{i}]") from exc
        return out
    if literal.WhichOneof("value") != "map":
        raise Mismatch()
    result = {}
    for key, item in literal.map.literals.items():
        try:
            result[key] = TypeEngine.to_python_value(item, literal_type=lt.map_value_type, ctx=ctx)
        except InputError as exc:
            raise reprefix(exc, f"[{key!r}]") from exc
    return result
