"""Plain JSON/YAML values <-> literals for ``taskbox run`` (taskbox.entrypoint.plainio), in-process."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from flyteidl.core import types_pb2

from helpers import list_of, map_of, simple
from taskbox.entrypoint import plainio
from taskbox.errors import ConfigError, InputError
from taskbox.literals import ConversionContext, Directory, File, StructuredDataset, TypeEngine


@pytest.fixture
def ctx(tmp_path):
    return ConversionContext(raw_output_prefix=str(tmp_path / "raw"), working_dir=str(tmp_path / "work"))


@pytest.mark.parametrize(
    ("spec", "python_type"),
    [
        ("int", int),
        ("float", float),
        ("str", str),
        ("bool", bool),
        ("datetime", dt.datetime),
        ("duration", dt.timedelta),
        ("json", dict),
        ("file", File),
        ("dir", Directory),
        ("table", StructuredDataset),
        ("list[int]", list[int]),
        ("dict[str, float]", dict[str, float]),
        ("map[list[str]]", dict[str, list[str]]),
        ("int?", int | None),
        ("optional[str]", str | None),
        ("int | str", int | str),
    ],
)
def test_type_language(spec, python_type):
    assert plainio.parse_type(spec) == TypeEngine.to_literal_type(python_type)


def test_type_language_formats_enums_and_protobuf_json():
    assert plainio.parse_type("file[csv]").blob.format == "csv"
    assert plainio.parse_type("table[csv]").structured_dataset_type.format == "csv"
    assert plainio.parse_type("table[Parquet]").structured_dataset_type.format == "parquet"
    with pytest.raises(ConfigError, match="a table's format is one of parquet, csv, got 'avro'"):
        plainio.parse_type("table[avro]")
    assert list(plainio.parse_type("enum[red, green]").enum_type.values) == ["red", "green"]
    assert plainio.parse_type({"simple": "INTEGER"}) == simple("INTEGER")
    for bad in ("integr", "list[int", "dict[int, str]", 5, {"nope": 1}):
        with pytest.raises(ConfigError):
            plainio.parse_type(bad)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "BOOLEAN"), (3, "INTEGER"), (2.5, "FLOAT"), ("x", "STRING"), ({"a": 1}, "STRUCT")],
)
def test_infer_type(value, expected):
    assert plainio.infer_type(value, "x").simple == types_pb2.SimpleType.Value(expected)


def test_infer_type_lists_and_refusals():
    assert plainio.infer_type([1, 2], "x") == list_of(simple("INTEGER"))
    for value in (None, []):
        with pytest.raises(InputError, match="declare it"):
            plainio.infer_type(value, "x")


def test_text_values_read_as_json_unless_declared_str():
    assert plainio.text_to_plain("5", None) == 5
    assert plainio.text_to_plain("[1, 2]", None) == [1, 2]
    assert plainio.text_to_plain("abc", None) == "abc"
    assert plainio.text_to_plain("5", simple("STRING")) == "5"
    assert plainio.text_to_plain('"quoted"', simple("STRING")) == '"quoted"'


def roundtrip(value, spec, ctx):
    lt = plainio.parse_type(spec)
    return plainio.literal_to_plain(plainio.plain_to_literal("v", value, lt, ctx))


@pytest.mark.parametrize(
    ("value", "spec", "plain"),
    [
        (5, "int", 5),
        ("5", "int", 5),
        (5.0, "int", 5),
        (2, "float", 2.0),
        ("true", "bool", True),
        ("2026-01-02T03:04:05Z", "datetime", "2026-01-02T03:04:05Z"),
        ("2026-01-02T03:04:05", "datetime", "2026-01-02T03:04:05Z"),
        (dt.date(2026, 1, 2), "datetime", "2026-01-02T00:00:00Z"),
        (90, "duration", 90.0),
        ("1h30m", "duration", 5400.0),
        ("250ms", "duration", 0.25),
        ({"a": [1, 2], "b": {"c": "d"}}, "json", {"a": [1, 2], "b": {"c": "d"}}),
        ('{"a": 1}', "json", {"a": 1}),
        ([1, 2, 3], "list[int]", [1, 2, 3]),
        ("[1, 2]", "list[int]", [1, 2]),
        ({"x": 1.5}, "dict[str, float]", {"x": 1.5}),
        (None, "int?", None),
        (4, "int?", 4),
        ("green", "enum[red, green]", "green"),
        ("s3://bucket/a.csv", "file[csv]", "s3://bucket/a.csv"),
        ({"path": "s3://bucket/dir"}, "dir", "s3://bucket/dir"),
        ("s3://bucket/table", "table", "s3://bucket/table"),
    ],
)
def test_plain_values_round_trip(value, spec, plain, ctx):
    assert roundtrip(value, spec, ctx) == plain


@pytest.mark.parametrize(
    ("value", "spec"),
    [("abc", "int"), (True, "int"), (1, "str"), ("maybe", "bool"), ("soon", "duration"), ([1], "json"),
     ("x", "list[int]"), ("blue", "enum[red, green]"), (3, "file"), ("", "table"), ("x", "int?")],
)  # fmt: skip
def test_values_that_do_not_fit_are_input_errors_naming_the_input(value, spec, ctx):
    with pytest.raises(InputError, match=r"^input 'v'"):
        plainio.plain_to_literal("v", value, plainio.parse_type(spec), ctx)


def test_local_file_inputs_are_passed_by_reference(tmp_path, ctx):
    data = tmp_path / "data.csv"
    data.write_text("a,b\n")
    literal = plainio.plain_to_literal("f", str(data), plainio.parse_type("file"), ctx)
    assert literal.scalar.blob.uri == str(data)
    assert not (tmp_path / "raw").exists()


def test_output_files_render_strings_raw_primitives_as_text_and_the_rest_as_json():
    assert plainio.render_output_file("a\nb") == b"a\nb"
    assert plainio.render_output_file(True) == b"true"
    assert plainio.render_output_file(3) == b"3"
    assert plainio.render_output_file(0.1) == b"0.1"
    assert json.loads(plainio.render_output_file({"a": [1]})) == {"a": [1]}
    assert plainio.render_output_file(None) == b"null"


def test_map_literal_to_plain(ctx):
    lt = map_of(list_of(simple("INTEGER")))
    literal = plainio.plain_to_literal("m", {"a": [1], "b": []}, lt, ctx)
    assert plainio.literal_to_plain(literal) == {"a": [1], "b": []}


def test_documents_inline_files_and_yaml(tmp_path):
    assert plainio.load_document('{"a": 1}', what="x") == {"a": 1}
    (tmp_path / "d.yaml").write_text("a: 1\nb: [x, y]\n")
    assert plainio.load_document(str(tmp_path / "d.yaml"), what="x") == {"a": 1, "b": ["x", "y"]}
    (tmp_path / "d.json").write_text("a: 1")
    with pytest.raises(ConfigError, match="not valid JSON"):
        plainio.load_document(str(tmp_path / "d.json"), what="x")
    with pytest.raises(InputError):
        plainio.load_document("{unclosed: [", what="inputs", error=InputError)
