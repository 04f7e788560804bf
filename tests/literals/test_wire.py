"""The wire fast path (:mod:`taskbox.literals.wire`) equals the engine, byte for byte and value for value.

Golden rule: ``encode_literal`` returns exactly ``TypeEngine.to_literal(...).SerializeToString(deterministic=True)``
and ``decode_literal`` returns exactly ``TypeEngine.to_python_value(...)`` (same value, same type, same
error), for the plain shapes it reads itself, for every shape it hands to the engine, and for bytes that
are not canonical or do not parse at all.
"""

# ruff: noqa: UP007 - typing.Union spelled out on purpose

from __future__ import annotations

import datetime
import enum
import math
from typing import Any, Union

import pytest
from flyteidl.core import literals_pb2, types_pb2
from hypothesis import given
from hypothesis import strategies as st

from taskbox.errors import InputError, OutputError
from taskbox.literals import TypeEngine, wire
from taskbox.literals.maps import (
    encoded_map_to_python,
    literal_map_to_python,
    python_to_encoded_map,
    python_to_literal_map,
)

INT, FLOAT, STR, BOOL = (
    types_pb2.LiteralType(simple=s) for s in (types_pb2.INTEGER, types_pb2.FLOAT, types_pb2.STRING, types_pb2.BOOLEAN)
)
DT = types_pb2.LiteralType(simple=types_pb2.DATETIME)


def list_of(t: types_pb2.LiteralType) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(collection_type=t)


def map_of(t: types_pb2.LiteralType) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(map_value_type=t)


def engine_bytes(value: Any, python_type: Any, lt: Any, ctx: Any) -> bytes:
    return TypeEngine.to_literal(value, python_type, literal_type=lt, ctx=ctx).SerializeToString(deterministic=True)


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types, NaN equal to NaN, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


def test_tags_match_the_flyteidl_descriptors():
    """The hand-written tags are the field numbers flyteidl declares (a schema change would show here)."""
    messages = (literals_pb2.Literal, literals_pb2.Scalar, literals_pb2.Primitive, literals_pb2.LiteralCollection)
    fields = {m.DESCRIPTOR.name: {f.name: f.number for f in m.DESCRIPTOR.fields} for m in messages}
    assert (fields["Literal"]["scalar"], fields["Literal"]["collection"], fields["Literal"]["map"]) == (1, 2, 3)
    assert fields["Scalar"]["primitive"] == 1 and fields["LiteralCollection"]["literals"] == 1
    prim = fields["Primitive"]
    assert (prim["integer"], prim["float_value"], prim["string_value"], prim["boolean"]) == (1, 2, 3, 4)


# ------------------------------------------------------------------------------------------ encoding

PLAIN_CASES = [
    (0, INT, int),
    (-1, INT, int),
    (2**63 - 1, INT, int),
    (-(2**63), INT, int),
    (0.0, FLOAT, float),
    (-0.0, FLOAT, float),
    (math.nan, FLOAT, float),
    (math.inf, FLOAT, float),
    (1e308, FLOAT, float),
    ("", STR, str),
    ("h\u00e9llo \U0001f600", STR, str),
    ("x" * 300, STR, str),
    (True, BOOL, bool),
    (False, BOOL, bool),
    ([], list_of(INT), list[int]),
    ([1, -2, 3**30], list_of(INT), list[int]),
    ([[1], [], [2, 3]], list_of(list_of(INT)), list[list[int]]),
    ({}, map_of(INT), dict[str, int]),
    ({"b": 1, "a": 2, "\u00e9": 3, "": 4, "\U0001f600": 5}, map_of(INT), dict[str, int]),
    ({"k": ["a", "b"], "j": []}, map_of(list_of(STR)), dict[str, list[str]]),
    ([{"x": 1.5}, {}], list_of(map_of(FLOAT)), list[dict[str, float]]),
    ([True, False], list_of(BOOL), list[bool]),
    # Shapes the fast path hands (in part) to the engine:
    ([1, 2.0], list_of(FLOAT), list[float]),  # an int where FLOAT is declared: float_value
    ([datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)], list_of(DT), list[datetime.datetime]),
    ({"a": 1}, types_pb2.LiteralType(simple=types_pb2.STRUCT), dict),
]


