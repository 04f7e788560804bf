"""``taskbox bundle SRC_DIR --to URI``, run as the real CLI: one URI on stdout, typed errors, no upload on dry runs."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from helpers import TASKBOX, run, subprocess_env
from taskbox import storage
from taskbox.bundles import bundle_name, pack

FILES = {"pkg/__init__.py": "", "pkg/mod.py": "def f():\n    return 1\n", "junk.log": "x", ".gitignore": "*.log\n"}


@pytest.fixture
def src(tmp_path) -> Path:
    root = tmp_path / "src"
    for rel, text in FILES.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_prints_one_content_addressed_uri_and_uploads_once(tmp_path, src):
    store = tmp_path / "store"
    first = run([TASKBOX, "bundle", str(src), "--to", str(store)])
    assert first.returncode == 0, first.stderr
    expected = os.path.join(str(store), bundle_name(pack(str(src))))
    assert first.stdout == expected + "\n"
    assert Path(expected).read_bytes() == pack(str(src))
    assert "uploaded" in first.stderr

    second = run([TASKBOX, "bundle", str(src), "--to", str(store)])
    assert second.stdout == first.stdout
    assert "already present, not uploaded" in second.stderr


def test_relative_destination_is_printed_absolute(tmp_path, src):
    proc = subprocess.run([TASKBOX, "bundle", "src", "--to", "store"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, env=subprocess_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip()
    assert uri == os.path.join(str(tmp_path), "store", bundle_name(pack(str(src))))
    assert os.path.isfile(uri)


def test_list_shows_what_would_be_packed_and_uploads_nothing(tmp_path, src):
    proc = run([TASKBOX, "bundle", str(src), "--list", "--to", str(tmp_path / "store")])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [".gitignore", "pkg/", "pkg/__init__.py", "pkg/mod.py"]
    assert not (tmp_path / "store").exists()


def test_dry_run_prints_the_uri_and_uploads_nothing(tmp_path, src):
    proc = run([TASKBOX, "bundle", str(src), "--to", str(tmp_path / "store"), "--dry-run"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == os.path.join(str(tmp_path / "store"), bundle_name(pack(str(src)))) + "\n"
    assert not (tmp_path / "store").exists()


@pytest.mark.servers
@pytest.mark.parametrize("store", ["s3", "azure"])
def test_uploads_to_an_object_store(src, store, request):
    base = request.getfixturevalue(f"{store}_base")
    proc = run([TASKBOX, "bundle", str(src), "--to", storage.join(base, "bundles")])
    assert proc.returncode == 0, proc.stderr
    uri = proc.stdout.strip()
    assert uri == storage.join(base, "bundles", bundle_name(pack(str(src))))
    assert storage.read_bytes(uri) == pack(str(src))


def test_missing_source_dir_is_a_typed_error(tmp_path):
    proc = run([TASKBOX, "bundle", str(tmp_path / "nope"), "--to", str(tmp_path / "store")])
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "USER:BundleRejected" in proc.stderr and "is not a directory" in proc.stderr


def test_unwritable_local_destination_is_a_typed_error(tmp_path, src):
    blocker = tmp_path / "file"
    blocker.write_text("mine")
    proc = run([TASKBOX, "bundle", str(src), "--to", str(blocker / "sub")])
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "SYSTEM:StorageError" in proc.stderr
    assert blocker.read_text() == "mine"


@pytest.mark.servers
@pytest.mark.parametrize("to", ["s3://no-such-bucket-taskbox/bundles", "abfs://no-such-container-taskbox/bundles"])
def test_missing_bucket_is_a_typed_error(src, s3_server, azure_server, to):
    proc = run([TASKBOX, "bundle", str(src), "--to", to])
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert "taskbox bundle: SYSTEM:Storage" in proc.stderr


def test_to_is_required_without_list(src):
    proc = run([TASKBOX, "bundle", str(src)])
    assert proc.returncode == 2
    assert "--to URI is required" in proc.stderr


def test_source_with_an_outside_symlink_is_refused(tmp_path, src):
    (src / "escape").symlink_to("/etc")
    proc = run([TASKBOX, "bundle", str(src), "--to", str(tmp_path / "store")])
    assert proc.returncode == 1
    assert "symlink points outside the source tree" in proc.stderr
    assert not (tmp_path / "store").exists()
