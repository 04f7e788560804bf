# ruff: noqa: UP006, UP035, UP045 - typing.List/Optional/Union spelled out on purpose
from __future__ import annotations

import datetime
from typing import Dict, List, Optional

import msgpack
import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, UserError
from taskbox.literals import TypeEngine


def lt_of(python_type):
    return TypeEngine.to_literal_type(python_type)


INT = types_pb2.LiteralType(simple=types_pb2.INTEGER)


@pytest.mark.parametrize(
    ("value", "python_type"),
    [
        ([1, 2, 3], list[int]),
        ([], List[str]),
        ([[1.5], [], [-2.0]], list[list[float]]),
        ({"a": 1, "b": 2}, dict[str, int]),
        ({}, Dict[str, bool]),
        ([{"a": [1]}, {}], list[dict[str, list[int]]]),
        ({"x": [None, 1]}, dict[str, list[Optional[int]]]),
        ([datetime.timedelta(seconds=1)], list[datetime.timedelta]),
    ],
)
def test_round_trip_by_python_type_and_literal_type(value, python_type):
    lt = lt_of(python_type)
    lit = TypeEngine.to_literal(value, python_type)
    assert TypeEngine.to_python_value(lit, python_type) == value
    assert TypeEngine.to_literal(value, literal_type=lt) == lit
    assert TypeEngine.to_python_value(lit, literal_type=lt) == value
    assert TypeEngine.to_python_value(lit) == value or not value  # inferred from the literal itself


def test_literal_types():
    assert lt_of(list[int]) == types_pb2.LiteralType(collection_type=INT)
    assert lt_of(dict[str, int]) == types_pb2.LiteralType(map_value_type=INT)
    assert lt_of(dict).simple == types_pb2.STRUCT
    assert lt_of(dict[int, str]).simple == types_pb2.STRUCT
    assert TypeEngine.guess_python_type(lt_of(list[dict[str, float]])) == list[dict[str, float]]
    assert TypeEngine.get_transformer(list[int]).name == "Typed List"
    assert TypeEngine.get_transformer(dict[str, int]).name == "Typed Dict"
    assert TypeEngine.get_transformer(dict).name == "Typed Dict"


def test_empty_collection_and_map_are_set():
    assert TypeEngine.to_literal([], list[int]).WhichOneof("value") == "collection"
    assert TypeEngine.to_literal({}, dict[str, int]).WhichOneof("value") == "map"


def test_errors_name_the_index_and_key():
    with pytest.raises(OutputError) as err:
        TypeEngine.to_literal([{"a": 1}, {"b": "x"}], list[dict[str, int]])
    assert str(err.value) == "[1]['b']: expected int, got str 'x'"
    lit = TypeEngine.to_literal(
        [["a"], ["s"]],
        literal_type=types_pb2.LiteralType(
            collection_type=types_pb2.LiteralType(collection_type=types_pb2.LiteralType(simple=types_pb2.STRING))
        ),
    )
    with pytest.raises(InputError) as err:
        TypeEngine.to_python_value(lit, list[list[int]])
    assert str(err.value) == "[0][0]: expected int, got string literal 'a'"


def test_tuples_and_non_str_keys_are_rejected():
    with pytest.raises(OutputError, match=r"expected list\[int\], got tuple"):
        TypeEngine.to_literal((1, 2), list[int])
    with pytest.raises(OutputError, match="map keys must be str"):
        TypeEngine.to_literal({1: 1}, literal_type=types_pb2.LiteralType(map_value_type=INT))


def test_bare_list_needs_a_literal_type():
    with pytest.raises(UserError, match="list needs an element type") as err:
        TypeEngine.to_literal_type(list)
    assert err.value.code == "USER:UnsupportedType"
    lt = types_pb2.LiteralType(collection_type=INT)
    lit = TypeEngine.to_literal([1, 2], list, literal_type=lt)
    assert TypeEngine.to_python_value(lit, list, literal_type=lt) == [1, 2]


def test_map_literal_into_non_str_key_dict_fails():
    lit = TypeEngine.to_literal({"1": 1}, dict[str, int])
    with pytest.raises(InputError, match="str keys"):
        TypeEngine.to_python_value(lit, dict[int, int])


def test_collection_from_msgpack_attribute_access():
    lit = literals_pb2.Literal()
    lit.scalar.binary.value = msgpack.packb([1, 2])
    lit.scalar.binary.tag = "msgpack"
    assert TypeEngine.to_python_value(lit, list[int]) == [1, 2]
    lit.scalar.binary.value = msgpack.packb({"a": [1.5]})
    assert TypeEngine.to_python_value(lit, dict[str, list[float]]) == {"a": [1.5]}


def test_untyped_dict_is_msgpack_struct():
    value = {"a": 1, "nested": {"b": [1, 2.5, None, "s", True]}, "raw": b"\x00"}
    lit = TypeEngine.to_literal(value, dict)
    assert lit.scalar.binary.tag == "msgpack"
    assert lit.scalar.binary.value == msgpack.packb(value)
    assert TypeEngine.to_python_value(lit, dict) == value
    lt = lt_of(dict)
    assert TypeEngine.to_python_value(lit, literal_type=lt) == value
    assert TypeEngine.to_literal(value, literal_type=lt) == lit


def test_dict_with_int_keys_is_struct():
    lit = TypeEngine.to_literal({1: "a", 2: "b"}, dict[int, str])
    assert lit.scalar.binary.value == msgpack.packb({1: "a", 2: "b"})
    assert TypeEngine.to_python_value(lit, dict[int, str]) == {1: "a", 2: "b"}
    with pytest.raises(OutputError, match=r"\[1\]: expected str, got int 5"):
        TypeEngine.to_literal({1: 5}, dict[int, str])


def test_untyped_dict_with_unserialisable_value():
    with pytest.raises(OutputError, match="cannot serialise object"):
        TypeEngine.to_literal({"a": object()}, dict)
