"""The image catalog and its lock: what ``taskbox images`` prints and what the authoring objects put in templates.

The registry side (a push records the lock, ``--check`` asks the registry) is in test_image_registry.py; here the
lock files are written by :func:`taskbox.images.lock.record`, as a push writes them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

import taskbox
from helpers import TASKBOX, run
from taskbox import __version__
from taskbox.authoring import HTTPJobTask, HTTPTask, SQLiteTask, SQLTask
from taskbox.images import VARIANTS, CatalogError, default_image, load_catalog
from taskbox.images.catalog import Catalog, ImageEntry
from taskbox.images.lock import LockEntry, load_lock, record, using_lock

ROOT = Path(__file__).resolve().parents[2]


def _packaged(variant: str) -> str:
    """The default image as the packaged lock has it: pinned once a release committed this version's digest."""
    tagged = f"ghcr.io/taskbox/executor-{variant}:{__version__}-py3.11"
    return load_lock().pinned(variant, __version__) or tagged


def test_every_variant_is_in_the_catalog_with_the_version_tag():
    catalog = load_catalog()
    assert list(catalog.entries) == list(VARIANTS)
    for variant in VARIANTS:
        assert default_image(variant) == _packaged(variant)
        assert default_image(variant).startswith(f"ghcr.io/taskbox/executor-{variant}:{__version__}-py3.11")
    for name in ("catalog.toml", "catalog.lock.toml"):
        assert (ROOT / "images" / name).resolve() == (ROOT / "src" / "taskbox" / "images" / name)


def test_one_reference_per_variant_with_or_without_a_registry():
    catalog = Catalog(
        tag_scheme="{version}-py{python}",
        python="3.11",
        entries={"sql": ImageEntry("sql", "ghcr.io/taskbox/executor-sql", "")},
    )
    assert catalog.reference("sql", "1.2.0") == "ghcr.io/taskbox/executor-sql:1.2.0-py3.11"
    assert catalog.reference("sql", "1.2.0", python="3.13") == "ghcr.io/taskbox/executor-sql:1.2.0-py3.13"
    assert catalog.reference("sql", "1.2.0", "3.13", "127.0.0.1:5000/taskbox/") == (
        "127.0.0.1:5000/taskbox/executor-sql:1.2.0-py3.13"
    )
    assert catalog.repository("sql", "ghcr.io/acme") == "ghcr.io/acme/executor-sql"
    with pytest.raises(CatalogError, match="no image variant 'spark'"):
        catalog.reference("spark", "1.2.0")


DIGEST = "sha256:" + "ab" * 32
OTHER = "sha256:" + "cd" * 32


def _entry(variant: str, digest: str = DIGEST, version: str = __version__) -> LockEntry:
    return LockEntry(variant, f"registry.example:5000/acme/executor-{variant}:{version}-py3.11", digest, version)


def test_a_lock_records_pushes_merges_them_and_writes_through_the_link(tmp_path):
    real = tmp_path / "src" / "catalog.lock.toml"
    link = tmp_path / "images" / "catalog.lock.toml"
    real.parent.mkdir()
    link.parent.mkdir()
    link.symlink_to(real)  # images/catalog.lock.toml -> src/taskbox/images/catalog.lock.toml
    record(link, [_entry("sql"), _entry("base")])
    assert link.is_symlink() and real.is_file()
    first = real.read_text()
    assert first.startswith("# The image lock") and first.index("[variants.base]") < first.index("[variants.sql]")
    record(link, [_entry("sql", OTHER)])  # a second push of one variant keeps the others
    lock = load_lock(link)
    assert lock.entries == {"base": _entry("base"), "sql": _entry("sql", OTHER)}
    assert lock.pinned("sql", __version__) == f"registry.example:5000/acme/executor-sql:{__version__}-py3.11@{OTHER}"
    assert lock.pinned("sql", "0.0.1") is None and lock.pinned("http", __version__) is None
    record(link, [_entry("sql", OTHER)])
    at = first.index("[variants.sql]")
    assert real.read_text() == first[:at] + first[at:].replace(DIGEST, OTHER)  # the same text for the same entries
    assert [p.name for p in real.parent.iterdir()] == ["catalog.lock.toml"]  # no scratch file left


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[variants.base\n", "is not TOML"),
        ('[variants.base]\nreference = "r/x:1"\nversion = "1"\n', "variants.base has no 'digest'"),
        ('[variants.base]\nreference = "r/x:1"\ndigest = "sha256:12"\nversion = "1"\n', "is not sha256:<64 hex>"),
        (f'[variants.base]\nreference = "r/x"\ndigest = "{DIGEST}"\nversion = "1"\n', "is not repository:tag"),
        (f'[variants.base]\nreference = "r/x:1@{DIGEST}"\ndigest = "{DIGEST}"\nversion = "1"\n', "repository:tag"),
    ],
)
def test_a_malformed_lock_is_refused_with_what_is_wrong(tmp_path, text, message):
    path = tmp_path / "catalog.lock.toml"
    path.write_text(text)
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_lock(path)
    proc = run([TASKBOX, "images", "--lock", str(path)])
    assert proc.returncode == 1 and message in proc.stderr


