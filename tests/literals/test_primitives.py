from __future__ import annotations

import datetime
import enum
import math

import msgpack
import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, UnsupportedType
from taskbox.literals import TypeEngine
from taskbox.literals.engine import dynamic_enum

UTC = datetime.UTC


def simple(kind: int) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=kind)


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Level(str, enum.Enum):  # noqa: UP042 - the str mixin is what is tested
    LOW = "low"
    HIGH = "high"


class Number(enum.Enum):
    ONE = 1


@pytest.mark.parametrize(
    ("value", "python_type", "kind", "field"),
    [
        (7, int, types_pb2.INTEGER, "integer"),
        (-(2**63), int, types_pb2.INTEGER, "integer"),
        (2**63 - 1, int, types_pb2.INTEGER, "integer"),
        (2.5, float, types_pb2.FLOAT, "float_value"),
        (True, bool, types_pb2.BOOLEAN, "boolean"),
        (False, bool, types_pb2.BOOLEAN, "boolean"),
        ("text \U0001f600", str, types_pb2.STRING, "string_value"),
        ("", str, types_pb2.STRING, "string_value"),
        (datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=UTC), datetime.datetime, types_pb2.DATETIME, "datetime"),
        (datetime.timedelta(days=2, microseconds=7), datetime.timedelta, types_pb2.DURATION, "duration"),
    ],
)
def test_round_trip_by_python_type_and_by_literal_type(value, python_type, kind, field):
    lit = TypeEngine.to_literal(value, python_type)
    assert lit.scalar.primitive.WhichOneof("value") == field
    assert TypeEngine.to_literal_type(python_type) == simple(kind)
    assert TypeEngine.to_python_value(lit, python_type) == value
    by_type = TypeEngine.to_literal(value, literal_type=simple(kind))
    assert by_type == lit
    assert TypeEngine.to_python_value(by_type, literal_type=simple(kind)) == value


def test_none_round_trip():
    lit = TypeEngine.to_literal(None, type(None))
    assert lit.scalar.WhichOneof("value") == "none_type"
    assert TypeEngine.to_literal_type(None) == simple(types_pb2.NONE)
    assert TypeEngine.to_python_value(lit, type(None)) is None
    assert TypeEngine.to_python_value(lit, literal_type=simple(types_pb2.NONE)) is None
    assert TypeEngine.to_literal(None, literal_type=simple(types_pb2.NONE)) == lit


def test_none_is_not_an_int():
    with pytest.raises(OutputError, match="expected int, got NoneType None"):
        TypeEngine.to_literal(None, int)


def test_int_rejects_bool_float_and_out_of_range_values():
    with pytest.raises(OutputError, match="expected int, got bool True"):
        TypeEngine.to_literal(True, int)
    with pytest.raises(OutputError, match="expected int, got float 1.0"):
        TypeEngine.to_literal(1.0, int)
    with pytest.raises(OutputError, match="int64 range"):
        TypeEngine.to_literal(2**63, int)


def test_int_decoder_accepts_float_and_truncates_like_flytekit():
    lit = TypeEngine.to_literal(3.9, float)
    assert TypeEngine.to_python_value(lit, int) == 3
    assert TypeEngine.to_python_value(TypeEngine.to_literal(-3.9, float), int) == -3


def test_int_decoder_rejects_non_finite_floats():
    with pytest.raises(InputError, match="expected int"):
        TypeEngine.to_python_value(TypeEngine.to_literal(math.inf, float), int)


def test_float_accepts_ints_both_ways():
    lit = TypeEngine.to_literal(3, float)
    assert lit.scalar.primitive.float_value == 3.0
    assert TypeEngine.to_python_value(TypeEngine.to_literal(4, int), float) == 4.0
    assert isinstance(TypeEngine.to_python_value(TypeEngine.to_literal(4, int), float), float)


def test_float_keeps_special_values():
    for value in (math.inf, -math.inf, -0.0):
        out = TypeEngine.to_python_value(TypeEngine.to_literal(value, float), float)
        assert out == value and math.copysign(1, out) == math.copysign(1, value)
    assert math.isnan(TypeEngine.to_python_value(TypeEngine.to_literal(math.nan, float), float))


