"""Packing: deterministic bytes, ignore rules, symlink handling, content-addressed upload."""

from __future__ import annotations

import gzip
import io
import os
import tarfile

import pytest
from bundle_helpers import read_tree, write_tree

from taskbox import storage
from taskbox.bundles import BundleRejected, bundle_name, pack, upload_bundle
from taskbox.bundles.pack import IgnoreRules, iter_files


def names(data: bytes) -> list[str]:
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        return [m.name for m in tf.getmembers()]


def test_same_tree_twice_gives_same_bytes(tmp_path):
    files = {"pkg/__init__.py": "", "pkg/mod.py": "x = 1\n", "run.sh": "#!/bin/sh\n", "data/b.txt": "b"}
    a = write_tree(tmp_path / "a", files)
    b = write_tree(tmp_path / "b", dict(reversed(list(files.items()))))
    os.chmod(os.path.join(a, "run.sh"), 0o755)
    os.chmod(os.path.join(b, "run.sh"), 0o700)  # any exec bit -> 0o755
    os.chmod(os.path.join(b, "pkg", "mod.py"), 0o600)
    first = pack(a)
    assert pack(a) == first
    assert pack(b) == first
    assert bundle_name(first) == bundle_name(pack(b))


def test_mtime_changes_do_not_change_bytes(tmp_path):
    src = write_tree(tmp_path / "src", {"a.py": "a", "sub/b.py": "b"})
    before = pack(src)
    for path in ("a.py", "sub/b.py", "sub", "."):
        os.utime(os.path.join(src, *path.split("/")), (1, 1_000_000))
    assert pack(src) == before


def test_headers_are_normalised(tmp_path):
    src = write_tree(tmp_path / "src", {"b.py": "b", "a/x.sh": "x", "a/y.py": "y"})
    os.chmod(os.path.join(src, "a", "x.sh"), 0o775)
    os.chmod(os.path.join(src, "b.py"), 0o664)
    data = pack(src)
    assert data[4:8] == b"\x00\x00\x00\x00"  # gzip header mtime
    assert not data[3] & 0x08  # no FNAME in the gzip header
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        members = tf.getmembers()
    assert [m.name for m in members] == ["a", "a/x.sh", "a/y.py", "b.py"]
    modes = {m.name: m.mode for m in members}
    assert modes == {"a": 0o755, "a/x.sh": 0o755, "a/y.py": 0o644, "b.py": 0o644}
    for m in members:
        assert (m.mtime, m.uid, m.gid, m.uname, m.gname) == (0, 0, 0, "", "")


def test_bundle_name_is_content_hash():
    name = bundle_name(b"abc")
    assert name == "ba7816bf8f01cfea414140de5dae2223.tar.gz"


def test_ignore_rules(tmp_path):
    src = write_tree(
        tmp_path / "src",
        {
            ".gitignore": "# comment\n*.log\n!keep.log\nbuild/\n/top.txt\ndocs/**/*.tmp\n!.git\n",
            ".taskboxignore": "secret*\n",
            "keep.log": "k",
            "drop.log": "d",
            "build/out.bin": "o",
            "sub/build": "a file named build is kept (dir-only rule)",
            "top.txt": "anchored: ignored at the root",
            "sub/top.txt": "kept below the root",
            "docs/a/b/x.tmp": "t",
            "docs/a/b/x.md": "m",
            "secret.env": "s",
            ".git/config": "g",
            "pkg/__pycache__/m.cpython-311.pyc": "c",
            "pkg/m.pyc": "c",
            "pkg/m.py": "m",
            ".venv-test/bin/python": "v",
            ".venv/lib/x": "v",
        },
    )
    got = set(names(pack(src)))
    assert {m for m in got if "." in m.rsplit("/", 1)[-1] or m == "sub/build"} == {
        ".gitignore",
        ".taskboxignore",
        "keep.log",
        "sub/build",
        "sub/top.txt",
        "docs/a/b/x.md",
        "pkg/m.py",
    }
    assert "build" not in got and ".git" not in got and "pkg/__pycache__" not in got


