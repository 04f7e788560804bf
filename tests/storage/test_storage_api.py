"""The public ``taskbox.storage`` API behaves the same on local disk, S3 (moto) and GCS (the emulator).

Every test here takes ``storage_base`` and so runs three times, once per backend.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskbox import storage
from taskbox.errors import StorageError, StorageNotFound

PAYLOADS = [b"", b"x", bytes(range(256)) * 4096]  # empty, one byte, 1 MiB of every byte value


@pytest.mark.parametrize("payload", PAYLOADS, ids=["empty", "one-byte", "1MiB"])
def test_write_then_read_round_trips(storage_base: str, payload: bytes) -> None:
    uri = storage.join(storage_base, "dir", "blob.bin")
    storage.write_bytes(uri, payload)
    assert storage.read_bytes(uri) == payload
    assert storage.size(uri) == len(payload)
    assert storage.exists(uri)


def test_write_replaces_the_previous_object(storage_base: str) -> None:
    uri = storage.join(storage_base, "outputs.pb")
    storage.write_bytes(uri, b"first version, longer")
    storage.write_bytes(uri, b"second")
    assert storage.read_bytes(uri) == b"second"
    assert storage.size(uri) == 6


def test_read_missing_is_not_found(storage_base: str) -> None:
    with pytest.raises(StorageNotFound) as info:
        storage.read_bytes(storage.join(storage_base, "missing.pb"))
    assert "missing.pb" in str(info.value)
    assert info.value.recoverable is False


def test_size_missing_is_not_found(storage_base: str) -> None:
    with pytest.raises(StorageNotFound):
        storage.size(storage.join(storage_base, "missing.pb"))


def test_exists_is_false_for_missing_and_true_for_prefix(storage_base: str) -> None:
    assert not storage.exists(storage.join(storage_base, "nothing-here"))
    storage.write_bytes(storage.join(storage_base, "sub", "a.txt"), b"a")
    assert storage.exists(storage.join(storage_base, "sub"))


def test_max_size_refuses_larger_objects(storage_base: str) -> None:
    uri = storage.join(storage_base, "inputs.pb")
    storage.write_bytes(uri, b"0123456789")
    assert storage.read_bytes(uri, max_size=10) == b"0123456789"
    with pytest.raises(StorageError) as info:
        storage.read_bytes(uri, max_size=9)
    assert info.value.recoverable is False
    assert "over the limit of 9" in str(info.value)


def test_remove_object_tree_and_missing(storage_base: str) -> None:
    keep = storage.join(storage_base, "ab")
    storage.write_bytes(keep, b"sibling with a shared name prefix")
    storage.write_bytes(storage.join(storage_base, "a"), b"file")
    storage.remove(storage.join(storage_base, "a"))
    assert not storage.exists(storage.join(storage_base, "a"))
    assert storage.read_bytes(keep) == b"sibling with a shared name prefix"

    storage.write_bytes(storage.join(storage_base, "tree", "x"), b"1")
    storage.write_bytes(storage.join(storage_base, "tree", "deep", "y"), b"2")
    storage.remove(storage.join(storage_base, "tree"))
    assert not storage.exists(storage.join(storage_base, "tree", "x"))
    assert not storage.exists(storage.join(storage_base, "tree", "deep", "y"))

    storage.remove(storage.join(storage_base, "never-existed"))  # no error


def test_upload_then_download_a_file(storage_base: str, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(os.urandom(300_000))
    uri = storage.join(storage_base, "files", "blob.bin")
    assert storage.upload(str(src), uri) == uri
    assert storage.size(uri) == 300_000

    dst = tmp_path / "out" / "nested" / "copy.bin"
    assert storage.download(uri, str(dst)) == str(dst)
    assert dst.read_bytes() == src.read_bytes()
    assert [p.name for p in dst.parent.iterdir()] == ["copy.bin"]  # no temporary file left behind


def test_download_replaces_an_existing_file(storage_base: str, tmp_path: Path) -> None:
    uri = storage.join(storage_base, "v.txt")
    storage.write_bytes(uri, b"new")
    dst = tmp_path / "v.txt"
    dst.write_bytes(b"old and longer")
    storage.download(uri, str(dst))
    assert dst.read_bytes() == b"new"


def test_upload_then_download_a_tree(storage_base: str, tmp_path: Path) -> None:
    src = tmp_path / "tree"
    files = {"a.txt": b"a", "sub/b.bin": os.urandom(1000), "sub/deeper/c": b"", "z.txt": b"zz"}
    for rel, data in files.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(data)
    base = storage.join(storage_base, "tree")
    storage.upload(str(src), base, recursive=True)
    for rel, data in files.items():
        assert storage.read_bytes(storage.join(base, rel)) == data

    dst = tmp_path / "copy"
    storage.download(base, str(dst), recursive=True)
    got = {str(p.relative_to(dst)): p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    assert got == files


def test_download_missing_is_not_found(storage_base: str, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFound):
        storage.download(storage.join(storage_base, "nope.bin"), str(tmp_path / "nope.bin"))
    assert not (tmp_path / "nope.bin").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary file either


def test_recursive_download_of_missing_prefix_is_not_found(storage_base: str, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFound):
        storage.download(storage.join(storage_base, "no-such-dir"), str(tmp_path / "d"), recursive=True)


def test_upload_missing_local_file_is_not_found(storage_base: str, tmp_path: Path) -> None:
    with pytest.raises(StorageNotFound):
        storage.upload(str(tmp_path / "absent.bin"), storage.join(storage_base, "absent.bin"))
    assert not storage.exists(storage.join(storage_base, "absent.bin"))


def test_upload_directory_needs_recursive(storage_base: str, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    with pytest.raises(StorageError) as info:
        storage.upload(str(tmp_path / "d"), storage.join(storage_base, "d"))
    assert info.value.recoverable is False
