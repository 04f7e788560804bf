"""The hostile corpus, part 3: what a server or a neighbour does to the files taskbox downloads.

Why: issue 14 items 7, 8, 10 and 11. A server announces a small size and streams far more (HEAD lies, a
chunked answer, no length at all); a database URI, a redirect or a storage read points at an internal
address; another local user squats the cache directory; a database changes without changing size.
Each case runs ``taskbox execute`` (or ``fast-execute``) in a subprocess against :mod:`lying_http` on
127.0.0.1 and is recorded in the ledger as ``hostile downloads``: a typed error document, or correct
outputs, never a partial ``outputs.pb``, a full disk, or an answer from a planted file.

No packet leaves for a forbidden address: the refused targets are loopback addresses that are not
allowed (``127.0.0.1`` without an allow-list, ``[::1]`` and ``127.0.0.2`` beside an allowed
``127.0.0.1``), which the guard refuses before connecting; metadata-service hosts are covered by the
unit tests through the stub resolver.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest

TESTS = Path(__file__).resolve().parents[1]
for sub in ("storage", "sql"):
    sys.path.insert(0, str(TESTS / sub))

import sqltesting  # noqa: E402
from hostile import INT, MIB, echo_template, expect_error, good_inputs, put_bytes, sqlite_template  # noqa: E402
from lying_http import Route, fixed, lying_server, repeated  # noqa: E402

from helpers import TASKBOX, encode_inputs, execute_args, read_outputs, run  # noqa: E402
from reliability.ledger import LEDGER, OUTPUTS, judge  # noqa: E402

pytestmark = pytest.mark.timeout(120)

FAMILY = "hostile downloads"
CAP = 64 * 1024
HUGE = 32 * MIB  # streamed lazily; the run must stop long before the end
ALLOW = {"TASKBOX_HTTP_ALLOW": "127.0.0.1"}
COUNT_N = "SELECT count(*) AS n FROM items WHERE name = 'planted'"


def _sqlite_run(tmp_path: Path, uri: str, env: dict[str, str], **custom: Any) -> tuple[Any, str]:
    template = put_bytes(tmp_path / "task.pb", sqlite_template({"uri": uri, "query_template": COUNT_N, **custom},
                                                               {}, {"n": INT}))  # fmt: skip
    inputs = put_bytes(tmp_path / "inputs.pb", encode_inputs({}, {}))
    prefix = str(tmp_path / "out")
    env = {"TASKBOX_CACHE_DIR": str(tmp_path / "cache"), **env}
    return run(execute_args(str(inputs), prefix, str(template)), **env), prefix


# ------------------------------------------------------------------------ caps counted on received bytes

LIARS = {
    "head-says-1KiB": Route(body=repeated(HUGE), head_length=1024, get_length=HUGE),
    "chunked-no-length": Route(body=repeated(HUGE), framing="chunked"),
    "close-delimited": Route(body=repeated(HUGE), head_length=1024, framing="close"),
}


@pytest.mark.parametrize("name", sorted(LIARS))
def test_sqlite_download_stops_at_max_download_bytes(tmp_path, name):
    with lying_server(LIARS) as server:
        proc, prefix = _sqlite_run(tmp_path, server.url(name), ALLOW, max_download_bytes=CAP)
        assert not server.stats.completed.get(name)
    expect_error(FAMILY, proc, prefix, "USER:DatabaseRejected", ("over the limit",))
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size > CAP], "a partial file is left"


def _fast_execute(tmp_path: Path, bundle_uri: str, **env: str) -> tuple[Any, str, Path]:
    template = put_bytes(tmp_path / "task.pb", echo_template())
    inputs = put_bytes(tmp_path / "inputs.pb", good_inputs())
    prefix, dest = str(tmp_path / "out"), tmp_path / "dest"
    dest.mkdir()
    inner = execute_args(str(inputs), prefix, str(template))[1:]
    args = [TASKBOX, "fast-execute", "--additional-distribution", bundle_uri, "--dest-dir", str(dest), "--",
            "taskbox", *inner]  # fmt: skip
    return run(args, **env), prefix, dest


def test_bundle_download_stops_at_taskbox_bundle_max_mb(tmp_path):
    with lying_server({"code.tar.gz": Route(body=repeated(HUGE), head_length=1024, framing="chunked")}) as server:
        proc, prefix, dest = _fast_execute(tmp_path, server.url("code.tar.gz"), TASKBOX_BUNDLE_MAX_MB="1", **ALLOW)
        assert not server.stats.completed.get("code.tar.gz")
    expect_error(FAMILY, proc, prefix, "USER:BundleRejected", ("over the limit",))
    assert not [p for p in dest.rglob("*") if p.is_file() and p.stat().st_size > MIB]


def test_bundle_uri_on_loopback_is_refused_without_an_allow_list(tmp_path):
    with lying_server({"code.tar.gz": Route(body=fixed(b"x"), head_length=1, get_length=1)}) as server:
        proc, prefix, _ = _fast_execute(tmp_path, server.url("code.tar.gz"), TASKBOX_HTTP_ALLOW="")
        assert server.stats.requests == []
    expect_error(FAMILY, proc, prefix, "USER:SsrfBlocked", ("non-public address",))


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_inputs_and_template_reads_count_received_bytes(tmp_path, framing):
    routes = {
        "inputs.pb": Route(body=repeated(HUGE), head_length=10, framing=framing, get_length=HUGE),
        "task.pb": Route(body=repeated(HUGE), head_length=10, framing=framing, get_length=HUGE),
        "good-inputs.pb": Route(
            body=fixed(good_inputs()), head_length=len(good_inputs()), get_length=len(good_inputs())
        ),  # fmt: skip
    }
    template = put_bytes(tmp_path / "task.pb", echo_template())
    with lying_server(routes) as server:
        prefix = str(tmp_path / "out-inputs")
        proc = run(execute_args(server.url("inputs.pb"), prefix, str(template)), TASKBOX_MAX_INPUTS_BYTES=str(CAP),
                   **ALLOW)  # fmt: skip
        expect_error(FAMILY, proc, prefix, "USER:InputTooLarge", ("TASKBOX_MAX_INPUTS_BYTES",))
        prefix = str(tmp_path / "out-template")
        proc = run(execute_args(server.url("good-inputs.pb"), prefix, server.url("task.pb")),
                   TASKBOX_MAX_TEMPLATE_BYTES=str(CAP), **ALLOW)  # fmt: skip
        expect_error(FAMILY, proc, prefix, "USER:InputTooLarge", ("TASKBOX_MAX_TEMPLATE_BYTES",))
        assert not any(server.stats.completed.get(n) for n in ("inputs.pb", "task.pb"))


# ---------------------------------------------------------------------------------- the SSRF guard


def test_sqlite_uri_on_loopback_is_refused_without_an_allow_list(tmp_path):
    db = Path(sqltesting.make_sqlite(tmp_path / "real.db", rows=5)).read_bytes()
    with lying_server({"latest/meta-data/": Route(body=fixed(db), head_length=len(db), get_length=len(db))}) as srv:
        proc, prefix = _sqlite_run(tmp_path, srv.url("latest/meta-data/"), {"TASKBOX_HTTP_ALLOW": ""})
        assert srv.stats.requests == [], "refused before any connection"
    expect_error(FAMILY, proc, prefix, "USER:SsrfBlocked", ("non-public address",))


@pytest.mark.parametrize("target", ["http://[::1]:{port}/other", "http://127.0.0.2:{port}/latest/meta-data/"])
def test_a_redirect_to_an_internal_address_is_refused(tmp_path, target):
    """127.0.0.1 alone is allowed; its 302 to another loopback address is checked again and refused.

    (Metadata-service redirects are the unit tests', through the stub resolver: no packet for 169.254.x.)
    """
    with lying_server({}) as inner:
        location = target.format(port=inner.server.server_address[1])
        with lying_server({"db": Route(redirect=location)}) as outer:
            proc, prefix = _sqlite_run(tmp_path, outer.url("db"), ALLOW)
            assert ("GET", "db") in outer.stats.requests or ("HEAD", "db") in outer.stats.requests
        assert inner.stats.requests == []
    expect_error(FAMILY, proc, prefix, "USER:SsrfBlocked", ("non-public address",))


# ------------------------------------------------------------------------------- the cache is not fooled


def _same_size_pair(tmp_path: Path) -> tuple[bytes, bytes]:
    real = sqltesting.make_sqlite(tmp_path / "real.db", rows=50)
    planted = str(tmp_path / "planted.db")
    shutil.copy(real, planted)
    with sqlite3.connect(planted) as conn:
        conn.execute("UPDATE items SET name = 'planted'")
    conn.close()
    one, two = Path(real).read_bytes(), Path(planted).read_bytes()
    assert len(one) == len(two) and one != two
    return one, two


def _record_outputs(proc: Any, prefix: str, want: int) -> None:
    verdict, detail = judge(prefix, outputs_ok=lambda: read_outputs(prefix, {"n": INT})["n"] == want,
                            error_ok=lambda e: False)  # fmt: skip
    LEDGER.record(FAMILY, verdict, faults=1, detail=detail)
    assert verdict == OUTPUTS, f"{detail}\n{proc.stderr[-3000:]}"


def test_a_same_size_change_is_not_served_from_the_cache(tmp_path):
    real, planted = _same_size_pair(tmp_path)
    route = Route(body=fixed(real), head_length=len(real), get_length=len(real), etag='"v1"')
    with lying_server({"app.db": route}) as server:
        (tmp_path / "one").mkdir()
        proc, prefix = _sqlite_run(tmp_path / "one", server.url("app.db"), ALLOW)
        route.body, route.etag = fixed(planted), '"v2"'  # same size, new contents
        (tmp_path / "two").mkdir()
        proc2, prefix2 = _sqlite_run(tmp_path / "two", server.url("app.db"),
                                     {**ALLOW, "TASKBOX_CACHE_DIR": str(tmp_path / "one" / "cache")})  # fmt: skip
    _record_outputs(proc, prefix, 0)
    _record_outputs(proc2, prefix2, 50)


def test_a_squatted_cache_root_is_not_read(tmp_path):
    real, planted = _same_size_pair(tmp_path)
    route = Route(body=fixed(real), head_length=len(real), get_length=len(real), etag='"v1"')
    squatted = tmp_path / "squatted"
    with lying_server({"app.db": route}) as server:
        uri = server.url("app.db")
        entry = squatted / "sqlite" / hashlib.sha256(json.dumps([uri, False]).encode()).hexdigest()
        entry.mkdir(parents=True)
        (entry / "database").write_bytes(planted)
        meta = {"uri": uri, "size": len(planted), "validator": 'etag:"v1"', "checked": True}
        (entry / "source.json").write_text(json.dumps(meta))
        for path in [squatted, *squatted.rglob("*")]:
            os.chown(path, 65534, 65534)
            path.chmod(0o700 if path.is_dir() else 0o600)
        proc, prefix = _sqlite_run(tmp_path, uri, {**ALLOW, "TASKBOX_CACHE_DIR": str(squatted)})
    _record_outputs(proc, prefix, 0)
    assert "cache directory is refused" in proc.stderr
