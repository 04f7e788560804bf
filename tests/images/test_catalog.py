"""The image catalog: what ``taskbox images`` prints and what the authoring objects put in templates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import run
from taskbox import __version__
from taskbox.authoring import HTTPTask, SQLiteTask, SQLTask
from taskbox.images import VARIANTS, CatalogError, default_image, load_catalog
from taskbox.images.catalog import Catalog, ImageEntry

ROOT = Path(__file__).resolve().parents[2]


def test_every_variant_is_in_the_catalog_with_the_version_tag():
    catalog = load_catalog()
    assert list(catalog.entries) == list(VARIANTS)
    for variant in VARIANTS:
        assert default_image(variant) == f"ghcr.io/taskbox/executor-{variant}:{__version__}-py3.12"
    assert (ROOT / "images" / "catalog.toml").resolve() == (ROOT / "src" / "taskbox" / "images" / "catalog.toml")


def test_a_recorded_digest_pins_the_reference():
    digest = "sha256:" + "ab" * 32
    catalog = Catalog(
        tag_scheme="{version}-py{python}",
        python="3.12",
        entries={"sql": ImageEntry("sql", "ghcr.io/acme/executor-sql", "", {"1.2.0-py3.12": digest})},
    )
    assert catalog.reference("sql", "1.2.0") == f"ghcr.io/acme/executor-sql:1.2.0-py3.12@{digest}"
    assert catalog.reference("sql", "1.3.0") == "ghcr.io/acme/executor-sql:1.3.0-py3.12"
    assert catalog.reference("sql", "1.2.0", python="3.11") == "ghcr.io/acme/executor-sql:1.2.0-py3.11"
    with pytest.raises(CatalogError, match="no image variant 'spark'"):
        catalog.reference("spark", "1.2.0")


def test_authoring_objects_default_to_the_catalog_image(tmp_path):
    sqlite = SQLiteTask("t.sqlite", "SELECT 1 AS n", uri=str(tmp_path / "x.db"), outputs={"n": int})
    sql = SQLTask("t.sql", "SELECT 1 AS n", uri="postgresql://reader@db:5432/sales", outputs={"n": int})
    http = HTTPTask("t.http", url="https://example.com/ping")
    assert sqlite.to_template().container.image == default_image("sqlite")
    assert sql.to_template().container.image == default_image("sql")
    assert http.to_template().container.image == default_image("http")
    assert SQLiteTask("t.own", "SELECT 1 AS n", uri="x.db", outputs={"n": int}, image="own:1").image == "own:1"


def test_taskbox_images_prints_the_catalog():
    from helpers import TASKBOX

    proc = run([TASKBOX, "images", "--json"])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["version"] == __version__ and data["tag_scheme"] == "{version}-py{python}"
    assert {row["variant"]: row["reference"] for row in data["images"]} == {v: default_image(v) for v in VARIANTS}
    assert all(row["digest"] is None for row in data["images"])  # nothing is published yet
    text = run([TASKBOX, "images"])
    assert text.returncode == 0 and default_image("sqlite") in text.stdout and "unpublished" in text.stdout


def test_flytekit_command_names_are_aliases():
    from helpers import TASKBOX

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
