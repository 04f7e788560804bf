"""Database archives: exactly one regular file comes out, nothing else is ever written."""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile

import pytest

from helpers import write_tar
from taskbox.sql.archives import ArchiveLimits, extract_single_file, is_archive
from taskbox.sql.errors import DatabaseRejected

PAYLOAD = b"SQLite format 3\x00" + b"x" * 1000


def make_tar(path, members, mode="w:gz"):
    """members: (TarInfo fields dict, bytes or None)."""
    return write_tar(path, members, mode)


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data, mode in members:
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED
            if mode is not None:
                info.external_attr = mode << 16
            zf.writestr(info, data)
    return str(path)


@pytest.fixture
def sentinel(tmp_path):
    """A file outside the destination that no archive may touch."""
    path = tmp_path / "sentinel"
    path.write_bytes(b"untouched")
    yield path
    assert path.read_bytes() == b"untouched"


def leftovers(directory):
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@pytest.mark.parametrize("kind", ["zip", "tar.gz", "tar.xz", "tar"])
def test_one_file_is_extracted(tmp_path, kind):
    if kind == "zip":
        archive = make_zip(tmp_path / "db.zip", [("dir/", b"", stat.S_IFDIR | 0o755), ("dir/items.db", PAYLOAD, None)])
    else:
        mode = {"tar.gz": "w:gz", "tar.xz": "w:xz", "tar": "w"}[kind]
        archive = make_tar(
            tmp_path / f"db.{kind}",
            [({"name": "dir", "type": tarfile.DIRTYPE}, None), ({"name": "dir/items.db"}, PAYLOAD)],
            mode,
        )
    assert is_archive(archive)
    dest = tmp_path / "out" / "database"
    assert extract_single_file(archive, str(dest)) == str(dest)
    assert dest.read_bytes() == PAYLOAD
    assert leftovers(tmp_path / "out") == ["database"]


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([({"name": "../../x"}, PAYLOAD)], "climbs out"),
        ([({"name": "/etc/x"}, PAYLOAD)], "absolute path"),
        ([({"name": "a/../../x"}, PAYLOAD)], "climbs out"),
        (
            [({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/"}, None), ({"name": "link/x"}, PAYLOAD)],
            "is a link",
        ),
        ([({"name": "hard", "type": tarfile.LNKTYPE, "linkname": "/etc/passwd"}, None)], "is a link"),
        ([({"name": "fifo", "type": tarfile.FIFOTYPE}, None)], "not a regular file"),
        ([({"name": "dev", "type": tarfile.CHRTYPE}, None)], "not a regular file"),
        ([({"name": "suid", "mode": 0o4755}, PAYLOAD)], "setuid"),
        ([({"name": "a.db"}, PAYLOAD), ({"name": "a.db"}, PAYLOAD)], "more than once"),
        ([({"name": "a.db"}, PAYLOAD), ({"name": "b.db"}, PAYLOAD)], "exactly one file; this archive holds 2"),
        ([({"name": "dir", "type": tarfile.DIRTYPE}, None)], "holds 0"),
        ([({"name": "back\\slash"}, PAYLOAD)], "backslash"),
    ],
)
def test_hostile_tar_members_are_rejected(tmp_path, sentinel, members, match):
    archive = make_tar(tmp_path / "bad.tar.gz", members)
    out = tmp_path / "out"
    with pytest.raises(DatabaseRejected, match=match):
        extract_single_file(archive, str(out / "database"))
    assert leftovers(out) == []


@pytest.mark.parametrize(
    ("members", "match"),
    [
        ([("../evil.db", PAYLOAD, None)], "climbs out"),
        ([("/abs.db", PAYLOAD, None)], "absolute path"),
        ([("a.db", PAYLOAD, None), ("b.db", PAYLOAD, None)], "exactly one file"),
        ([("link", b"/etc/passwd", stat.S_IFLNK | 0o777)], "not a regular file"),
        ([("a.db", PAYLOAD, stat.S_IFREG | 0o6755)], "setuid"),
    ],
)
def test_hostile_zip_members_are_rejected(tmp_path, sentinel, members, match):
    archive = make_zip(tmp_path / "bad.zip", members)
    out = tmp_path / "out"
    with pytest.raises(DatabaseRejected, match=match):
        extract_single_file(archive, str(out / "database"))
    assert leftovers(out) == []


def test_size_cap_applies_to_declared_and_streamed_bytes(tmp_path):
    big = b"\x00" * (4 * 1024 * 1024)  # compresses to a few KiB: a small bomb
    archive = make_zip(tmp_path / "bomb.zip", [("zeros.db", big, None)])
    assert os.path.getsize(archive) < 64 * 1024
    with pytest.raises(DatabaseRejected, match="over the limit"):
        extract_single_file(archive, str(tmp_path / "out" / "db"), ArchiveLimits(max_bytes=1024 * 1024))
    # A tar header that lies about the size is caught while streaming.
    tar = make_tar(tmp_path / "bomb.tar.gz", [({"name": "zeros.db"}, big)])
    with pytest.raises(DatabaseRejected, match="over the limit|past the limit"):
        extract_single_file(tar, str(tmp_path / "out" / "db"), ArchiveLimits(max_bytes=1024 * 1024))
    assert leftovers(tmp_path / "out") == []


def test_member_count_cap(tmp_path):
    members = [({"name": f"d{i}", "type": tarfile.DIRTYPE}, None) for i in range(50)] + [({"name": "a.db"}, PAYLOAD)]
    archive = make_tar(tmp_path / "many.tar", members, "w")
    with pytest.raises(DatabaseRejected, match="more than 10 members"):
        extract_single_file(archive, str(tmp_path / "db"), ArchiveLimits(max_members=10))


def test_truncated_and_non_archives_are_rejected(tmp_path):
    archive = make_tar(tmp_path / "db.tar.gz", [({"name": "a.db"}, os.urandom(200_000))])
    data = open(archive, "rb").read()
    (tmp_path / "cut.tar.gz").write_bytes(data[: len(data) // 2])
    with pytest.raises(DatabaseRejected):
        extract_single_file(str(tmp_path / "cut.tar.gz"), str(tmp_path / "out" / "db"))
    (tmp_path / "plain.db").write_bytes(PAYLOAD)
    with pytest.raises(DatabaseRejected, match="neither a zip nor a tar"):
        extract_single_file(str(tmp_path / "plain.db"), str(tmp_path / "out" / "db"))
    assert leftovers(tmp_path / "out") == []