def test_ignore_rules_matcher():
    rules = IgnoreRules(["*.py[co]", "/a/b", "**/logs", "x/**", "\\!bang", "dir/"])
    assert rules.ignored("m.pyc", False) and rules.ignored("p/m.pyo", False)
    assert rules.ignored("a/b", True) and not rules.ignored("c/a/b", True)
    assert rules.ignored("deep/er/logs", True) and rules.ignored("logs", False)
    assert rules.ignored("x/y/z", False) and not rules.ignored("x", True)
    assert rules.ignored("!bang", False)
    assert rules.ignored("q/dir", True) and not rules.ignored("q/dir", False)


def test_symlinks_inside_are_dereferenced(tmp_path):
    src = write_tree(tmp_path / "src", {"pkg/real.py": "r = 1\n", "lib/u.py": "u"})
    os.symlink(os.path.join("pkg", "real.py"), os.path.join(src, "alias.py"))
    os.symlink(os.path.join(src, "lib"), os.path.join(src, "pkg", "lib2"))  # absolute, but inside
    data = pack(src)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tf:
        members = {m.name: m for m in tf.getmembers()}
        assert members["alias.py"].isreg()
        assert tf.extractfile("alias.py").read() == b"r = 1\n"
        assert members["pkg/lib2"].isdir() and members["pkg/lib2/u.py"].isreg()
    assert not any(m.issym() or m.islnk() for m in members.values())


def test_symlink_outside_is_rejected(tmp_path):
    outside = write_tree(tmp_path / "outside", {"secret": "s"})
    src = write_tree(tmp_path / "src", {"a.py": "a"})
    os.symlink(os.path.join(outside, "secret"), os.path.join(src, "leak"))
    with pytest.raises(BundleRejected) as info:
        pack(src)
    assert info.value.member == "leak" and "outside" in info.value.reason
    assert info.value.code == "USER:BundleRejected" and not info.value.recoverable


def test_symlink_outside_but_ignored_is_skipped(tmp_path):
    src = write_tree(tmp_path / "src", {"a.py": "a", ".gitignore": "leak\n"})
    os.symlink("/", os.path.join(src, "leak"))
    assert "leak" not in names(pack(src))


@pytest.mark.parametrize("kind", ["dangling", "cycle", "relative-escape"])
def test_bad_symlinks_are_rejected(tmp_path, kind):
    src = write_tree(tmp_path / "src", {"d/a.py": "a"})
    if kind == "dangling":
        os.symlink("missing.py", os.path.join(src, "d", "l"))
    elif kind == "cycle":
        os.symlink("..", os.path.join(src, "d", "up"))
    else:
        os.symlink(os.path.join("..", "..", "outside"), os.path.join(src, "d", "l"))
    with pytest.raises(BundleRejected):
        pack(src)


def test_fifo_in_tree_is_rejected(tmp_path):
    src = write_tree(tmp_path / "src", {"a.py": "a"})
    os.mkfifo(os.path.join(src, "pipe"))
    with pytest.raises(BundleRejected, match="pipe"):
        pack(src)


def test_iter_files_lists_sorted_entries(tmp_path):
    src = write_tree(tmp_path / "src", {"b/c.py": "", "a.py": ""})
    assert [(rel, is_dir) for rel, _p, is_dir in iter_files(src)] == [("a.py", False), ("b", True), ("b/c.py", False)]


def test_upload_is_content_addressed_and_skips_existing(tmp_path, monkeypatch):
    src = write_tree(tmp_path / "src", {"a.py": "a"})
    store = str(tmp_path / "store")
    uri = upload_bundle(src, store)
    assert os.path.basename(uri) == bundle_name(pack(src))
    assert storage.read_bytes(uri) == pack(src)
    writes = []
    real_write = storage.write_bytes
    monkeypatch.setattr(storage, "write_bytes", lambda u, d: (writes.append(u), real_write(u, d)))
    assert upload_bundle(src, store) == uri
    assert writes == []
    with open(uri, "wb") as fh:  # same name, wrong size: rewritten
        fh.write(b"short")
    assert upload_bundle(src, store) == uri
    assert writes == [uri]
    assert gzip.decompress(storage.read_bytes(uri))
    assert read_tree(src) == {"a.py": b"a"}