def test_a_missing_explicit_lock_is_an_error(tmp_path):
    with pytest.raises(CatalogError, match="cannot be read"):
        load_lock(tmp_path / "nope.toml")
    with pytest.raises(CatalogError), using_lock(tmp_path / "nope.toml"):
        pass


@taskbox.task
def double(x: int) -> int:
    """A function task (its template's image is the catalog's ``python`` variant)."""
    return 2 * x


def test_authoring_objects_default_to_the_digest_pinned_image_of_the_installed_version(tmp_path):
    lock = tmp_path / "catalog.lock.toml"
    record(lock, [_entry(v) for v in ("sqlite", "sql", "http", "python")] + [_entry("base", OTHER, "0.0.1")])
    pinned = {v: f"registry.example:5000/acme/executor-{v}:{__version__}-py3.11@{DIGEST}" for v in VARIANTS}

    with using_lock(lock):
        for variant in ("sqlite", "sql", "http", "python"):
            assert default_image(variant) == pinned[variant]
        assert default_image("base") == f"ghcr.io/taskbox/executor-base:{__version__}-py3.11"  # another version's
        tasks = {
            "sqlite": SQLiteTask("t.sqlite", "SELECT 1 AS n", uri=str(tmp_path / "x.db"), outputs={"n": int}),
            "sql": SQLTask("t.sql", "SELECT 1 AS n", uri="postgresql://reader@db:5432/sales", outputs={"n": int}),
            "http": HTTPTask("t.http", url="https://example.com/ping"),
        }
        job = HTTPJobTask(
            "t.job", submit_url="https://example.com/jobs", status_url="https://example.com/jobs/{{ .job.id }}"
        )
        for variant, task in tasks.items():
            assert task.to_template().container.image == pinned[variant]
        assert job.to_template().container.image == pinned["http"]
        assert double.template().container.image == pinned["python"]
    assert default_image("sqlite") == _packaged("sqlite")  # the packaged lock again


def test_authoring_objects_default_to_the_catalog_image(tmp_path):
    sqlite = SQLiteTask("t.sqlite", "SELECT 1 AS n", uri=str(tmp_path / "x.db"), outputs={"n": int})
    sql = SQLTask("t.sql", "SELECT 1 AS n", uri="postgresql://reader@db:5432/sales", outputs={"n": int})
    http = HTTPTask("t.http", url="https://example.com/ping")
    assert sqlite.to_template().container.image == default_image("sqlite")
    assert sql.to_template().container.image == default_image("sql")
    assert http.to_template().container.image == default_image("http")
    assert SQLiteTask("t.own", "SELECT 1 AS n", uri="x.db", outputs={"n": int}, image="own:1").image == "own:1"


