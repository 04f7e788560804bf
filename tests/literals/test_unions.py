# ruff: noqa: UP007, UP045 - typing.List/Optional/Union spelled out on purpose
from __future__ import annotations

import dataclasses
import datetime
import enum
from typing import Optional, Union

import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError
from taskbox.literals import File, TypeEngine
from taskbox.literals.typeinfo import tagged


class Color(enum.Enum):
    RED = "red"


@dataclasses.dataclass
class Cat:
    name: str


@dataclasses.dataclass
class Dog:
    name: str


def tags(lt: types_pb2.LiteralType) -> list[str]:
    return [v.structure.tag for v in lt.union_type.variants]


def test_variant_tags_are_flytekit_transformer_names():
    lt = TypeEngine.to_literal_type(
        Union[
            int,
            float,
            str,
            bool,
            None,
            datetime.datetime,
            datetime.date,
            datetime.timedelta,
            list[int],
            dict[str, int],
            dict,
            Color,
            Cat,
            File,
        ]
    )
    assert tags(lt) == [
        "int",
        "float",
        "str",
        "bool",
        "none",
        "datetime",
        "date",
        "timedelta",
        "Typed List",
        "Typed Dict",
        "Typed Dict",
        "DefaultEnumTransformer",
        "Object-Dataclass-Transformer",
        "FlyteFilePath",
    ]
    # a dataclass variant keeps only the tag in structure (flytekit's _add_tag_to_type)
    cat = lt.union_type.variants[12]
    assert cat.structure == types_pb2.TypeStructure(tag="Object-Dataclass-Transformer")
    assert cat.metadata.fields["title"].string_value == "Cat"


@pytest.mark.parametrize(
    ("value", "python_type", "tag"),
    [
        (5, Optional[int], "int"),
        (None, Optional[int], "none"),
        ("x", Union[int, str], "str"),
        (3, Union[int, str], "int"),
        (2.5, Union[int, float], "float"),
        (2, int | float, "int"),
        ([1, 2], Union[list[int], list[float]], "Typed List"),
        ({"a": 1}, Union[list[int], dict[str, int]], "Typed Dict"),
        ("red", Union[str, Color], "str"),
        (Color.RED, Union[str, Color], "DefaultEnumTransformer"),
        (Cat("tom"), Optional[Cat], "Object-Dataclass-Transformer"),
        (datetime.date(2020, 1, 1), Union[datetime.datetime, datetime.date], "date"),
    ],
)
def test_round_trip(value, python_type, tag):
    lt = TypeEngine.to_literal_type(python_type)
    lit = TypeEngine.to_literal(value, python_type)
    assert lit.scalar.union.type.structure.tag == tag
    out = TypeEngine.to_python_value(lit, python_type)
    assert out == value and type(out) is type(value)
    by_type = TypeEngine.to_literal(value, literal_type=lt)
    assert by_type.scalar.union.type.structure.tag == tag
    assert by_type.scalar.union.value == lit.scalar.union.value
    decoded = TypeEngine.to_python_value(by_type, literal_type=lt)
    if dataclasses.is_dataclass(value):
        assert decoded == dataclasses.asdict(value)  # STRUCT by LiteralType alone is plain data
    elif isinstance(value, enum.Enum):
        assert decoded == value.value  # an enum known only from the template is a str enum
    else:
        assert decoded == value and type(decoded) is type(value)


def test_int_prefers_int_over_float_in_either_order():
    assert TypeEngine.to_literal(1, Union[float, int]).scalar.union.type.structure.tag == "int"
    lit = TypeEngine.to_literal(1, Union[float, str])  # lenient fallback when nothing fits strictly
    assert lit.scalar.union.type.structure.tag == "float"
    assert lit.scalar.union.value.scalar.primitive.float_value == 1.0


def test_ambiguous_values_are_rejected():
    with pytest.raises(OutputError, match=r"ambiguous: list \[\] fits several union variants"):
        TypeEngine.to_literal([], Union[list[int], list[str]])
    csv_file = File["csv"]
    with pytest.raises(OutputError, match="ambiguous"):
        TypeEngine.to_literal("s3://b/k", Union[File, csv_file])


