"""Property tests: scalar, collection and union values survive both conversion paths losslessly."""

# ruff: noqa: UP007, UP045 - typing.Optional/Union spelled out on purpose

from __future__ import annotations

import datetime
import math
from typing import Any, Optional, Union

from flyteidl.core import literals_pb2
from hypothesis import given
from hypothesis import strategies as st

from taskbox.literals import TypeEngine

UTC = datetime.UTC
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([0.0, -0.0, math.inf, -math.inf])
TEXT = st.text() | st.text(alphabet=st.characters(min_codepoint=0x10000, max_codepoint=0x10FFFF), min_size=1)
OFFSETS = st.integers(min_value=-1439, max_value=1439).map(lambda m: datetime.timezone(datetime.timedelta(minutes=m)))
AWARE = st.datetimes(
    min_value=datetime.datetime(1, 1, 2), max_value=datetime.datetime(9999, 12, 30), timezones=st.just(UTC) | OFFSETS
)
DURATIONS = st.timedeltas(min_value=datetime.timedelta(days=-3_650_000), max_value=datetime.timedelta(days=3_650_000))

LEAVES: dict[Any, st.SearchStrategy[Any]] = {
    int: INT64,
    float: FLOATS,
    str: TEXT,
    bool: st.booleans(),
    datetime.datetime: AWARE,
    datetime.timedelta: DURATIONS,
    type(None): st.none(),
}
UNIONS = [
    Union[int, str],
    Union[float, str, None],
    Union[int, float],
    Union[list[int], dict[str, int]],
    Optional[datetime.timedelta],
    Union[bool, list[str], None],
]


def values_for(t: Any) -> st.SearchStrategy[Any]:
    if t in LEAVES:
        return LEAVES[t]
    origin = getattr(t, "__origin__", None)
    args = getattr(t, "__args__", ())
    if origin is list:
        return st.lists(values_for(args[0]), max_size=4)
    if origin is dict:
        return st.dictionaries(TEXT, values_for(args[1]), max_size=4)
    if origin is Union:
        return st.one_of(*(values_for(a) for a in args))
    raise AssertionError(t)


TYPES = st.recursive(
    st.sampled_from(list(LEAVES)) | st.sampled_from(UNIONS),
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),  # type: ignore[valid-type]
        inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
        inner.map(lambda t: Optional[t]),
    ),
    max_leaves=3,
)


def same(a: Any, b: Any) -> bool:
    """Equality that also requires equal types, treats NaN as equal to NaN and tells -0.0 from 0.0."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def reparsed(lit: literals_pb2.Literal) -> literals_pb2.Literal:
    out = literals_pb2.Literal()
    out.ParseFromString(lit.SerializeToString())
    return out


@given(st.data())
def test_round_trip_by_python_type(data):
    python_type = data.draw(TYPES, label="type")
    value = data.draw(values_for(python_type), label="value")
    lit = reparsed(TypeEngine.to_literal(value, python_type))
    assert same(TypeEngine.to_python_value(lit, python_type), value)


@given(st.data())
def test_round_trip_by_literal_type(data):
    python_type = data.draw(TYPES, label="type")
    value = data.draw(values_for(python_type), label="value")
    lt = TypeEngine.to_literal_type(python_type)
    lit = reparsed(TypeEngine.to_literal(value, literal_type=lt))
    assert same(TypeEngine.to_python_value(lit, literal_type=lt), value)
    assert lit == TypeEngine.to_literal(value, python_type)  # both paths write the same literal


@given(st.datetimes(min_value=datetime.datetime(1, 1, 1), max_value=datetime.datetime(9999, 12, 31)))
def test_naive_datetimes_come_back_as_utc(value):
    lit = TypeEngine.to_literal(value, datetime.datetime)
    assert TypeEngine.to_python_value(lit, datetime.datetime) == value.replace(tzinfo=UTC)


@given(INT64)
def test_ints_read_as_floats_and_back(value):
    as_float = TypeEngine.to_python_value(TypeEngine.to_literal(value, int), float)
    assert as_float == float(value)
    if abs(value) < 2**53:
        assert TypeEngine.to_python_value(TypeEngine.to_literal(as_float, float), int) == value
