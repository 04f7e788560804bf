"""Unions and Optionals: ``Scalar.union{value, type}`` whose type is the variant tagged with its transformer.

Why: flytekit's ``UnionTransformer`` (F:flytekit/core/type_engine.py ``UnionTransformer``) declares a
union as ``union_type{variants}``, each variant's ``structure.tag`` being the transformer name of its
Python type, and stores a value together with the chosen variant's tagged type. Readers pick the variant
by that tag; propeller refuses bindings whose tags differ. Both the Python-type and the LiteralType
paths are implemented here.

Invariants:
    * Encoding tries every variant, strictly first (no int-as-float, no enum-as-str); the lenient
      pass runs only when no variant fits strictly. Several fits are narrowed to the one whose type is
      exactly the value's type (flytekit's "a bare string prefers str" generalised); otherwise the
      value is ambiguous and an error names the candidate tags.
    * Decoding a union literal considers only variants with the stored tag whose type is castable
      from the stored type; several successful decodes are an ambiguity error, as in flytekit.
    * A non-union literal read as a union is tried against every variant, preferring variants whose
      type is exactly the literal's inferred type.
"""

from __future__ import annotations

import enum
import typing
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError
from taskbox.literals.engine import (
    Mismatch,
    TypeEngine,
    TypeTransformer,
    strict_matching,
    strip_annotated,
)
from taskbox.literals.typeinfo import describe_value, essence, infer_literal_type, is_castable, tagged

__all__ = ["UNION", "decode_by_type", "encode_by_type"]

C = TypeVar("C")


def _wrap(inner: literals_pb2.Literal, stored: types_pb2.LiteralType) -> literals_pb2.Literal:
    literal = literals_pb2.Literal()
    literal.scalar.union.value.CopyFrom(inner)
    literal.scalar.union.type.CopyFrom(stored)
    return literal


def _title(lt: types_pb2.LiteralType) -> str | None:
    field = lt.metadata.fields.get("title")
    return field.string_value if field is not None else None


def _exactly(value: Any, python_type: Any) -> bool:
    t = strip_annotated(python_type)
    if t is type(None):
        return value is None
    origin = typing.get_origin(t) or t
    return isinstance(origin, type) and type(value) is origin


def _narrow(value: Any, found: Sequence[C], exact: Callable[[C], bool], tag: Callable[[C], str]) -> C:
    if len(found) == 1:
        return found[0]
    preferred = [c for c in found if exact(c)]
    if len(preferred) == 1:
        return preferred[0]
    tags = ", ".join(repr(tag(c)) for c in (preferred or found))
    raise Mismatch(f"ambiguous: {describe_value(value)} fits several union variants ({tags})")


_Attempt = Callable[[], literals_pb2.Literal]


def _try_encode(attempts: Sequence[tuple[C, _Attempt]]) -> list[tuple[C, literals_pb2.Literal]]:
    """Run each attempt strictly, then (if none fit) leniently; return the ones that produced a literal."""
    for strict in (True, False):
        found = []
        with strict_matching(strict):
            for key, attempt in attempts:
                try:
                    found.append((key, attempt()))
                except OutputError:
                    continue
        if found:
            return found
    return []


def _try_decode(attempts: Sequence[tuple[C, Callable[[], Any]]]) -> list[tuple[C, Any]]:
    found = []
    for key, attempt in attempts:
        try:
            found.append((key, attempt()))
        except InputError:
            continue
    return found


class UnionTransformer(TypeTransformer[Any]):
    """``Union[...]``, ``Optional[...]`` and ``X | Y`` (flytekit's "Typed Union")."""

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        variants = [
            tagged(TypeEngine.to_literal_type(arg), TypeEngine.get_transformer(arg).name)
            for arg in typing.get_args(strip_annotated(t))
        ]
        return types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=variants))

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        args = typing.get_args(strip_annotated(python_type))
        declared = list(expected.union_type.variants) if expected.WhichOneof("type") == "union_type" else []
        if len(declared) != len(args):
            declared = [TypeEngine.to_literal_type(arg) for arg in args]

        def attempt(arg: Any, lt: types_pb2.LiteralType) -> Callable[[], literals_pb2.Literal]:
            return lambda: TypeEngine.to_literal(value, arg, literal_type=lt, ctx=ctx)

        found = _try_encode([(arg, attempt(arg, lt)) for arg, lt in zip(args, declared, strict=True)])
        if not found:
            raise Mismatch()
        arg, inner = _narrow(
            value, found, lambda c: _exactly(value, c[0]), lambda c: TypeEngine.get_transformer(c[0]).name
        )
        transformer = TypeEngine.get_transformer(arg)
        return _wrap(inner, tagged(transformer.get_literal_type(arg), transformer.name))

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> Any:
        args = typing.get_args(strip_annotated(expected_python_type))
        typed = []
        for arg in args:
            try:
                typed.append((arg, TypeEngine.to_literal_type(arg), TypeEngine.get_transformer(arg).name))
            except Exception:  # noqa: BLE001 - a member we cannot type cannot be the stored one
                continue
        if _is_union_literal(literal):
            stored = literal.scalar.union.type
            tag = stored.structure.tag
            candidates = [(arg, lt) for arg, lt, name in typed if (not tag or name == tag) and is_castable(stored, lt)]
            candidates = _by_title(candidates, stored, lambda c: c[1])
            inner = literal.scalar.union.value
            found = _try_decode([(c, _decoder(inner, c[0], ctx)) for c in candidates])
            if not found:
                raise Mismatch(f"no member of the union matches the stored variant {tag!r}")
            if len(found) > 1:
                raise Mismatch(f"ambiguous: several union members decode the stored variant {tag!r}")
            return found[0][1]
        actual = essence(infer_literal_type(literal))
        found = _try_decode([((arg, lt), _decoder(literal, arg, ctx)) for arg, lt, _ in typed])
        if not found:
            raise Mismatch()
        exact = [f for f in found if essence(f[0][1]) == actual]
        if len(exact) == 1 or len(found) == 1:
            return (exact or found)[0][1]
        raise Mismatch("ambiguous: several union members decode this literal")