def test_bool_is_strict():
    with pytest.raises(OutputError, match="expected bool, got int 1"):
        TypeEngine.to_literal(1, bool)
    with pytest.raises(InputError, match="expected bool, got integer literal 1"):
        TypeEngine.to_python_value(TypeEngine.to_literal(1, int), bool)


def test_str_mismatch_names_both_types():
    with pytest.raises(InputError) as err:
        TypeEngine.to_python_value(TypeEngine.to_literal("x", str), int)
    assert str(err.value) == "expected int, got string literal 'x'"
    assert err.value.code == "USER:InvalidInput"


def test_naive_datetime_is_utc_and_decodes_aware():
    naive = datetime.datetime(2020, 5, 17, 10, 30)
    out = TypeEngine.to_python_value(TypeEngine.to_literal(naive, datetime.datetime), datetime.datetime)
    assert out == naive.replace(tzinfo=UTC)
    assert out.tzinfo is UTC


def test_aware_datetime_is_converted_to_utc():
    tz = datetime.timezone(datetime.timedelta(hours=-5))
    value = datetime.datetime(2020, 1, 1, 22, 0, tzinfo=tz)
    lit = TypeEngine.to_literal(value, datetime.datetime)
    assert lit.scalar.primitive.datetime.seconds == int(value.timestamp())
    out = TypeEngine.to_python_value(lit, datetime.datetime)
    assert out == value and out.utcoffset() == datetime.timedelta(0)


def test_datetime_extremes_and_overflow():
    low = datetime.datetime(1, 1, 1, tzinfo=UTC)
    high = datetime.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    for value in (low, high):
        assert TypeEngine.to_python_value(TypeEngine.to_literal(value, datetime.datetime), datetime.datetime) == value
    east = datetime.timezone(datetime.timedelta(hours=3))
    with pytest.raises(OutputError, match="Timestamp"):
        TypeEngine.to_literal(datetime.datetime(1, 1, 1, tzinfo=east), datetime.datetime)


def test_date_is_midnight_utc():
    lit = TypeEngine.to_literal(datetime.date(2024, 2, 29), datetime.date)
    assert lit == TypeEngine.to_literal(datetime.datetime(2024, 2, 29, tzinfo=UTC), datetime.datetime)
    assert TypeEngine.to_literal_type(datetime.date) == simple(types_pb2.DATETIME)
    assert TypeEngine.to_python_value(lit, datetime.date) == datetime.date(2024, 2, 29)
    with pytest.raises(OutputError, match="expected date, got datetime"):
        TypeEngine.to_literal(datetime.datetime(2024, 1, 1), datetime.date)


def test_date_by_literal_type_becomes_midnight_datetime():
    lit = TypeEngine.to_literal(datetime.date(2024, 1, 5), literal_type=simple(types_pb2.DATETIME))
    out = TypeEngine.to_python_value(lit, literal_type=simple(types_pb2.DATETIME))
    assert out == datetime.datetime(2024, 1, 5, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        datetime.timedelta(0),
        datetime.timedelta(microseconds=-1),
        datetime.timedelta(seconds=-1, microseconds=500_000),
        datetime.timedelta(days=-3, hours=5),
        datetime.timedelta(days=3_652_000),
    ],
)
def test_timedelta_sign_and_precision(value):
    lit = TypeEngine.to_literal(value, datetime.timedelta)
    duration = lit.scalar.primitive.duration
    assert duration.seconds * duration.nanos >= 0  # protobuf: same sign
    assert TypeEngine.to_python_value(lit, datetime.timedelta) == value


def test_timedelta_outside_duration_range():
    with pytest.raises(OutputError, match="Duration"):
        TypeEngine.to_literal(datetime.timedelta(days=3_700_000), datetime.timedelta)


