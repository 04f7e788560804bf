"""Scalars: int, float, bool, str, datetime, date, timedelta, None, and string enums.

Why: these are the bulk of every interface, and their encoding is fixed by flytekit
(F:flytekit/core/type_engine.py, the ``SimpleTransformer`` instances at the end of the module):
transformer names (``int``, ``float``, ``str``, ``bool``, ``datetime``, ``date``, ``timedelta``,
``none``, ``DefaultEnumTransformer``) double as union tags, so they must match exactly.

Invariants:
    * ``int`` accepts only int64 values and never ``bool``; decoding accepts ``float_value`` and
      truncates (flytekit's Flyte-console rule). ``float`` accepts ints both ways.
    * Datetimes travel as UTC Timestamps: naive values are taken as UTC, decoded values are aware UTC.
      ``date`` is midnight UTC. Durations keep microsecond precision and Duration's +-10000-year range.
    * A msgpack ``Binary`` scalar (propeller's attribute access into a dataclass) decodes too.
    * Enums carry string values only, as ``string_value``; their literal type is ``enum_type{values}``.
"""

from __future__ import annotations

import datetime
import enum
import math
from typing import Any

from flyteidl.core import literals_pb2, types_pb2

from taskbox.literals.engine import Mismatch, NoneType, TypeTransformer, is_strict, strip_annotated
from taskbox.literals.typeinfo import MSGPACK

__all__ = ["ENUM", "REGISTERED"]

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_TS_MIN, _TS_MAX = -62_135_596_800, 253_402_300_799  # 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z
_DURATION_MAX = 315_576_000_000  # seconds, google.protobuf.Duration's documented range


def scalar_of(literal: literals_pb2.Literal) -> literals_pb2.Scalar:
    """Return the literal's scalar, or :class:`Mismatch` if it holds a collection/map/nothing."""
    if literal.WhichOneof("value") != "scalar":
        raise Mismatch()
    return literal.scalar


def msgpack_value(scalar: literals_pb2.Scalar) -> Any:
    """Unpack a msgpack ``Binary`` scalar; any other tag is a mismatch."""
    if scalar.binary.tag != MSGPACK:
        raise Mismatch(f"unsupported binary tag {scalar.binary.tag!r}")
    import msgpack  # lazy: only attribute-access payloads need it

    return msgpack.unpackb(scalar.binary.value, raw=False, strict_map_key=False)


