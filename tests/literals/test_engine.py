# ruff: noqa: UP045 - typing.Optional/Union spelled out on purpose

from __future__ import annotations

import dataclasses
import datetime
import subprocess
import sys
from typing import Annotated, Any, Optional

import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, UserError
from taskbox.literals import ConversionContext, TypeEngine, TypeTransformer
from taskbox.literals.engine import Mismatch

STR = types_pb2.LiteralType(simple=types_pb2.STRING)


class Money:
    def __init__(self, cents: int) -> None:
        self.cents = cents

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Money) and other.cents == self.cents


class MoneyTransformer(TypeTransformer[Money]):
    """A user extension: money travels as a "12.34" string."""

    def __init__(self) -> None:
        super().__init__("Money", Money)

    def get_literal_type(self, t):
        return types_pb2.LiteralType(simple=types_pb2.STRING)

    def to_literal(self, ctx, value, python_type, expected):
        if not isinstance(value, Money):
            raise Mismatch()
        lit = literals_pb2.Literal()
        lit.scalar.primitive.string_value = f"{value.cents // 100}.{value.cents % 100:02d}"
        return lit

    def to_python_value(self, ctx, literal, expected_python_type):
        units, cents = literal.scalar.primitive.string_value.split(".")
        return Money(int(units) * 100 + int(cents))


@pytest.fixture
def clean_registry():
    TypeEngine._ensure_defaults()
    registry, custom = dict(TypeEngine._REGISTRY), list(TypeEngine._CUSTOM)
    yield
    TypeEngine._REGISTRY.clear()
    TypeEngine._REGISTRY.update(registry)
    TypeEngine._CUSTOM[:] = custom


def test_custom_transformer_by_python_type_and_in_containers(clean_registry):
    TypeEngine.register(MoneyTransformer())
    lit = TypeEngine.to_literal(Money(1234), Money)
    assert lit.scalar.primitive.string_value == "12.34"
    assert TypeEngine.to_python_value(lit, Money) == Money(1234)
    values = [Money(1), Money(250)]
    assert TypeEngine.to_python_value(TypeEngine.to_literal(values, list[Money]), list[Money]) == values
    union = TypeEngine.to_literal_type(Optional[Money])
    assert [v.structure.tag for v in union.union_type.variants] == ["Money", "none"]


def test_custom_transformer_by_literal_type_uses_the_values_own_transformer(clean_registry):
    TypeEngine.register(MoneyTransformer())
    lit = TypeEngine.to_literal(Money(5), literal_type=STR)
    assert lit.scalar.primitive.string_value == "0.05"
    assert TypeEngine.to_python_value(lit, literal_type=STR) == "0.05"  # the template only says STRING


def test_duplicate_registration_is_an_error_unless_overridden(clean_registry):
    TypeEngine.register(MoneyTransformer())
    with pytest.raises(ValueError, match="already registered"):
        TypeEngine.register(MoneyTransformer())
    replacement = MoneyTransformer()
    TypeEngine.register(replacement, override=True)
    assert TypeEngine.get_transformer(Money) is replacement


def test_custom_guess_is_consulted_first(clean_registry):
    class Guessing(MoneyTransformer):
        def guess_python_type(self, literal_type):
            if literal_type.annotation.annotations.fields.get("money"):
                return Money
            raise ValueError("not money")

    TypeEngine.register(Guessing())
    money_type = types_pb2.LiteralType(simple=types_pb2.STRING)
    money_type.annotation.annotations.update({"money": True})
    assert TypeEngine.guess_python_type(money_type) is Money
    assert TypeEngine.guess_python_type(STR) is str


def test_annotated_transformer_wins():
    transformer = MoneyTransformer()
    assert TypeEngine.get_transformer(Annotated[Money, transformer]) is transformer
    assert TypeEngine.get_transformer(Annotated[int, "doc"]).name == "int"


def test_subclasses_use_the_base_transformer():
    class MyInt(int):
        pass

    assert TypeEngine.get_transformer(MyInt).name == "int"
    assert TypeEngine.to_python_value(TypeEngine.to_literal(MyInt(3), MyInt), int) == 3