def test_no_matching_variant():
    with pytest.raises(OutputError, match=r"expected Union\[int, str\], got float 1.5"):
        TypeEngine.to_literal(1.5, Union[int, str])


def test_dataclass_variants_are_told_apart_by_type():
    lt = TypeEngine.to_literal_type(Union[Cat, Dog])
    for animal in (Cat("a"), Dog("b")):
        lit = TypeEngine.to_literal(animal, Union[Cat, Dog])
        assert lit.scalar.union.type.metadata.fields["title"].string_value == type(animal).__name__
        assert TypeEngine.to_python_value(lit, Union[Cat, Dog]) == animal
        by_type = TypeEngine.to_literal(animal, literal_type=lt)
        assert by_type.scalar.union.type.metadata.fields["title"].string_value == type(animal).__name__


def test_decoding_uses_the_stored_tag():
    lit = TypeEngine.to_literal("7", Union[int, str])
    assert TypeEngine.to_python_value(lit, Union[int, str]) == "7"
    with pytest.raises(InputError, match="no member of the union matches the stored variant 'str'"):
        TypeEngine.to_python_value(lit, Union[int, float])


def test_union_value_read_as_its_variant():
    lit = TypeEngine.to_literal(3, Optional[int])
    assert TypeEngine.to_python_value(lit, int) == 3
    assert TypeEngine.to_python_value(lit, literal_type=types_pb2.LiteralType(simple=types_pb2.INTEGER)) == 3
    assert TypeEngine.to_python_value(lit) == 3


def test_plain_literal_read_as_union():
    lit = TypeEngine.to_literal(3, int)
    assert TypeEngine.to_python_value(lit, Union[int, float]) == 3
    assert type(TypeEngine.to_python_value(lit, Union[float, int])) is int
    assert TypeEngine.to_python_value(lit, Optional[float]) == 3.0
    lt = TypeEngine.to_literal_type(Union[float, int])
    assert type(TypeEngine.to_python_value(lit, literal_type=lt)) is int
    with pytest.raises(InputError):
        TypeEngine.to_python_value(lit, Optional[str])


def test_untagged_stored_type_is_matched_by_type():
    lit = literals_pb2.Literal()
    lit.scalar.union.value.CopyFrom(TypeEngine.to_literal("a", str))
    lit.scalar.union.type.simple = types_pb2.STRING
    assert TypeEngine.to_python_value(lit, Union[int, str]) == "a"
    assert TypeEngine.to_python_value(lit, literal_type=TypeEngine.to_literal_type(Union[int, str])) == "a"


def test_ambiguous_stored_variant_is_an_error():
    lt = types_pb2.LiteralType(
        union_type=types_pb2.UnionType(
            variants=[
                tagged(types_pb2.LiteralType(simple=types_pb2.STRING), "str"),
                tagged(types_pb2.LiteralType(simple=types_pb2.STRING), "str"),
            ]
        )
    )
    lit = literals_pb2.Literal()
    lit.scalar.union.value.CopyFrom(TypeEngine.to_literal("a", str))
    lit.scalar.union.type.CopyFrom(lt.union_type.variants[0])
    with pytest.raises(InputError, match="ambiguous"):
        TypeEngine.to_python_value(lit, literal_type=lt)
    with pytest.raises(OutputError, match="ambiguous"):
        TypeEngine.to_literal("a", literal_type=lt)


def test_nested_optional_collections():
    python_type = Optional[list[Optional[dict[str, int]]]]
    value = [None, {"a": 1}]
    lit = TypeEngine.to_literal(value, python_type)
    assert TypeEngine.to_python_value(lit, python_type) == value
    lt = TypeEngine.to_literal_type(python_type)
    assert TypeEngine.to_python_value(TypeEngine.to_literal(value, literal_type=lt), literal_type=lt) == value
    assert TypeEngine.guess_python_type(lt) == Optional[list[Optional[dict[str, int]]]]
