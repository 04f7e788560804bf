"""The hostile input corpus, part 3: SQLite database files and their archives, through ``taskbox execute``.

Why: a ``sqlite`` task's database is a file from anywhere, and so is everything beside it. Issue 14
found two classes of defect there: a compressed database had no ratio cap (an 850-byte ``tar.bz2``
wrote 1 GiB before "not a SQLite database"), and a database whose writer committed into ``app.db-wal``
without a checkpoint was read stale, silently. Each case here runs the real entrypoint in a subprocess
and is recorded in the reliability ledger under ``hostile SQLite file``: a bomb or a member that is not
a database must end in ``USER:DatabaseRejected`` with nothing written; a database with a write-ahead
log must answer with the rows committed there; one with a hot journal must fail as a USER error that
names the journal, never with the half-written rows.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "sql"))

import sqltesting  # noqa: E402
from hostile import INT, expect_error, put_bytes, sqlite_template  # noqa: E402

from helpers import encode_inputs, execute_args, read_outputs, run  # noqa: E402
from reliability.ledger import LEDGER, OUTPUTS, judge  # noqa: E402

FAMILY = "hostile SQLite file"
GIB = 1024**3
COUNT = {"query_template": "SELECT count(*) AS n FROM items", "uri": ""}


def run_sqlite(tmp_path: Path, custom: dict[str, Any]) -> tuple[Any, str]:
    """``taskbox execute`` of a sqlite template with output ``n: int`` and no inputs."""
    template = put_bytes(tmp_path / "task.pb", sqlite_template(custom, {}, {"n": INT}))
    inputs = put_bytes(tmp_path / "inputs.pb", encode_inputs({}, {}))
    prefix = str(tmp_path / "out")
    proc = run(execute_args(str(inputs), prefix, str(template), None, "--raw-output-data-prefix",
                            str(tmp_path / "raw")), TASKBOX_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip
    return proc, prefix


def expect_outputs(proc: Any, prefix: str, n: int) -> None:
    """Judge a run that must succeed with ``n`` rows, and record it in the ledger."""
    verdict, detail = judge(prefix, outputs_ok=lambda: read_outputs(prefix, {"n": INT}) == {"n": n})
    LEDGER.record(FAMILY, verdict, faults=1, detail=detail)
    assert verdict == OUTPUTS, f"{detail}\nstderr:\n{proc.stderr[-3000:]}"


def no_database_written(tmp_path: Path) -> None:
    """Neither the cache nor the working directories keep a byte of a rejected database."""
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > 1024 * 1024]
    assert [p for p in leftovers if p.suffix not in (".zip", ".gz", ".bz2", ".xz")] == []


# --------------------------------------------------------------------------------- compressed databases


@pytest.mark.parametrize("kind", sqltesting.BOMB_KINDS)
def test_a_decompression_bomb_is_refused_at_its_header(tmp_path, kind):
    """1 GiB of zeros behind a SQLite header, a few KiB compressed, under the default caps."""
    archive = sqltesting.make_bomb(tmp_path / f"bomb.{kind}", kind, GIB)
    proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": archive, "compressed": True})
    expect_error(FAMILY, proc, prefix, "USER:DatabaseRejected", ("bomb.db", "decompression bomb"))
    no_database_written(tmp_path)


@pytest.mark.parametrize("kind", sqltesting.BOMB_KINDS)
def test_a_member_that_is_not_a_database_is_refused_by_its_first_bytes(tmp_path, kind):
    archive = sqltesting.make_bomb(tmp_path / f"zeros.{kind}", kind, 32 * 1024 * 1024, head=b"\x00" * 16)
    proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": archive, "compressed": True})
    expect_error(FAMILY, proc, prefix, "USER:DatabaseRejected", ("not a SQLite 3 database",))
    no_database_written(tmp_path)


def test_a_real_database_in_each_archive_kind_still_works(tmp_path):
    """The caps refuse bombs, not databases: the ordinary case is recorded beside them."""
    import tarfile
    import zipfile

    db = sqltesting.make_sqlite(tmp_path / "items.db")
    for kind in ("zip", "tar", "tar.gz", "tar.bz2", "tar.xz"):
        archive = str(tmp_path / f"items.{kind}")
        if kind == "zip":
            with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
                zf.write(db, "items.db")
        else:
            with tarfile.open(archive, "w" + ("" if kind == "tar" else ":" + kind.split(".")[1])) as tf:
                tf.add(db, "items.db")
        run_dir = tmp_path / kind
        run_dir.mkdir()
        proc, prefix = run_sqlite(run_dir, {**COUNT, "uri": archive, "compressed": True})
        expect_outputs(proc, prefix, sqltesting.ITEM_ROWS)


# -------------------------------------------------------------------------- logs and journals beside it


def test_commits_in_a_write_ahead_log_are_answered(tmp_path):
    path = str(tmp_path / "app.db")
    writer = sqltesting.wal_writer(path)
    try:
        proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": path})
        expect_outputs(proc, prefix, sqltesting.ITEM_ROWS + 5)
    finally:
        writer.close()


def test_a_write_ahead_log_whose_writer_is_gone_is_answered(tmp_path):
    """db and -wal copied without -shm: read from a private copy; nothing appears beside the file."""
    writer = sqltesting.wal_writer(tmp_path / "live.db")
    left = tmp_path / "left"
    left.mkdir()
    shutil.copyfile(tmp_path / "live.db", left / "app.db")
    shutil.copyfile(tmp_path / "live.db-wal", left / "app.db-wal")
    writer.close()
    proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": str(left / "app.db")})
    expect_outputs(proc, prefix, sqltesting.ITEM_ROWS + 5)
    assert sorted(os.listdir(left)) == ["app.db", "app.db-wal"]


def test_a_junk_write_ahead_log_is_ignored_as_sqlite_ignores_it(tmp_path):
    """A -wal that is not a valid log holds no commit: the file alone is the database."""
    path = sqltesting.make_sqlite(tmp_path / "app.db")
    Path(path + "-wal").write_bytes(os.urandom(64 * 1024))
    proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": path})
    expect_outputs(proc, prefix, sqltesting.ITEM_ROWS)


def test_a_hot_journal_is_a_user_error_naming_it(tmp_path):
    (tmp_path / "db").mkdir()
    path = sqltesting.hot_journal(tmp_path / "db" / "app.db")
    before = {p.name: p.read_bytes() for p in (tmp_path / "db").iterdir()}
    proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": path})
    expect_error(FAMILY, proc, prefix, "USER:DatabaseRejected", ("hot rollback journal", "app.db-journal"))
    assert {p.name: p.read_bytes() for p in (tmp_path / "db").iterdir()} == before, "the source is never written"


def test_a_journal_that_links_elsewhere_is_never_rolled_back(tmp_path):
    """A -journal symlink to another file: a read-only reader refuses the rollback it would need."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"\x01" * 4096)
    (tmp_path / "db").mkdir()
    path = sqltesting.make_sqlite(tmp_path / "db" / "app.db")
    os.symlink(victim, path + "-journal")
    proc, prefix = run_sqlite(tmp_path, {**COUNT, "uri": path})
    expect_error(FAMILY, proc, prefix, "USER:DatabaseRejected", ("app.db-journal",))
    assert victim.read_bytes() == b"\x01" * 4096
