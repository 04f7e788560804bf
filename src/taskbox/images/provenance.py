"""Provenance of the variant images: their OCI labels, build arguments and SBOMs.

* :func:`provenance` gathers what a build records about itself: the source repository and licence (from
  ``pyproject.toml``), the git commit, the version, the creation time and the base image's digest.
  :meth:`Provenance.buildargs` hands them to the Dockerfiles, which turn them into the labels
  ``org.opencontainers.image.{source,revision,version,created,licenses,base.name,base.digest}``.
* Every variant image carries its CycloneDX SBOM at :data:`SBOM_PATH` (made in the builder stage by
  ``images/sbom/make_sbom.py``). :func:`image_sbom` reads it out of an image, :func:`export_sbom` writes it
  beside the catalog (``images/sbom/<variant>.cdx.json``, only when asked), :func:`sbom_json` answers
  ``taskbox images --sbom VARIANT``.

Invariants:
    * ``created`` is never the clock: it is ``SOURCE_DATE_EPOCH`` when the environment sets it, else the
      commit time of the source tree's ``HEAD`` (``git log -1 --format=%ct``). The same commit gives the
      same label, the same SBOM timestamp, and the same file times in the image's own layers.
    * ``org.opencontainers.image.base.digest`` is the base's registry manifest digest (its ``RepoDigests``)
      when it has one, else its local image id; ``dev.taskbox.base.digest-type`` says which
      (``manifest`` / ``image-id``): a base made by ``docker import`` has no manifest digest.
    * Builds export SBOMs only when asked (``sbom_dir``): test builds never rewrite the committed files.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskbox.images import build as sdk
from taskbox.images.errors import ImageBuildError, SbomNotFound

__all__ = [
    "SBOM_LABEL",
    "SBOM_PATH",
    "Provenance",
    "base_digest",
    "export_sbom",
    "exported_sbom_path",
    "image_labels",
    "image_sbom",
    "provenance",
    "rfc3339",
    "sbom_components",
    "sbom_json",
    "source_date_epoch",
]

#: Where every variant image keeps its SBOM (CycloneDX 1.6 JSON), and the label that says so.
SBOM_PATH = "/usr/share/taskbox/sbom.cdx.json"
SBOM_LABEL = "dev.taskbox.sbom"
#: The exported SBOMs, beside the catalog: ``<source>/images/sbom/<variant>.cdx.json``.
EXPORT_DIR = Path("images") / "sbom"
#: When ``pyproject.toml`` names no repository URL or licence.
DEFAULT_SOURCE = "https://github.com/taskbox/taskbox"
DEFAULT_LICENSES = "Apache-2.0"
#: ``[project.urls]`` keys tried for the source repository, in order (case-insensitive).
SOURCE_URL_KEYS = ("source", "repository", "source code", "code", "homepage")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_PURL = re.compile(r"^pkg:(?P<type>[^/]+)/(?:[^/]+/)?(?P<name>[^/@?#]+)@(?P<version>[^?#]+)(?P<rest>[?#].*)?$")


@dataclass(frozen=True)
class Provenance:
    """What a variant build records about itself.

    Attributes:
        source: The source repository URL (``org.opencontainers.image.source``).
        revision: The git commit (``org.opencontainers.image.revision``).
        version: The image version (``org.opencontainers.image.version``).
        source_date_epoch: The commit time, seconds since 1970 (``SOURCE_DATE_EPOCH``).
        licenses: SPDX expression (``org.opencontainers.image.licenses``).
        base_name: The base image reference (``org.opencontainers.image.base.name``).
        base_digest: ``sha256:...`` (``org.opencontainers.image.base.digest``).
        base_digest_type: ``manifest`` (a registry manifest digest) or ``image-id`` (a local base).

    """

    source: str
    revision: str
    version: str
    source_date_epoch: int
    licenses: str
    base_name: str
    base_digest: str
    base_digest_type: str

    @property
    def created(self) -> str:
        """``org.opencontainers.image.created``: :attr:`source_date_epoch` in RFC 3339."""
        return rfc3339(self.source_date_epoch)

    def buildargs(self) -> dict[str, str]:
        """The Dockerfiles' build arguments."""
        return {
            "SOURCE": self.source,
            "REVISION": self.revision,
            "VERSION": self.version,
            "CREATED": self.created,
            "SOURCE_DATE_EPOCH": str(self.source_date_epoch),
            "LICENSES": self.licenses,
            "BASE_IMAGE": self.base_name,
            "BASE_DIGEST": self.base_digest,
            "BASE_DIGEST_TYPE": self.base_digest_type,
        }

    def labels(self) -> dict[str, str]:
        """The labels an image built with :meth:`buildargs` carries (a subset of them)."""
        oci = "org.opencontainers.image"
        return {
            f"{oci}.source": self.source,
            f"{oci}.revision": self.revision,
            f"{oci}.version": self.version,
            f"{oci}.created": self.created,
            f"{oci}.licenses": self.licenses,
            f"{oci}.base.name": self.base_name,
            f"{oci}.base.digest": self.base_digest,
            "dev.taskbox.base.digest-type": self.base_digest_type,
            SBOM_LABEL: SBOM_PATH,
        }


