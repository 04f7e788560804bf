"""The ADBC fast path (taskbox.sql.sqlite_arrow): same table as the sqlite3 path, exact deadlines, safe fallbacks."""

from __future__ import annotations

import datetime as dt
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqltesting

from taskbox.authoring import run_template
from taskbox.errors import Terminated
from taskbox.sql import sqlite_arrow
from taskbox.sql.errors import ResultShapeError, StatementTimeout
from taskbox.sql.results import CursorSource, write_parquet
from taskbox.sql.sqlite import open_read_only

ENDLESS_COUNT = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKBOX_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def no_new_children():
    """Fails the test if it leaves a child process behind."""
    before = _children()
    yield
    assert not _children() - before, "the child process must be killed and reaped"


def test_the_driver_is_installed_with_the_sqlite_extra():
    assert sqlite_arrow.available(), "adbc-driver-sqlite is in the sqlite and test extras: pip install -e '.[test]'"


def _children() -> set[int]:
    """This process's child processes (the servers of other tests included)."""
    pids: set[int] = set()
    for tid in os.listdir(f"/proc/{os.getpid()}/task"):
        with open(f"/proc/{os.getpid()}/task/{tid}/children") as fh:
            pids.update(int(p) for p in fh.read().split())
    return pids


def _mixed_db(path: Path) -> str:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB, n INTEGER)")
        conn.executemany(
            "INSERT INTO t VALUES (?, ?, ?, ?, ?)",
            [(k, k / 3, f"zeichen-{k}-ü", bytes([k % 256]) * 3, None if k % 7 else k) for k in range(5000)],
        )
    conn.close()
    return str(path)


def _encodings(path: Path) -> dict[str, list[set[str]]]:
    meta = pq.ParquetFile(path).metadata
    return {
        meta.schema.column(c).name: [set(meta.row_group(g).column(c).encodings) for g in range(meta.num_row_groups)]
        for c in range(meta.num_columns)
    }


def _reference(db: str, sql: str, params: dict, out: Path) -> None:
    conn = sqlite3.connect(db, check_same_thread=False)  # as open_read_only does: batches are fetched in a thread
    cursor = conn.execute(sql, params)
    write_parquet(CursorSource([d[0] for d in cursor.description], cursor.fetchmany), str(out), batch_rows=1000)
    conn.close()


def _fast(db: str, sql: str, params: dict, out: Path, **kw) -> tuple[int, list[str]]:
    kw.setdefault("deadline", time.monotonic() + 30)
    kw.setdefault("timeout_seconds", 30)
    ro = open_read_only(db)  # the executor's connection: its progress handler stops the reference query too

    def reference():
        cursor = ro.conn.execute(sql, params)
        return sqlite_arrow.reference_schema(cursor, [d[0] for d in cursor.description])

    try:
        with ro.deadline(kw["deadline"] - time.monotonic(), kw.get("cancelled")):
            return sqlite_arrow.stream_to_parquet(db, sql, params, str(out), batch_rows=1000, reference=reference, **kw)
    finally:
        ro.close()


def test_fast_path_writes_the_same_table_as_the_sqlite3_path(tmp_path):
    db = _mixed_db(tmp_path / "m.db")
    sql = "SELECT i, r, s, b, n FROM t WHERE i >= :lo ORDER BY i"
    rows, columns = _fast(db, sql, {"lo": 10}, tmp_path / "fast.parquet")
    _reference(db, sql, {"lo": 10}, tmp_path / "ref.parquet")
    fast, ref = pq.read_table(tmp_path / "fast.parquet"), pq.read_table(tmp_path / "ref.parquet")
    assert (rows, columns) == (4990, ["i", "r", "s", "b", "n"])
    assert fast.schema.equals(ref.schema), (fast.schema, ref.schema)
    assert fast.to_pylist() == ref.to_pylist()
    assert pq.ParquetFile(tmp_path / "fast.parquet").metadata.num_row_groups >= 5  # streamed in batches
    dictionary = {
        name: {"RLE_DICTIONARY" in e for e in encodings}
        for name, encodings in _encodings(tmp_path / "fast.parquet").items()
    }
    assert dictionary == {"i": {False}, "r": {False}, "s": {False}, "b": {True}, "n": {True}}
    assert _encodings(tmp_path / "fast.parquet") == _encodings(tmp_path / "ref.parquet")


def test_named_parameters_bind_in_order_of_first_appearance(tmp_path):
    db = _mixed_db(tmp_path / "m.db")
    sql = "SELECT i, :tag AS tag FROM t WHERE i BETWEEN :lo AND :hi AND s <> :tag ORDER BY i"
    _fast(db, sql, {"tag": "x'; DROP TABLE t; --", "lo": 3, "hi": 5}, tmp_path / "o.parquet")
    assert pq.read_table(tmp_path / "o.parquet").to_pylist() == [
        {"i": i, "tag": "x'; DROP TABLE t; --"} for i in (3, 4, 5)
    ]


def test_a_parameter_sqlite3_adapts_itself_goes_back_to_sqlite3(tmp_path, no_new_children):
    db = _mixed_db(tmp_path / "m.db")
    with pytest.raises(sqlite_arrow.Unsupported):
        _fast(db, "SELECT :d AS d", {"d": dt.datetime(2024, 1, 1)}, tmp_path / "o.parquet")


