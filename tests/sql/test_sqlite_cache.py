"""The SQLite download cache: strong validators, a private root, capped downloads, the SSRF guard.

Issue 14, items 7 (a same-size change was served stale), 8 (a squatted cache root was trusted),
10 (the download cap trusted HEAD) and 11 (the database URI had no SSRF guard). Remote databases are
served by :mod:`lying_http` on 127.0.0.1 (allowed through ``TASKBOX_HTTP_ALLOW``, except in the SSRF case).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest
import sqltesting

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "storage"))
from lying_http import Route, fixed, lying_server, repeated

from taskbox.net.errors import SsrfBlocked
from taskbox.sql.errors import DatabaseRejected
from taskbox.sql.sqlite import DatabaseCache, FetchLimits, cache_root, fetch_database

NOBODY = 65534


@pytest.fixture(autouse=True)
def allow_loopback(monkeypatch):
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "127.0.0.1")


def _same_size_pair(tmp_path: Path) -> tuple[bytes, bytes]:
    """Two databases of exactly the same size (SQLite files are whole pages) with different rows."""
    first = sqltesting.make_sqlite(tmp_path / "v1.db", rows=50)
    second = str(tmp_path / "v2.db")
    shutil.copy(first, second)
    with sqlite3.connect(second) as conn:
        conn.execute("UPDATE items SET name = upper(name)")
    conn.close()
    one, two = Path(first).read_bytes(), Path(second).read_bytes()
    assert len(one) == len(two) and one != two
    return one, two


def _names(path: str) -> list[str]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        rows = [r[0] for r in conn.execute("SELECT name FROM items ORDER BY id LIMIT 3")]
    conn.close()
    return rows


def _fetch(uri: str, tmp_path: Path, cache: DatabaseCache, **kw):
    return fetch_database(uri, compressed=kw.pop("compressed", False), working_dir=str(tmp_path / "wd"), cache=cache,
                          **kw)  # fmt: skip


# ------------------------------------------------------------------------------------- item 7: validators


def test_a_same_size_change_with_a_new_etag_is_downloaded_again(tmp_path):
    one, two = _same_size_pair(tmp_path)
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='"v1"')
    cache = DatabaseCache(str(tmp_path / "cache"))
    with lying_server({"app.db": route}) as server:
        first = _fetch(server.url("app.db"), tmp_path, cache)
        first.mark_checked()
        assert Path(first.path).read_bytes() == one
        again = _fetch(server.url("app.db"), tmp_path, cache)
        assert again.cached and again.checked, "an unchanged validator is a cache hit"
        route.body, route.etag = fixed(two), '"v2"'
        changed = _fetch(server.url("app.db"), tmp_path, cache)
        assert not changed.cached and not changed.checked, "the check record is keyed by the validator too"
        assert Path(changed.path).read_bytes() == two


def test_a_source_without_a_strong_validator_is_never_served_from_the_cache(tmp_path):
    one, two = _same_size_pair(tmp_path)
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='W/"weak"')
    cache = DatabaseCache(str(tmp_path / "cache"))
    with lying_server({"app.db": route}) as server:
        first = _fetch(server.url("app.db"), tmp_path, cache)
        first.mark_checked()
        route.body = fixed(two)
        second = _fetch(server.url("app.db"), tmp_path, cache)
        assert not second.cached and not second.checked
        assert Path(second.path).read_bytes() == two
        assert [m for m, _ in server.stats.requests].count("GET") == 2


def test_a_source_that_changes_during_the_download_is_not_cached(tmp_path):
    one, _ = _same_size_pair(tmp_path)
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='"v1"')
    cache = DatabaseCache(str(tmp_path / "cache"))

    def body_then_change():
        route.etag = '"v2"'  # the writer replaces the object while this GET is being answered
        yield one

    route.body = body_then_change
    with lying_server({"app.db": route}) as server:
        got = _fetch(server.url("app.db"), tmp_path, cache)
        assert not got.cached and Path(got.path).read_bytes() == one
        assert cache.get(server.url("app.db"), False, 'etag:"v1"') is None, "cached under a validator it may not have"
        assert cache.get(server.url("app.db"), False, 'etag:"v2"') is None


def test_a_local_archive_changed_in_place_is_extracted_again(tmp_path):
    one, two = _same_size_pair(tmp_path)
    archive = tmp_path / "app.zip"

    def write(data: bytes) -> None:
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as zf:
            info = zipfile.ZipInfo("app.db", date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, data)

    write(one)
    cache = DatabaseCache(str(tmp_path / "cache"))
    first = _fetch(str(archive), tmp_path, cache, compressed=True)
    first.mark_checked()
    st = archive.stat()
    write(two)
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert archive.stat().st_size == st.st_size
    second = _fetch(str(archive), tmp_path, cache, compressed=True)
    assert not second.checked and Path(second.path).read_bytes() == two


# ------------------------------------------------------------------------------ item 8: a private root


def _plant(root: Path, uri: str, data: bytes, validator: str) -> None:
    """What another local user could leave in a shared /tmp: an entry marked checked."""
    import hashlib

    entry = root / hashlib.sha256(json.dumps([uri, False]).encode()).hexdigest()
    entry.mkdir(parents=True)
    (entry / "database").write_bytes(data)
    meta = {"uri": uri, "size": len(data), "validator": validator, "checked": True}
    (entry / "source.json").write_text(json.dumps(meta))


def _evil_same_size(tmp_path: Path, size: int) -> bytes:
    evil = sqltesting.make_sqlite(tmp_path / "evil.db", rows=50)
    with sqlite3.connect(evil) as conn:
        conn.execute("UPDATE items SET name = 'planted'")
    conn.close()
    data = Path(evil).read_bytes()
    assert len(data) == size
    return data


@pytest.mark.parametrize("squat", ["other owner", "group writable", "world readable", "symlink"])
def test_a_squatted_default_root_is_never_read(tmp_path, monkeypatch, caplog, squat):
    one, _ = _same_size_pair(tmp_path)
    evil = _evil_same_size(tmp_path, len(one))
    monkeypatch.delenv("TASKBOX_CACHE_DIR", raising=False)
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir()
    shared_tmp.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(shared_tmp))
    base = Path(cache_root()).parent
    assert base == shared_tmp / f"taskbox-cache-{os.getuid()}"
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='"v1"')
    with lying_server({"app.db": route}) as server:
        uri = server.url("app.db")
        if squat == "symlink":
            elsewhere = tmp_path / "elsewhere"
            elsewhere.mkdir(mode=0o700)
            _plant(elsewhere / "sqlite", uri, evil, 'etag:"v1"')
            (elsewhere / "sqlite").chmod(0o700)
            base.symlink_to(elsewhere)
        else:
            base.mkdir(mode=0o700)
            _plant(base / "sqlite", uri, evil, 'etag:"v1"')
            (base / "sqlite").chmod(0o700)
            if squat == "other owner":
                for path in [base, *base.rglob("*")]:
                    os.chown(path, NOBODY, NOBODY, follow_symlinks=False)
            elif squat == "group writable":
                base.chmod(0o770)
            else:
                base.chmod(0o755)
        with caplog.at_level(logging.WARNING, logger="taskbox.sql"):
            got = fetch_database(uri, compressed=False, working_dir=str(tmp_path / "wd"))
        assert not got.checked and not got.cached
        assert Path(got.path).read_bytes() == one
        assert not Path(got.path).is_relative_to(base) and not Path(got.path).is_relative_to(tmp_path / "elsewhere")
        assert "cache directory is refused" in caplog.text


def test_the_default_root_is_created_private(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKBOX_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    one, _ = _same_size_pair(tmp_path)
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='"v1"')
    with lying_server({"app.db": route}) as server:
        got = fetch_database(server.url("app.db"), compressed=False, working_dir=str(tmp_path / "wd"))
    root = Path(cache_root())
    assert Path(got.path).is_relative_to(root)
    for directory in (root.parent, root):
        st = directory.lstat()
        assert st.st_uid == os.geteuid() and (st.st_mode & 0o777) == 0o700
    assert (Path(got.path).stat().st_mode & 0o777) == 0o600


def test_an_entry_not_owned_by_us_is_ignored(tmp_path):
    one, _ = _same_size_pair(tmp_path)
    evil = _evil_same_size(tmp_path, len(one))
    root = tmp_path / "cache"
    cache = DatabaseCache(str(root))
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='"v1"')
    with lying_server({"app.db": route}) as server:
        uri = server.url("app.db")
        root.parent.chmod(0o700)
        root.mkdir(mode=0o700)
        _plant(root, uri, evil, 'etag:"v1"')
        for path in root.rglob("*"):
            os.chown(path, NOBODY, NOBODY)
        got = _fetch(uri, tmp_path, cache)
        assert not got.checked and Path(got.path).read_bytes() == one


# ------------------------------------------------------------------------------- item 10: counted caps


@pytest.mark.parametrize("framing", ["content-length", "chunked", "close"])
def test_the_download_cap_counts_received_bytes(tmp_path, framing):
    big = 16 * 1024 * 1024
    route = Route(body=repeated(big), head_length=1024, framing=framing, get_length=big, etag='"v1"')
    cache = DatabaseCache(str(tmp_path / "cache"))
    with lying_server({"app.db": route}) as server:
        with pytest.raises(DatabaseRejected, match="over the limit") as info:
            _fetch(server.url("app.db"), tmp_path, cache, limits=FetchLimits(max_download_bytes=64 * 1024))
        assert info.value.code == "USER:DatabaseRejected" and not info.value.recoverable
        assert not server.stats.completed.get("app.db")  # no key: it stopped before the body began
    assert not list((tmp_path / "cache").rglob("database"))
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file() and p.stat().st_size > 64 * 1024]


# ---------------------------------------------------------------------------------- item 11: SSRF guard


def test_the_database_uri_goes_through_the_ssrf_guard(tmp_path, monkeypatch):
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW")
    one, _ = _same_size_pair(tmp_path)
    route = Route(body=fixed(one), head_length=len(one), get_length=len(one), etag='"v1"')
    with lying_server({"latest/meta-data/": route}) as server:
        with pytest.raises(SsrfBlocked):
            _fetch(server.url("latest/meta-data/"), tmp_path, DatabaseCache(str(tmp_path / "cache")))
        assert server.stats.requests == []
