"""taskbox.storage dispatch and the local backend's own cases (``file://`` URIs, errors, temp files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskbox import storage
from taskbox.errors import StorageError, StorageNotFound
from taskbox.storage import local


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("/tmp/x", ""),
        ("rel/x", ""),
        ("file:///tmp/x", "file"),
        ("S3://b/k", "s3"),
        ("gcs://b/k", "gcs"),
        ("a/b://c", ""),
    ],
)
def test_protocol_of(uri: str, expected: str) -> None:
    assert storage.protocol_of(uri) == expected


def test_is_local() -> None:
    assert storage.is_local("/x") and storage.is_local("file:///x") and storage.is_local("local://x")
    assert not storage.is_local("s3://b/k") and not storage.is_local("https://h/x")


def test_file_uris_round_trip(tmp_path: Path) -> None:
    uri = f"file://{tmp_path}/a/b.bin"
    storage.write_bytes(uri, b"via file://")
    assert (tmp_path / "a" / "b.bin").read_bytes() == b"via file://"
    assert storage.read_bytes(f"file://localhost{tmp_path}/a/b.bin") == b"via file://"


def test_file_uri_with_a_remote_host_is_refused() -> None:
    with pytest.raises(StorageError) as info:
        storage.read_bytes("file://otherhost/etc/hostname")
    assert info.value.recoverable is False


def test_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    storage.write_bytes(str(tmp_path / "out.pb"), b"x" * 1000)
    assert [p.name for p in tmp_path.iterdir()] == ["out.pb"]


def test_write_into_a_file_parent_fails_cleanly(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"not a directory")
    with pytest.raises(StorageError):
        storage.write_bytes(str(tmp_path / "file" / "child.pb"), b"x")
    assert (tmp_path / "file").read_bytes() == b"not a directory"


def test_recursive_download_of_a_file_is_not_found(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(b"x")
    with pytest.raises(StorageNotFound):
        storage.download(str(tmp_path / "f"), str(tmp_path / "d"), recursive=True)


def test_to_path() -> None:
    assert local.to_path("/a/b") == "/a/b"
    assert local.to_path("file:///a/b%20c") == "/a/b c"
    assert local.to_path("local://a/b") == "a/b"
