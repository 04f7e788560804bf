"""Results: output shapes, rows to Parquet in batches, one row to primitive outputs."""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
import threading
import uuid

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqltesting
from flyteidl.core import types_pb2

from taskbox.errors import Terminated
from taskbox.sql.errors import ResultShapeError
from taskbox.sql.outputs import OutputPlan, collect, single_row
from taskbox.sql.results import CursorSource, write_parquet
from taskbox.storage import local

INT, STR, FLOAT = sqltesting.simple("INTEGER"), sqltesting.simple("STRING"), sqltesting.simple("FLOAT")


class ListSource:
    """A RowSource over an in-memory list of rows that records each fetch size."""

    def __init__(self, columns, rows, hints=()):
        self.columns = columns
        self.type_hints = list(hints)
        self._rows = list(rows)
        self.fetches: list[int] = []

    def fetch(self, n):
        self.fetches.append(n)
        out, self._rows = self._rows[:n], self._rows[n:]
        return out


def test_output_plan_shapes():
    assert OutputPlan.from_types({}).kind == "none"
    assert OutputPlan.from_types({"results": sqltesting.DATASET}) == OutputPlan("table", table="results")
    assert OutputPlan.from_types({"results": sqltesting.SCHEMA}).kind == "table"
    plan = OutputPlan.from_types({"n": INT, "name": sqltesting.optional(STR)})
    assert plan.kind == "row" and plan.row == {"n": ("INTEGER", False), "name": ("STRING", True)}


@pytest.mark.parametrize(
    "outputs",
    [
        {"a": sqltesting.DATASET, "b": sqltesting.DATASET},
        {"a": sqltesting.DATASET, "n": INT},
        {"f": types_pb2.LiteralType(blob=types_pb2.BlobType())},
        {"xs": types_pb2.LiteralType(collection_type=INT)},
    ],
)
def test_output_plan_rejects_shapes_a_query_cannot_fill(outputs):
    with pytest.raises(ResultShapeError):
        OutputPlan.from_types(outputs)


def test_rows_stream_to_parquet_in_bounded_batches(tmp_path):
    rows = [(i, f"n{i}", i / 2, None) for i in range(10_000)]
    source = ListSource(["id", "name", "half", "empty"], rows)
    total, columns = write_parquet(source, str(tmp_path / "out.parquet"), batch_rows=1000)
    assert total == 10_000 and columns == ["id", "name", "half", "empty"]
    assert max(source.fetches) <= 1000
    table = pq.read_table(tmp_path / "out.parquet")
    # "empty" is NULL in every row looked at before the schema was fixed (4 * batch_rows), and more rows followed.
    assert table.schema.types == [pa.int64(), pa.string(), pa.float64(), pa.string()]
    assert table.column("id").to_pylist() == list(range(10_000))
    assert pq.ParquetFile(tmp_path / "out.parquet").metadata.num_row_groups == 10


def test_types_come_from_values_after_leading_nulls(tmp_path):
    rows = [(None,)] * 2500 + [("late",)]
    total, _ = write_parquet(ListSource(["x"], rows), str(tmp_path / "o.parquet"), batch_rows=1000)
    table = pq.read_table(tmp_path / "o.parquet")
    assert total == 2501 and table.schema.types == [pa.string()]
    assert table.column("x").to_pylist()[-1] == "late"


def test_driver_hints_type_all_null_columns(tmp_path):
    write_parquet(ListSource(["d"], [(None,)], hints=[pa.decimal128(10, 2)]), str(tmp_path / "o.parquet"))
    assert pq.read_table(tmp_path / "o.parquet").schema.types == [pa.decimal128(10, 2)]


def test_rich_values_convert_without_pandas(tmp_path):
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    uid = uuid.uuid4()
    rows = [
        (
            decimal.Decimal("1.25"),
            when,
            dt.date(2026, 1, 2),
            dt.timedelta(seconds=3),
            b"\x00\x01",
            uid,
            {"k": [1]},
            True,
        )
    ]
    names = ["dec", "ts", "day", "span", "raw", "uid", "doc", "flag"]
    write_parquet(ListSource(names, rows), str(tmp_path / "o.parquet"))
    got = pq.read_table(tmp_path / "o.parquet").to_pylist()[0]
    assert got == {
        "dec": decimal.Decimal("1.25"),
        "ts": when,
        "day": dt.date(2026, 1, 2),
        "span": dt.timedelta(seconds=3),
        "raw": b"\x00\x01",
        "uid": str(uid),
        "doc": '{"k": [1]}',
        "flag": True,
    }


def test_tuple_rows_convert_in_one_pass_exactly_as_column_by_column():
    from taskbox.sql.results import _Schema

    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    rows = [
        (i, f"n{i}", decimal.Decimal(i) / 4, when + dt.timedelta(minutes=i), i % 2 == 0, None, "12.50", b"\x00")
        for i in range(300)
    ] + [(None,) * 8]
    names = ["i", "s", "dec", "ts", "flag", "nothing", "text_numeric", "raw"]
    casts = [None] * 6 + [pa.decimal128(12, 2), None]  # a driver's text column cast in bulk (postgres.py)

    def schema_of():
        built = _Schema(names, [None] * 8, casts)
        built.observe(rows)
        return built, built.finish(more_rows=False)

    one_pass, schema = schema_of()
    by_column, _ = schema_of()
    fast = one_pass.batch(rows, schema)
    assert one_pass._struct is not None  # the one-pass conversion ran
    assert fast.equals(by_column._batch_by_column(rows, schema))
    assert fast.column(6).to_pylist()[0] == decimal.Decimal("12.50")
    # A value Arrow refuses: the one-pass conversion gives way and the column path names the column.
    with pytest.raises(ResultShapeError, match="column 'i'"):
        one_pass.batch([("x",) + rows[0][1:]], schema)
    assert not one_pass._one_pass  # later batches are not converted twice


