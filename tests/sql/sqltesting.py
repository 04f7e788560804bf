"""Helpers shared by the SQL tests (tests/sql, tests/executors/test_sql*.py, tests/authoring) and bench/sql.py.

* :func:`server` - the shared PostgreSQL / MariaDB server (tests/sql/dbservers.py; tests/servers.py is
  the storage servers');
* :func:`seed` - the ``items`` and ``secrets`` tables every database test uses;
* :func:`make_sqlite` - the same tables in a SQLite file;
* literal types and templates for the executors.
"""

from __future__ import annotations

import datetime as dt
import decimal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import types_pb2

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ITEM_ROWS = 1000
SECRET_VALUE = "top-secret-row"


def servers_module() -> Any:
    """The module tests/sql/dbservers.py (beside this one, so on ``sys.path`` wherever this is imported)."""
    import dbservers  # lazy: loaded by the tests that use a server only

    return dbservers


def server(kind: str) -> Any:
    """The shared server of ``kind``; fails (never skips) when its binaries are missing."""
    mod = servers_module()
    try:
        return mod.shared(kind)
    except mod.ServerMissing as exc:
        pytest.fail(str(exc), pytrace=False)


def item_rows(n: int = ITEM_ROWS) -> list[tuple[Any, ...]]:
    """Rows of ``items``: (id, name, score, created, flag)."""
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return [
        (i, f"name-{i}", decimal.Decimal(i) / 4, base + dt.timedelta(minutes=i), i % 2 == 0) for i in range(1, n + 1)
    ]


def seed(srv: Any) -> None:
    """(Re)create ``items`` (1000 rows) and ``secrets`` (one row) in the server's application database."""
    mod = servers_module()
    rows = item_rows()
    if isinstance(srv, mod.PostgresServer):
        with srv.admin() as conn:
            conn.execute("DROP TABLE IF EXISTS items, secrets")
            conn.execute(
                "CREATE TABLE items (id integer PRIMARY KEY, name text NOT NULL, score numeric(10,2), "
                "created timestamptz, flag boolean)"
            )
            conn.execute("CREATE TABLE secrets (s text)")
            conn.execute("DROP TABLE IF EXISTS scratch")
            conn.execute("CREATE TABLE scratch (x integer)")
            conn.execute(
                "CREATE OR REPLACE FUNCTION wipe() RETURNS integer LANGUAGE sql AS 'DELETE FROM items RETURNING 1'"
            )
            with conn.cursor() as cur:
                cur.executemany("INSERT INTO items VALUES (%s, %s, %s, %s, %s)", rows)
                cur.execute("INSERT INTO secrets VALUES (%s)", (SECRET_VALUE,))
            conn.execute(f"ALTER TABLE items OWNER TO {mod.USER}")
            conn.execute(f"ALTER TABLE secrets OWNER TO {mod.USER}")
            conn.execute(f"ALTER TABLE scratch OWNER TO {mod.USER}")
        return
    with srv.admin() as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS items, secrets")
        cur.execute(
            "CREATE TABLE items (id integer PRIMARY KEY, name varchar(100) NOT NULL, score decimal(10,2), "
            "created datetime(6), flag boolean)"
        )
        cur.execute("CREATE TABLE secrets (s varchar(100))")
        cur.execute("DROP TABLE IF EXISTS scratch")
        cur.execute("CREATE TABLE scratch (x integer)")
        cur.execute("DROP PROCEDURE IF EXISTS wipe")
        cur.execute("CREATE PROCEDURE wipe() DELETE FROM items")
        cur.executemany(
            "INSERT INTO items VALUES (%s, %s, %s, %s, %s)",
            [(i, n, s, c.replace(tzinfo=None), f) for i, n, s, c, f in rows],
        )
        cur.execute("INSERT INTO secrets VALUES (%s)", (SECRET_VALUE,))


def count(srv: Any, table: str = "items") -> int:
    """Rows in a table (as the superuser)."""
    mod = servers_module()
    if isinstance(srv, mod.PostgresServer):
        with srv.admin() as conn:
            return conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    with srv.admin() as conn, conn.cursor() as cur:
        cur.execute(f"SELECT count(*) FROM {table}")
        return cur.fetchone()[0]


def make_sqlite(path: Path | str, rows: int = ITEM_ROWS, *, trigger: bool = False) -> str:
    """A SQLite file with ``items`` (id, name, score REAL, created TEXT, flag INTEGER) and ``secrets``."""
    path = str(path)
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(
            "CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT NOT NULL, score REAL, created TEXT, flag INTEGER)"
        )
        conn.execute("CREATE TABLE secrets (s TEXT)")
        conn.executemany(
            "INSERT INTO items VALUES (?, ?, ?, ?, ?)",
            [(i, n, float(s), c.isoformat(), int(f)) for i, n, s, c, f in item_rows(rows)],
        )
        conn.execute("INSERT INTO secrets VALUES (?)", (SECRET_VALUE,))
        if trigger:
            conn.execute("CREATE TABLE audit (x TEXT)")
            conn.execute("CREATE TRIGGER evil AFTER INSERT ON items BEGIN INSERT INTO audit VALUES ('owned'); END")
    conn.close()
    return path


def simple(kind: str) -> types_pb2.LiteralType:
    return types_pb2.LiteralType(simple=types_pb2.SimpleType.Value(kind))


def optional(inner: types_pb2.LiteralType) -> types_pb2.LiteralType:
    none = types_pb2.LiteralType(simple=types_pb2.NONE, structure=types_pb2.TypeStructure(tag="none"))
    return types_pb2.LiteralType(union_type=types_pb2.UnionType(variants=[inner, none]))