@pytest.mark.parametrize(
    ("python_type", "payload", "expected"),
    [
        (int, 5, 5),
        (float, 2, 2.0),
        (str, "s", "s"),
        (bool, True, True),
        (datetime.datetime, "2024-01-02T03:04:05", datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)),
        (datetime.timedelta, 1.5, datetime.timedelta(seconds=1.5)),
        (datetime.date, "2024-01-02", datetime.date(2024, 1, 2)),
    ],
)
def test_msgpack_binary_scalars_decode(python_type, payload, expected):
    """Propeller's attribute access on a dataclass hands a task msgpack-encoded scalars."""
    lit = literals_pb2.Literal()
    lit.scalar.binary.value = msgpack.packb(payload)
    lit.scalar.binary.tag = "msgpack"
    assert TypeEngine.to_python_value(lit, python_type) == expected


def test_unknown_binary_tag_is_rejected():
    lit = literals_pb2.Literal()
    lit.scalar.binary.value = b"\x01"
    lit.scalar.binary.tag = "pickle"
    with pytest.raises(InputError, match="unsupported binary tag 'pickle'"):
        TypeEngine.to_python_value(lit, int)


def test_collection_is_not_a_scalar():
    lit = TypeEngine.to_literal([1], list[int])
    with pytest.raises(InputError, match="expected int, got collection literal of 1"):
        TypeEngine.to_python_value(lit, int)


def test_enum_round_trip_and_type():
    lt = TypeEngine.to_literal_type(Color)
    assert list(lt.enum_type.values) == ["red", "green"]
    lit = TypeEngine.to_literal(Color.GREEN, Color)
    assert lit.scalar.primitive.string_value == "green"
    assert TypeEngine.to_python_value(lit, Color) is Color.GREEN
    assert TypeEngine.to_literal("red", Color).scalar.primitive.string_value == "red"
    assert TypeEngine.get_transformer(Color).name == "DefaultEnumTransformer"


def test_str_mixin_enum_uses_the_enum_transformer():
    assert TypeEngine.get_transformer(Level).name == "DefaultEnumTransformer"
    assert TypeEngine.to_python_value(TypeEngine.to_literal(Level.HIGH, Level), Level) is Level.HIGH


def test_enum_errors_list_the_allowed_values():
    with pytest.raises(OutputError, match=r"'blue' is not one of \['red', 'green'\]"):
        TypeEngine.to_literal("blue", Color)
    with pytest.raises(InputError, match=r"'blue' is not one of \['red', 'green'\]"):
        TypeEngine.to_python_value(TypeEngine.to_literal("blue", str), Color)
    with pytest.raises(UnsupportedType, match="string values"):
        TypeEngine.to_literal_type(Number)


def test_enum_by_literal_type_gives_str_enum_members():
    lt = types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=["a b", "class", "_x", "ok"]))
    lit = TypeEngine.to_literal("class", literal_type=lt)
    value = TypeEngine.to_python_value(lit, literal_type=lt)
    assert value == "class" and isinstance(value, str) and isinstance(value, enum.Enum)
    assert TypeEngine.guess_python_type(lt) is dynamic_enum(("a b", "class", "_x", "ok"))
    assert [m.value for m in TypeEngine.guess_python_type(lt)] == ["a b", "class", "_x", "ok"]
    with pytest.raises(OutputError, match="is not one of"):
        TypeEngine.to_literal("nope", literal_type=lt)
    assert (
        TypeEngine.to_literal(
            Color.RED, literal_type=types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=["red"]))
        ).scalar.primitive.string_value
        == "red"
    )


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (types_pb2.INTEGER, int),
        (types_pb2.FLOAT, float),
        (types_pb2.STRING, str),
        (types_pb2.BOOLEAN, bool),
        (types_pb2.DATETIME, datetime.datetime),
        (types_pb2.DURATION, datetime.timedelta),
        (types_pb2.NONE, type(None)),
        (types_pb2.STRUCT, dict),
    ],
)
def test_guess_python_type_for_simple_types(kind, expected):
    assert TypeEngine.guess_python_type(simple(kind)) is expected