@pytest.mark.parametrize(
    ("sql", "error"),
    [
        # The driver would make this a text column; the sqlite3 path's error (from the same first rows) wins.
        ("SELECT x FROM (SELECT 1 AS x UNION ALL SELECT 'text')", ResultShapeError),
        ("SELECT CAST(x'ff00' AS TEXT) AS s", sqlite3.OperationalError),  # not UTF-8: translated by the executor
    ],
)
def test_the_sqlite3_paths_errors_win_and_the_child_is_stopped(tmp_path, no_new_children, sql, error):
    db = _mixed_db(tmp_path / "m.db")
    with pytest.raises(error):
        _fast(db, sql, {}, tmp_path / "o.parquet")


def test_a_type_change_after_the_first_rows_goes_back_to_sqlite3(tmp_path, no_new_children):
    db = _mixed_db(tmp_path / "m.db")
    sql = "SELECT CASE WHEN i < 3000 THEN i ELSE s END AS v FROM t ORDER BY i"
    with pytest.raises(sqlite_arrow.Unsupported, match="[Mm]ismatch"):
        _fast(db, sql, {}, tmp_path / "o.parquet")


# The sparse query's first rows come at once (the reference query returns, the child goes on reading) and then
# none for a very long time; the endless count never yields a row (the reference query itself runs into the deadline).
SPARSE = (
    f"WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c WHERE x < 2000 OR x = {10**15}"
)


@pytest.mark.parametrize("sql", [SPARSE, ENDLESS_COUNT], ids=["child-reading", "no-row-yet"])
def test_the_deadline_stops_the_statement_and_the_child(tmp_path, no_new_children, sql):
    db = _mixed_db(tmp_path / "m.db")
    started = time.monotonic()
    with pytest.raises(StatementTimeout, match="statement timeout"):
        _fast(db, sql, {}, tmp_path / "o.parquet", deadline=started + 1.0, timeout_seconds=1.0)
    assert time.monotonic() - started < 4


def test_termination_stops_the_statement(tmp_path, no_new_children):
    db = _mixed_db(tmp_path / "m.db")
    cancelled = threading.Event()
    threading.Timer(0.3, cancelled.set).start()
    with pytest.raises(Terminated):
        _fast(db, ENDLESS_COUNT, {}, tmp_path / "o.parquet", cancelled=cancelled)


# ------------------------------------------------------------------------------ through the executor


def _run(tmp_path, query, db, **custom):
    tpl = sqltesting_template(query, db, **custom)
    return run_template(tpl, {}, workdir=str(tmp_path / "run"))


def sqltesting_template(query, db, **custom):
    from helpers import make_template

    return make_template("sqlite", {}, {"results": sqltesting.DATASET}, {"query_template": query, "uri": db, **custom})


def test_the_executor_takes_the_fast_path_for_a_table(tmp_path, caplog):
    db = sqltesting.make_sqlite(tmp_path / "items.db")
    with caplog.at_level(logging.INFO, logger="taskbox.sql"):
        outputs = _run(tmp_path, "SELECT id, name FROM items ORDER BY id", db)
    assert outputs["results"].to_arrow().num_rows == 1000
    assert any("ADBC" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_the_executor_falls_back_with_the_reference_error(tmp_path):
    from taskbox.authoring import TaskFailed

    db = sqltesting.make_sqlite(tmp_path / "items.db")
    with pytest.raises(TaskFailed, match="CAST the column"):
        _run(tmp_path, "SELECT CASE WHEN id < 900 THEN id ELSE name END AS v FROM items ORDER BY id", db)


def test_the_authorizer_still_guards_the_fast_path(tmp_path):
    from taskbox.authoring import TaskFailed

    db = sqltesting.make_sqlite(tmp_path / "items.db")
    with pytest.raises(TaskFailed, match="not authorized"):
        _run(tmp_path, "SELECT fts3_tokenizer(name) FROM items", db)  # load_extension is refused before: dialects


def test_the_fast_path_reads_the_write_ahead_log(tmp_path, caplog):
    """Rows committed into app.db-wal reach the Parquet file the ADBC child writes (it reads the snapshot)."""
    writer = sqltesting.wal_writer(tmp_path / "app.db")
    try:
        with caplog.at_level(logging.INFO, logger="taskbox.sql"):
            outputs = _run(tmp_path, "SELECT id, name FROM items WHERE id > 998 ORDER BY id", str(tmp_path / "app.db"))
        assert [r["id"] for r in outputs["results"].to_arrow().to_pylist()] == [999, 1000, *range(1001, 1006)]
        assert any("ADBC" in r.getMessage() for r in caplog.records), [r.getMessage() for r in caplog.records]
    finally:
        writer.close()


@pytest.mark.parametrize("sidecar", ["-wal", "-journal"])
def test_the_child_never_reads_a_file_beside_a_log_or_journal(tmp_path, sidecar, no_new_children):
    """Opened immutable, the driver would ignore the log: it refuses, and the sqlite3 path (on the snapshot) runs."""
    db = sqltesting.make_sqlite(tmp_path / "app.db")
    (tmp_path / f"app.db{sidecar}").write_bytes(b"")
    with pytest.raises(sqlite_arrow.Unsupported, match="beside it"):
        sqlite_arrow.stream_to_parquet(
            db, "SELECT id FROM items", {}, str(tmp_path / "o.parquet"), reference=lambda: None,
            deadline=time.monotonic() + 30, timeout_seconds=30,
        )  # fmt: skip