def _decoder(literal: literals_pb2.Literal, python_type: Any, ctx: Any) -> Callable[[], Any]:
    return lambda: TypeEngine.to_python_value(literal, python_type, ctx=ctx)


def _is_union_literal(literal: literals_pb2.Literal) -> bool:
    return literal.WhichOneof("value") == "scalar" and literal.scalar.WhichOneof("value") == "union"


def _by_title(
    candidates: list[C], stored: types_pb2.LiteralType, lt_of: Callable[[C], types_pb2.LiteralType]
) -> list[C]:
    """Among several STRUCT candidates, keep those whose schema title equals the stored type's."""
    title = _title(stored)
    if len(candidates) < 2 or title is None:
        return candidates
    same = [c for c in candidates if _title(lt_of(c)) == title]
    return same or candidates


def _variant_fits_exactly(value: Any, variant: types_pb2.LiteralType) -> bool:
    kind = variant.WhichOneof("type")
    if kind == "enum_type":
        return isinstance(value, enum.Enum)
    if kind == "simple" and variant.simple == types_pb2.STRUCT:
        if type(value) is dict:
            return _fits_schema(value, variant)
        return _title(variant) == type(value).__name__
    try:
        return _exactly(value, TypeEngine.guess_python_type(variant))
    except Exception:  # noqa: BLE001 - an untranslatable variant is simply not an exact fit
        return False


def _fits_schema(value: dict[Any, Any], variant: types_pb2.LiteralType) -> bool:
    """Whether a plain dict's keys are a struct variant's fields: every required one, no unknown one."""
    properties = variant.metadata.fields.get("properties")
    if properties is None or properties.WhichOneof("kind") != "struct_value":
        return False
    required = variant.metadata.fields.get("required")
    needed = {v.string_value for v in required.list_value.values} if required is not None else set()
    keys = set(value)
    return needed <= keys <= set(properties.struct_value.fields)


def encode_by_type(ctx: Any, value: Any, lt: types_pb2.LiteralType) -> literals_pb2.Literal:
    """Encode ``value`` for a ``union_type`` known only from a template; the stored type is the variant."""
    variants = list(lt.union_type.variants)

    def attempt(variant: types_pb2.LiteralType) -> Callable[[], literals_pb2.Literal]:
        return lambda: TypeEngine.to_literal(value, literal_type=variant, ctx=ctx)

    known = _known_variant(ctx, value, variants)
    if known is not None:  # the value was read as this variant: keep it, never re-guess
        found = _try_encode([(known, attempt(variants[known]))])
        if found:
            return _wrap(found[0][1], variants[known])
    found = _try_encode([(i, attempt(v)) for i, v in enumerate(variants)])
    if not found:
        raise Mismatch()
    index, inner = _narrow(
        value,
        found,
        lambda c: _variant_fits_exactly(value, variants[c[0]]),
        lambda c: variants[c[0]].structure.tag,
    )
    return _wrap(inner, variants[index])


def decode_by_type(ctx: Any, literal: literals_pb2.Literal, lt: types_pb2.LiteralType) -> Any:
    """Decode a literal declared as ``union_type``, choosing the variant by the stored tag."""
    variants = list(lt.union_type.variants)
    if _is_union_literal(literal):
        stored = literal.scalar.union.type
        tag = stored.structure.tag
        candidates = [
            v for v in variants if (not tag or not v.structure.tag or v.structure.tag == tag) and is_castable(stored, v)
        ]
        same = [v for v in candidates if v == stored]  # flytekit stores the variant's own type
        candidates = same if len(same) == 1 else _by_title(candidates, stored, lambda v: v)
        inner = literal.scalar.union.value
        found = _try_decode([(v, _lt_decoder(inner, v, ctx)) for v in candidates])
        if not found:
            raise Mismatch(f"no union variant matches the stored variant {tag!r}")
        if len(found) > 1:
            raise Mismatch(f"ambiguous: several union variants match the stored variant {tag!r}")
        variant, value = found[0]
        origins = getattr(ctx, "origins", None)
        if origins is not None:
            origins.note_variant(value, variant)
        return value
    actual = essence(infer_literal_type(literal))
    found = _try_decode([(v, _lt_decoder(literal, v, ctx)) for v in variants])
    if not found:
        raise Mismatch()
    exact = [f for f in found if essence(f[0]) == actual]
    if len(exact) == 1 or len(found) == 1:
        return (exact or found)[0][1]
    raise Mismatch("ambiguous: several union variants decode this literal")


def _known_variant(ctx: Any, value: Any, variants: list[types_pb2.LiteralType]) -> int | None:
    """Return the index of the variant ``value`` was decoded as (equal type, else same tag and essence)."""
    origins = getattr(ctx, "origins", None)
    known = origins.variant_of(value) if origins is not None else None
    if known is None:
        return None
    for index, variant in enumerate(variants):
        if variant == known:
            return index
    same = [
        i
        for i, v in enumerate(variants)
        if v.structure.tag == known.structure.tag and _title(v) == _title(known) and essence(v) == essence(known)
    ]
    return same[0] if len(same) == 1 else None


def _lt_decoder(literal: literals_pb2.Literal, lt: types_pb2.LiteralType, ctx: Any) -> Callable[[], Any]:
    return lambda: TypeEngine.to_python_value(literal, literal_type=lt, ctx=ctx)


UNION = UnionTransformer("Typed Union", typing.Union)
