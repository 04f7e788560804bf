"""Untrusted SQLite files: read-only, no code from the schema, bounded statements, cached downloads."""

from __future__ import annotations

import os
import sqlite3
import threading
import zipfile

import pytest
import sqltesting

from taskbox.errors import Terminated
from taskbox.sql.errors import DatabaseRejected, StatementTimeout, translate
from taskbox.sql.sqlite import DatabaseCache, fetch_database, open_read_only


@pytest.fixture
def db(tmp_path):
    return sqltesting.make_sqlite(tmp_path / "items.db")


def test_reads_work(db):
    conn = open_read_only(db)
    try:
        assert conn.conn.execute("SELECT count(*) FROM items").fetchone() == (1000,)
        assert conn.conn.execute("PRAGMA table_info(items)").fetchall()[0][1] == "id"
        rows = conn.conn.execute(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5) SELECT sum(x) FROM c"
        )
        assert rows.fetchone() == (15,)
    finally:
        conn.close()


@pytest.mark.parametrize(
    "statement",
    [
        "INSERT INTO items (id, name) VALUES (5000, 'x')",
        "DELETE FROM items",
        "UPDATE items SET name = 'x'",
        "DROP TABLE items",
        "CREATE TABLE t (x)",
        "CREATE TEMP TABLE t (x)",
        "ATTACH DATABASE '/tmp/other.db' AS other",
        "PRAGMA query_only = OFF",
        "PRAGMA writable_schema = ON",
        "SELECT load_extension('/tmp/x.so')",
        "VACUUM INTO '/tmp/copy.db'",
    ],
)
def test_writes_and_escapes_are_denied(db, statement, tmp_path):
    conn = open_read_only(db)
    try:
        with pytest.raises(sqlite3.DatabaseError) as info:
            conn.conn.execute(statement).fetchall()
        error = translate(info.value)
        assert error.origin == "USER" and not error.recoverable
    finally:
        conn.close()
    check = sqlite3.connect(db)
    assert check.execute("SELECT count(*) FROM items").fetchone() == (1000,)
    assert [r[0] for r in check.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")] == ["items", "secrets"]
    check.close()


def test_database_with_a_trigger_is_rejected_unless_allowed(tmp_path):
    path = sqltesting.make_sqlite(tmp_path / "evil.db", rows=10, trigger=True)
    with pytest.raises(DatabaseRejected, match="defines triggers \\('evil'\\)"):
        open_read_only(path)
    conn = open_read_only(path, allow_triggers=True)
    with pytest.raises(sqlite3.DatabaseError):
        conn.conn.execute("INSERT INTO items (id, name) VALUES (99, 'x')")  # the trigger never gets to run
    conn.close()
    assert sqlite3.connect(path).execute("SELECT count(*) FROM audit").fetchone() == (0,)


def test_views_cannot_call_unsafe_functions(tmp_path):
    path = str(tmp_path / "view.db")
    setup = sqlite3.connect(path)
    setup.execute("CREATE TABLE t (x)")
    setup.execute("CREATE VIEW v AS SELECT load_extension('/nonexistent') AS x")
    setup.commit()
    setup.close()
    conn = open_read_only(path)
    with pytest.raises(sqlite3.DatabaseError):
        conn.conn.execute("SELECT * FROM v").fetchall()
    conn.close()


def test_not_a_database_and_corrupt_files_are_rejected(tmp_path, db):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(DatabaseRejected, match="not a SQLite 3 database"):
        open_read_only(str(junk))
    data = bytearray(open(db, "rb").read())
    data[4096:8192] = b"\xff" * 4096  # smash the second page
    broken = tmp_path / "broken.db"
    broken.write_bytes(bytes(data))
    with pytest.raises(DatabaseRejected):
        open_read_only(str(broken))


def test_progress_handler_enforces_the_deadline(db):
    conn = open_read_only(db)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    with pytest.raises(StatementTimeout) as info, conn.deadline(0.3):
        conn.conn.execute(endless).fetchall()
    assert info.value.recoverable and info.value.origin == "SYSTEM"
    cancelled = threading.Event()
    cancelled.set()
    with pytest.raises(Terminated), conn.deadline(60, cancelled):
        conn.conn.execute(endless).fetchall()
    conn.close()


def test_downloads_are_cached_and_reused(tmp_path, db):
    archive = tmp_path / "items.db.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(db, "items.db")
    cache = DatabaseCache(str(tmp_path / "cache"))
    first = fetch_database(str(archive), compressed=True, working_dir=str(tmp_path / "wd"), cache=cache)
    assert not first.cached and not first.checked
    first.mark_checked()
    second = fetch_database(str(archive), compressed=True, working_dir=str(tmp_path / "wd"), cache=cache)
    assert second.cached and second.checked and second.path == first.path
    assert open(second.path, "rb").read() == open(db, "rb").read()
    second.discard()
    third = fetch_database(str(archive), compressed=True, working_dir=str(tmp_path / "wd"), cache=cache)
    assert not third.cached


def test_local_uncompressed_files_are_used_in_place(tmp_path, db):
    found = fetch_database(
        db, compressed=False, working_dir=str(tmp_path / "wd"), cache=DatabaseCache(str(tmp_path / "c"))
    )
    assert found.path == db and not (tmp_path / "c").exists()


def test_a_local_file_is_checked_once_until_it_changes(tmp_path, db):
    cache = DatabaseCache(str(tmp_path / "c"))

    def fetch():
        return fetch_database(db, compressed=False, working_dir=str(tmp_path / "wd"), cache=cache)

    first = fetch()
    assert first.path == db and not first.checked
    first.mark_checked()
    assert fetch().checked, "an unchanged file keeps the record of its check"
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE items SET name = upper(name)")  # same size
    conn.close()
    st = os.stat(db)  # the file system's clock may be coarser than this test: move the time on explicitly
    os.utime(db, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    changed = fetch()
    assert not changed.checked, "a changed file is checked again"
    changed.mark_checked()
    assert fetch().checked
    fetch().discard()
    assert not fetch().checked, "a file that failed validation loses its record"


# ------------------------------------------------------------------------ write-ahead logs and journals


def _count(conn):
    return conn.conn.execute("SELECT count(*), max(name) FROM items WHERE id > 1000").fetchone()


def test_commits_in_the_write_ahead_log_are_read(tmp_path):
    """A writer committed into app.db-wal and never checkpointed: the reader sees those rows, not the old file."""
    path = str(tmp_path / "app.db")
    writer = sqltesting.wal_writer(path)
    base = open(path, "rb").read()
    try:
        conn = open_read_only(path, snapshot_dir=str(tmp_path / "wd"))
        try:
            assert _count(conn) == (5, "wal-1005")
            assert conn.snapshot and conn.path != path and conn.path.startswith(str(tmp_path / "wd"))
            with pytest.raises(sqlite3.DatabaseError):
                conn.conn.execute("DELETE FROM items").fetchall()  # the barriers hold on the snapshot too
        finally:
            conn.close()
        assert not os.listdir(tmp_path / "wd"), "the snapshot is removed with the connection"
        writer.execute("INSERT INTO items (id, name) VALUES (1006, 'wal-1006')")
        conn = open_read_only(path, check=False, snapshot_dir=str(tmp_path / "wd"))
        assert _count(conn) == (6, "wal-1006"), "a later commit is seen: nothing is cached by the base file"
        conn.close()
    finally:
        writer.close()
    assert open(path, "rb").read() != base  # (closing the writer checkpointed; the reader never wrote)


def test_a_write_ahead_log_left_behind_is_read_without_touching_the_directory(tmp_path):
    """db and -wal without -shm (the writer is gone): read from a private copy, nothing created beside the file."""
    import shutil

    writer = sqltesting.wal_writer(tmp_path / "live.db")
    left = tmp_path / "left"
    left.mkdir()
    shutil.copyfile(tmp_path / "live.db", left / "app.db")
    shutil.copyfile(tmp_path / "live.db-wal", left / "app.db-wal")
    writer.close()
    conn = open_read_only(str(left / "app.db"), snapshot_dir=str(tmp_path / "wd"))
    try:
        assert _count(conn) == (5, "wal-1005")
    finally:
        conn.close()
    assert sorted(os.listdir(left)) == ["app.db", "app.db-wal"]


def test_a_hot_journal_is_refused_with_a_user_error(tmp_path):
    (tmp_path / "src").mkdir()
    path = sqltesting.hot_journal(tmp_path / "src" / "app.db")
    before = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    with pytest.raises(DatabaseRejected, match=r"hot rollback journal \(app\.db-journal\)") as info:
        open_read_only(path, snapshot_dir=str(tmp_path / "wd"))
    assert info.value.origin == "USER" and not info.value.recoverable
    assert {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()} == before, "nothing rolled back or added"
    assert not os.listdir(tmp_path / "wd")


def test_a_writer_holding_its_lock_is_a_recoverable_conflict(tmp_path, monkeypatch):
    from taskbox.sql import sqlite_snapshot
    from taskbox.sql.errors import TransactionConflict

    monkeypatch.setattr(sqlite_snapshot, "BUSY_TIMEOUT_S", 0.0)
    path = sqltesting.make_sqlite(tmp_path / "app.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("PRAGMA cache_size = 1")
    writer.execute("BEGIN")
    writer.execute("UPDATE items SET name = 'uncommitted' || id")  # spills: the writer holds the file's lock
    try:
        with pytest.raises(TransactionConflict, match="locked"):
            open_read_only(path, snapshot_dir=str(tmp_path / "wd"))
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_a_journal_that_is_not_hot_is_read_through(tmp_path):
    """A writer in the middle of a small transaction: the committed rows are read, not its uncommitted ones."""
    path = sqltesting.make_sqlite(tmp_path / "app.db")
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN")
    writer.execute("UPDATE items SET name = 'uncommitted' WHERE id = 1")
    try:
        assert os.path.exists(path + "-journal")
        conn = open_read_only(path, snapshot_dir=str(tmp_path / "wd"))
        assert conn.conn.execute("SELECT name FROM items WHERE id = 1").fetchone() == ("name-1",)
        conn.close()
    finally:
        writer.execute("ROLLBACK")
        writer.close()
