"""Tables in parquet and CSV (issue 18, item 4): flytekit's literals read by taskbox, and taskbox's own layout.

The golden cases are flytekit 1.16.31's (tests/golden/make_table_fixtures.py, in tests/golden/tables): taskbox
reads each one by Python type, by the template's ``LiteralType`` alone and as a ``StructuredDataset`` handle,
and gets the input frame back with the types the literal's columns declare. What flytekit reads back from
the tables taskbox writes is in test_table_formats_flytekit.py.
"""

from __future__ import annotations

import datetime
import json
import os
import shutil
from pathlib import Path
from typing import Annotated, Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from flyteidl.core import literals_pb2, types_pb2

from taskbox import storage
from taskbox.errors import InputError, OutputError, UnsupportedType
from taskbox.literals import ConversionContext, StructuredDataset, TypeEngine
from taskbox.literals.tableformats import read_table

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "tables"
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text(encoding="utf-8"))
CASES = MANIFEST["cases"]
FRAME = MANIFEST["frame"]
UTC = datetime.UTC


def load(name: str, tmp_path: Path) -> tuple[literals_pb2.Literal, types_pb2.LiteralType]:
    """A golden literal and its type, its URI pointed at a private copy of the data flytekit wrote."""
    entry = CASES[name]
    lit = literals_pb2.Literal()
    lit.ParseFromString((GOLDEN / entry["literal"]).read_bytes())
    lt = types_pb2.LiteralType()
    lt.ParseFromString((GOLDEN / entry["type"]).read_bytes())
    copy = tmp_path / "golden" / name
    shutil.copytree(GOLDEN / entry["data"], copy)
    lit.scalar.structured_dataset.uri = str(copy / entry["relative_uri"])
    return lit, lt


def _when(values: list[str | None]) -> list[datetime.datetime | None]:
    return [datetime.datetime.fromisoformat(v) if v else None for v in values]


def _cast(values: list[Any], kind: type) -> list[Any]:
    return [kind(v) if v is not None else None for v in values]


# What taskbox reads: column -> (values, arrow type or None for "any timestamp").
INFERRED = {  # a CSV without declared columns: every column inferred, as pandas does
    "id": (_cast(FRAME["id"], float), pa.float64()),
    "name": (FRAME["name"], pa.string()),
    "flag": (FRAME["flag"], pa.bool_()),
    "score": (FRAME["score"], pa.float64()),
    "when": (_when(FRAME["when"]), None),
    "at": (_when(FRAME["at"]), None),
    "code": ([7, None, 10], pa.int64()),  # "007" is a number to a reader that is not told otherwise
}
DECLARED = {  # the literal declares every column: the frame's own values and types come back
    "id": (FRAME["id"], pa.int64()),
    "name": (FRAME["name"], pa.string()),
    "flag": (FRAME["flag"], pa.bool_()),
    "score": (FRAME["score"], pa.float64()),
    "when": (_when(FRAME["when"]), pa.timestamp("us")),
    "at": (_when(FRAME["at"]), pa.timestamp("us", tz="UTC")),
    "code": (FRAME["code"], pa.string()),
}
PANDAS_PARQUET = {**DECLARED, "id": (_cast(FRAME["id"], float), pa.float64())}  # pandas made the ints floats
PANDAS_PARQUET["name"] = (FRAME["name"], None)  # pandas 3 writes large_string
PANDAS_PARQUET["code"] = (FRAME["code"], None)

EXPECTED: dict[str, dict[str, tuple[list[Any], Any]]] = {
    "csv_pandas": INFERRED,
    "csv_pandas_columns": DECLARED,
    "csv_pandas_column_subset": {"code": DECLARED["code"], "id": DECLARED["id"]},  # the literal's columns, in order
    "csv_single_column_nulls": {"x": ([1.5, None, 3.0], pa.float64())},
    "csv_empty_frame": {},
    "csv_empty_with_columns": {"a": ([], pa.int64()), "b": ([], pa.string())},
    "parquet_pandas": PANDAS_PARQUET,
    "parquet_pandas_columns": PANDAS_PARQUET,
    "parquet_arrow": DECLARED,
    "parquet_sd_declared": PANDAS_PARQUET,
    "parquet_bare_frame_declared_csv": PANDAS_PARQUET,
}


def check_table(table: pa.Table, expected: dict[str, tuple[list[Any], Any]]) -> None:
    assert table.column_names == list(expected)
    for name, (values, kind) in expected.items():
        column = table.column(name)
        if kind is None:
            assert pa.types.is_timestamp(column.type) or pa.types.is_large_string(column.type), column.type
        else:
            assert column.type == kind, name
        assert column.to_pylist() == values, name