def to_timestamp(value: datetime.datetime, out: Any) -> None:
    """Write ``value`` (naive = UTC) into a ``google.protobuf.Timestamp`` without float rounding."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=_UTC)
    delta = value - _EPOCH
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    seconds, rest = divmod(micros, 1_000_000)
    if not _TS_MIN <= seconds <= _TS_MAX:
        raise ValueError("outside the range of a protobuf Timestamp (years 1-9999 UTC)")
    out.seconds = seconds
    out.nanos = rest * 1000


def from_timestamp(ts: Any) -> datetime.datetime:
    """Read a ``google.protobuf.Timestamp`` as an aware UTC datetime (nanoseconds truncated)."""
    return _EPOCH + datetime.timedelta(seconds=ts.seconds, microseconds=ts.nanos // 1000)


def to_duration(value: datetime.timedelta, out: Any) -> None:
    """Write ``value`` into a ``google.protobuf.Duration`` (seconds and nanos share the sign)."""
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    sign = -1 if micros < 0 else 1
    seconds, rest = divmod(abs(micros), 1_000_000)
    if seconds > _DURATION_MAX:
        raise ValueError("outside the range of a protobuf Duration (+-10000 years)")
    out.seconds = sign * seconds
    out.nanos = sign * rest * 1000


def from_duration(d: Any) -> datetime.timedelta:
    """Read a ``google.protobuf.Duration`` as a timedelta (nanoseconds truncated toward zero)."""
    return datetime.timedelta(seconds=d.seconds, microseconds=int(d.nanos / 1000))


class _Primitive(TypeTransformer[Any]):
    """A scalar carried in ``Primitive.<field>`` with ``LiteralType.simple == <simple>``."""

    simple: int = types_pb2.NONE
    fields: tuple[str, ...] = ()

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        return types_pb2.LiteralType(simple=self.simple)

    def guess_python_type(self, literal_type: types_pb2.LiteralType) -> Any:
        if literal_type.WhichOneof("type") == "simple" and literal_type.simple == self.simple:
            return self.python_type
        return super().guess_python_type(literal_type)

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        literal = literals_pb2.Literal()
        self.write(value, literal.scalar.primitive)
        return literal

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> Any:
        scalar = scalar_of(literal)
        kind = scalar.WhichOneof("value")
        if kind == "binary":
            return self.from_plain(msgpack_value(scalar))
        if kind != "primitive" or scalar.primitive.WhichOneof("value") not in self.fields:
            raise Mismatch()
        return self.read(scalar.primitive)

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        raise NotImplementedError

    def read(self, primitive: literals_pb2.Primitive) -> Any:
        raise NotImplementedError

    def from_plain(self, value: Any) -> Any:
        """Decode the JSON/msgpack form of this type (as found inside dataclasses)."""
        raise NotImplementedError


class IntTransformer(_Primitive):
    simple, fields = types_pb2.INTEGER, ("integer", "float_value")

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Mismatch()
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError("outside the int64 range")
        out.integer = int(value)

    def read(self, primitive: literals_pb2.Primitive) -> int:
        if primitive.WhichOneof("value") == "integer":
            return primitive.integer
        return self.from_plain(primitive.float_value)

    def from_plain(self, value: Any) -> int:
        if isinstance(value, float) and math.isfinite(value):
            return int(value)  # flytekit truncates console floats
        if isinstance(value, bool) or not isinstance(value, int):
            raise Mismatch()
        return value


class FloatTransformer(_Primitive):
    simple, fields = types_pb2.FLOAT, ("float_value", "integer")

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if isinstance(value, bool) or not isinstance(value, float if is_strict() else (float, int)):
            raise Mismatch()
        out.float_value = float(value)

    def read(self, primitive: literals_pb2.Primitive) -> float:
        if primitive.WhichOneof("value") == "float_value":
            return primitive.float_value
        return float(primitive.integer)

    def from_plain(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (float, int)):
            raise Mismatch()
        return float(value)


class BoolTransformer(_Primitive):
    simple, fields = types_pb2.BOOLEAN, ("boolean",)

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if not isinstance(value, bool):
            raise Mismatch()
        out.boolean = value

    def read(self, primitive: literals_pb2.Primitive) -> bool:
        return primitive.boolean

    def from_plain(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise Mismatch()
        return value


class StrTransformer(_Primitive):
    simple, fields = types_pb2.STRING, ("string_value",)

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if isinstance(value, enum.Enum) and isinstance(value.value, str) and not is_strict():
            value = value.value
        if not isinstance(value, str):
            raise Mismatch()
        out.string_value = value

    def read(self, primitive: literals_pb2.Primitive) -> str:
        return primitive.string_value

    def from_plain(self, value: Any) -> str:
        if not isinstance(value, str):
            raise Mismatch()
        return value


class DatetimeTransformer(_Primitive):
    simple, fields = types_pb2.DATETIME, ("datetime",)

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime) and not is_strict():
            value = datetime.datetime.combine(value, datetime.time.min)
        if not isinstance(value, datetime.datetime):
            raise Mismatch()
        to_timestamp(value, out.datetime)

    def read(self, primitive: literals_pb2.Primitive) -> datetime.datetime:
        return from_timestamp(primitive.datetime)

    def from_plain(self, value: Any) -> datetime.datetime:
        if not isinstance(value, str):
            raise Mismatch()
        parsed = datetime.datetime.fromisoformat(value)
        return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=_UTC)


class DateTransformer(_Primitive):
    simple, fields = types_pb2.DATETIME, ("datetime",)

    def guess_python_type(self, literal_type: types_pb2.LiteralType) -> Any:
        raise ValueError("DATETIME reads as datetime")

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
            raise Mismatch()
        to_timestamp(datetime.datetime.combine(value, datetime.time.min), out.datetime)

    def read(self, primitive: literals_pb2.Primitive) -> datetime.date:
        return from_timestamp(primitive.datetime).date()

    def from_plain(self, value: Any) -> datetime.date:
        if not isinstance(value, str):
            raise Mismatch()
        return datetime.date.fromisoformat(value[:10])


class TimedeltaTransformer(_Primitive):
    simple, fields = types_pb2.DURATION, ("duration",)

    def write(self, value: Any, out: literals_pb2.Primitive) -> None:
        if not isinstance(value, datetime.timedelta):
            raise Mismatch()
        to_duration(value, out.duration)

    def read(self, primitive: literals_pb2.Primitive) -> datetime.timedelta:
        return from_duration(primitive.duration)

    def from_plain(self, value: Any) -> datetime.timedelta:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Mismatch()
        return datetime.timedelta(seconds=value)  # mashumaro writes total_seconds()


class NoneTransformer(_Primitive):
    simple = types_pb2.NONE

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if value is not None:
            raise Mismatch()
        literal = literals_pb2.Literal()
        literal.scalar.none_type.SetInParent()
        return literal

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> None:
        scalar = scalar_of(literal)
        if scalar.WhichOneof("value") == "binary" and msgpack_value(scalar) is None:
            return None
        if scalar.WhichOneof("value") != "none_type":
            raise Mismatch()
        return None

    def from_plain(self, value: Any) -> None:
        if value is not None:
            raise Mismatch()
        return None


class EnumTransformer(TypeTransformer[enum.Enum]):
    """``enum.Enum`` subclasses with string values, as ``string_value`` literals."""

    def handles(self, python_type: Any) -> bool:
        return isinstance(python_type, type) and issubclass(python_type, enum.Enum)

    def get_literal_type(self, t: Any) -> types_pb2.LiteralType:
        t = strip_annotated(t)
        values = [member.value for member in t]
        if not values or not all(isinstance(v, str) for v in values):
            raise TypeError(f"enum {t.__qualname__} must have string values to be a Flyte enum")
        return types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=values))

    def guess_python_type(self, literal_type: types_pb2.LiteralType) -> Any:
        raise ValueError("enum types are guessed by the engine")

    def to_literal(
        self, ctx: Any, value: Any, python_type: Any, expected: types_pb2.LiteralType
    ) -> literals_pb2.Literal:
        if expected.WhichOneof("type") == "enum_type":
            allowed = list(expected.enum_type.values)
        else:
            allowed = [m.value for m in strip_annotated(python_type)]
        raw = value.value if isinstance(value, enum.Enum) else value
        if not isinstance(raw, str):
            raise Mismatch()
        if raw not in allowed:
            raise ValueError(f"{raw!r} is not one of {allowed}")
        literal = literals_pb2.Literal()
        literal.scalar.primitive.string_value = raw
        return literal

    def to_python_value(self, ctx: Any, literal: literals_pb2.Literal, expected_python_type: Any) -> enum.Enum:
        scalar = scalar_of(literal)
        if scalar.WhichOneof("value") == "binary":
            raw = msgpack_value(scalar)
        elif scalar.WhichOneof("value") == "primitive" and scalar.primitive.WhichOneof("value") == "string_value":
            raw = scalar.primitive.string_value
        else:
            raise Mismatch()
        return self.from_plain(raw, strip_annotated(expected_python_type))

    @staticmethod
    def from_plain(raw: Any, enum_type: Any) -> enum.Enum:
        """Look a raw value up in ``enum_type``, naming the allowed values when it is not one."""
        try:
            return enum_type(raw)
        except ValueError:
            allowed = [m.value for m in enum_type]
            raise ValueError(f"{raw!r} is not one of {allowed}") from None


INT = IntTransformer("int", int)
FLOAT = FloatTransformer("float", float)
BOOL = BoolTransformer("bool", bool)
STR = StrTransformer("str", str)
DATETIME = DatetimeTransformer("datetime", datetime.datetime)
DATE = DateTransformer("date", datetime.date)
TIMEDELTA = TimedeltaTransformer("timedelta", datetime.timedelta)
NONE = NoneTransformer("none", NoneType)
ENUM = EnumTransformer("DefaultEnumTransformer", enum.Enum)

REGISTERED: list[tuple[TypeTransformer[Any], list[Any] | None]] = [
    (INT, None),
    (FLOAT, None),
    (STR, None),
    (DATETIME, None),
    (DATE, None),
    (TIMEDELTA, None),
    (BOOL, None),
    (NONE, None),
]