def test_sqlite_mixed_column_types_are_a_user_error(tmp_path):
    conn = sqlite3.connect(":memory:", check_same_thread=False)  # the writer fetches in a second thread
    conn.execute("CREATE TABLE t (x)")
    conn.executemany("INSERT INTO t VALUES (?)", [(1,)] * 10 + [("text",)])
    cur = conn.execute("SELECT x FROM t")
    source = CursorSource(["x"], cur.fetchmany)
    with pytest.raises(ResultShapeError, match="column 'x'.*CAST"):
        write_parquet(source, str(tmp_path / "o.parquet"), batch_rows=5)


def test_duplicate_column_names_are_a_user_error(tmp_path):
    with pytest.raises(ResultShapeError, match="several columns named"):
        write_parquet(ListSource(["a", "a"], [(1, 2)]), str(tmp_path / "o.parquet"))


def test_empty_result_writes_an_empty_table(tmp_path):
    total, _ = write_parquet(ListSource(["a", "b"], []), str(tmp_path / "o.parquet"))
    table = pq.read_table(tmp_path / "o.parquet")
    assert total == 0 and table.num_rows == 0 and table.column_names == ["a", "b"]


def test_cancellation_stops_the_copy(tmp_path):
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(Terminated):
        write_parquet(ListSource(["a"], [(1,)]), str(tmp_path / "o.parquet"), cancelled=cancelled)


def test_collect_writes_flytekits_layout_and_publishes_only_on_request(tmp_path):
    raw = str(tmp_path / "raw")
    plan = OutputPlan("table", table="results")
    outputs, publish = collect(
        ListSource(["a"], [(1,), (2,)]), plan, raw_output_prefix=raw, working_dir=str(tmp_path / "wd")
    )
    folder = outputs["results"].uri
    assert folder.startswith(raw + "/") and len(folder.rsplit("/", 1)[1]) == 32
    assert not (tmp_path / "raw" / folder.rsplit("/", 1)[1] / "00000").exists()
    publish()
    assert pq.read_table(local.to_path(folder) + "/00000").column("a").to_pylist() == [1, 2]


def test_collect_leaves_nothing_behind_on_failure(tmp_path):
    raw = tmp_path / "raw"
    plan = OutputPlan("table", table="results")
    with pytest.raises(ResultShapeError):
        collect(ListSource(["a"], [(1,), ("x",)]), plan, raw_output_prefix=str(raw), working_dir=str(tmp_path / "wd"))
    assert not raw.exists() or not any(raw.rglob("*"))


def test_single_row_maps_columns_by_name():
    plan = OutputPlan.from_types({"n": INT, "Name": STR, "avg": FLOAT, "missing": sqltesting.optional(INT)})
    source = ListSource(["N", "name", "AVG", "missing", "extra"], [(3, "x", decimal.Decimal("1.5"), None, 0)])
    assert single_row(source, plan) == {"n": 3, "Name": "x", "avg": 1.5, "missing": None}


@pytest.mark.parametrize(
    ("rows", "match"),
    [([], "no rows"), ([(1,), (2,)], "more than one row"), ([(None,)], "is NULL"), ([("x",)], "does not fit")],
)
def test_single_row_errors(rows, match):
    with pytest.raises(ResultShapeError, match=match):
        single_row(ListSource(["n"], rows), OutputPlan.from_types({"n": INT}))


def test_single_row_names_missing_columns():
    with pytest.raises(ResultShapeError, match="no column of that name"):
        single_row(ListSource(["a"], [(1,)]), OutputPlan.from_types({"n": INT}))


def test_single_row_coercions():
    kinds = {
        "i": sqltesting.simple("INTEGER"),
        "b": sqltesting.simple("BOOLEAN"),
        "t": sqltesting.simple("DATETIME"),
        "s": STR,
        "d": sqltesting.simple("STRUCT"),
    }
    row = (decimal.Decimal(7), 1, "2026-01-02 03:04:05", dt.date(2026, 1, 2), '{"a": 1}')
    got = single_row(ListSource(list(kinds), [row]), OutputPlan.from_types(kinds))
    assert got == {
        "i": 7,
        "b": True,
        "t": dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC),
        "s": "2026-01-02",
        "d": {"a": 1},
    }


def _encodings(path) -> dict[str, set[str]]:
    meta = pq.ParquetFile(path).metadata
    found: dict[str, set[str]] = {}
    for g in range(meta.num_row_groups):
        for c in range(meta.num_columns):
            column = meta.row_group(g).column(c)
            found.setdefault(column.path_in_schema, set()).update(column.encodings)
    return found


def test_only_columns_that_repeat_values_are_dictionary_encoded(tmp_path):
    rows = [(i, f"unique text {i}", ("red", "green", "blue")[i % 3], None) for i in range(5000)]
    path = tmp_path / "out.parquet"
    write_parquet(ListSource(["id", "text", "colour", "nothing"], rows), str(path), batch_rows=1000)
    encodings = _encodings(path)
    assert "RLE_DICTIONARY" in encodings["colour"] and "RLE_DICTIONARY" in encodings["nothing"]
    assert "RLE_DICTIONARY" not in encodings["id"] and "RLE_DICTIONARY" not in encodings["text"]
    assert pq.read_table(path).to_pylist() == [
        dict(zip(["id", "text", "colour", "nothing"], r, strict=True)) for r in rows
    ]
