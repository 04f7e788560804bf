"""Every hostile archive of reliability-security.md section 1 is rejected, and nothing leaks out.

Each case builds its archive in the test, puts a sentinel file next to the destination, and checks:
``BundleRejected`` (USER, non-recoverable, also in the ``error.pb`` document), the sentinel unchanged, no
destination, no staging or download leftovers, and nothing else created outside the destination.
"""

from __future__ import annotations

import gzip
import os
import stat
import tarfile
import tempfile

import pytest
from bundle_helpers import make_many_empty, make_targz, make_zero_bomb, write_tree
from flyteidl.core import errors_pb2, execution_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbox.bundles import BundleRejected, fetch_and_extract, pack
from taskbox.bundles.extract import validate_archive
from taskbox.entrypoint.commit import error_document

SENTINEL = b"do not touch\n"


def reg(name, data=b"x", **fields):
    return ({"name": name, **fields}, data)


def sym(name, target):
    return ({"name": name, "type": tarfile.SYMTYPE, "linkname": target}, None)


def long_symlink_chain():
    """The CVE-2025-4517 shape: nested symlinks whose resolved path exceeds PATH_MAX, then an escape."""
    members = []
    comp = "d" * 247
    steps = "abcdefghijklmnop"
    path = ""
    for i in steps:
        members.append(({"name": os.path.join(path, comp), "type": tarfile.DIRTYPE}, None))
        members.append(sym(os.path.join(path, i), comp))
        path = os.path.join(path, comp)
    link_path = os.path.join(*steps)
    members.append(sym(os.path.join(link_path, "l" * 254), os.path.join(*[".."] * len(steps))))
    members.append(sym("escape", os.path.join(link_path, "l" * 254, "..", "..", "..", "sentinel.txt")))
    members.append(reg("escape", b"overwritten"))
    return members


