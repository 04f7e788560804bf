"""The hostile input corpus, part 2: code bundles, SQL and HTTP, through the real entrypoint.

Why: section 1-3 of docs/reliability-security.md list the archives, SQL templates and values, and HTTP
targets and answers a task may be handed. Each must end in the typed error the contract promises (or, for
injection attempts, in a run that treats them as plain values), never in a crash, a retried SYSTEM error
or a write outside the destination. Cases run ``taskbox fast-execute`` / ``taskbox execute`` in a
subprocess and are checked with :func:`hostile.expect_error`; the member lists of the archives are
tests/bundles/test_bundle_hostile.py's, the databases tests/sql/sqltesting.py's.

The SSRF cases that name a host resolving to a forbidden address run in-process through the executor's
public entry (``run_template``) with the stub resolver of tests/http/test_http_guard.py and a
loopback-only tripwire (:func:`test_fuzz_parsing.loopback_only`), so no packet can leave for those
addresses. Every run is recorded in the ledger (``hostile archive``, ``hostile SQL``, ``hostile HTTP``).
"""

from __future__ import annotations

import json
import os
import sqlite3
import ssl
import subprocess
import sys
import tarfile
import threading
import uuid
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from flyteidl.core import errors_pb2, execution_pb2

TESTS = Path(__file__).resolve().parents[1]
for sub in ("bundles", "sql", "http"):
    sys.path.insert(0, str(TESTS / sub))

import httptesting  # noqa: E402
import sqltesting  # noqa: E402
from bundle_helpers import make_many_empty, make_targz, make_zero_bomb, write_tree  # noqa: E402
from hostile import (  # noqa: E402
    DATASET,
    INT,
    MIB,
    STR,
    STRUCT,
    echo_template,
    expect_error,
    good_inputs,
    put_bytes,
    sqlite_template,
)  # fmt: skip
from test_bundle_hostile import CASES as ARCHIVE_MEMBERS  # noqa: E402
from test_bundle_hostile import REASONS as ARCHIVE_REASONS  # noqa: E402
from test_fuzz_parsing import loopback_only  # noqa: E402
from test_http_guard import stub_resolver  # noqa: E402

from helpers import TASKBOX, encode_inputs, execute_args, make_template, read_outputs, run  # noqa: E402
from reliability.ledger import ERROR, LEDGER, OUTPUTS, judge  # noqa: E402
from taskbox.authoring import TaskFailed, run_template  # noqa: E402
from taskbox.bundles import pack  # noqa: E402
from taskbox.entrypoint.fast_execute import BUNDLES_DIR, bundle_dir  # noqa: E402
from taskbox.executors import http as http_executor  # noqa: E402

pytestmark = pytest.mark.timeout(120)


# ----------------------------------------------------------------------------- code bundles (fast-execute)

SENTINEL = b"do not touch\n"


def _targz(case: str) -> Callable[[Path], str]:
    fmt = tarfile.PAX_FORMAT if case == "long-name" else tarfile.GNU_FORMAT
    return lambda path: make_targz(path, ARCHIVE_MEMBERS[case](), format=fmt)


def _truncated(path: Path) -> str:
    data = pack(write_tree(path.parent / "src", {f"m{i}.py": os.urandom(2000).hex() for i in range(20)}))
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _zip(path: Path) -> str:
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../sentinel.txt", b"overwritten")
        zf.writestr("/etc/x", b"x")
    return str(path)


# name -> (builder, words of the reason); the member cases are tests/bundles/test_bundle_hostile.py's.
ARCHIVES: dict[str, tuple[Callable[[Path], str], str]] = {
    **{case: (_targz(case), ARCHIVE_REASONS[case]) for case in ARCHIVE_MEMBERS},
    "zero-bomb-1GiB": (make_zero_bomb, "zeros.bin"),
    "100001-empty-files": (lambda path: make_many_empty(path, count=100_001), "100000"),  # one over the cap
    "truncated-gzip": (_truncated, "truncated or corrupt"),
    "zip-with-dotdot-and-absolute": (_zip, "truncated or corrupt"),
    "not-an-archive": (lambda path: str(put_bytes(path, b"not an archive at all")), "truncated or corrupt"),
}


