"""Push variant images and record their digests in the image lock (``taskbox image push``, ``make push``).

Why: a template should name an image by digest, and the digest exists only once a registry stored the
manifest. A push of ``<registry>/executor-<variant>:<version>-py<python>`` (the reference builds tag,
:func:`taskbox.images.variants.variant_tag`) reads the manifest digest the engine reports, checks it
against the image's ``RepoDigests``, and :func:`push_variants` records every variant's
``reference``/``digest``/``version`` in the lock (:mod:`taskbox.images.lock`).

Invariants:
    * Pushing is only ever explicit: nothing else in taskbox pushes.
    * Every variant is pushed before the lock is written, so a failed push leaves the lock as it was.
    * Credentials are the engine client's (``docker login``; the SDK reads ``~/.docker/config.json``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from taskbox.images import build as sdk
from taskbox.images.errors import ImagePushError
from taskbox.images.lock import Lock, LockEntry, record
from taskbox.images.variants import variant_tag

__all__ = ["push_image", "push_variants"]

_DENIED = ("denied", "unauthorized", "authentication required", "forbidden")


def _digest_from_stream(client: Any, repository: str, tag: str, progress: Callable[[str], None] | None) -> str | None:
    """Push and follow the engine's stream; the manifest digest from its final ``aux`` record."""
    from docker.errors import APIError

    reference = f"{repository}:{tag}"
    digest = None
    try:
        for chunk in client.api.push(repository, tag=tag, stream=True, decode=True):
            error = chunk.get("error") or chunk.get("errorDetail", {}).get("message")
            if error:
                hint = (
                    f" (log in first: docker login {repository.split('/', 1)[0]})"
                    if any(word in error.lower() for word in _DENIED)
                    else ""
                )
                raise ImagePushError(reference, f"the registry refused it: {error.strip()}{hint}")
            aux = chunk.get("aux") or {}
            if aux.get("Digest"):
                digest = str(aux["Digest"])
            status = chunk.get("status")
            if progress is not None and status and not chunk.get("progressDetail", {}).get("current"):
                progress(f"{chunk['id']}: {status}" if chunk.get("id") else status)
    except APIError as exc:
        raise ImagePushError(reference, f"the engine refused the push: {exc}") from exc
    return digest


def push_image(client: Any, reference: str, *, progress: Callable[[str], None] | None = None) -> str:
    """Push the local image ``reference`` (``repository:tag``) and return its manifest digest.

    Raises:
        ImagePushError: No such local image, the registry refused the push, or no digest came back.

    """
    repository, _, tag = reference.rpartition(":")
    if not repository or "/" in tag:
        raise ImagePushError(reference, "not a repository:tag reference")
    if not sdk.image_exists(client, reference):
        raise ImagePushError(reference, "no such local image: build it first (make images REGISTRY=... or "
                                        "taskbox image build --variant V --registry ...)")  # fmt: skip
    digest = _digest_from_stream(client, repository, tag, progress)
    repo_digests = client.images.get(reference).attrs.get("RepoDigests") or []
    recorded = [d.split("@", 1)[1] for d in repo_digests if d.split("@", 1)[0] == repository]
    if digest is None:
        if len(recorded) != 1:
            raise ImagePushError(reference, f"the engine reported no digest (RepoDigests: {repo_digests})")
        digest = recorded[0]
    elif recorded and digest not in recorded:
        raise ImagePushError(reference, f"the push reported {digest}, the engine records {recorded}")
    return digest


def push_variants(
    client: Any,
    variants: Iterable[str],
    *,
    version: str,
    python: str,
    registry: str | None,
    lock_path: Path,
    sbom_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> Lock:
    """Push each variant's image and record the digests in the lock at ``lock_path``.

    Args:
        client: From :func:`taskbox.images.build.docker_client`.
        variants: Catalog variants, pushed in this order.
        version: The taskbox version of the images (the tag's and the lock's).
        python: The images' Python minor (the tag's ``-py<python>``).
        registry: Replaces the catalog's registry and namespace (``ghcr.io/acme``), as for the builds.
        lock_path: The lock file to update (created if missing).
        sbom_dir: Where to export each pushed image's SBOM as ``<variant>.cdx.json`` (beside the catalog at a
            release, so ``taskbox images --sbom`` prints what was published); ``None`` exports nothing.
        progress: Called with each push status line.

    Returns:
        The lock as written.

    Raises:
        ImagePushError: A push failed (nothing is recorded then).
        CatalogError: An unknown variant, or the lock cannot be read or written.

    """
    entries = []
    for variant in variants:
        reference = variant_tag(variant, version, python, registry)
        digest = push_image(client, reference, progress=progress)
        entries.append(LockEntry(variant, reference, digest, version))
    if sbom_dir is not None:
        from taskbox.images.provenance import export_sbom

        for entry in entries:
            export_sbom(client, entry.reference, sbom_dir / f"{entry.variant}.cdx.json")
    return record(lock_path, entries)