def test_every_golden_case_is_checked():
    assert set(CASES) == set(EXPECTED)
    assert MANIFEST["flytekit"] == "1.16.31"


@pytest.mark.parametrize("name", sorted(CASES))
def test_flytekit_layout_and_literal(name):
    """flytekit's layout: one file per folder, ``.csv`` or ``00000``; the literal says which."""
    entry = CASES[name]
    assert entry["files"] == [".csv" if entry["format"] == "csv" else "00000"]
    assert entry["format"] == ("csv" if name.startswith("csv") else "parquet")


@pytest.mark.parametrize("name", sorted(CASES))
def test_taskbox_reads_flytekits_table(name, ctx, tmp_path):
    lit, lt = load(name, tmp_path)
    expected = EXPECTED[name]
    check_table(TypeEngine.to_python_value(lit, pa.Table, ctx=ctx), expected)
    handle = TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx)
    assert handle.file_format == CASES[name]["format"]
    check_table(handle.to_arrow(), expected)
    by_type = TypeEngine.to_python_value(lit, literal_type=lt, ctx=ctx)  # a prebuilt executor's view
    assert isinstance(by_type, StructuredDataset)
    check_table(by_type.to_arrow(), expected)


def test_reader_declared_columns_type_an_untyped_csv(ctx, tmp_path):
    """The reading task's own ``Annotated`` columns select and type the CSV's columns."""
    lit, _ = load("csv_pandas", tmp_path)
    hint = Annotated[pa.Table, {"code": str, "id": int, "when": datetime.datetime}]
    table = TypeEngine.to_python_value(lit, hint, ctx=ctx)
    check_table(table, {"code": DECLARED["code"], "id": DECLARED["id"], "when": DECLARED["when"]})
    handle = TypeEngine.to_python_value(lit, Annotated[StructuredDataset, {"name": str}], ctx=ctx)
    assert handle.to_arrow().to_pydict() == {"name": FRAME["name"]}


def test_a_value_that_does_not_fit_its_declared_column_is_an_input_error(ctx, tmp_path):
    lit, _ = load("csv_pandas", tmp_path)
    with pytest.raises(InputError, match="column 'score'.*int64"):
        TypeEngine.to_python_value(lit, Annotated[pa.Table, {"score": int}], ctx=ctx)
    with pytest.raises(InputError, match="lacks a selected column.*'nope'"):
        TypeEngine.to_python_value(lit, Annotated[pa.Table, {"nope": str}], ctx=ctx)


# ---------------------------------------------------------------- writing: format and layout

TABLE = pa.table(
    {
        "id": pa.array([1, None, 3], pa.int64()),
        "text": ['a,b "c"', "line\nbreak", "é ✓"],
        "flag": [True, None, False],
        "score": [0.25, 1e-9, None],
        "when": pa.array(
            [datetime.datetime(2024, 1, 2, 3, 4, 5, 6), None, datetime.datetime(1999, 12, 31)], pa.timestamp("us")
        ),
        "at": pa.array([datetime.datetime(2024, 1, 2, tzinfo=UTC), None, None], pa.timestamp("us", tz="UTC")),
        "code": ["007", None, ""],
    }
)
TABLE_COLUMNS = {
    "id": int,
    "text": str,
    "flag": bool,
    "score": float,
    "when": datetime.datetime,
    "at": datetime.datetime,
    "code": str,
}


def csv_text(literal: literals_pb2.Literal) -> str:
    folder = literal.scalar.structured_dataset.uri
    assert os.listdir(folder) == [".csv"]
    return Path(folder, ".csv").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("hint", "fmt", "part"),
    [
        (pa.Table, "parquet", "00000"),
        (Annotated[pa.Table, "parquet"], "parquet", "00000"),
        (Annotated[pa.Table, "csv"], "csv", ".csv"),
        (Annotated[StructuredDataset, "csv"], "csv", ".csv"),
        (Annotated[pa.Table, "CSV"], "csv", ".csv"),
    ],
)
def test_a_table_is_written_in_its_declared_format(hint, fmt, part, ctx):
    value = StructuredDataset(TABLE) if strip(hint) is StructuredDataset else TABLE
    lit = TypeEngine.to_literal(value, hint, ctx=ctx)
    sd = lit.scalar.structured_dataset
    assert sd.metadata.structured_dataset_type.format == fmt
    assert os.path.dirname(sd.uri) == ctx.raw_output_prefix and os.listdir(sd.uri) == [part]
    back = TypeEngine.to_python_value(lit, Annotated[pa.Table, TABLE_COLUMNS], ctx=ctx)
    assert back.to_pydict() == {**TABLE.to_pydict(), **({"code": ["007", None, None]} if fmt == "csv" else {})}