DATASET = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
SCHEMA = types_pb2.LiteralType(schema=types_pb2.SchemaType())


# ------------------------------------------------------------------------------------ hostile database files

BOMB_KINDS = ("zip", "tar.gz", "tar.bz2", "tar.xz")
_BOMB_CHUNK = 8 * 1024 * 1024


def make_bomb(path: Path | str, kind: str, size: int, *, head: bytes = b"SQLite format 3\x00") -> str:
    """A compressed archive of one member ``bomb.db``: ``head`` then zeros, ``size`` bytes in all.

    Built by streaming, never in memory: the zeros are one compressed chunk repeated (concatenated
    gzip/bzip2/xz streams for a tar; deflate blocks ended by a full flush, which resets the window,
    for a zip), so a 1 GiB bomb takes one 8 MiB compression and a few KiB of disk.

    Args:
        path: Where to write.
        kind: One of :data:`BOMB_KINDS`.
        size: Uncompressed size of the member (its header says so too).
        head: The member's first bytes (the SQLite header by default; anything else for a non-database).

    Returns:
        The path written.
    """
    import bz2
    import lzma
    import tarfile

    path = str(path)
    if kind == "zip":
        _write_zip_bomb(path, size, head)
        return path
    compress = {"tar.gz": zlib_gzip, "tar.bz2": bz2.compress, "tar.xz": lzma.compress}[kind]
    info = tarfile.TarInfo("bomb.db")
    info.size = size
    zeros = size - len(head) + (-size % 512) + 1024  # the member's zeros, its padding, the end-of-archive blocks
    full = compress(bytes(_BOMB_CHUNK))
    with open(path, "wb") as out:
        out.write(compress(info.tobuf() + head))
        for _ in range(zeros // _BOMB_CHUNK):
            out.write(full)
        out.write(compress(bytes(zeros % _BOMB_CHUNK)))
    return path


def zlib_gzip(data: bytes) -> bytes:
    """One gzip member (``gzip.compress`` with a fixed mtime)."""
    import gzip

    return gzip.compress(data, mtime=0)


def _write_zip_bomb(path: str, size: int, head: bytes) -> None:
    """A zip written by hand: one deflated member whose raw deflate data repeats one flushed block."""
    import struct
    import zlib

    comp = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = size - len(head)
    block = bytes(_BOMB_CHUNK)
    crc = zlib.crc32(head)
    first = comp.compress(head) + comp.flush(zlib.Z_FULL_FLUSH)
    middle = comp.compress(block) + comp.flush(zlib.Z_FULL_FLUSH)  # no reference before the flush: repeatable
    for _ in range(zeros // _BOMB_CHUNK):
        crc = zlib.crc32(block, crc)
    rest = bytes(zeros % _BOMB_CHUNK)
    crc = zlib.crc32(rest, crc)
    last = comp.compress(rest) + comp.flush()
    csize = len(first) + len(middle) * (zeros // _BOMB_CHUNK) + len(last)
    name = b"bomb.db"
    local = struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, 8, 0, 0, crc, csize, size, len(name), 0) + name
    with open(path, "wb") as out:
        out.write(local)
        out.write(first)
        for _ in range(zeros // _BOMB_CHUNK):
            out.write(middle)
        out.write(last)
        offset = out.tell()
        fields = (0x02014B50, 20, 20, 0, 8, 0, 0, crc, csize, size, len(name), 0, 0, 0, 0, 0o100644 << 16, 0)
        central = struct.pack("<IHHHHHHIIIHHHHHII", *fields) + name
        out.write(central)
        out.write(struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, 1, 1, len(central), offset, 0))


def wal_writer(path: Path | str, extra: int = 5) -> sqlite3.Connection:
    """:func:`make_sqlite` in WAL mode, then ``extra`` rows committed into ``-wal`` and left there.

    The writer is returned open, with automatic checkpoints off: while it is open the new rows live
    only in ``<path>-wal`` (closing the last connection would checkpoint them into the file). The
    new rows are ``id`` > :data:`ITEM_ROWS`, named ``wal-<id>``.
    """
    path = make_sqlite(path)
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    assert writer.execute("PRAGMA journal_mode = WAL").fetchone() == ("wal",)
    writer.execute("PRAGMA wal_autocheckpoint = 0")
    writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for i in range(ITEM_ROWS + 1, ITEM_ROWS + extra + 1):
        writer.execute("INSERT INTO items (id, name) VALUES (?, ?)", (i, f"wal-{i}"))  # one commit each
    return writer


def hot_journal(path: Path | str) -> str:
    """A database at ``path`` with a hot rollback journal: a writer's state when it died mid-transaction.

    The transaction (every ``items`` name set to ``uncommitted``) is larger than the writer's page cache,
    so some of its pages are already in the file; ``<path>-journal`` holds their committed content.
    """
    import shutil

    path = str(path)
    work = Path(path).parent / ".hot-journal-writer"
    work.mkdir()
    source = make_sqlite(work / "db")
    writer = sqlite3.connect(source, isolation_level=None)
    writer.execute("PRAGMA cache_size = 1")
    writer.execute("BEGIN")
    writer.execute("UPDATE items SET name = 'uncommitted' || id")
    shutil.copyfile(source, path)
    shutil.copyfile(source + "-journal", path + "-journal")
    writer.execute("ROLLBACK")
    writer.close()
    shutil.rmtree(work)
    return path