def rfc3339(epoch: int) -> str:
    """``1796656531`` -> ``2026-12-07T15:15:31Z`` (UTC)."""
    return datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _git(source: Path, *args: str) -> str | None:
    try:
        proc = subprocess.run(["git", "-C", str(source), *args], capture_output=True, text=True, timeout=60)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 and proc.stdout.strip() else None


def source_date_epoch(source: Path, environ: Mapping[str, str] | None = None) -> int:
    """``SOURCE_DATE_EPOCH`` from the environment, else the commit time of ``source``'s ``HEAD``.

    Raises:
        ImageBuildError: The variable is not a whole number of seconds, or it is unset and ``source`` is
            not a git checkout (the clock is never used).

    """
    raw = (os.environ if environ is None else environ).get("SOURCE_DATE_EPOCH", "").strip()
    if raw:
        if not raw.isdigit():
            raise ImageBuildError("provenance", f"SOURCE_DATE_EPOCH must be whole seconds since 1970, not {raw!r}")
        return int(raw)
    committed = _git(source, "log", "-1", "--format=%ct")
    if committed is None or not committed.isdigit():
        raise ImageBuildError(
            "provenance",
            f"{source} is not a git checkout: set SOURCE_DATE_EPOCH to the source's commit time "
            "(seconds since 1970); the image's creation time never comes from the clock",
        )
    return int(committed)


def git_revision(source: Path) -> str:
    """The full commit id of ``source``'s ``HEAD`` (``unknown`` outside a git checkout)."""
    return _git(source, "rev-parse", "HEAD") or "unknown"