@pytest.mark.parametrize(("value", "lt", "hint"), PLAIN_CASES)
def test_encoding_is_the_engine_s_deterministic_bytes(ctx, value, lt, hint):
    assert wire.encode_literal(value, None, lt, ctx) == engine_bytes(value, None, lt, ctx)
    assert wire.encode_literal(value, hint, None, ctx) == engine_bytes(value, hint, None, ctx)


class Color(str, enum.Enum):  # noqa: UP042 - a (str, Enum), as flytekit users write them
    RED = "red"


@pytest.mark.parametrize(
    ("value", "lt"),
    [
        ([1, "x"], list_of(INT)),
        ([1, True], list_of(INT)),
        ([2**63], list_of(INT)),
        ({"a": [1, None]}, map_of(list_of(INT))),
        ({1: 2}, map_of(INT)),
        ((1, 2), list_of(INT)),
        (["\ud800"], list_of(STR)),
        ([1.5], list_of(INT)),
        ("x", list_of(STR)),
    ],
)
def test_encoding_errors_are_the_engine_s(ctx, value, lt):
    with pytest.raises(OutputError) as expected:
        engine_bytes(value, None, lt, ctx)
    with pytest.raises(OutputError) as got:
        wire.encode_literal(value, None, lt, ctx)
    assert got.value.message == expected.value.message


def test_a_str_enum_in_a_string_list_is_encoded_by_the_engine(ctx):
    assert wire.encode_literal([Color.RED, "b"], None, list_of(STR), ctx) == engine_bytes(
        ["red", "b"], None, list_of(STR), ctx
    )


def test_custom_transformers_turn_the_fast_path_off(monkeypatch):
    monkeypatch.setattr(TypeEngine, "_CUSTOM", [object()])
    assert wire.plan_for(None, list_of(INT)) is None
    monkeypatch.setattr(TypeEngine, "_CUSTOM", [])
    assert wire.plan_for(None, list_of(INT)) is not None


def test_the_encoded_map_serializes_as_the_literal_map(ctx):
    values = {"b": [1, 2], "a": {"z": "y"}, "c": 1.0}
    types = {"b": list_of(INT), "a": map_of(STR), "c": FLOAT}
    expected = python_to_literal_map(values, types, ctx).SerializeToString(deterministic=True)
    assert python_to_encoded_map(values, types, ctx).SerializeToString() == expected


# ------------------------------------------------------------------------------------------ decoding


def literal(build: Any) -> literals_pb2.Literal:
    lit = literals_pb2.Literal()
    build(lit)
    return lit


def with_hash(lit: literals_pb2.Literal) -> literals_pb2.Literal:
    lit.hash = "h"
    return lit


def prim(**kw: Any) -> literals_pb2.Literal:
    lit = literals_pb2.Literal()
    for k, v in kw.items():
        setattr(lit.scalar.primitive, k, v)
    return lit


def coll(*items: literals_pb2.Literal) -> literals_pb2.Literal:
    return literal(lambda lit: (lit.collection.SetInParent(), lit.collection.literals.extend(items)))


def union_of(inner: literals_pb2.Literal) -> literals_pb2.Literal:
    return literal(lambda lit: lit.scalar.union.value.CopyFrom(inner))


DECODE_CASES = [
    (coll(prim(integer=1), prim(integer=-5), prim(float_value=2.9)), list_of(INT)),  # float truncated
    (coll(prim(integer=3), prim(float_value=-0.0)), list_of(FLOAT)),  # int widened
    (coll(prim(string_value=""), prim(string_value="\U0001f600")), list_of(STR)),
    (coll(prim(boolean=True), prim(boolean=False)), list_of(BOOL)),
    (coll(with_hash(prim(integer=1)), prim(integer=2)), list_of(INT)),  # a hash: the engine's
    (coll(union_of(prim(integer=1))), list_of(INT)),  # a union-wrapped element: the engine unwraps it
    (with_hash(coll(prim(integer=1))), list_of(INT)),  # a hash on the collection
    (coll(coll(prim(integer=1)), coll()), list_of(list_of(INT))),
    (literal(lambda lit: lit.map.literals["k"].CopyFrom(prim(string_value="v"))), map_of(STR)),
    (literal(lambda lit: lit.map.SetInParent()), map_of(STR)),
    (coll(literal(lambda lit: lit.scalar.primitive.datetime.FromSeconds(5))), list_of(DT)),
    (prim(integer=7), INT),
    (prim(float_value=math.nan), FLOAT),
]


