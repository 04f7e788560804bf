"""Database archives: exactly one regular file comes out, nothing else is ever written."""

from __future__ import annotations

import os
import stat
import tarfile
import zipfile

import pytest
import sqltesting

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


# ------------------------------------------------------------------------------------ decompression bombs

GIB = 1024**3


@pytest.mark.parametrize("kind", sqltesting.BOMB_KINDS)
def test_a_bomb_stops_at_its_header_under_the_default_caps(tmp_path, kind):
    """1 GiB of zeros behind a valid SQLite header, a few KiB compressed: refused before any byte is written."""
    archive = sqltesting.make_bomb(tmp_path / f"bomb.{kind}", kind, GIB)
    assert os.path.getsize(archive) < 2 * 1024 * 1024
    out = tmp_path / "out"
    with pytest.raises(DatabaseRejected, match=r"declares 1073741824 bytes, more than 200 times .* decompression bomb"):
        extract_single_file(archive, str(out / "database"))
    assert leftovers(out) == []


@pytest.mark.parametrize("kind", sqltesting.BOMB_KINDS)
def test_the_ratio_cap_holds_under_the_byte_cap(tmp_path, kind):
    archive = sqltesting.make_bomb(tmp_path / f"bomb.{kind}", kind, 64 * 1024 * 1024)
    limits = ArchiveLimits(ratio_floor=1024 * 1024, max_ratio=10)
    with pytest.raises(DatabaseRejected, match="more than 10 times"):
        extract_single_file(archive, str(tmp_path / "out" / "database"), limits)
    assert leftovers(tmp_path / "out") == []
    # Under the ratio (and the floor) the same shape is an ordinary database file.
    small = sqltesting.make_bomb(tmp_path / f"small.{kind}", kind, 512 * 1024)
    dest = extract_single_file(small, str(tmp_path / "ok" / "database"), limits)
    assert os.path.getsize(dest) == 512 * 1024


@pytest.mark.parametrize("kind", [*sqltesting.BOMB_KINDS, "tar"])
def test_a_member_that_is_not_a_database_is_refused_by_its_first_bytes(tmp_path, kind):
    if kind == "tar":
        archive = make_tar(tmp_path / "db.tar", [({"name": "a.db"}, b"PK\x03\x04" + bytes(4096))], "w")
    else:
        archive = sqltesting.make_bomb(tmp_path / f"zeros.{kind}", kind, 4 * 1024 * 1024, head=bytes(16))
    out = tmp_path / "out"
    with pytest.raises(DatabaseRejected, match="is not a SQLite 3 database"):
        extract_single_file(archive, str(out / "database"))
    assert leftovers(out) == []


def test_tar_header_bytes_count_against_the_cap(tmp_path):
    """A pax header of 8 MiB (tarfile reads it whole into memory) is stopped by the count of decompressed bytes."""
    import io

    archive = tmp_path / "pax.tar.gz"
    with tarfile.open(archive, "w:gz", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("a.db")
        info.size = len(PAYLOAD)
        info.pax_headers = {"comment": "x" * (8 * 1024 * 1024)}
        tf.addfile(info, io.BytesIO(PAYLOAD))
    assert os.path.getsize(archive) < 64 * 1024
    limits = ArchiveLimits(ratio_floor=1024 * 1024, max_members=10)
    with pytest.raises(DatabaseRejected, match="tar stream expands past"):
        extract_single_file(str(archive), str(tmp_path / "out" / "database"), limits)
    assert leftovers(tmp_path / "out") == []
