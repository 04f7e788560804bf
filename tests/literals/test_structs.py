from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import subprocess
import sys
from typing import Any

import msgpack
import pytest
from flyteidl.core import literals_pb2, types_pb2
from google.protobuf import json_format, struct_pb2

from taskbox.errors import InputError, OutputError
from taskbox.literals import Directory, File, StructuredDataset, TypeEngine
from taskbox.literals.schema import json_schema

UTC = datetime.UTC


class Mode(enum.Enum):
    FAST = "fast"
    SLOW = "slow"


@dataclasses.dataclass
class Point:
    x: int
    y: float = 0.0


@dataclasses.dataclass
class Shape:
    name: str
    points: list[Point]
    tags: dict[str, int]
    mode: Mode
    created: datetime.datetime
    ttl: datetime.timedelta
    day: datetime.date
    parent: Point | None = None
    either: int | str = 0
    anything: Any = None
    flags: list = dataclasses.field(default_factory=list)


def shape() -> Shape:
    return Shape(
        name="tri",
        points=[Point(1, 2.5), Point(3)],
        tags={"a": 1},
        mode=Mode.SLOW,
        created=datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC),
        ttl=datetime.timedelta(seconds=90, microseconds=5),
        day=datetime.date(2024, 1, 2),
        parent=Point(0),
        either="e",
        anything={"k": [1, "v"]},
        flags=[True],
    )


SHAPE_PLAIN = {
    "name": "tri",
    "points": [{"x": 1, "y": 2.5}, {"x": 3, "y": 0.0}],
    "tags": {"a": 1},
    "mode": "slow",
    "created": "2024-01-02T03:04:05+00:00",
    "ttl": 90.000005,
    "day": "2024-01-02",
    "parent": {"x": 0, "y": 0.0},
    "either": "e",
    "anything": {"k": [1, "v"]},
    "flags": [True],
}


def test_dataclass_msgpack_layout_and_round_trip():
    lit = TypeEngine.to_literal(shape(), Shape)
    assert lit.scalar.binary.tag == "msgpack"
    assert lit.scalar.binary.value == msgpack.packb(SHAPE_PLAIN)  # field order, ISO dates, seconds
    assert TypeEngine.to_python_value(lit, Shape) == shape()
    lt = TypeEngine.to_literal_type(Shape)
    assert TypeEngine.to_python_value(lit, literal_type=lt) == SHAPE_PLAIN
    assert TypeEngine.to_literal(shape(), literal_type=lt) == lit
    assert TypeEngine.to_literal(SHAPE_PLAIN, literal_type=lt) == lit  # a dict for a struct type


def test_dataclass_literal_type():
    lt = TypeEngine.to_literal_type(Shape)
    assert lt.simple == types_pb2.STRUCT
    assert json_format.MessageToDict(lt.annotation) == {
        "annotations": {"cache-key-metadata": {"serialization-format": "msgpack"}}
    }
    assert lt.structure.tag == ""
    fields = lt.structure.dataclass_type
    assert fields["name"] == types_pb2.LiteralType(simple=types_pb2.STRING)
    assert fields["points"].collection_type.structure.dataclass_type["x"].simple == types_pb2.INTEGER
    assert [v.structure.tag for v in fields["either"].union_type.variants] == ["int", "str"]
    assert "anything" not in fields  # Any has no Flyte type; flytekit skips such fields too
    schema = json_format.MessageToDict(lt.metadata)
    assert schema["title"] == "Shape"
    assert schema["required"] == ["name", "points", "tags", "mode", "created", "ttl", "day"]
    assert TypeEngine.to_literal_type(Shape) == lt  # cached, but a fresh message
    lt.simple = types_pb2.INTEGER
    assert TypeEngine.to_literal_type(Shape).simple == types_pb2.STRUCT


def test_json_schema_follows_mashumaro():
    schema = json_schema(Shape)
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert props["points"] == {
        "type": "array",
        "items": {
            "type": "object",
            "title": "Point",
            "additionalProperties": False,
            "properties": {"x": {"type": "integer"}, "y": {"type": "number", "default": 0.0}},
            "required": ["x"],
        },
    }
    assert props["tags"] == {
        "type": "object",
        "additionalProperties": {"type": "integer"},
        "propertyNames": {"type": "string"},
    }
    assert props["mode"] == {"enum": ["fast", "slow"]}
    assert props["created"] == {"type": "string", "format": "date-time"}
    assert props["ttl"] == {"type": "number", "format": "time-delta"}
    assert props["day"] == {"type": "string", "format": "date"}
    assert props["either"] == {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 0}
    assert props["anything"] == {"default": None}
    assert props["flags"] == {"type": "array"}
    assert json_schema(File)["title"] == "FlyteFile"
    assert json_schema(Directory)["title"] == "FlyteDirectory"
    assert json_schema(StructuredDataset)["title"] == "StructuredDataset"


def test_validation_errors_name_the_field_path():
    bad = shape()
    bad.points[1].x = "three"
    with pytest.raises(OutputError) as err:
        TypeEngine.to_literal(bad, Shape)
    assert str(err.value).endswith(".points[1].x: expected int, got str 'three'")
    with pytest.raises(OutputError, match=r"expected Shape, got Point"):
        TypeEngine.to_literal(Point(1), Shape)


def test_missing_field_on_decode():
    lit = TypeEngine.to_literal({"y": 1.0}, dict)
    with pytest.raises(InputError, match=r"\.x: missing"):
        TypeEngine.to_python_value(lit, Point)