def test_taskbox_images_prints_the_catalog():
    proc = run([TASKBOX, "images", "--json"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["version"] == __version__ and data["tag_scheme"] == "{version}-py{python}"
    assert {row["variant"]: row["reference"] for row in data["images"]} == {v: default_image(v) for v in VARIANTS}
    assert [row["digest"] for row in data["images"]] == [lock_digest(v) for v in VARIANTS]
    text = run([TASKBOX, "images"])
    assert text.returncode == 0 and default_image("sqlite") in text.stdout
    unpublished = [v for v in VARIANTS if lock_digest(v) is None]  # all of them until a release records digests
    assert text.stdout.count("not published") == (1 if unpublished else 0)
    assert not unpublished or f"{', '.join(unpublished)}; tags only" in text.stdout


def lock_digest(variant: str) -> str | None:
    """The digest the packaged lock records for the installed version."""
    entry = load_lock().entry(variant, __version__)
    return entry.digest if entry else None


def test_taskbox_images_pins_what_the_lock_records_and_check_refuses_what_is_not_published(tmp_path):
    lock = tmp_path / "catalog.lock.toml"
    record(lock, [_entry("sqlite")])
    proc = run([TASKBOX, "images", "--lock", str(lock)])
    assert proc.returncode == 0, proc.stderr
    assert f"  sqlite   {_entry('sqlite').pinned}\n" in proc.stdout
    assert "not published (no digest recorded for " + __version__ + "): base, sql, http, python" in proc.stdout
    data = json.loads(run([TASKBOX, "images", "--json", "--lock", str(lock), "--variant", "sqlite"]).stdout)
    assert data["images"] == [
        {
            "variant": "sqlite",
            "repository": "registry.example:5000/acme/executor-sqlite",
            "tag": f"{__version__}-py3.11",
            "reference": _entry("sqlite").pinned,
            "digest": DIGEST,
            "description": load_catalog().entry("sqlite").description,
        }
    ]
    # Nothing to ask a registry about: a variant without a digest fails the check by itself.
    check = run([TASKBOX, "images", "--check", "--lock", str(lock), "--variant", "sql", "--variant", "http"])
    assert check.returncode == 1 and "[not published]" in check.stdout
    assert "sql (ghcr.io/taskbox/executor-sql:" in check.stderr and "http (" in check.stderr


def test_flytekit_command_names_are_aliases():
    for argv in (["taskbox", "version"], ["pyflyte-execute", "--help"]):
        proc = run([TASKBOX, *argv])
        assert proc.returncode == 0, proc.stderr
    assert run([TASKBOX, "pyflyte-execute", "--help"]).stdout.startswith("usage: taskbox execute")


def test_no_docker_engine_is_a_failure_that_says_how_to_start_one(monkeypatch, tmp_path):
    from taskbox.images import DockerUnavailable
    from taskbox.images import build as sdk

    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-such.sock'}")
    with pytest.raises(DockerUnavailable) as info:
        sdk.docker_client()
    assert "make docker-engine" in str(info.value) and "--bridge=none" in str(info.value)
    assert info.value.code == "SYSTEM:DockerUnavailable"


@pytest.mark.parametrize(
    ("repository", "url"),
    [
        ("ghcr.io/taskbox/executor-sql", "https://ghcr.io/v2/taskbox/executor-sql"),
        ("127.0.0.1:5000/taskbox/executor-sql", "http://127.0.0.1:5000/v2/taskbox/executor-sql"),
        ("localhost:5000/executor-sql", "http://localhost:5000/v2/executor-sql"),
        ("[::1]:5000/a/b", "http://[::1]:5000/v2/a/b"),
        ("registry.example:443/a/b", "https://registry.example:443/v2/a/b"),
        ("python", "https://registry-1.docker.io/v2/library/python"),
        ("acme/executor-sql", "https://registry-1.docker.io/v2/acme/executor-sql"),
        ("docker.io/acme/executor-sql", "https://registry-1.docker.io/v2/acme/executor-sql"),
    ],
)
def test_registry_names_are_split_as_docker_splits_them(repository, url):
    """The API URL of a repository: Docker's host rule, Docker Hub's names, plain HTTP on loopback only."""
    from taskbox.images.registry import parse_name

    assert parse_name(repository).base_url == url


def test_check_names_a_registry_that_does_not_answer(tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lock = tmp_path / "catalog.lock.toml"
    reference = f"127.0.0.1:{port}/taskbox/executor-base:{__version__}-py3.11"
    record(lock, [LockEntry("base", reference, DIGEST, __version__)])
    proc = run([TASKBOX, "images", "--check", "--lock", str(lock), "--variant", "base"])
    assert proc.returncode == 1
    assert f"base ({reference}@{DIGEST}): error: " in proc.stderr
    assert f"registry 127.0.0.1:{port}: HEAD http://127.0.0.1:{port}/v2/taskbox/executor-base/manifests/" in proc.stderr


_DOC_REFERENCE = re.compile(r"ghcr\.io/taskbox/executor-([a-z]+):([\w.-]+)(@sha256:[0-9a-f.]+)?")


def test_the_docs_name_the_images_as_the_catalog_does():
    """Every published-image reference in the README, docs/ and the custom-image Dockerfile is the catalog's
    reference for this version (issue 20: a client running the documented tag must not pull another one)."""
    catalog = load_catalog()
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "src/taskbox/images/executor.Dockerfile"]
    found = 0
    for path in texts:
        for match in _DOC_REFERENCE.finditer(path.read_text()):
            variant, tag = match.group(1), match.group(2)
            if path.name == "flyte-contract.md" or set(tag) == {"."}:  # flytekit's images; "..." placeholders
                continue
            found += 1
            expected = catalog.reference(variant, __version__)
            assert f"{catalog.repository(variant)}:{tag}" == expected, f"{path.name}: {match.group(0)}"
    assert found > 10