@pytest.mark.parametrize(("lit", "lt"), DECODE_CASES)
def test_decoding_is_the_engine_s(ctx, lit, lt):
    data = lit.SerializeToString()
    assert same(wire.decode_literal(data, None, lt, ctx), TypeEngine.to_python_value(lit, literal_type=lt, ctx=ctx))


@pytest.mark.parametrize(
    ("lit", "lt"),
    [
        (coll(prim(integer=1), prim(string_value="x")), list_of(INT)),
        (coll(prim(float_value=math.inf)), list_of(INT)),
        (coll(literals_pb2.Literal()), list_of(INT)),
        (literal(lambda lit: lit.map.literals["k"].CopyFrom(prim(integer=1))), map_of(STR)),
        (prim(integer=1), list_of(INT)),
        (coll(coll(prim(integer=1), prim(boolean=True))), list_of(list_of(INT))),
    ],
)
def test_decoding_errors_are_the_engine_s(ctx, lit, lt):
    with pytest.raises(InputError) as expected:
        TypeEngine.to_python_value(lit, literal_type=lt, ctx=ctx)
    with pytest.raises(InputError) as got:
        wire.decode_literal(lit.SerializeToString(), None, lt, ctx)
    assert got.value.message == expected.value.message


def test_a_later_map_entry_wins_as_in_protobuf(ctx):
    one = literals_pb2.LiteralMap(literals={"x": literal(lambda lit: lit.map.literals["k"].CopyFrom(prim(integer=1)))})
    two = literals_pb2.LiteralMap(literals={"x": literal(lambda lit: lit.map.literals["k"].CopyFrom(prim(integer=2)))})
    inner = one.literals["x"].SerializeToString()[2:] + two.literals["x"].SerializeToString()[2:]
    data = bytes([0x1A, len(inner)]) + inner  # Literal.map with the key "k" twice
    assert wire.decode_literal(data, None, map_of(INT), ctx) == {"k": 2}
    assert TypeEngine.to_python_value(literals_pb2.Literal.FromString(data), literal_type=map_of(INT)) == {"k": 2}


@pytest.mark.parametrize(
    "data",
    [
        coll(prim(integer=1)).SerializeToString()[:-1],  # truncated
        b"\x12\x05\x0a\x03\x0a\x01\x0a",  # an element whose scalar overruns it
        b"\x12\x03\x0a\x01\xff",  # a varint that never ends
        coll(prim(string_value="ab")).SerializeToString().replace(b"ab", b"\xff\xfe"),  # not UTF-8
    ],
)
def test_bytes_that_do_not_parse_are_an_input_error(ctx, data):
    with pytest.raises(InputError, match="not a serialized LiteralMap"):
        wire.decode_literal(data, None, list_of(STR), ctx)


def test_the_encoded_map_reads_as_the_literal_map(ctx):
    lm = literals_pb2.LiteralMap(
        literals={"xs": coll(prim(integer=1)), "m": literal(lambda lit: lit.map.SetInParent())}
    )
    types = {"xs": list_of(INT), "m": map_of(STR)}
    message = wire.split_map()
    message.ParseFromString(lm.SerializeToString())
    encoded = dict(message.literals)
    assert encoded_map_to_python(encoded, types, ctx) == literal_map_to_python(lm, types, ctx)
    assert encoded == {}  # each input's bytes are dropped once converted
    with pytest.raises(InputError, match="input 'zz' is not declared"):
        encoded_map_to_python({"zz": b""}, types, ctx)
    with pytest.raises(InputError, match="input 'xs' .* is missing"):
        encoded_map_to_python({"m": lm.literals["m"].SerializeToString()}, types, ctx)
    with pytest.raises(InputError, match="input 'm'.*not a serialized LiteralMap"):  # damage reported first
        encoded_map_to_python({"m": b"\x1a\x05"}, types, ctx)


# ------------------------------------------------------------------------------------------ properties

LEAF = {
    int: st.integers(min_value=-(2**63), max_value=2**63 - 1),
    float: st.floats(allow_nan=True, allow_infinity=True),
    str: st.text(),
    bool: st.booleans(),
}
TYPES = st.recursive(
    st.sampled_from([int, float, str, bool]),
    lambda inner: inner.map(lambda t: list[t]) | inner.map(lambda t: dict[str, t]),  # type: ignore[valid-type]
    max_leaves=3,
)