def test_defaults_fill_missing_optional_fields_and_unknown_keys_are_ignored():
    lit = TypeEngine.to_literal({"x": 1, "extra": True}, dict)
    assert TypeEngine.to_python_value(lit, Point) == Point(1, 0.0)


def test_legacy_generic_struct_is_decoded_with_int_coercion():
    generic = struct_pb2.Struct()
    generic.update({**SHAPE_PLAIN, "tags": {"a": 1.0}, "points": [{"x": 1.0, "y": 2.5}, {"x": 3.0, "y": 0}]})
    lit = literals_pb2.Literal(scalar=literals_pb2.Scalar(generic=generic))
    value = TypeEngine.to_python_value(lit, Shape)
    assert value == shape()
    assert type(value.points[0].x) is int and type(value.tags["a"]) is int
    by_type = TypeEngine.to_python_value(lit, literal_type=TypeEngine.to_literal_type(Shape))
    assert type(by_type["points"][1]["x"]) is int and type(by_type["tags"]["a"]) is int
    assert by_type["points"][1]["y"] == 0.0


def test_legacy_non_integral_double_is_not_an_int():
    generic = struct_pb2.Struct()
    generic.update({"x": 1.5})
    with pytest.raises(InputError, match=r"\.x: expected int, got float 1.5"):
        TypeEngine.to_python_value(literals_pb2.Literal(scalar=literals_pb2.Scalar(generic=generic)), Point)


def test_legacy_format_can_be_written(monkeypatch):
    monkeypatch.setenv("FLYTE_USE_OLD_DC_FORMAT", "true")
    lit = TypeEngine.to_literal(Point(2, 1.5), Point)
    assert json_format.MessageToDict(lit.scalar.generic) == {"x": 2.0, "y": 1.5}
    assert not lit.metadata
    dict_lit = TypeEngine.to_literal({"a": 1}, dict)
    assert dict(dict_lit.metadata) == {"format": "json"}
    assert TypeEngine.to_python_value(lit, Point) == Point(2, 1.5)


def test_pickled_generic_is_refused():
    generic = struct_pb2.Struct()
    generic.update({"pickle_file": "s3://b/p"})
    lit = literals_pb2.Literal(scalar=literals_pb2.Scalar(generic=generic), metadata={"format": "pickle"})
    with pytest.raises(InputError, match="pickled values are not supported"):
        TypeEngine.to_python_value(lit, dict)


@dataclasses.dataclass
class WithFiles:
    report: File
    folder: Directory
    table: StructuredDataset
    optional_file: File | None = None


def test_files_inside_dataclasses_are_uploaded_and_referenced(ctx, tmp_path):
    (tmp_path / "r.txt").write_text("r")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "a").write_text("a")
    value = WithFiles(
        File(str(tmp_path / "r.txt")),
        Directory(str(tmp_path / "dir")),
        StructuredDataset(uri="s3://b/t", file_format="parquet"),
    )
    lit = TypeEngine.to_literal(value, WithFiles, ctx=ctx)
    plain = msgpack.unpackb(lit.scalar.binary.value)
    assert plain["report"]["path"].startswith(ctx.raw_output_prefix) and plain["report"]["path"].endswith("/r.txt")
    assert plain["folder"]["path"].startswith(ctx.raw_output_prefix)
    assert plain["table"] == {"uri": "s3://b/t", "file_format": "parquet"}
    assert plain["optional_file"] is None
    back = TypeEngine.to_python_value(lit, WithFiles, ctx=ctx)
    assert open(back.report).read() == "r"
    assert list(back.folder.files()) == ["a"]
    assert back.table == StructuredDataset(uri="s3://b/t", file_format="parquet")
    assert TypeEngine.to_literal(back, WithFiles, ctx=ctx) == lit  # no second upload


def test_pydantic_model_round_trip_and_type():
    import pydantic

    class Config(pydantic.BaseModel):
        name: str
        retries: int = 3
        mode: Mode = Mode.FAST
        when: datetime.datetime | None = None

    value = Config(name="a", mode=Mode.SLOW, when=datetime.datetime(2024, 1, 1, tzinfo=UTC))
    lit = TypeEngine.to_literal(value, Config)
    assert msgpack.unpackb(lit.scalar.binary.value) == {
        "name": "a",
        "retries": 3,
        "mode": "slow",
        "when": "2024-01-01T00:00:00Z",
    }
    assert TypeEngine.to_python_value(lit, Config) == value
    lt = TypeEngine.to_literal_type(Config)
    assert json_format.MessageToDict(lt.metadata) == json.loads(json.dumps(Config.model_json_schema()))
    assert lt.structure.dataclass_type["retries"].simple == types_pb2.INTEGER
    assert TypeEngine.get_transformer(Config).name == "Pydantic Transformer"
    assert TypeEngine.to_literal(value, literal_type=lt) == lit
    with pytest.raises(OutputError, match="expected Config, got Point"):
        TypeEngine.to_literal(Point(1), Config)


def test_pydantic_loads_only_when_a_model_is_converted():
    code = (
        "import sys, dataclasses\n"
        "from taskbox.literals import TypeEngine\n"
        "@dataclasses.dataclass\n"
        "class P:\n"
        "    x: int\n"
        "lit = TypeEngine.to_literal(P(1), P)\n"
        "assert TypeEngine.to_python_value(lit, P) == P(1)\n"
        "print('pydantic' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"
