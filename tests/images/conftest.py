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
    key (same Dockerfile, wheel contents, build arguments and base) is reused across sessions. Images of
    earlier sources are left alone (another session may still be using them): ``make image-clean``.

``container_env`` (function)
    The environment a container needs to reach the loopback S3 server (the containers share the host's
    network, so ``127.0.0.1`` is the same address inside and out).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
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
def variant_image(docker_client: Any, base_image: str) -> Callable[..., str]:
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

    return get


@pytest.fixture
def container_env(s3_server: Any) -> dict[str, str]:
    return {**s3_server.env, "TASKBOX_LOG_LEVEL": "INFO"}