def test_unsupported_types():
    for t in (tuple, complex, Any):
        with pytest.raises(UserError) as err:
            TypeEngine.to_literal_type(t)
        assert err.value.code == "USER:UnsupportedType"
    with pytest.raises(UserError, match="has no Python equivalent"):
        TypeEngine.guess_python_type(types_pb2.LiteralType(simple=types_pb2.BINARY))
    with pytest.raises(UserError, match="needs a LiteralType"):
        TypeEngine.to_literal(1, Any)
    with pytest.raises(TypeError, match="needs python_type or literal_type"):
        TypeEngine.to_literal(1)
    with pytest.raises(OutputError, match="LiteralType is empty"):
        TypeEngine.to_literal(1, literal_type=types_pb2.LiteralType())


def test_decoding_without_any_type_infers_it():
    value = {"a": [1, 2], "b": {"c": "d"}, "e": None, "when": datetime.timedelta(seconds=3)}
    lit = TypeEngine.to_literal(value, literal_type=types_pb2.LiteralType(simple=types_pb2.STRUCT))
    assert TypeEngine.to_python_value(lit)["a"] == [1, 2]
    floats = types_pb2.LiteralType(collection_type=types_pb2.LiteralType(simple=types_pb2.FLOAT))
    lm = TypeEngine.to_literal({"x": [1.5], "y": [2]}, literal_type=types_pb2.LiteralType(map_value_type=floats))
    decoded = TypeEngine.to_python_value(lm)
    assert decoded == {"x": [1.5], "y": [2.0]} and type(decoded["y"][0]) is float


def test_error_messages_state_expected_and_actual():
    with pytest.raises(OutputError) as err:
        TypeEngine.to_literal("abc", literal_type=types_pb2.LiteralType(simple=types_pb2.INTEGER))
    assert str(err.value) == "expected integer, got str 'abc'"
    with pytest.raises(InputError) as err:
        TypeEngine.to_python_value(TypeEngine.to_literal(1.5, float), literal_type=STR)
    assert str(err.value) == "expected string, got float literal 1.5"


def test_default_context_is_a_private_temporary_directory():
    ctx = ConversionContext.default()
    assert ctx is ConversionContext.default()
    assert "taskbox-literals-" in ctx.raw_output_prefix
    path = ctx.random_remote_path("f.txt")
    assert path.startswith(ctx.raw_output_prefix) and path.endswith("/f.txt")
    assert ConversionContext("s3://b/raw", "/w").random_remote_path().startswith("s3://b/raw/")


@dataclasses.dataclass
class Node:
    value: int
    child: Node | None = None


def test_recursive_dataclass():
    tree = Node(1, Node(2))
    assert TypeEngine.to_python_value(TypeEngine.to_literal(tree, Node), Node) == tree


def test_import_is_light():
    code = (
        "import sys\n"
        "import taskbox.literals\n"
        "heavy = ['msgpack', 'pydantic', 'pyarrow', 'pandas', 'fsspec', 'google.protobuf.json_format', 'json']\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_declared_literal_type_wins_over_a_vaguer_hint():
    """Executors pass ``type(v)`` with the template's type, as flytekit's shim task does."""
    floats = types_pb2.LiteralType(simple=types_pb2.FLOAT)
    assert TypeEngine.to_literal(1, int, literal_type=floats).scalar.primitive.float_value == 1.0
    optional = TypeEngine.to_literal_type(Optional[int])
    wrapped = TypeEngine.to_literal(None, type(None), literal_type=optional)
    assert wrapped.scalar.union.type.structure.tag == "none"
    enum_type = types_pb2.LiteralType(enum_type=types_pb2.EnumType(values=["a"]))
    with pytest.raises(OutputError, match=r"expected enum\{'a'\}, got str 'b': 'b' is not one of \['a'\]"):
        TypeEngine.to_literal("b", str, literal_type=enum_type)
    ints = types_pb2.LiteralType(collection_type=types_pb2.LiteralType(simple=types_pb2.INTEGER))
    assert TypeEngine.to_literal([1], list, literal_type=ints) == TypeEngine.to_literal([1], list[int])


def test_dict_of_any_is_a_struct():
    assert TypeEngine.to_literal_type(dict[str, Any]).simple == types_pb2.STRUCT
    lit = TypeEngine.to_literal({"a": {"b": [1]}}, dict[str, Any])
    assert TypeEngine.to_python_value(lit, dict[str, Any]) == {"a": {"b": [1]}}
