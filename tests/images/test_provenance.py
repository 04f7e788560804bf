"""Provenance of the variant images (issue 19, parts 3-5): SBOM, OCI labels, reproducible builds.

* Every variant's SBOM lists every distribution of its venv and every Debian package of its root
  filesystem, with the versions the image really has (read inside the image: ``importlib.metadata``,
  ``dpkg-query``), and nothing of the generator ships.
* The labels say where the image comes from; ``created`` (label, SBOM timestamp, the image's own
  ``Created``, the file times it adds) is ``SOURCE_DATE_EPOCH``, never the clock.
* The ``base`` variant rebuilt from scratch (no cache) at another time gives the same image id.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from taskbox import __version__
from taskbox.images import VARIANTS, CatalogError
from taskbox.images import build as sdk
from taskbox.images.errors import ImageBuildError, SbomNotFound
from taskbox.images.provenance import (
    SBOM_LABEL,
    SBOM_PATH,
    base_digest,
    export_sbom,
    image_labels,
    image_sbom,
    provenance,
    rfc3339,
    sbom_components,
    sbom_json,
    source_date_epoch,
)
from taskbox.images.reproducible import normalize_config
from taskbox.images.variants import build_variant

ROOT = Path(__file__).resolve().parents[2]
#: A fixed commit time for the builds below (2023-11-14T22:13:20Z): far from today's clock.
FIXED_EPOCH = 1_700_000_000
FLYTE2_EXTRAS = "s3,gcs,azure,tables,run,flyte2"

#: Runs inside an image: the venv's distributions, as ``importlib.metadata`` finds them, and probes.
PROBE = r"""
import importlib.metadata, importlib.util, json, os, shutil
print(json.dumps({
    "dists": sorted([d.metadata["Name"], d.version] for d in importlib.metadata.distributions()),
    "generator": [importlib.util.find_spec(m) is not None for m in ("cyclonedx", "cyclonedx_py")],
    "generator_cli": shutil.which("cyclonedx-py"),
    "sbom_venv": os.path.exists("/build"),
    "mtimes": sorted({int(os.lstat(os.path.join(d, n)).st_mtime)
                      for d, dirs, files in os.walk("/opt/taskbox") for n in dirs + files}),
    "sbom_mtime": int(os.stat("/usr/share/taskbox/sbom.cdx.json").st_mtime),
}))
"""


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def probe(client: Any, image: str) -> dict[str, Any]:
    result = sdk.run(client, image, ["-c", PROBE], entrypoint=["python3"])
    assert result.exit_code == 0, result.stderr[-4000:]
    return dict(json.loads(result.stdout))


def debian_packages(client: Any, image: str) -> dict[str, str]:
    fmt = "${db:Status-Abbrev}|${Package}:${Architecture}|${Version}\n"
    result = sdk.run(client, image, ["-W", f"-f={fmt}"], entrypoint=["dpkg-query"])
    assert result.exit_code == 0, result.stderr
    rows = [line.split("|") for line in result.stdout.splitlines()]
    return {name: version for status, name, version in rows if status.startswith("ii")}


def expected_epoch() -> int:
    """``SOURCE_DATE_EPOCH`` if set, else the commit time: what the session's variant images were built with."""
    return source_date_epoch(ROOT)


