"""The hostile input corpus, part 3: what a read-only ``sql`` task must not reach, and lists of any length.

Why: a read-only transaction stops writes to tables, not a privileged role's reach to the database
server's files and programs (PostgreSQL's ``lo_export``/``COPY ... TO``, MariaDB's ``INTO OUTFILE``, also
hidden in an executable comment), nor the file a ``sqlite://`` URL opens or ``VACUUM INTO`` creates. And a
list input must not turn into more bind parameters than the driver takes (PostgreSQL: 65,535), which used
to end in a retried ``SYSTEM:DatabaseUnavailable``. Each case runs ``taskbox execute`` in a subprocess
against the throwaway servers (tests/sql/dbservers.py) as a role that *may* write server files, and is
judged by :func:`hostile.expect_error` (or the ledger's :func:`judge` for the list that must succeed),
recorded under the ledger family ``hostile SQL (read-only)``. No case may leave a file behind.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "sql"))

import sqltesting  # noqa: E402
from hostile import DATASET, INT, expect_error, put_bytes  # noqa: E402

from helpers import encode_inputs, execute_args, list_of, make_template, read_outputs, run  # noqa: E402
from reliability.ledger import LEDGER, OUTPUTS, judge  # noqa: E402

pytestmark = pytest.mark.timeout(180)
FAMILY = "hostile SQL (read-only)"
SECRET = {"password": {"group": "db", "key": "password"}}


@pytest.fixture(scope="module")
def postgres() -> Any:
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    mod = sqltesting.servers_module()
    with server.admin() as conn:
        if not conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'tbxsuper'").fetchone():
            conn.execute(f"CREATE ROLE tbxsuper LOGIN SUPERUSER PASSWORD '{mod.PASSWORD}'")
        # A large object that exists, so an unguarded lo_export really writes the file.
        server.large_object = conn.execute("SELECT lo_from_bytea(0, 'secret')").fetchone()[0]
    return server


@pytest.fixture(scope="module")
def mariadb() -> Any:
    server = sqltesting.server("mariadb")
    sqltesting.seed(server)
    mod = sqltesting.servers_module()
    with server.admin(None) as conn, conn.cursor() as cur:
        cur.execute("CREATE USER IF NOT EXISTS 'tbxfile'@'127.0.0.1' IDENTIFIED BY %s", (mod.PASSWORD,))
        cur.execute(f"GRANT ALL PRIVILEGES ON `{mod.DATABASE}`.* TO 'tbxfile'@'127.0.0.1'")
        cur.execute("GRANT FILE ON *.* TO 'tbxfile'@'127.0.0.1'")
    return server


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A directory the database server (which may run as ``nobody``) can reach and write into."""
    path = Path(tempfile.mkdtemp(prefix="taskbox-hostile-ro-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def privileged_url(server: Any) -> str:
    mod = sqltesting.servers_module()
    role = "tbxsuper" if isinstance(server, mod.PostgresServer) else "tbxfile"
    return server.url.replace(f"{mod.USER}@", f"{role}@")


def run_sql(
    tmp_path: Path, custom: dict[str, Any], outputs: dict[str, Any], types=None, values=None
) -> tuple[Any, str]:
    template = make_template("sqlalchemy", types or {}, outputs, custom).SerializeToString()
    task = put_bytes(tmp_path / "task.pb", template)
    inputs = put_bytes(tmp_path / "inputs.pb", encode_inputs(values, types) if values else b"")
    prefix = str(tmp_path / "out")
    password = sqltesting.servers_module().PASSWORD
    proc = run(execute_args(str(inputs), prefix, str(task)), _FSEC_DB_PASSWORD=password)
    assert password not in proc.stderr
    return proc, prefix


POSTGRES_CASES = {
    "lo_export": ("SELECT lo_export({oid}, '{target}') AS n", "lo_export()"),
    "quoted-qualified-lo_export": ("SELECT pg_catalog.\"lo_export\"({oid}, '{target}') AS n", "lo_export()"),
    "copy-to-file": ("COPY (SELECT s FROM secrets) TO '{target}'", "COPY"),
    "copy-to-program": ("COPY (SELECT 1) TO PROGRAM 'touch {target}'", "COPY"),
    "do-block": ("DO $$ BEGIN PERFORM lo_export({oid}, '{target}'); END $$", "DO"),
    "pg_read_file": ("SELECT pg_read_file('/etc/hostname') AS n", "pg_read_file()"),
}


@pytest.mark.parametrize("name", sorted(POSTGRES_CASES))
def test_postgres_server_files_are_out_of_reach(tmp_path, postgres, server_dir, name):
    query, named = POSTGRES_CASES[name]
    target = server_dir / "leak"
    custom = {
        "query_template": query.format(target=target, oid=postgres.large_object),
        "uri": privileged_url(postgres),
        "secret_connect_args": SECRET,
    }
    proc, prefix = run_sql(tmp_path, custom, {"n": INT} if "AS n" in query else {})
    error = expect_error(FAMILY, proc, prefix, "USER:ReadOnlyViolation", (named, "read_only: false"))
    assert "does not prevent" in error.message
    assert list(server_dir.iterdir()) == []
    assert sqltesting.count(postgres, "items") == sqltesting.ITEM_ROWS


MARIADB_CASES = {
    "into-outfile": ("SELECT s FROM secrets INTO OUTFILE '{target}'", "INTO OUTFILE"),
    "executable-comment": ("SELECT s FROM secrets /*!50000 INTO OUTFILE '{target}' */", "INTO OUTFILE"),
    "mariadb-executable-comment": ("SELECT s FROM secrets /*M!100000 INTO DUMPFILE '{target}' */", "INTO DUMPFILE"),
    "bare-executable-comment": ("SELECT s FROM secrets /*!INTO DUMPFILE '{target}'*/", "INTO DUMPFILE"),
    "load_file": ("SELECT LOAD_FILE('/etc/hostname') AS s", "LOAD_FILE()"),
}


@pytest.mark.parametrize("name", sorted(MARIADB_CASES))
def test_mariadb_server_files_are_out_of_reach(tmp_path, mariadb, server_dir, name):
    query, named = MARIADB_CASES[name]
    target = server_dir / "leak"
    custom = {
        "query_template": query.format(target=target),
        "uri": privileged_url(mariadb),
        "secret_connect_args": SECRET,
    }
    proc, prefix = run_sql(tmp_path, custom, {})
    expect_error(FAMILY, proc, prefix, "USER:ReadOnlyViolation", (named, "read_only: false"))
    assert list(server_dir.iterdir()) == []


@pytest.mark.parametrize("query", ["VACUUM INTO '{copy}'", "ATTACH DATABASE '{copy}' AS c", "SELECT 1 AS n"])
def test_sqlite_url_touches_no_file(tmp_path, query):
    """``VACUUM INTO``/``ATTACH`` on an existing file, and any query on a missing one, create nothing."""
    files = tmp_path / "files"
    files.mkdir()
    copy = files / "copy.db"
    if query.startswith("SELECT"):
        uri, code, words = f"sqlite:///{files / 'missing.db'}", "USER:QueryFailed", ("does not exist",)
    else:
        uri, code, words = f"sqlite:///{sqltesting.make_sqlite(files / 'items.db')}", "USER:ReadOnlyViolation", ()
    before = sorted(p.name for p in files.iterdir())
    proc, prefix = run_sql(tmp_path, {"query_template": query.format(copy=copy), "uri": uri}, {})
    expect_error(FAMILY, proc, prefix, code, words)
    assert sorted(p.name for p in files.iterdir()) == before


def test_list_past_the_bind_limit_is_a_user_error(tmp_path, postgres):
    types = {"ids": list_of(INT)}
    custom = {
        "query_template": "SELECT id FROM items WHERE (id, 0) IN (VALUES {{ .inputs.ids }})",
        "uri": postgres.url,
        "secret_connect_args": SECRET,
    }
    proc, prefix = run_sql(tmp_path, custom, {"results": DATASET}, types, {"ids": list(range(70_000))})
    expect_error(FAMILY, proc, prefix, "USER:InvalidInput", ("65535",))


@pytest.mark.parametrize("server", ["postgres", "mariadb"])
def test_list_after_in_of_any_length_runs(tmp_path, request, server):
    srv = request.getfixturevalue(server)
    types = {"ids": list_of(INT)}
    custom = {
        "query_template": "SELECT count(*) AS n FROM items WHERE id IN {{ .inputs.ids }}",
        "uri": srv.url,
        "secret_connect_args": SECRET,
    }
    ids = list(range(-100_000, 0)) + [1, 2, 3]
    proc, prefix = run_sql(tmp_path, custom, {"n": INT}, types, {"ids": ids})
    verdict, detail = judge(prefix, outputs_ok=lambda: read_outputs(prefix, {"n": INT}) == {"n": 3})
    LEDGER.record(FAMILY, verdict, faults=1, detail=detail)
    assert verdict == OUTPUTS, f"{detail}\n{proc.stderr[-3000:]}"


def test_mariadb_statement_past_max_allowed_packet_is_a_user_error(tmp_path, mariadb):
    """PyMySQL writes values into the statement: past ``max_allowed_packet`` the server hangs up (was SYSTEM)."""
    with mariadb.admin(None) as conn, conn.cursor() as cur:
        cur.execute("SELECT @@global.max_allowed_packet")
        (before,) = cur.fetchone()
        cur.execute("SET GLOBAL max_allowed_packet = 1048576")
    try:
        types = {"ids": list_of(INT)}
        custom = {
            "query_template": "SELECT count(*) AS n FROM items WHERE id IN {{ .inputs.ids }}",
            "uri": mariadb.url,
            "secret_connect_args": SECRET,
        }
        proc, prefix = run_sql(tmp_path, custom, {"n": INT}, types, {"ids": list(range(200_000))})
        expect_error(FAMILY, proc, prefix, "USER:InvalidInput", ("max_allowed_packet",))
    finally:
        with mariadb.admin(None) as conn, conn.cursor() as cur:
            cur.execute("SET GLOBAL max_allowed_packet = %s", (before,))