@pytest.mark.parametrize("name", sorted(ARCHIVES))
def test_hostile_code_bundle(tmp_path, name):
    """``fast-execute`` rejects the bundle before any member lands, and the task never runs."""
    build, reason = ARCHIVES[name]
    (tmp_path / "store").mkdir()
    bundle = build(tmp_path / "store" / "evil.tar.gz")
    dest = tmp_path / "dest"
    dest.mkdir()
    for sentinel in (tmp_path / "sentinel.txt", dest / "sentinel.txt"):
        sentinel.write_bytes(SENTINEL)
    template, inputs = (
        put_bytes(tmp_path / "task.pb", echo_template()),
        put_bytes(tmp_path / "inputs.pb", good_inputs()),
    )
    prefix = str(tmp_path / "out")
    inner = execute_args(str(inputs), prefix, str(template))[1:]
    args = [
        TASKBOX,
        "fast-execute",
        "--additional-distribution",
        bundle,
        "--dest-dir",
        str(dest),
        "--",
        "taskbox",
        *inner,
    ]
    expect_error("hostile archive", run(args), prefix, "USER:BundleRejected", ("code bundle rejected", reason))
    assert (tmp_path / "sentinel.txt").read_bytes() == SENTINEL
    assert (dest / "sentinel.txt").read_bytes() == SENTINEL
    assert not os.path.exists("/etc/x")
    key = os.path.basename(bundle_dir(str(dest), bundle))
    assert sorted(os.listdir(dest)) == [BUNDLES_DIR, "sentinel.txt"]
    assert os.listdir(dest / BUNDLES_DIR) == [f".{key}.lock"]  # no tree, no staging, no download left


# ----------------------------------------------------------------------------- SQL templates and values

SQL_VALUES = ["x' OR '1'='1", "1; DROP TABLE items", "1 UNION SELECT s FROM secrets", "--", "/*", "a\x00b",
              "é’ OR ’1’=’1", ":name", "' || :x || '"]  # fmt: skip
SQL_QUERY = "SELECT id, name FROM items WHERE name = '{{ .inputs.v }}' OR CAST(id AS TEXT) = {{ .inputs.v }}"
ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) AS n FROM c"


def table_intact(db: str) -> bool:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT count(*) FROM items").fetchone()[0]
        secrets = conn.execute("SELECT s FROM secrets").fetchall()
    return rows == sqltesting.ITEM_ROWS and secrets == [(sqltesting.SECRET_VALUE,)]


def run_sqlite(tmp_path: Path, custom: dict[str, Any], types: dict[str, Any], values: dict[str, Any],
               outputs: dict[str, Any] | None = None) -> tuple[Any, str]:  # fmt: skip
    template = put_bytes(tmp_path / "task.pb", sqlite_template(custom, types, outputs))
    inputs = put_bytes(tmp_path / "inputs.pb", encode_inputs(values, types))
    prefix = str(tmp_path / "out")
    raw = str(tmp_path / "raw")
    proc = run(execute_args(str(inputs), prefix, str(template), None, "--raw-output-data-prefix", raw),
               TASKBOX_CACHE_DIR=str(tmp_path / "cache"))  # fmt: skip
    return proc, prefix


@pytest.fixture
def db(tmp_path):
    return sqltesting.make_sqlite(tmp_path / "items.db")


@pytest.mark.parametrize("value", SQL_VALUES)
def test_sql_injection_values_stay_values(tmp_path, db, value):
    """Section 2's injection inputs are plain values: the query runs, matches nothing, changes nothing."""
    proc, prefix = run_sqlite(tmp_path, {"uri": db, "query_template": SQL_QUERY}, {"v": STR}, {"v": value})
    rows = lambda: read_outputs(prefix, {"results": DATASET})["results"].to_arrow().num_rows  # noqa: E731
    verdict, detail = judge(prefix, outputs_ok=lambda: rows() == 0 and table_intact(db), error_ok=lambda e: False)
    LEDGER.record("hostile SQL", verdict, faults=1, detail=detail)
    assert verdict == OUTPUTS, f"{detail}\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0


