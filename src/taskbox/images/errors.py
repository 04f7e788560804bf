"""Errors of the image tooling: catalog, Docker engine, builds, pushes and registry checks.

Why: building and checking executor images happens on a developer's machine or in CI, not inside a task,
but the errors still belong to taskbox's one tree (``taskbox.errors``) so callers catch ``TaskboxError``.

Invariants:
    * :class:`CatalogError` (the packaged catalog is unreadable or lacks a variant) and
      :class:`ImageBuildError` (a build, or the check after it, failed) are the caller's to fix:
      ``UserError``. :class:`DockerUnavailable` is the machine's: ``PlatformError``, and its message
      says how to start an engine.
    * :class:`ImagePushError` (a push was refused or its image is missing locally) is the caller's;
      :class:`RegistryError` (a registry did not answer as the HTTP API v2 says) is the platform's.
    * :class:`SbomNotFound` (no SBOM for a variant: not exported, or an image without one) is the caller's.
"""

from __future__ import annotations

from taskbox.errors import PlatformError, UserError

__all__ = ["CatalogError", "DockerUnavailable", "ImageBuildError", "ImagePushError", "RegistryError", "SbomNotFound"]

#: How to get a Docker engine on a test machine (scripts/docker-engine.sh does all of it).
DOCKER_HINT = (
    "start one with `make docker-engine` (scripts/docker-engine.sh: installs docker.io, then runs "
    "`dockerd --bridge=none --iptables=false --ip-masq=false` in the background; needs root)"
)


class CatalogError(UserError):
    """The image catalog cannot be read, or names no such variant."""

    code = "USER:ImageCatalog"


class DockerUnavailable(PlatformError):
    """No Docker engine answers, or the ``docker`` Python package is missing.

    Args:
        reason: What failed (the SDK's message).

    """

    code = "SYSTEM:DockerUnavailable"
    recoverable = False

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"no Docker engine available ({reason}); {DOCKER_HINT}")


class ImageBuildError(UserError):
    """An image build failed, or the built image does not pass its check.

    Args:
        image: The tag being built.
        reason: What failed.
        log: The tail of the build or container log.

    """

    code = "USER:ImageBuild"

    def __init__(self, image: str, reason: str, log: str = "") -> None:
        self.image = image
        self.reason = reason
        self.log = log
        message = f"image {image}: {reason}"
        super().__init__(f"{message}\n{log}" if log else message)


class ImagePushError(UserError):
    """An image could not be pushed: it is not built, the registry refused it, or no digest came back.

    Args:
        image: The reference being pushed.
        reason: What failed (with what to do about it).

    """

    code = "USER:ImagePush"

    def __init__(self, image: str, reason: str) -> None:
        self.image = image
        self.reason = reason
        super().__init__(f"pushing {image}: {reason}")


class RegistryError(PlatformError):
    """A registry cannot be reached, or answered outside the HTTP API v2 (a 5xx, a refused token...).

    Args:
        registry: The registry host.
        reason: What failed.

    """

    code = "SYSTEM:Registry"
    recoverable = True

    def __init__(self, registry: str, reason: str) -> None:
        self.registry = registry
        self.reason = reason
        super().__init__(f"registry {registry}: {reason}")


class SbomNotFound(UserError):
    """No SBOM where one was asked for: a variant's was not exported, or an image carries none.

    Args:
        what: The variant or image.
        reason: What was looked for, and how to get it.

    """

    code = "USER:ImageSbom"

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"SBOM of {what}: {reason}")
