"""Extraction: round trips (local and S3), one extraction under concurrency, leftovers redone."""

from __future__ import annotations

import multiprocessing
import os
import threading

import pytest
from bundle_helpers import extract_logging_downloads, make_targz, read_tree, write_tree

from taskbox import storage
from taskbox.bundles import BundleRejected, Limits, fetch_and_extract, upload_bundle
from taskbox.bundles.extract import MARKER

FILES = {"pkg/__init__.py": "", "pkg/mod.py": "def f():\n    return 1\n", "run.sh": "#!/bin/sh\necho hi\n"}


def expected(files=FILES) -> dict[str, bytes]:
    return {k: v.encode() for k, v in files.items()}


def extracted(dest) -> dict[str, bytes]:
    tree = read_tree(dest)
    assert MARKER in tree
    del tree[MARKER]
    return tree


def assert_no_leftovers(parent, base="dest"):
    leftovers = [e for e in os.listdir(parent) if e.startswith(f".{base}.") and not e.endswith(".lock")]
    assert leftovers == []


@pytest.fixture
def bundle(tmp_path):
    src = write_tree(tmp_path / "src", FILES)
    os.chmod(os.path.join(src, "run.sh"), 0o755)
    return upload_bundle(src, str(tmp_path / "store"))


def test_round_trip_local(tmp_path, bundle):
    dest = tmp_path / "work" / "dest"
    assert fetch_and_extract(bundle, str(dest)) == str(dest)
    assert extracted(dest) == expected()
    assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(dest / "pkg" / "mod.py").st_mode & 0o777 == 0o644
    assert os.stat(dest / "pkg").st_mode & 0o777 == 0o755
    assert_no_leftovers(tmp_path / "work")


def test_round_trip_file_uri(tmp_path, bundle):
    dest = tmp_path / "dest"
    fetch_and_extract("file://" + bundle, str(dest))
    assert extracted(dest) == expected()


@pytest.mark.servers
def test_round_trip_s3(tmp_path, s3_server, s3_base):
    src = write_tree(tmp_path / "src", FILES)
    uri = upload_bundle(src, storage.join(s3_base, "bundles"))
    assert uri.startswith("s3://") and uri.endswith(".tar.gz")
    assert upload_bundle(src, storage.join(s3_base, "bundles")) == uri
    dest = tmp_path / "dest"
    assert fetch_and_extract(uri, str(dest)) == str(dest)
    assert extracted(dest) == expected()
    assert_no_leftovers(tmp_path)


def test_second_call_reuses_the_tree(tmp_path, bundle, monkeypatch):
    dest = str(tmp_path / "dest")
    fetch_and_extract(bundle, dest)
    monkeypatch.setattr(storage, "download", lambda *a, **k: pytest.fail("downloaded again"))
    assert fetch_and_extract(bundle, dest) == dest


def test_concurrent_threads_extract_once(tmp_path, bundle, monkeypatch):
    calls = []
    real = storage.download

    def counting(uri, local_path, **kwargs):
        calls.append(uri)
        return real(uri, local_path, **kwargs)

    monkeypatch.setattr(storage, "download", counting)
    dest = str(tmp_path / "dest")
    results, errors = [], []
    barrier = threading.Barrier(6)

    def run():
        barrier.wait()
        try:
            results.append(fetch_and_extract(bundle, dest))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert results == [dest] * 6
    assert len(calls) == 1
    assert extracted(dest) == expected()
    assert_no_leftovers(tmp_path)


def test_concurrent_processes_extract_once(tmp_path, bundle):
    ctx = multiprocessing.get_context("spawn")
    dest = str(tmp_path / "dest")
    log = str(tmp_path / "downloads.log")
    procs = [ctx.Process(target=extract_logging_downloads, args=(bundle, dest, log)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with open(log) as fh:
        assert len(fh.read().split()) == 1
    assert extracted(dest) == expected()
    assert_no_leftovers(tmp_path)


def test_half_extracted_leftovers_are_redone(tmp_path, bundle):
    dest = tmp_path / "dest"
    write_tree(dest, {"pkg/mod.py": "trunc", "stale.py": "old"})  # no marker: never trusted
    write_tree(tmp_path / ".dest.staging-abc123", {"pkg/x.py": "half"})
    (tmp_path / ".dest.download-xyz").write_bytes(b"partial")
    fetch_and_extract(bundle, str(dest))
    assert extracted(dest) == expected()
    assert_no_leftovers(tmp_path)


def test_marker_of_another_bundle_is_redone(tmp_path, bundle):
    dest = tmp_path / "dest"
    write_tree(dest, {"old.py": "x", MARKER: "0" * 32 + ".tar.gz"})
    fetch_and_extract(bundle, str(dest))
    assert extracted(dest) == expected()


def test_compressed_size_checked_before_download(tmp_path, bundle, monkeypatch):
    monkeypatch.setattr(storage, "download", lambda *a, **k: pytest.fail("downloaded an oversized bundle"))
    with pytest.raises(BundleRejected, match="over the limit"):
        fetch_and_extract(bundle, str(tmp_path / "dest"), limits=Limits(max_compressed=10))
    assert not (tmp_path / "dest").exists()


def test_marker_name_is_reserved(tmp_path):
    archive = make_targz(tmp_path / "m.tar.gz", [({"name": MARKER}, b"m.tar.gz")])
    with pytest.raises(BundleRejected, match="reserved"):
        fetch_and_extract(archive, str(tmp_path / "dest"))


def test_failed_extraction_keeps_a_valid_previous_tree_out_of_reach(tmp_path, bundle):
    """A rejected bundle never leaves a marker behind, so nothing half-done is trusted later."""
    bad = make_targz(tmp_path / "bad.tar.gz", [({"name": "ok.py"}, b"ok"), ({"name": "../x"}, b"x")])
    with pytest.raises(BundleRejected):
        fetch_and_extract(bad, str(tmp_path / "dest"))
    assert not (tmp_path / "dest").exists()
    assert fetch_and_extract(bundle, str(tmp_path / "dest"))
    assert extracted(tmp_path / "dest") == expected()


def test_round_trip_without_data_filter(tmp_path, bundle, monkeypatch):
    """Debian's Python 3.11.2 has no ``tarfile.data_filter``: the validated members are written directly."""
    import tarfile

    monkeypatch.delattr(tarfile, "data_filter")
    dest = tmp_path / "dest"
    fetch_and_extract(bundle, str(dest))
    assert extracted(dest) == expected()
    assert os.stat(dest / "run.sh").st_mode & 0o777 == 0o755
    assert os.stat(dest / "pkg" / "mod.py").st_mode & 0o777 == 0o644