X = {"x": INT}
# name -> (custom config (``{db}`` is the database), declared inputs, values, outputs, code, words, recoverable)
SQL_CASES: dict[
    str, tuple[dict[str, Any], dict[str, Any], dict[str, Any], dict[str, Any] | None, str, tuple[str, ...], bool]
] = {
    "placeholder-not-declared": (
        {"query_template": "SELECT * FROM items WHERE id = {{ .inputs.x }} AND name = {{ .inputs.y }}"},
        X,
        {"x": 1},
        None,
        "USER:SqlRejected",
        ("Variable y in Query",),
        False,
    ),
    "declared-input-unused": (
        {"query_template": "SELECT * FROM items WHERE id = {{ .inputs.x }}"},
        {**X, "y": INT},
        {"x": 1, "y": 2},
        None,
        "USER:SqlRejected",
        ("Extra Inputs have no matches",),
        False,
    ),
    "collapsed-comment-swallows-where": (
        {"query_template": "SELECT * FROM items -- all of them WHERE id = {{ .inputs.x }}"},
        X,
        {"x": 1},
        None,
        "USER:SqlRejected",
        ("comments out the rest",),
        False,
    ),
    "two-statements": (
        {"query_template": "SELECT * FROM items; DROP TABLE items"},
        {},
        {},
        None,
        "USER:SqlRejected",
        ("more than one statement",),
        False,
    ),
    "delete-in-read-only-mode": (
        {"query_template": "DELETE FROM items WHERE id = {{ .inputs.x }}"},
        X,
        {"x": 1},
        {},
        "USER:ReadOnlyViolation",
        ("Delete", "read-only"),
        False,
    ),
    "nul-in-template": (
        {"query_template": "SELECT * FROM items\x00; DROP TABLE items"},
        {},
        {},
        None,
        "USER:SqlRejected",
        ("NUL",),
        False,
    ),
    "placeholder-inside-a-comment": (
        {"query_template": "SELECT id FROM items /* {{ .inputs.x }} */"},
        X,
        {"x": 1},
        None,
        "USER:SqlRejected",
        ("inside a SQL comment",),
        False,
    ),
    "placeholder-inside-a-quoted-alias": (
        {"query_template": "SELECT id AS 'c{{ .inputs.v }}' FROM items"},
        {"v": STR},
        {"v": "x' OR 1=1 --"},
        None,
        "USER:SqlRejected",
        ("quoted alias",),
        False,
    ),
    "identifier-not-allow-listed": (
        {"query_template": "SELECT count(*) AS n FROM {{ .inputs.t }}", "identifiers": {"t": ["items"]}},
        {"t": STR},
        {"t": "items; DROP TABLE items"},
        {"n": INT},
        "USER:SqlRejected",
        ("allow-listed",),
        False,
    ),
    "value-that-cannot-be-bound": (
        {"query_template": "SELECT id FROM items WHERE id = {{ .inputs.x }}"},
        {"x": STRUCT},
        {"x": {"a": 1}},
        None,
        "USER:SqlRejected",
        ("cannot be bound",),
        False,
    ),
    "endless-query-over-the-timeout": (
        {"query_template": ENDLESS, "timeout_seconds": 0.5},
        {},
        {},
        {"n": INT},
        "SYSTEM:StatementTimeout",
        (),
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(SQL_CASES))
def test_hostile_sql_template(tmp_path, db, name):
    custom, types, values, outputs, code, words, recoverable = SQL_CASES[name]
    proc, prefix = run_sqlite(tmp_path, {"uri": db, **custom}, types, values, outputs)
    expect_error("hostile SQL", proc, prefix, code, words, recoverable=recoverable)
    assert table_intact(db)
    assert not (tmp_path / "raw").exists() or not any((tmp_path / "raw").rglob("*")), "no data on failure"


@pytest.mark.parametrize("case", ["trigger", "not-a-database"])
def test_hostile_sqlite_database(tmp_path, case):
    """A downloaded database is untrusted: one with a trigger (code that runs) or one that is not SQLite."""
    if case == "trigger":
        db = sqltesting.make_sqlite(tmp_path / "evil.db", rows=5, trigger=True)
    else:
        db = str(put_bytes(tmp_path / "evil.db", b"SQLite format 3\x00" + os.urandom(4096)))
    proc, prefix = run_sqlite(tmp_path, {"uri": db, "query_template": "SELECT * FROM items"}, {}, {})
    expect_error("hostile SQL", proc, prefix, "USER:DatabaseRejected")


@pytest.fixture(scope="module")
def postgres():
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    return server


@pytest.mark.parametrize(
    ("query", "outputs", "code", "recoverable"),
    [
        ("SELECT pg_sleep(5) AS s", {"s": STR}, "SYSTEM:StatementTimeout", True),
        ("DELETE FROM items", {}, "USER:ReadOnlyViolation", False),
        ("SELECT wipe() AS n", {"n": INT}, "USER:ReadOnlyViolation", False),  # a write hidden in a function
    ],
)
def test_hostile_postgres_queries(tmp_path, postgres, query, outputs, code, recoverable):
    """PostgreSQL: a 5 s sleep against a 1 s statement timeout; writes against the read-only transaction."""
    custom = {"query_template": query, "uri": postgres.url, "timeout_seconds": 1,
              "secret_connect_args": {"password": {"group": "db", "key": "password"}}}  # fmt: skip
    template = put_bytes(tmp_path / "task.pb", make_template("sqlalchemy", {}, outputs, custom).SerializeToString())
    prefix = str(tmp_path / "out")
    password = sqltesting.servers_module().PASSWORD
    proc = run(
        execute_args(str(put_bytes(tmp_path / "inputs.pb", b"")), prefix, str(template)), _FSEC_DB_PASSWORD=password
    )
    expect_error("hostile SQL", proc, prefix, code, recoverable=recoverable)
    assert sqltesting.count(postgres, "items") == sqltesting.ITEM_ROWS
    assert password not in proc.stderr


# ----------------------------------------------------------------------------- HTTP targets and answers


def _redirect_chain(hops: int) -> str:
    path = "/echo"
    for _ in range(hops):
        path = "/redirect?to=" + quote(path, safe="")
    return path


# name -> (config (``{base}`` is the loopback server), allow loopback?, code, words, recoverable)
HTTP_CASES: dict[str, tuple[dict[str, Any], bool, str, tuple[str, ...], bool]] = {
    "loopback-not-allow-listed": (
        {"url": "{base}/echo"},
        False,
        "USER:SsrfBlocked",
        ("127.0.0.1", "non-public"),
        False,
    ),
    "file-scheme": ({"url": "file:///etc/passwd"}, False, "USER:SsrfBlocked", ("'file'",), False),
    "gopher-scheme": ({"url": "gopher://127.0.0.1:70/_x"}, False, "USER:SsrfBlocked", ("'gopher'",), False),
    "redirect-to-file-scheme": (
        {"url": "{base}/redirect?to=file:///etc/passwd", "follow_redirects": True},
        True,
        "USER:SsrfBlocked",
        ("'file'",),
        False,
    ),
    "50-hop-redirect-chain": (
        {"url": "{base}" + _redirect_chain(50), "follow_redirects": True},
        True,
        "USER:TooManyRedirects",
        ("more than 5 redirects",),
        False,
    ),
    "redirect-to-an-unparsable-host": (  # httpx refuses the Location header: a protocol error, retryable
        {
            "url": "{base}/redirect?to=http://0251.0376.0251.0376/",
            "follow_redirects": True,
            "retry": {"max_attempts": 1},
        },
        True,
        "SYSTEM:HTTPUnavailable",
        ("Invalid URL in location header",),
        True,
    ),
    "body-over-the-cap": ({"url": "{base}/big?n=" + str(11 * MIB)}, True, "USER:ResponseTooLarge", (), False),
    "gzip-bomb": ({"url": "{base}/gzip?n=" + str(64 * MIB)}, True, "USER:ResponseTooLarge", (), False),
    "slow-server": (
        {"url": "{base}/slow?s=3", "read_timeout_s": 0.2, "retry": {"max_attempts": 1}},
        True,
        "SYSTEM:HTTPUnavailable",
        (),
        True,
    ),
    "retry-after-99999": (
        {"url": "{base}/flaky/5/k?after=99999", "retry": {"retry_after_max_s": 5}},
        True,
        "SYSTEM:HTTPUnavailable",
        ("503",),
        True,
    ),
    "post-read-timeout-without-idempotency-key": (
        {"method": "POST", "url": "{base}/slow?s=3", "json_body": {"a": 1}, "read_timeout_s": 0.2},
        True,
        "SYSTEM:HTTPUnavailable",
        ("not retried", "not idempotent"),
        True,
    ),
}


@pytest.mark.parametrize("name", sorted(HTTP_CASES))
def test_hostile_http_target(tmp_path, name):
    """Through ``taskbox execute`` against a loopback server; the child process uses the system resolver."""
    config, allow_loopback, code, words, recoverable = HTTP_CASES[name]
    with httptesting.running() as server:
        custom = json.loads(json.dumps(config).replace("{base}", server.base))
        template = put_bytes(tmp_path / "task.pb", make_template("http", {}, {}, custom).SerializeToString())
        prefix = str(tmp_path / "out")
        env = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32" if allow_loopback else ""}
        proc = run(execute_args(str(put_bytes(tmp_path / "inputs.pb", b"")), prefix, str(template)), **env)
        expect_error("hostile HTTP", proc, prefix, code, words, recoverable=recoverable)
        if not allow_loopback:
            assert server.connections == 0
        if config.get("method") == "POST":
            assert len(server.requests) == 1  # a POST without an idempotency key is sent once


# Hosts that resolve (stub resolver) or are written as forbidden addresses: refused before any connection.
# An octal IPv4 host httpx cannot parse is refused too, as an invalid URL (it was a retried SYSTEM:InvalidURL).
SSRF_URLS = {
    **{
        url: "USER:SsrfBlocked"
        for url in (
            "http://metadata.test/latest/meta-data/",
            "http://metadata6.test/",
            "http://alibaba.test/",
            "http://private.test:8080/",
            "http://cgnat.test/",
            "http://mixed.test/",
            "http://2852039166/",
            "http://0xA9FEA9FE/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/",
            "http://169.254.169.254/",
        )
    },
    "http://0251.0376.0251.0376/": "USER:InvalidConfig",
    "http://0251.0376.0251.0376/?q=1": "USER:InvalidConfig",
}


@pytest.fixture
def stub_dns(monkeypatch):
    """The HTTP guard tests' stub resolver, and the loopback-only tripwire: no packet leaves for these hosts."""
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW", raising=False)
    monkeypatch.setattr(http_executor, "RESOLVER", stub_resolver)
    with loopback_only():
        yield


def _run_http_in_process(tmp_path: Path, custom: dict[str, Any]) -> str:
    workdir = tmp_path / f"run-{uuid.uuid4().hex[:8]}"
    with pytest.raises(TaskFailed):
        run_template(make_template("http", {}, {}, custom), {}, workdir=str(workdir))
    return str(workdir / "out")


def _record_refusal(prefix: str, code: str = "USER:SsrfBlocked") -> None:
    def error_ok(error: errors_pb2.ContainerError) -> bool:
        user, final = execution_pb2.ExecutionError.USER, errors_pb2.ContainerError.NON_RECOVERABLE
        return (error.code, error.origin, error.kind) == (code, user, final)

    verdict, detail = judge(prefix, outputs_ok=lambda: False, error_ok=error_ok)
    LEDGER.record("hostile HTTP", verdict, faults=1, detail=detail)
    assert verdict == ERROR, detail


@pytest.mark.parametrize("url", sorted(SSRF_URLS))
def test_ssrf_targets_are_refused_before_connecting(tmp_path, stub_dns, url):
    custom = {"url": url.split("?")[0], "retry": {"max_attempts": 1}}
    if "?" in url:
        custom["query"] = {"q": "1"}  # the query path builds the URL in the executor, not in the client
    _record_refusal(_run_http_in_process(tmp_path, custom), SSRF_URLS[url])


def test_redirect_hop_to_the_metadata_service_is_refused(tmp_path, stub_dns):
    with httptesting.running() as server:
        custom = {"url": f"{server.base}/redirect?to=http://metadata.test/", "follow_redirects": True,
                  "allow": ["127.0.0.1"]}  # fmt: skip
        _record_refusal(_run_http_in_process(tmp_path, custom))
        assert len(server.requests) == 1


def _self_signed(tmp_path: Path) -> tuple[str, str]:
    cert, key = str(tmp_path / "cert.pem"), str(tmp_path / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


def test_self_signed_tls_is_refused_unless_its_ca_is_given(tmp_path):
    """TLS verification is always on: a self-signed server fails the task; its CA via SSL_CERT_FILE lets it through."""
    cert, key = _self_signed(tmp_path)
    server = httptesting.Server()
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"https://127.0.0.1:{server.server_address[1]}/echo"
        custom = {"url": url, "status_output": "s"}  # default retries: a certificate failure is not retried
        template = put_bytes(tmp_path / "task.pb", make_template("http", {}, {"s": INT}, custom).SerializeToString())
        inputs = str(put_bytes(tmp_path / "inputs.pb", b""))
        refused = str(tmp_path / "refused")
        proc = run(execute_args(inputs, refused, str(template)), TASKBOX_HTTP_ALLOW="127.0.0.1/32")
        error = expect_error(
            "hostile HTTP",
            proc,
            refused,
            "USER:TLSVerificationFailed",
            ("CERTIFICATE_VERIFY_FAILED", "self-signed", "SSL_CERT_FILE"),
            recoverable=False,
        )
        assert cert not in error.message
        assert "retry 1/" not in proc.stderr
        trusted = str(tmp_path / "trusted")
        proc = run(execute_args(inputs, trusted, str(template)), TASKBOX_HTTP_ALLOW="127.0.0.1/32", SSL_CERT_FILE=cert)
        verdict, detail = judge(trusted, outputs_ok=lambda: read_outputs(trusted, {"s": INT}) == {"s": 200})
        LEDGER.record("hostile HTTP", verdict, faults=0, detail=detail)
        assert verdict == OUTPUTS, f"{detail}\n{proc.stderr[-3000:]}"
    finally:
        server.shutdown()
        server.server_close()
