# ruff: noqa: UP045 - typing.Optional/Union spelled out on purpose

from __future__ import annotations

import os
import re
import subprocess
import sys
from typing import Annotated, Optional

import msgpack
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox.errors import InputError, OutputError, UnsupportedType
from taskbox.literals import StructuredDataset, TypeEngine

TABLE = pa.table({"id": [1, 2, 3], "name": ["a", "b", "c"], "score": [0.5, 1.5, 2.5]})


def sd_type(fmt: str = "", **columns: int) -> types_pb2.LiteralType:
    cols = [
        types_pb2.StructuredDatasetType.DatasetColumn(name=n, literal_type=types_pb2.LiteralType(simple=k))
        for n, k in columns.items()
    ]
    return types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(columns=cols, format=fmt))


def test_literal_types_match_flytekit():
    assert TypeEngine.to_literal_type(StructuredDataset) == sd_type()
    assert TypeEngine.to_literal_type(pa.Table) == sd_type()
    assert TypeEngine.to_literal_type(Annotated[StructuredDataset, {"id": int, "name": str}, "parquet"]) == sd_type(
        "parquet", id=types_pb2.INTEGER, name=types_pb2.STRING
    )
    assert TypeEngine.get_transformer(pa.Table).name == "StructuredDataset Transformer"
    assert TypeEngine.guess_python_type(sd_type("parquet")) is StructuredDataset


def test_arrow_table_written_as_flytekit_parquet(ctx):
    lit = TypeEngine.to_literal(TABLE, pa.Table, ctx=ctx)
    sd = lit.scalar.structured_dataset
    assert re.fullmatch(r"[0-9a-f]{32}", os.path.relpath(sd.uri, ctx.raw_output_prefix))
    assert os.listdir(sd.uri) == ["00000"]
    assert sd.metadata.structured_dataset_type == types_pb2.StructuredDatasetType(format="parquet")
    assert pq.read_table(os.path.join(sd.uri, "00000")).equals(TABLE)
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).equals(TABLE)


def test_column_subset_on_read(ctx):
    lit = TypeEngine.to_literal(TABLE, pa.Table, ctx=ctx)
    subset = TypeEngine.to_python_value(lit, Annotated[pa.Table, {"score": float}], ctx=ctx)
    assert subset.column_names == ["score"]
    handle = TypeEngine.to_python_value(lit, Annotated[StructuredDataset, {"id": int}], ctx=ctx)
    assert list(handle.columns) == ["id"] and handle.to_arrow().column_names == ["id"]


def test_by_literal_type_round_trip(ctx):
    lt = sd_type("", id=types_pb2.INTEGER)
    lit = TypeEngine.to_literal(TABLE, literal_type=lt, ctx=ctx)
    assert [c.name for c in lit.scalar.structured_dataset.metadata.structured_dataset_type.columns] == ["id"]
    assert lit.scalar.structured_dataset.metadata.structured_dataset_type.format == "parquet"
    value = TypeEngine.to_python_value(lit, literal_type=lt, ctx=ctx)
    assert isinstance(value, StructuredDataset) and value.file_format == "parquet"
    assert value.to_arrow().column_names == ["id"]
    assert value.to_arrow(["name"]).column_names == ["name"]
    assert TypeEngine.to_literal(value, literal_type=lt, ctx=ctx) == lit  # passthrough


def test_dataset_handle_with_uri_is_passed_through(ctx):
    value = StructuredDataset(uri="s3://bucket/t", file_format="csv")
    lit = TypeEngine.to_literal(value, StructuredDataset, ctx=ctx)
    assert lit.scalar.structured_dataset.uri == "s3://bucket/t"
    assert lit.scalar.structured_dataset.metadata.structured_dataset_type.format == "csv"
    assert TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx) == value
    declared = TypeEngine.to_literal(value, literal_type=sd_type("parquet"), ctx=ctx)
    assert declared.scalar.structured_dataset.metadata.structured_dataset_type.format == "parquet"


def test_local_dataset_uri_is_uploaded(ctx, tmp_path):
    folder = tmp_path / "mytable"
    folder.mkdir()
    pq.write_table(TABLE, folder / "part-0.parquet")
    lit = TypeEngine.to_literal(StructuredDataset(uri=str(folder)), StructuredDataset, ctx=ctx)
    uri = lit.scalar.structured_dataset.uri
    assert re.fullmatch(r"[0-9a-f]{32}/mytable", os.path.relpath(uri, ctx.raw_output_prefix))
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).equals(TABLE)


