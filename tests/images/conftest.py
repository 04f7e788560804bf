"""Fixtures for the image tests: a Docker engine, the local Python base, each variant image built once.

``docker_client`` (session)
    A Docker SDK client. When no engine answers, scripts/docker-engine.sh is run once to install and
    start one (``TASKBOX_DOCKER_AUTO_START=0`` turns that off); if there is still none, every image test
    FAILS with the way to start one (never skips).

``base_image`` (session)
    The local debootstrap base (``TASKBOX_TEST_BASE_IMAGE``, default ``taskbox-base:bookworm``), made by
    images/base/make-base.sh on first use: the tests pull nothing from a registry.

``variant_image`` (session)
    ``variant_image("sqlite")`` -> the tag of that variant built on ``base_image``
    (``variant_image("python", extras="s3,gcs,azure,tables,run,flyte2")``: with other pip extras). Each variant is built
    once per session, in series, and tagged ``taskbox-test/<variant>:<build key>``: an image with the same
    key (same Dockerfile, wheel contents, build arguments and base) is reused across sessions. When the
    session ends, ``taskbox-test/*`` tags it did not use whose images are older than
    :data:`STALE_AFTER`, and dangling images as old, are removed (a machine whose Docker state outlives its
    runs, as CI's does, would otherwise fill its disk one source change at a time); younger ones are left
    alone (another session may still be using them). ``make image-clean`` removes them all.

``container_env`` (function)
    The environment a container needs to reach the loopback S3 server (the containers share the host's
    network, so ``127.0.0.1`` is the same address inside and out).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from taskbox import __version__
from taskbox.images import build as sdk
from taskbox.images.errors import DockerUnavailable, ImageBuildError
from taskbox.images.variants import build_variant

ROOT = Path(__file__).resolve().parents[2]
BASE_IMAGE = os.environ.get("TASKBOX_TEST_BASE_IMAGE", "taskbox-base:bookworm")
REVISION = "test"
#: Test images unused for this long are removed when an image session ends.
STALE_AFTER = timedelta(hours=6)


def _start_engine() -> str:
    proc = subprocess.run([str(ROOT / "scripts" / "docker-engine.sh")], capture_output=True, text=True, timeout=900)
    return (proc.stdout + proc.stderr)[-3000:]


@pytest.fixture(scope="session")
def docker_client() -> Any:
    try:
        return sdk.docker_client()
    except DockerUnavailable as first:
        if os.environ.get("TASKBOX_DOCKER_AUTO_START", "1") == "0":
            pytest.fail(f"{first}\n(auto start is off: TASKBOX_DOCKER_AUTO_START=0)", pytrace=False)
        output = _start_engine()
        try:
            return sdk.docker_client()
        except DockerUnavailable as exc:
            pytest.fail(f"{exc}\nscripts/docker-engine.sh said:\n{output}", pytrace=False)


@pytest.fixture(scope="session")
def base_image(docker_client: Any) -> str:
    if not sdk.image_exists(docker_client, BASE_IMAGE):
        script = ROOT / "images" / "base" / "make-base.sh"
        proc = subprocess.run([str(script), BASE_IMAGE], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not sdk.image_exists(docker_client, BASE_IMAGE):
            pytest.fail(
                f"cannot make the local base image {BASE_IMAGE}: run `make base-image` (as root)\n"
                f"{(proc.stdout + proc.stderr)[-3000:]}",
                pytrace=False,
            )
    return BASE_IMAGE


@pytest.fixture(scope="session")
def variant_image(docker_client: Any, base_image: str) -> Iterator[Callable[..., str]]:
    built: dict[str, str | ImageBuildError] = {}

    def get(variant: str, extras: str | None = None) -> str:
        """The variant's tag; ``extras`` replaces the Dockerfile's ``EXTRAS`` (a separate image)."""
        key = f"{variant}-{extras.replace(',', '-')}" if extras else variant
        if key not in built:
            try:
                built[key] = build_variant(
                    docker_client,
                    variant,
                    base_image=base_image,
                    version=__version__,
                    revision=REVISION,
                    source=ROOT,
                    key_tag=f"taskbox-test/{key}",
                    extra_buildargs={"EXTRAS": extras} if extras else None,
                ).tag
            except ImageBuildError as exc:
                built[key] = exc
        result = built[key]
        if isinstance(result, ImageBuildError):
            pytest.fail(f"building the {key} image failed: {result}", pytrace=False)
        return result

    yield get
    _remove_stale(docker_client, keep={tag for tag in built.values() if isinstance(tag, str)})


def _remove_stale(client: Any, keep: set[str]) -> None:
    """Remove ``taskbox-test/*`` tags not in ``keep`` and dangling images, older than :data:`STALE_AFTER`."""
    from docker.errors import APIError

    cutoff = datetime.now(UTC) - STALE_AFTER
    for image in client.images.list(name="taskbox-test/*"):
        created = datetime.fromisoformat(image.attrs["Created"][:19]).replace(tzinfo=UTC)
        for tag in image.tags:
            if created < cutoff and tag.startswith("taskbox-test/") and tag not in keep:
                try:
                    client.images.remove(tag)
                except APIError:  # a container still uses it: kept
                    pass
    client.images.prune(filters={"dangling": True, "until": f"{int(STALE_AFTER.total_seconds())}s"})


@pytest.fixture
def container_env(s3_server: Any) -> dict[str, str]:
    return {**s3_server.env, "TASKBOX_LOG_LEVEL": "INFO"}