CASES = {
    "dotdot": lambda: [reg("ok.py"), reg("../../x")],
    "absolute": lambda: [reg("/etc/x")],
    "symlink-to-root-then-through": lambda: [sym("link", "/"), reg("link/x")],
    "hardlink-outside": lambda: [({"name": "h", "type": tarfile.LNKTYPE, "linkname": "../sentinel.txt"}, None)],
    "long-symlink-chain": long_symlink_chain,
    "fifo": lambda: [({"name": "pipe", "type": tarfile.FIFOTYPE}, None)],
    "char-device": lambda: [({"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)],
    "block-device": lambda: [({"name": "sda", "type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}, None)],
    "setuid": lambda: [reg("suid", b"#!/bin/sh\n", mode=0o4755)],
    "setgid-dir": lambda: [({"name": "d", "type": tarfile.DIRTYPE, "mode": 0o2755}, None)],
    "duplicate-then-symlink": lambda: [reg("a.py"), sym("a.py", "/etc/passwd")],
    "duplicate-regular": lambda: [reg("a.py"), reg("./a.py")],
    "backslash": lambda: [reg("..\\..\\x")],
    "long-name": lambda: [reg("a" * 4097)],
    "non-utf8-name": lambda: [reg("bad-\udcff.py")],
}


@pytest.fixture
def layout(tmp_path):
    """(work dir holding dest and sentinel, dest path, archive dir)."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "sentinel.txt").write_bytes(SENTINEL)
    (tmp_path / "archives").mkdir()
    return work, str(work / "dest"), tmp_path / "archives"


def assert_rejected(archive, work, dest):
    before = sorted(os.listdir(work))
    with pytest.raises(BundleRejected) as info:
        fetch_and_extract(str(archive), dest)
    err = info.value
    assert err.code == "USER:BundleRejected" and err.origin == "USER" and err.recoverable is False
    assert err.reason
    doc = error_document(err)
    assert doc.error.code == "USER:BundleRejected"
    assert doc.error.kind == errors_pb2.ContainerError.NON_RECOVERABLE
    assert doc.error.origin == execution_pb2.ExecutionError.USER
    assert (work / "sentinel.txt").read_bytes() == SENTINEL
    assert not os.path.lexists(dest)
    after = sorted(os.listdir(work))
    assert [e for e in after if e not in before] == [".dest.lock"]
    assert not os.path.exists("/etc/x")
    return err


REASONS = {
    "dotdot": "'..'",
    "absolute": "absolute",
    "symlink-to-root-then-through": "links are not allowed",
    "hardlink-outside": "links are not allowed",
    "long-symlink-chain": "links are not allowed",
    "fifo": "not a regular file",
    "char-device": "not a regular file",
    "block-device": "not a regular file",
    "setuid": "setuid",
    "setgid-dir": "setgid",
    "duplicate-then-symlink": "duplicate",
    "duplicate-regular": "duplicate",
    "backslash": "backslash",
    "long-name": "longer than 4096",
    "non-utf8-name": "UTF-8",
}


def dirent(name, **fields):
    return ({"name": name, "type": tarfile.DIRTYPE, **fields}, None)


# Shapes no file system can hold: each used to pass validation and fail while writing (a retried
# SYSTEM:NotADirectoryError/IsADirectoryError/OSError/RecursionError/OverflowError). Run through the real
# ``fast-execute`` by tests/reliability/test_hostile_documents.py.
SHAPES = {
    "file-then-child": lambda: [reg("pkg"), reg("pkg/mod.py")],
    "file-then-grandchild": lambda: [reg("pkg"), dirent("pkg/sub"), reg("pkg/sub/mod.py")],
    "child-then-file": lambda: [reg("pkg/mod.py"), reg("pkg")],
    "dir-then-file-of-the-same-name": lambda: [dirent("pkg/"), reg("pkg")],
    "marker-as-a-directory": lambda: [reg(".taskbox-bundle-complete/x.py")],
    "marker-as-a-directory-entry": lambda: [dirent("./.taskbox-bundle-complete/")],
    "component-over-255-bytes": lambda: [reg("a" * 256)],
    "2000-levels-deep": lambda: [reg("a/" * 2000 + "x.py")],
    "path-past-PATH_MAX-once-extracted": lambda: [reg("/".join(["d" * 250] * 16))],
    "mtime-past-time_t": lambda: [reg("x.py", mtime=10**30)],
}
SHAPE_REASONS = {
    "file-then-child": "used as a directory",
    "file-then-grandchild": "used as a directory",
    "child-then-file": "a directory of that name",
    "dir-then-file-of-the-same-name": "duplicate",
    "marker-as-a-directory": "reserved",
    "marker-as-a-directory-entry": "reserved",
    "component-over-255-bytes": "255 bytes",
    "2000-levels-deep": "levels deep",
    "path-past-PATH_MAX-once-extracted": "too long once extracted",
    "mtime-past-time_t": "modification time",
}


def shape_archive(path, case: str) -> str:
    """The archive of one :data:`SHAPES` case (PAX, so long names and big times are carried as such)."""
    return make_targz(path, SHAPES[case](), format=tarfile.PAX_FORMAT)


@pytest.mark.parametrize("case", sorted(SHAPES))
def test_impossible_shape_is_rejected_before_anything_is_written(layout, case, monkeypatch):
    work, dest, archives = layout
    archive = shape_archive(archives / f"{case}.tar.gz", case)
    written = []
    monkeypatch.setattr(tempfile, "mkdtemp", lambda *a, **k: written.append(a) or pytest.fail("staging created"))
    err = assert_rejected(archive, work, dest)
    assert SHAPE_REASONS[case] in err.reason, err.reason
    assert not written
    with pytest.raises(BundleRejected):  # the standalone validator too, told where the tree will go
        validate_archive(archive, root=os.path.join(work, ".dest.staging-12345678"))


def test_every_shape_has_a_reason():
    assert set(SHAPE_REASONS) == set(SHAPES)


def test_possible_shapes_still_extract(tmp_path):
    members = [
        reg("pkg/mod.py", b"m"),
        dirent("pkg"),  # an explicit entry for a directory a file already implied
        dirent("empty/"),
        reg("pkg/sub/.taskbox-bundle-complete", b"not the marker"),  # only the top-level name is reserved
        reg("A.py", b"upper"),
        reg("a.py", b"lower"),  # distinct on the (case-sensitive) file systems bundles are extracted on
        reg("/".join(["d"] * 100) + "/deep.py", b"deep"),
        reg("old.py", b"o", mtime=0),
    ]
    archive = make_targz(tmp_path / "ok.tar.gz", members, format=tarfile.PAX_FORMAT)
    dest = fetch_and_extract(archive, str(tmp_path / "dest"))
    assert open(os.path.join(dest, "pkg", "sub", ".taskbox-bundle-complete"), "rb").read() == b"not the marker"
    assert open(os.path.join(dest, "a.py"), "rb").read() == b"lower"
    assert os.path.isdir(os.path.join(dest, "empty"))


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_member_is_rejected(layout, case):
    work, dest, archives = layout
    fmt = tarfile.PAX_FORMAT if case == "long-name" else tarfile.GNU_FORMAT
    archive = make_targz(archives / f"{case}.tar.gz", CASES[case](), format=fmt)
    err = assert_rejected(archive, work, dest)
    assert REASONS[case] in err.reason


def test_every_case_has_a_reason():
    assert set(REASONS) == set(CASES)


def test_zero_bomb_is_rejected_early(layout):
    work, dest, archives = layout
    archive = make_zero_bomb(archives / "bomb.tar.gz")
    assert os.path.getsize(archive) < 2 * 1024**2
    err = assert_rejected(archive, work, dest)
    assert err.member == "zeros.bin"


def test_two_hundred_thousand_empty_files_are_rejected(layout):
    work, dest, archives = layout
    archive = make_many_empty(archives / "many.tar.gz")
    err = assert_rejected(archive, work, dest)
    assert "100000" in err.reason


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.99])
def test_truncated_gzip_is_rejected(layout, tmp_path, keep):
    work, dest, archives = layout
    src = write_tree(tmp_path / "src", {f"m{i}.py": os.urandom(2000).hex() for i in range(20)})
    data = pack(src)
    archive = archives / "truncated.tar.gz"
    archive.write_bytes(data[: int(len(data) * keep)])
    err = assert_rejected(archive, work, dest)
    assert "truncated or corrupt" in err.reason


def test_corrupt_gzip_is_rejected(layout, tmp_path):
    work, dest, archives = layout
    data = bytearray(pack(write_tree(tmp_path / "src", {"a.py": "a" * 5000})))
    data[len(data) // 2] ^= 0xFF
    archive = archives / "corrupt.tar.gz"
    archive.write_bytes(bytes(data))
    assert_rejected(archive, work, dest)


def test_not_gzip_is_rejected(layout):
    work, dest, archives = layout
    archive = archives / "plain.tar.gz"
    archive.write_bytes(b"not an archive at all")
    assert_rejected(archive, work, dest)


def test_ratio_cap_stops_a_smaller_bomb(tmp_path):
    from taskbox.bundles import Limits

    archive = make_zero_bomb(tmp_path / "small.tar.gz", size=8 * 1024**2)
    limits = Limits(ratio_floor=1024**2, max_ratio=100)
    with pytest.raises(BundleRejected, match="ratio"):
        validate_archive(archive, limits)


def test_trailing_garbage_after_archive_is_capped(tmp_path):
    from taskbox.bundles import Limits

    src = write_tree(tmp_path / "src", {"a.py": "a"})
    data = gzip.decompress(pack(src)) + bytes(4 * 1024**2)
    archive = tmp_path / "trailing.tar.gz"
    archive.write_bytes(gzip.compress(data))
    with pytest.raises(BundleRejected, match="after the end"):
        validate_archive(str(archive), Limits(max_trailing=1024**2))


def test_validate_accepts_what_pack_builds(tmp_path):
    src = write_tree(tmp_path / "src", {"a/b.py": "b", "c.py": "c"})
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(pack(src))
    assert validate_archive(str(archive)) == ["a", "a/b.py", "c.py"]


def test_extracted_tree_has_only_files_and_dirs(tmp_path):
    src = write_tree(tmp_path / "src", {"a/b.py": "b"})
    archive = tmp_path / "ok.tar.gz"
    archive.write_bytes(pack(src))
    dest = fetch_and_extract(str(archive), str(tmp_path / "dest"))
    for dirpath, dirs, files in os.walk(dest):
        for name in dirs + files:
            mode = os.lstat(os.path.join(dirpath, name)).st_mode
            assert stat.S_ISDIR(mode) or stat.S_ISREG(mode)
            assert not mode & (stat.S_ISUID | stat.S_ISGID)


NAME_CHARS = st.one_of(st.sampled_from(list("./\\a:é\x00")), st.characters())


@settings(max_examples=300, deadline=None)
@given(st.text(NAME_CHARS, max_size=40))
def test_random_names_are_rejected_or_resolve_inside(name):
    from taskbox.bundles.extract import _check_name

    root = os.path.join(os.sep, "bundle-root")
    try:
        normal = _check_name(name, set())
    except BundleRejected:
        return
    resolved = os.path.normpath(os.path.join(root, *normal.split("/")))
    assert resolved.startswith(root + os.sep)
    assert "\x00" not in normal and "\\" not in normal


@pytest.mark.parametrize("member", ["../../x", "/etc/x", "ok.py"])
def test_zip_archives_are_rejected(layout, member):
    """Bundles are tar.gz only: a zip (with ``..``, absolute or harmless names) is never opened as one."""
    import zipfile

    work, dest, archives = layout
    archive = archives / "bundle.tar.gz"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr(member, b"x")
        zf.writestr("ok2.py", b"y")
    err = assert_rejected(archive, work, dest)
    assert "truncated or corrupt" in err.reason