def test_dataset_with_dataframe_is_written(ctx):
    lit = TypeEngine.to_literal(StructuredDataset(dataframe=TABLE), StructuredDataset, ctx=ctx)
    assert os.listdir(lit.scalar.structured_dataset.uri) == ["00000"]
    as_csv = TypeEngine.to_literal(TABLE, literal_type=sd_type("csv"), ctx=ctx)
    assert as_csv.scalar.structured_dataset.metadata.structured_dataset_type.format == "csv"
    assert os.listdir(as_csv.scalar.structured_dataset.uri) == [".csv"]
    assert TypeEngine.to_python_value(as_csv, pa.Table, ctx=ctx).equals(TABLE)
    with pytest.raises(UnsupportedType, match="'json' format"):
        TypeEngine.to_literal(TABLE, literal_type=sd_type("json"), ctx=ctx)
    with pytest.raises(OutputError, match="expected StructuredDataset"):
        TypeEngine.to_literal({"a": 1}, StructuredDataset, ctx=ctx)
    with pytest.raises(ValueError):
        StructuredDataset()


def test_dataframe_as_first_positional_argument_like_flytekit(ctx, tmp_path):
    lit = TypeEngine.to_literal(StructuredDataset(TABLE), StructuredDataset, ctx=ctx)
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).equals(TABLE)
    assert StructuredDataset(tmp_path).uri == str(tmp_path)  # a path is still a uri
    with pytest.raises(TypeError, match="uri must be a string"):
        StructuredDataset(TABLE, dataframe=TABLE)


def test_legacy_schema_literal_is_read_as_parquet(ctx, tmp_path):
    folder = tmp_path / "schema"
    folder.mkdir()
    pq.write_table(TABLE, folder / "00000")
    lit = literals_pb2.Literal()
    lit.scalar.schema.uri = str(folder)
    column = lit.scalar.schema.type.columns.add()
    column.name, column.type = "id", types_pb2.SchemaType.SchemaColumn.INTEGER
    value = TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx)
    assert value.file_format == "parquet" and value.columns["id"].simple == types_pb2.INTEGER
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).column_names == ["id"]
    by_type = TypeEngine.to_python_value(
        lit, literal_type=types_pb2.LiteralType(schema=lit.scalar.schema.type), ctx=ctx
    )
    assert by_type.uri == str(folder)


def test_dataset_from_msgpack_attribute_access(ctx):
    lit = literals_pb2.Literal()
    lit.scalar.binary.value = msgpack.packb({"uri": "s3://b/t", "file_format": "parquet"})
    lit.scalar.binary.tag = "msgpack"
    assert TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx) == StructuredDataset("s3://b/t")
    lit.scalar.binary.value = msgpack.packb({"file_format": "parquet"})
    with pytest.raises(InputError, match="uri"):
        TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx)


def test_optional_table_union_tag(ctx):
    lt = TypeEngine.to_literal_type(Optional[pa.Table])
    assert [v.structure.tag for v in lt.union_type.variants] == ["StructuredDataset Transformer", "none"]
    lit = TypeEngine.to_literal(TABLE, Optional[pa.Table], ctx=ctx)
    assert TypeEngine.to_python_value(lit, Optional[pa.Table], ctx=ctx).equals(TABLE)


def test_pyarrow_is_imported_only_for_tables():
    code = (
        "import sys\n"
        "from taskbox.literals import StructuredDataset, TypeEngine\n"
        "lit = TypeEngine.to_literal(StructuredDataset(uri='s3://b/t'), StructuredDataset)\n"
        "TypeEngine.to_python_value(lit, StructuredDataset)\n"
        "print('pyarrow' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "False"


def test_dataset_already_in_the_raw_area_is_not_copied(ctx, tmp_path):
    """Executors that stage parquet under the raw prefix themselves hand over the final URI."""
    folder = tmp_path / "raw" / "staged"
    folder.mkdir(parents=True)
    pq.write_table(TABLE, folder / "00000")
    lit = TypeEngine.to_literal(StructuredDataset(uri=str(folder)), StructuredDataset, ctx=ctx)
    assert lit.scalar.structured_dataset.uri == str(folder)
    assert os.listdir(tmp_path / "raw") == ["staged"]