def strip(hint: Any) -> Any:
    return getattr(hint, "__origin__", hint)


def test_csv_bytes_follow_pandas_conventions(ctx):
    """Header, no index, ``,``, LF, quotes only where needed, nulls as empty fields, UTF-8."""
    lit = TypeEngine.to_literal(TABLE.select(["id", "text", "flag", "code"]), Annotated[pa.Table, "csv"], ctx=ctx)
    assert csv_text(lit) == (
        '"id","text","flag","code"\n1,"a,b ""c""",true,"007"\n,"line\nbreak",,\n3,"é ✓",false,""\n'
    )


def test_declared_columns_make_csv_types_survive_the_round_trip(ctx):
    lt = TypeEngine.to_literal_type(Annotated[pa.Table, TABLE_COLUMNS, "csv"])
    lit = TypeEngine.to_literal(TABLE, literal_type=lt, ctx=ctx)
    assert [c.name for c in lit.scalar.structured_dataset.metadata.structured_dataset_type.columns] == [
        "id", "text", "flag", "score", "when", "at", "code"
    ]  # fmt: skip
    back = TypeEngine.to_python_value(lit, pa.Table, ctx=ctx)
    assert back.schema == TABLE.schema
    expected = TABLE.to_pydict()
    expected["code"] = ["007", None, None]  # CSV, like pandas, cannot tell "" from a missing value
    assert back.to_pydict() == expected


def test_single_column_with_nulls_keeps_its_rows(ctx):
    """A lone null would be a blank line, which readers skip: it is written as ``""``, as pandas does."""
    table = pa.table({"x": pa.array([None, 2, None], pa.int64())})
    lit = TypeEngine.to_literal(table, Annotated[pa.Table, {"x": int}, "csv"], ctx=ctx)
    assert csv_text(lit) == '"x"\n""\n"2"\n""\n'
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).equals(table)


@pytest.mark.parametrize(
    "table", [pa.table({}), pa.table({"a": pa.array([], pa.int64()), "b": pa.array([], pa.string())})]
)
def test_empty_tables_round_trip_as_csv(table, ctx):
    columns = {"a": int, "b": str} if table.num_columns else {}
    lit = TypeEngine.to_literal(table, Annotated[pa.Table, columns, "csv"], ctx=ctx)
    assert csv_text(lit) == ('"a","b"\n' if table.num_columns else "\n")  # pandas writes "\n" for no columns
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).equals(table)


def test_a_table_csv_cannot_hold_is_an_output_error(ctx):
    nested = pa.table({"items": [[1, 2], [3]]})
    with pytest.raises(OutputError, match="cannot write the table .*items: list<item: int64>.* as CSV"):
        TypeEngine.to_literal(nested, Annotated[pa.Table, "csv"], ctx=ctx)
    assert os.listdir(ctx.raw_output_prefix) == []  # no half-written dataset is left behind
    lone = pa.table({"items": pa.array([[1], None], pa.list_(pa.int64()))})  # the null-safe path of one column
    with pytest.raises(OutputError, match="as CSV"):
        TypeEngine.to_literal(lone, Annotated[pa.Table, "csv"], ctx=ctx)


# ---------------------------------------------------------------- unsupported formats


@pytest.mark.parametrize("fmt", ["json", "avro", "tsv", "bigquery"])
def test_an_unsupported_format_is_a_typed_user_error(fmt, ctx, tmp_path):
    with pytest.raises(UnsupportedType, match=rf"cannot write .* {fmt!r} format.*'parquet' and 'csv'") as info:
        TypeEngine.to_literal(TABLE, Annotated[pa.Table, fmt], ctx=ctx)
    assert info.value.code == "USER:UnsupportedType" and info.value.origin == "USER"
    assert not info.value.recoverable
    lit = literals_pb2.Literal()
    lit.scalar.structured_dataset.uri = str(tmp_path / "nowhere")
    lit.scalar.structured_dataset.metadata.structured_dataset_type.format = fmt
    with pytest.raises(UnsupportedType, match=rf"cannot read .* {fmt!r} format"):
        TypeEngine.to_python_value(lit, pa.Table, ctx=ctx)
    handle = TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx)  # a handle reads nothing yet
    with pytest.raises(UnsupportedType, match=rf"{fmt!r} format"):
        handle.to_arrow()
    # Passed on without reading (an executor's pass-through), the literal keeps the data's own format.
    assert TypeEngine.to_literal(handle, Annotated[StructuredDataset, "csv"], ctx=ctx) == lit