def project_source_and_licenses(source: Path) -> tuple[str, str]:
    """The repository URL and SPDX licence expression ``pyproject.toml`` declares (or the defaults)."""
    import tomllib

    try:
        project = tomllib.loads((source / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        project = {}
    urls = {str(k).lower(): str(v) for k, v in (project.get("urls") or {}).items()}
    url = next((urls[key] for key in SOURCE_URL_KEYS if urls.get(key)), DEFAULT_SOURCE)
    licence = project.get("license")
    return url, licence if isinstance(licence, str) and licence else DEFAULT_LICENSES


def base_digest(client: Any, base_image: str) -> tuple[str, str]:
    """The base image's digest and what it is.

    ``(sha256:..., "manifest")`` from its ``RepoDigests`` (the repository's own first), else
    ``(its image id, "image-id")``.

    Raises:
        ImageBuildError: ``base_image`` does not exist locally.

    """
    if not sdk.image_exists(client, base_image):
        raise ImageBuildError(base_image, "the base image does not exist locally (no registry pulls)")
    image = client.images.get(base_image)
    repository = base_image.split("@", 1)[0].rsplit(":", 1)[0] if "/" in base_image or ":" in base_image else ""
    digests = [str(d) for d in image.attrs.get("RepoDigests") or [] if "@" in str(d)]
    digests.sort(key=lambda ref: not ref.startswith(f"{repository}@"))
    for reference in digests:
        digest = reference.rsplit("@", 1)[1]
        if _DIGEST.match(digest):
            return digest, "manifest"
    return str(image.id), "image-id"


def provenance(
    client: Any,
    *,
    source: Path,
    base_image: str,
    version: str,
    revision: str | None = None,
    epoch: int | None = None,
) -> Provenance:
    """Gather what a variant build of ``source`` on ``base_image`` records.

    Args:
        client: From :func:`taskbox.images.build.docker_client`.
        source: The taskbox source tree.
        base_image: The Python base image (must exist locally).
        version: The image version.
        revision: The commit (default: ``source``'s ``HEAD``).
        epoch: ``SOURCE_DATE_EPOCH`` (default: :func:`source_date_epoch`).

    Raises:
        ImageBuildError: No creation time can be found, or the base image is missing.

    """
    url, licenses = project_source_and_licenses(source)
    digest, kind = base_digest(client, base_image)
    return Provenance(
        source=url,
        revision=revision or git_revision(source),
        version=version,
        source_date_epoch=source_date_epoch(source) if epoch is None else epoch,
        licenses=licenses,
        base_name=base_image,
        base_digest=digest,
        base_digest_type=kind,
    )


def image_labels(client: Any, image: str) -> dict[str, str]:
    """The labels of ``image`` (empty when it has none).

    Raises:
        ImageBuildError: ``image`` does not exist locally.

    """
    if not sdk.image_exists(client, image):
        raise ImageBuildError(image, "does not exist locally")
    return dict(client.images.get(image).attrs.get("Config", {}).get("Labels") or {})


def image_sbom(client: Any, image: str) -> str:
    """The SBOM ``image`` carries (CycloneDX JSON text), read from it without running it.

    Raises:
        SbomNotFound: The image has no SBOM at the path its ``dev.taskbox.sbom`` label (or
            :data:`SBOM_PATH`) names, or what is there is not JSON.
        ImageBuildError: ``image`` does not exist locally.

    """
    path = image_labels(client, image).get(SBOM_LABEL) or SBOM_PATH
    data = sdk.read_file(client, image, path)
    if data is None:
        raise SbomNotFound(image, f"the image has no {path} (built before SBOMs, or not a taskbox variant image)")
    text = data.decode("utf-8")
    _parse(text, image)
    return text


def _parse(text: str, what: str) -> dict[str, Any]:
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise SbomNotFound(what, f"not JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("bomFormat") != "CycloneDX":
        raise SbomNotFound(what, "not a CycloneDX document")
    return document


def export_sbom(client: Any, image: str, dest: Path) -> Path:
    """Write the SBOM of ``image`` to ``dest`` (a file; its folder is created).

    Raises:
        SbomNotFound: The image carries no SBOM.
        ImageBuildError: ``image`` does not exist locally.

    """
    text = image_sbom(client, image)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return dest


def exported_sbom_path(variant: str, source: Path) -> Path:
    """Where a variant's SBOM is exported beside the catalog: ``<source>/images/sbom/<variant>.cdx.json``."""
    return source / EXPORT_DIR / f"{variant}.cdx.json"


def sbom_json(variant: str, image: str | None = None, *, client: Any = None, source: Path | None = None) -> str:
    """The SBOM of a variant, as CycloneDX JSON text: ``taskbox images --sbom VARIANT [--image REF]``.

    Args:
        variant: A catalog variant (``base``, ``sqlite``, ...).
        image: Read the SBOM out of this local image instead of the exported file.
        client: The Docker client for ``image`` (default: :func:`taskbox.images.build.docker_client`).
        source: The source tree holding the exported SBOMs (default: found from here).

    Raises:
        CatalogError: ``variant`` is not in the catalog.
        SbomNotFound: The variant's SBOM was not exported (and no ``image`` was given), or the image
            carries none.
        DockerUnavailable: ``image`` was given and no engine answers.
        ImageBuildError: ``image`` does not exist locally.

    """
    from taskbox.images.catalog import load_catalog
    from taskbox.images.context import find_source_root

    load_catalog().entry(variant)  # CatalogError for an unknown variant
    if image is not None:
        return image_sbom(client if client is not None else sdk.docker_client(), image)
    try:
        root = source if source is not None else find_source_root()
    except ImageBuildError as exc:
        raise SbomNotFound(variant, "no exported SBOM outside a source checkout: pass an image") from exc
    path = exported_sbom_path(variant, root)
    if not path.is_file():
        raise SbomNotFound(
            variant,
            f"{path} does not exist: build the variant with its SBOM exported (build_variant(..., sbom_dir=...)), "
            "or pass an image built from Dockerfiles/ to read it from",
        )
    text = path.read_text(encoding="utf-8")
    _parse(text, str(path))
    return text


def sbom_components(text: str) -> dict[str, dict[str, str]]:
    """The components of an SBOM by package-URL type: ``{"pypi": {name: version}, "deb": {...}, ...}``.

    Names are as the purl spells them, but ``pypi`` names are PEP 503-normalized (the purl keeps dots:
    ``jaraco.classes`` -> ``jaraco-classes``) and ``deb`` names carry their architecture (``libc6:amd64``),
    as one package may be installed for two.

    Raises:
        SbomNotFound: ``text`` is not a CycloneDX document.

    """
    from urllib.parse import unquote

    found: dict[str, dict[str, str]] = {}
    for component in _parse(text, "document").get("components", []):
        match = _PURL.match(str(component.get("purl") or ""))
        if not match:
            continue
        name = unquote(match["name"])
        if match["type"] == "pypi":
            name = re.sub(r"[-_.]+", "-", name).lower()
        elif match["type"] == "deb":
            arch = re.search(r"[?&]arch=([^&#]+)", match["rest"] or "")
            name = f"{name}:{unquote(arch[1]) if arch else 'all'}"
        found.setdefault(match["type"], {})[name] = unquote(match["version"])
    return found
