"""Give a freshly built image the configuration a rebuild of the same commit would give it.

Why: Docker's legacy builder (the only one on the test machines: no BuildKit, so no ``SOURCE_DATE_EPOCH``
support) stamps an image's configuration with the wall clock (``created``, each history entry's
``created``) and with the ids of the build's own containers and intermediate images (``container``,
``container_config``, ``config.Image``). The image id is the digest of that configuration, so two builds
of the same commit never share an id, even when every layer is byte-for-byte the same (the Dockerfiles
make sure of that: file times set to ``SOURCE_DATE_EPOCH``, bytecode with ``unchecked-hash``; measured
in docs/images.md).

:func:`normalize_image` rewrites the configuration after the build: ``created`` becomes
``SOURCE_DATE_EPOCH``, history entries later than it are clamped to it, the build-container fields are
dropped. The layers are not touched: the image is saved, its configuration replaced and loaded back under
the same tag. Equal layers then give equal image ids (the configuration digest).

Invariants:
    * Only the configuration changes; every layer's ``diff_id`` stays what the build made, so a layer that
      is not reproducible still shows as a different id.
    * Nothing runs in the image and nothing leaves the machine (``docker save`` / ``docker load``).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taskbox.images.errors import ImageBuildError

__all__ = ["normalize_config", "normalize_image"]

#: Configuration fields the legacy builder fills from the build's last container (vary per build).
BUILD_CONTAINER_FIELDS = ("container", "container_config")
CHUNK = 1024 * 1024


def _rfc3339(epoch: int) -> str:
    from taskbox.images.provenance import rfc3339

    return rfc3339(epoch)


def normalize_config(config: dict[str, Any], epoch: int) -> dict[str, Any]:
    """Return ``config`` (an image configuration) as a rebuild at ``epoch`` would have it.

    ``created`` becomes ``epoch``; history entries after ``epoch`` are clamped to it (the base image's own,
    older, stay); ``container``, ``container_config`` and ``config.Image`` (ids of the build's own
    containers and intermediate images) are removed.
    """
    stamp = _rfc3339(epoch)
    out = {k: v for k, v in config.items() if k not in BUILD_CONTAINER_FIELDS}
    out["created"] = stamp
    history = []
    for entry in config.get("history", []):
        entry = dict(entry)
        if "created" in entry and str(entry["created"])[:19] > stamp[:19]:
            entry["created"] = stamp
        history.append(entry)
    if history:
        out["history"] = history
    if isinstance(out.get("config"), dict):
        out["config"] = {k: v for k, v in out["config"].items() if k != "Image"}
    return out


def _config_bytes(config: dict[str, Any]) -> bytes:
    return json.dumps(config, sort_keys=True, separators=(",", ":")).encode()


def _save(client: Any, image: str, dest: Path) -> None:
    chunks: Iterator[bytes] = client.images.get(image).save(chunk_size=CHUNK, named=False)
    with dest.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)


def normalize_image(client: Any, image: str, epoch: int) -> str:
    """Rewrite the configuration of ``image`` (a tag) with :func:`normalize_config`; return the new image id.

    The tag then names the rewritten image; the image it named before is left untagged (the build cache
    still uses its layers).

    Raises:
        ImageBuildError: ``image`` is not a tag of a local image, or the engine refuses the rewritten one.

    """
    from docker.errors import APIError, ImageNotFound

    if ":" not in image.rsplit("/", 1)[-1]:
        raise ImageBuildError(image, "normalize_image needs a tag (repository:tag)")
    with tempfile.TemporaryDirectory(prefix="taskbox-normalize-") as scratch:
        saved, rewritten = Path(scratch) / "saved.tar", Path(scratch) / "rewritten.tar"
        try:
            _save(client, image, saved)
        except ImageNotFound as exc:
            raise ImageBuildError(image, "does not exist locally") from exc
        with tarfile.open(saved) as source, tarfile.open(rewritten, "w", format=tarfile.PAX_FORMAT) as target:
            member = source.extractfile("manifest.json")
            if member is None:
                raise ImageBuildError(image, "docker save gave no manifest.json")
            (manifest,) = json.load(member)
            config_file = source.extractfile(manifest["Config"])
            if config_file is None:
                raise ImageBuildError(image, "docker save gave no image configuration")
            data = _config_bytes(normalize_config(json.load(config_file), epoch))
            digest = hashlib.sha256(data).hexdigest()
            skip = {"manifest.json", "repositories", manifest["Config"]}
            for info in source.getmembers():
                if info.name in skip:
                    continue
                handle = source.extractfile(info) if info.isfile() else None
                target.addfile(info, handle)
            new_manifest = [{"Config": f"{digest}.json", "RepoTags": [image], "Layers": manifest["Layers"]}]
            for name, payload in ((f"{digest}.json", data), ("manifest.json", json.dumps(new_manifest).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                info.mtime = epoch
                target.addfile(info, io.BytesIO(payload))
        saved.unlink()
        try:
            with rewritten.open("rb") as stream:
                client.images.load(stream)
        except APIError as exc:
            raise ImageBuildError(image, f"the engine refused the normalized image: {exc}") from exc
    loaded = client.images.get(image).id
    if loaded != f"sha256:{digest}":
        raise ImageBuildError(image, f"loaded as {loaded}, expected sha256:{digest}")
    return str(loaded)