# ---------------------------------------------------------------- passing datasets on


def test_a_passed_on_dataset_is_stored_in_the_declared_format(ctx, tmp_path):
    """Data read from a CSV literal and declared parquet on output is converted, never mislabelled."""
    lit, _ = load("csv_pandas_columns", tmp_path)
    handle = TypeEngine.to_python_value(lit, StructuredDataset, ctx=ctx)
    same = TypeEngine.to_literal(handle, Annotated[StructuredDataset, "csv"], ctx=ctx)
    assert same.scalar.structured_dataset.uri == lit.scalar.structured_dataset.uri
    assert same.scalar.structured_dataset.metadata == lit.scalar.structured_dataset.metadata
    as_parquet = TypeEngine.to_literal(handle, Annotated[StructuredDataset, "parquet"], ctx=ctx)
    sd = as_parquet.scalar.structured_dataset
    assert sd.metadata.structured_dataset_type.format == "parquet"
    assert os.listdir(sd.uri) == ["00000"]
    check_table(pq.read_table(sd.uri), DECLARED)
    undeclared = TypeEngine.to_literal(handle, StructuredDataset, ctx=ctx)
    assert undeclared.scalar.structured_dataset.metadata.structured_dataset_type.format == "csv"


def test_a_local_csv_file_is_uploaded_where_flytekit_reads_it(ctx, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text("id,name\n1,x\n2,y\n", encoding="utf-8")
    lit = TypeEngine.to_literal(StructuredDataset(str(path), file_format="csv"), StructuredDataset, ctx=ctx)
    sd = lit.scalar.structured_dataset
    assert sd.metadata.structured_dataset_type.format == "csv"
    assert os.listdir(sd.uri) == [".csv"] and os.path.dirname(sd.uri) == ctx.raw_output_prefix
    assert TypeEngine.to_python_value(lit, pa.Table, ctx=ctx).to_pydict() == {"id": [1, 2], "name": ["x", "y"]}


def test_csv_from_a_single_file_or_a_folder_of_parts(tmp_path):
    single = tmp_path / "one.csv"
    single.write_text("a,b\n1,x\n", encoding="utf-8")
    assert read_table(str(single), "csv").to_pydict() == {"a": [1], "b": ["x"]}
    parts = tmp_path / "parts"
    (parts / "_meta").mkdir(parents=True)
    (parts / "part-0001.csv").write_text("a,b\n3,z\n", encoding="utf-8")
    (parts / "part-0000.csv").write_text("a,b\n1,x\n2,y\n", encoding="utf-8")
    (parts / "_SUCCESS").write_text("", encoding="utf-8")
    (parts / "_meta" / "skip.csv").write_text("nonsense\n", encoding="utf-8")
    table = read_table(str(parts), "csv", {"a": int, "b": str})
    assert table.to_pydict() == {"a": [1, 2, 3], "b": ["x", "y", "z"]}
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty folder"):
        read_table(str(tmp_path / "empty"), "csv")
    with pytest.raises(InputError, match="holds no parquet file"):
        read_table(str(tmp_path / "empty"), "parquet")
    with pytest.raises(InputError, match="does not exist"):
        read_table(str(tmp_path / "missing"), "parquet")


def test_a_csv_read_as_parquet_is_an_input_error(ctx, tmp_path):
    lit, _ = load("csv_pandas", tmp_path)
    lit.scalar.structured_dataset.metadata.structured_dataset_type.format = "parquet"
    folder = Path(lit.scalar.structured_dataset.uri)
    (folder / ".csv").rename(folder / "00000")
    with pytest.raises(InputError, match="cannot read the parquet dataset"):
        TypeEngine.to_python_value(lit, pa.Table, ctx=ctx)


def test_csv_on_every_storage_backend(storage_base, tmp_path):
    """The ``.csv`` object (a dot file) is uploaded and downloaded like any other."""
    ctx = ConversionContext(raw_output_prefix=storage.join(storage_base, "raw"), working_dir=str(tmp_path / "w"))
    lit = TypeEngine.to_literal(TABLE, Annotated[pa.Table, TABLE_COLUMNS, "csv"], ctx=ctx)
    uri = lit.scalar.structured_dataset.uri
    assert storage.exists(storage.join(uri, ".csv"))
    back = TypeEngine.to_python_value(lit, pa.Table, ctx=ctx)
    assert back.to_pydict() == {**TABLE.to_pydict(), "code": ["007", None, None]}
