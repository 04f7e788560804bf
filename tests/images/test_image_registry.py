"""Publishing: a variant built and pushed to a real registry as a release manager does it, pinned by digest,
removed locally, pulled back by digest and run.

The registry is Debian's CNCF distribution registry (``docker-registry``, installed by
scripts/docker-engine.sh) on 127.0.0.1, which the engine pushes to over plain HTTP; a second registry on
the same storage asks for anonymous bearer tokens, as ghcr.io does, for ``taskbox images --check``. The
image is built and pushed with the Makefile's own targets (``make image-base REGISTRY=...``, ``make push``),
with a revision label of its own so that it is an image no other test shares: removing its tag removes it.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from registrytesting import SERVICE, TokenService, running_registry

import servers
from helpers import ROOT, TASKBOX, commit_files, encode_inputs, make_template, put, read_error, read_outputs, run
from helpers import simple as literal
from taskbox import __version__, storage
from taskbox.authoring.base import CONTAINER_ARGS_PREFIX, default_image
from taskbox.images import build as sdk
from taskbox.images.lock import LockEntry, load_lock, using_lock
from taskbox.images.variants import variant_tag

pytestmark = pytest.mark.timeout(900)

MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"
MADE_UP_DIGEST = "sha256:" + "0" * 64


def _make(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    """``make ARGS`` in the source tree, with this interpreter's virtual environment as it is (never remade)."""
    venv = Path(sys.executable).parent.parent
    argv = ["make", "--no-print-directory", f"VENV={venv}", "-o", f"{venv}/.installed", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def registry(docker_client: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The loopback registry (installed by scripts/docker-engine.sh if it is missing, as the engine is)."""
    if servers.registry_binary() is None and os.environ.get("TASKBOX_DOCKER_AUTO_START", "1") != "0":
        subprocess.run([str(ROOT / "scripts" / "docker-engine.sh")], capture_output=True, timeout=900, check=False)
    storage_root = tmp_path_factory.mktemp("registry") / "storage"
    with running_registry(storage_root) as process:
        yield process, storage_root


@pytest.fixture(scope="module")
def published(docker_client: Any, base_image: str, registry: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``make image-base`` and ``make push`` to the loopback registry; the lock it wrote and its entry."""
    process, _ = registry
    namespace = f"{process.host}:{process.port}/taskbox"
    python = sdk.image_python(docker_client, base_image)
    reference = variant_tag("base", __version__, python, namespace)
    common = [f"REGISTRY={namespace}", f"BASE_IMAGE={base_image}", f"LOCAL_BASE_IMAGE={base_image}"]
    built = _make("image-base", *common, f"REVISION=registry-test-{uuid.uuid4().hex[:12]}")
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    assert built.stdout.strip().splitlines()[-1] == reference  # REGISTRY names the tag (the catalog's does not)
    assert docker_client.images.get(reference).tags == [reference]

    lock = tmp_path_factory.mktemp("lock") / "catalog.lock.toml"
    pushed = _make("push", *common, "VARIANTS=base", f"LOCK={lock}")
    assert pushed.returncode == 0, (pushed.stdout + pushed.stderr)[-4000:]
    entry = load_lock(lock).entries["base"]
    assert pushed.stdout.strip().splitlines()[-1] == f"base {entry.pinned}"
    return lock, entry, docker_client.images.get(reference).id


def _manifest(process: Any, entry: LockEntry, reference: str) -> httpx.Response:
    name = entry.repository.split("/", 1)[1]
    url = f"{process.endpoint}/v2/{name}/manifests/{reference}"
    return httpx.get(url, headers={"Accept": MANIFEST_V2}, trust_env=False)


def test_push_records_the_digest_the_registry_serves(registry, published):
    process, _ = registry
    lock, entry, _ = published
    assert entry.version == __version__ and entry.reference.startswith(f"127.0.0.1:{process.port}/taskbox/")
    # The registry's manifest for the tag, and its bytes' hash, are the digest recorded.
    response = _manifest(process, entry, entry.reference.rsplit(":", 1)[1])
    assert response.status_code == 200 and response.headers["content-type"] == MANIFEST_V2
    assert "sha256:" + hashlib.sha256(response.content).hexdigest() == entry.digest
    assert response.headers["docker-content-digest"] == entry.digest
    assert _manifest(process, entry, entry.digest).content == response.content
    # `taskbox images` prints the pinned reference; the variants not pushed are said to be unpublished, once.
    shown = run([TASKBOX, "images", "--lock", str(lock)])
    assert shown.returncode == 0, shown.stderr
    assert f"  base     {entry.pinned}\n" in shown.stdout
    assert shown.stdout.count("not published") == 1 and "sqlite, sql, http, python" in shown.stdout
    listed = json.loads(run([TASKBOX, "images", "--json", "--lock", str(lock)]).stdout)
    rows = {row["variant"]: row for row in listed["images"]}
    assert rows["base"]["digest"] == entry.digest and rows["base"]["reference"] == entry.pinned
    assert rows["sql"]["digest"] is None and "@" not in rows["sql"]["reference"]


def test_check_asks_the_registry_for_the_recorded_digests(registry, published, tmp_path):
    lock, entry, _ = published
    ok = run([TASKBOX, "images", "--check", "--lock", str(lock), "--variant", "base"], timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert f"{entry.pinned}  [served]" in ok.stdout

    made_up = tmp_path / "made-up.lock.toml"
    made_up.write_text(lock.read_text().replace(entry.digest, MADE_UP_DIGEST))
    bad = run([TASKBOX, "images", "--check", "--lock", str(made_up), "--variant", "base"], timeout=120)
    assert bad.returncode == 1 and "[not served]" in bad.stdout
    assert f"base ({entry.reference}@{MADE_UP_DIGEST}): not served" in bad.stderr

    everything = run([TASKBOX, "images", "--check", "--lock", str(lock)], timeout=120)
    assert everything.returncode == 1  # the other variants are not published
    assert "sqlite (" in everything.stderr and "not published" in everything.stderr
    assert "base (" not in everything.stderr


def test_check_gets_an_anonymous_token_when_the_registry_asks(registry, published, tmp_path):
    """A second registry on the same storage that answers 401 + ``WWW-Authenticate: Bearer`` (as ghcr.io does)."""
    _, storage_root = registry
    lock, entry, _ = published
    tokens = TokenService(tmp_path)
    try:
        with running_registry(storage_root, tokens=tokens) as guarded:
            name = entry.repository.split("/", 1)[1]
            asked = httpx.head(f"{guarded.endpoint}/v2/{name}/manifests/{entry.digest}", trust_env=False)
            assert asked.status_code == 401 and asked.headers["www-authenticate"].startswith("Bearer realm=")
            moved = tmp_path / "guarded.lock.toml"
            text = lock.read_text().replace(entry.reference.split("/", 1)[0], f"{guarded.host}:{guarded.port}")
            moved.write_text(text)
            ok = run([TASKBOX, "images", "--check", "--lock", str(moved), "--variant", "base"], timeout=120)
            assert ok.returncode == 0, ok.stderr
            assert "[served]" in ok.stdout
            assert tokens.requests == [{"service": SERVICE, "scope": f"repository:{name}:pull"}]
            moved.write_text(text.replace(entry.digest, MADE_UP_DIGEST))
            bad = run([TASKBOX, "images", "--check", "--lock", str(moved), "--variant", "base"], timeout=120)
            assert bad.returncode == 1 and "not served" in bad.stderr
    finally:
        tokens.close()


def test_push_of_an_image_never_built_fails_and_leaves_the_lock_alone(registry, published, tmp_path):
    process, _ = registry
    lock = tmp_path / "catalog.lock.toml"
    namespace = f"{process.host}:{process.port}/never-built"
    proc = run([TASKBOX, "image", "push", "--registry", namespace, "--variant", "sql", "--python", "3.11",
                "--lock", str(lock)])  # fmt: skip
    assert proc.returncode == 1
    assert f"pushing {namespace}/executor-sql:{__version__}-py3.11: no such local image" in proc.stderr
    assert not lock.exists()


@pytest.mark.servers
def test_removed_pulled_by_digest_and_run_from_the_pinned_default(
    docker_client, registry, published, s3_base, container_env
):
    lock, entry, image_id = published
    # The authoring default of this version, with the lock a release would commit, is the pinned reference.
    with using_lock(lock):
        assert default_image("base") == entry.pinned
    # Gone from the engine: its tag, then its digest reference.
    docker_client.images.remove(entry.reference)
    if sdk.image_exists(docker_client, entry.pinned):
        docker_client.images.remove(entry.pinned)
    assert not sdk.image_exists(docker_client, entry.pinned) and not sdk.image_exists(docker_client, image_id)
    # Back by digest from the registry: the same image.
    pulled = docker_client.images.pull(f"{entry.repository}@{entry.digest}")
    assert pulled.id == image_id
    assert f"{entry.repository}@{entry.digest}" in pulled.attrs["RepoDigests"]
    # A Flyte template naming the pinned image runs in it, as a pod would run it.
    types = {"greeting": literal("STRING"), "n": literal("INTEGER")}
    template = make_template("echo", types, types)
    template.container.image = entry.pinned
    template.container.args.extend([*CONTAINER_ARGS_PREFIX, "echo"])
    task = put(storage.join(s3_base, "task.pb"), template.SerializeToString())
    inputs = put(storage.join(s3_base, "inputs.pb"), encode_inputs({"greeting": "pinned", "n": 3}, types))
    prefix, raw = storage.join(s3_base, "out"), storage.join(s3_base, "raw")
    fill = {"{{.input}}": inputs, "{{.outputPrefix}}": prefix, "{{.rawOutputDataPrefix}}": raw,
            "{{.taskTemplatePath}}": task}  # fmt: skip
    result = sdk.run(docker_client, template.container.image, [fill.get(a, a) for a in template.container.args],
                     environment=container_env)  # fmt: skip
    assert result.exit_code == 0, result.stderr[-4000:]
    assert commit_files(prefix) == {"outputs.pb"}, read_error(prefix) if commit_files(prefix) else result.stderr
    assert read_outputs(prefix, types) == {"greeting": "pinned", "n": 3}
    docker_client.images.remove(entry.pinned)  # leaves nothing behind under the loopback registry's name


def test_push_exports_the_pushed_images_sbom_beside_the_lock(published, docker_client):
    """A release's SBOMs land beside the lock; `taskbox images --sbom` prints the published image's."""
    lock, entry, _ = published
    exported = lock.parent / "sbom" / "base.cdx.json"
    sbom = json.loads(exported.read_text())
    assert sbom["bomFormat"] == "CycloneDX"
    names = {component["name"] for component in sbom["components"]}
    assert "taskbox" in names and any(name.startswith("python3") for name in names)
    by_digest = f"{entry.repository}@{entry.digest}"
    docker_client.images.pull(by_digest)  # another test may have removed the local image: the published one
    printed = run([TASKBOX, "images", "--sbom", "base", "--image", by_digest])
    assert printed.returncode == 0, printed.stderr
    assert json.loads(printed.stdout) == sbom