@pytest.fixture(scope="module")
def fixed_build(docker_client: Any, base_image: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The ``base`` variant built with ``SOURCE_DATE_EPOCH`` = :data:`FIXED_EPOCH`, its SBOM exported."""
    sbom_dir = tmp_path_factory.mktemp("sbom")
    try:
        built = build_variant(
            docker_client,
            "base",
            base_image=base_image,
            version=__version__,
            revision="test",
            source=ROOT,
            key_tag="taskbox-test/provenance-base",
            source_date_epoch=FIXED_EPOCH,
            sbom_dir=sbom_dir,
        )
    except ImageBuildError as exc:
        pytest.fail(f"building the base image with a fixed SOURCE_DATE_EPOCH failed: {exc}", pytrace=False)
    return {"tag": built.tag, "id": built.id, "sbom_dir": sbom_dir}


# --- the SBOM -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [*VARIANTS, "python-flyte2"])
def test_sbom_lists_every_distribution_and_debian_package_with_its_version(docker_client, variant_image, variant):
    image = variant_image("python", extras=FLYTE2_EXTRAS) if variant == "python-flyte2" else variant_image(variant)
    text = image_sbom(docker_client, image)
    document = json.loads(text)
    assert document["bomFormat"] == "CycloneDX" and document["specVersion"] == "1.6"
    assert document["metadata"]["component"]["name"] == f"taskbox-{variant.split('-')[0]}"
    components = sbom_components(text)
    facts = probe(docker_client, image)
    dists = {canonical(name): version for name, version in facts["dists"]}
    assert len(dists) == len(facts["dists"]), "two distributions of one name in the venv"
    assert "taskbox" in dists and "pip" not in dists
    # every distribution of the venv, with its version, and nothing that does not ship
    assert components["pypi"] == dists
    assert components["deb"] == debian_packages(docker_client, image)
    # nothing of the generator ships: not its packages, not its venv, not its command
    assert facts["generator"] == [False, False] and facts["generator_cli"] is None and facts["sbom_venv"] is False
    # the dependency graph starts at the image
    (root,) = [d for d in document["dependencies"] if d["ref"] == document["metadata"]["component"]["bom-ref"]]
    assert "taskbox==" + dists["taskbox"] in root["dependsOn"]


def test_export_and_sbom_json(docker_client, variant_image, tmp_path):
    image = variant_image("base")
    text = image_sbom(docker_client, image)
    exported = export_sbom(docker_client, image, tmp_path / "images" / "sbom" / "base.cdx.json")
    assert exported.read_text() == text
    assert sbom_json("base", source=tmp_path) == text  # the exported file, beside the catalog
    assert sbom_json("base", image, client=docker_client) == text  # read out of the image
    with pytest.raises(SbomNotFound, match="does not exist"):
        sbom_json("sqlite", source=tmp_path)
    with pytest.raises(CatalogError):
        sbom_json("no-such-variant", source=tmp_path)
    with pytest.raises(SbomNotFound, match="has no /usr/share/taskbox/sbom.cdx.json"):
        image_sbom(docker_client, "taskbox-base:bookworm")


# --- labels and SOURCE_DATE_EPOCH -----------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_labels_say_where_the_image_comes_from(docker_client, variant_image, base_image, variant):
    image = variant_image(variant)
    labels = image_labels(docker_client, image)
    created = rfc3339(expected_epoch())
    expected = provenance(docker_client, source=ROOT, base_image=base_image, version=__version__, revision="test")
    assert {k: labels.get(k) for k in expected.labels()} == expected.labels()
    assert labels["org.opencontainers.image.created"] == created
    assert labels["org.opencontainers.image.source"].startswith("https://")
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    # the local base is a `docker import`: no manifest digest, so its image id, and the label says so
    assert labels["org.opencontainers.image.base.digest"] == docker_client.images.get(base_image).id
    assert labels["dev.taskbox.base.digest-type"] == "image-id"
    assert base_digest(docker_client, base_image) == (docker_client.images.get(base_image).id, "image-id")
    assert labels[SBOM_LABEL] == SBOM_PATH
    # the image's own creation time is the commit's too, not the build's
    assert docker_client.images.get(image).attrs["Created"].startswith(created.removesuffix("Z"))


def test_created_is_source_date_epoch_not_the_clock(docker_client, fixed_build):
    stamp = rfc3339(FIXED_EPOCH)
    assert stamp == "2023-11-14T22:13:20Z"
    image = docker_client.images.get(fixed_build["tag"])
    assert image.attrs["Config"]["Labels"]["org.opencontainers.image.created"] == stamp
    assert image.attrs["Created"].startswith("2023-11-14T22:13:20")
    text = image_sbom(docker_client, fixed_build["tag"])
    assert json.loads(text)["metadata"]["timestamp"] == "2023-11-14T22:13:20+00:00"
    # build_variant(sbom_dir=...) exported the same SBOM
    assert (fixed_build["sbom_dir"] / "base.cdx.json").read_text() == text
    # every file and folder the image adds under /opt/taskbox, and its SBOM, carry the commit time
    facts = probe(docker_client, fixed_build["tag"])
    assert facts["mtimes"] == [FIXED_EPOCH] and facts["sbom_mtime"] == FIXED_EPOCH


def test_rebuild_from_scratch_gives_the_same_image(docker_client, base_image, fixed_build):
    """Built again without any cache, at another time: the same layers and the same image id."""
    rebuilt = build_variant(
        docker_client,
        "base",
        base_image=base_image,
        version=__version__,
        revision="test",
        source=ROOT,
        tag="taskbox-test/provenance-base:rebuild",
        source_date_epoch=FIXED_EPOCH,
        nocache=True,
    )
    first, second = (docker_client.images.get(ref).attrs for ref in (fixed_build["tag"], rebuilt.tag))
    assert second["RootFS"]["Layers"] == first["RootFS"]["Layers"], "a layer differs: see docs/images.md"
    assert rebuilt.id == fixed_build["id"]
    assert second["Config"]["Labels"]["org.opencontainers.image.created"] == rfc3339(FIXED_EPOCH)


# --- the pieces, without Docker -------------------------------------------------------------------------


def test_source_date_epoch_comes_from_the_environment_or_the_commit(tmp_path):
    assert source_date_epoch(ROOT, {"SOURCE_DATE_EPOCH": "1700000000"}) == FIXED_EPOCH
    committed = subprocess.run(["git", "-C", str(ROOT), "log", "-1", "--format=%ct"], capture_output=True, text=True)
    assert source_date_epoch(ROOT, {}) == int(committed.stdout)
    with pytest.raises(ImageBuildError, match="whole seconds"):
        source_date_epoch(ROOT, {"SOURCE_DATE_EPOCH": "yesterday"})
    with pytest.raises(ImageBuildError, match="never comes from the clock"):
        source_date_epoch(tmp_path, {})  # not a git checkout, nothing set: no guess


def test_normalize_config_drops_what_each_build_stamps():
    config = {
        "architecture": "amd64",
        "created": "2026-12-07T15:40:29.040428814Z",
        "container": "bd9a7265",
        "container_config": {"Hostname": "vm"},
        "config": {"User": "65532:65532", "Image": "sha256:e0e9ec75"},
        "history": [
            {"created": "2020-01-01T00:00:00Z", "created_by": "base"},
            {"created": "2026-12-07T15:40:28.1Z", "created_by": "RUN x"},
        ],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
    }
    out = normalize_config(config, FIXED_EPOCH)
    assert out == {
        "architecture": "amd64",
        "created": "2023-11-14T22:13:20Z",
        "config": {"User": "65532:65532"},
        "history": [
            {"created": "2020-01-01T00:00:00Z", "created_by": "base"},
            {"created": "2023-11-14T22:13:20Z", "created_by": "RUN x"},
        ],
        "rootfs": {"type": "layers", "diff_ids": ["sha256:aa"]},
    }


def test_sbom_components_reads_purls():
    text = json.dumps(
        {
            "bomFormat": "CycloneDX",
            "components": [
                {"name": "PyYAML", "purl": "pkg:pypi/pyyaml@6.0.2"},
                {"name": "jaraco.classes", "purl": "pkg:pypi/jaraco.classes@3.4.0"},
                {"name": "libc6", "purl": "pkg:deb/debian/libc6@2.36-9%2Bdeb12u9?arch=amd64&distro=debian-12"},
                {"name": "tzdata", "purl": "pkg:deb/debian/tzdata@2024a-0%2Bdeb12u1?arch=all&distro=debian-12"},
                {"name": "debian", "type": "operating-system"},
            ],
        }
    )
    assert sbom_components(text) == {
        "pypi": {"pyyaml": "6.0.2", "jaraco-classes": "3.4.0"},
        "deb": {"libc6:amd64": "2.36-9+deb12u9", "tzdata:all": "2024a-0+deb12u1"},
    }
    with pytest.raises(SbomNotFound, match="not a CycloneDX document"):
        sbom_components("{}")