@st.composite
def typed_values(draw: Any) -> tuple[Any, Any]:
    t = draw(TYPES)

    def values(t: Any) -> Any:
        origin = getattr(t, "__origin__", None)
        if origin is list:
            return st.lists(values(t.__args__[0]), max_size=4)
        if origin is dict:
            return st.dictionaries(st.text(max_size=3), values(t.__args__[1]), max_size=4)
        return LEAF[t]

    return t, draw(values(t))


@given(typed_values())
def test_plain_values_match_the_engine_both_ways(tv: tuple[Any, Any]):
    t, value = tv
    lt = TypeEngine.to_literal_type(t)
    data = wire.encode_literal(value, None, lt, None)
    assert data == engine_bytes(value, None, lt, None)
    assert data == wire.encode_literal(value, t, None, None)
    decoded = wire.decode_literal(data, None, lt, None)
    assert same(decoded, TypeEngine.to_python_value(literals_pb2.Literal.FromString(data), literal_type=lt))
    assert same(decoded, wire.decode_literal(data, t, None, None))


def test_union_declarations_stay_with_the_engine(ctx):
    hint = Union[int, str]
    assert wire.plan_for(hint, None) is None
    assert wire.encode_literal(1, hint, None, ctx) == engine_bytes(1, hint, None, ctx)


@given(st.lists(st.text(alphabet="ab\u00e9\U0001f600", max_size=4), max_size=12))
def test_map_keys_follow_upb_s_deterministic_order(keys: list[str]):
    """Prefixes after the keys they prefix, "" last: what upb's map sorter does (not Python's sorted())."""
    lm = literals_pb2.LiteralMap()
    for key in keys:
        lm.literals[key].SetInParent()
    assert wire.EncodedLiteralMap({k: b"" for k in keys}).SerializeToString() == lm.SerializeToString(
        deterministic=True
    )


@pytest.mark.parametrize("text", ["x" * 70_000, "\u00e9" * 40_000, "\U0001f600" * 20_000])
def test_big_strings_take_the_same_bytes_both_ways(ctx, text):
    for lt, value in ((STR, text), (list_of(STR), [text, "a"])):
        data = wire.encode_literal(value, None, lt, ctx)
        assert data == engine_bytes(value, None, lt, ctx)
        assert wire.decode_literal(data, None, lt, ctx) == value


def test_an_input_of_mostly_empty_containers_is_too_large(ctx, monkeypatch):
    """Lists and maps cost ~64 bytes of Python each and may take 4 bytes on the wire: they are budgeted."""
    from taskbox.errors import InputTooLarge

    monkeypatch.setattr(wire, "CONTAINER_FLOOR_BYTES", 0)
    lt = list_of(list_of(INT))
    many = coll(*[coll() for _ in range(200)]).SerializeToString()  # ~4 bytes per inner list
    with pytest.raises(InputTooLarge, match=r"more than \d+ lists and maps in \d+ bytes"):
        wire.decode_literal(many, None, lt, ctx)
    few = coll(*[coll(*[prim(integer=i) for i in range(8)]) for _ in range(10)]).SerializeToString()
    assert wire.decode_literal(few, None, lt, ctx) == [list(range(8))] * 10


@st.composite
def mutated_literals(draw: Any) -> tuple[bytes, types_pb2.LiteralType]:
    """A plain literal's bytes with 1-4 byte edits (flips, overwrites, cuts, inserts), and its declared type."""
    t, value = draw(typed_values())
    lt = TypeEngine.to_literal_type(t)
    data = bytearray(wire.encode_literal(value, None, lt, None))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and data:
            data[at] = draw(st.sampled_from([0x00, 0x0A, 0x12, 0x1A, 0x7F, 0x80, 0xFF]))
        elif op == "cut":
            data = data[:at]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=6))
    return bytes(data), lt


@given(mutated_literals())
def test_damaged_bytes_decode_as_protobuf_and_the_engine_decode_them(case: tuple[bytes, types_pb2.LiteralType]):
    """Differential: the same value where protobuf + the engine succeed, an InputError where they fail."""
    data, lt = case
    try:
        want: Any = TypeEngine.to_python_value(wire.parse_literal(data), literal_type=lt)
    except InputError:
        want = InputError
    try:
        got: Any = wire.decode_literal(data, None, lt, None)
    except InputError:
        got = InputError
    assert got is want if want is InputError else same(got, want)
