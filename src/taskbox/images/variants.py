"""Build the variant images and custom executor images, and measure them.

* :func:`build_variant` builds ``Dockerfiles/<variant>.Dockerfile`` on a Python base image.
* :func:`build_executor_image` adds a third-party executor to a taskbox image and checks, inside the
  new image, that every executor it brings loads.
* :func:`image_sizes` measures the images' uncompressed sizes and what each adds to its base.

Invariants:
    * Tags are ``<repository>:<version>-py<python>``, ``python`` read from the base image itself.
    * With ``key_tag`` an image whose build key (context content hash, build arguments, the base
      image's id) is unchanged is not rebuilt: the key is part of the tag.
    * A variant image's configuration is normalized after the build (:mod:`taskbox.images.reproducible`):
      two builds of the same commit on the same base give the same image id (docs/images.md).
    * One build at a time on a machine: builds hold an exclusive lock (:func:`build_lock`), and the
      reuse check happens under it, so two sessions wanting the same image build it once.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskbox.images import build as sdk
from taskbox.images.catalog import load_catalog
from taskbox.images.context import BuildContext, stage_executor, stage_variant
from taskbox.images.errors import ImageBuildError
from taskbox.images.provenance import export_sbom, provenance
from taskbox.images.reproducible import normalize_image

__all__ = ["BuiltImage", "SizeRow", "build_executor_image", "build_variant", "image_sizes", "variant_tag"]

#: Site-packages of flytekit 1.16 with its SQLAlchemy plugin, pandas and pyarrow (measured; issue 6).
FLYTEKIT_SITE_PACKAGES_MB = 549
#: What each variant may add to its Python base, in MB (issue 6: at most half of flytekit's 549 MB).
SIZE_BUDGET_MB = {"base": 150, "http": 170, "sqlite": 270, "sql": 270, "python": FLYTEKIT_SITE_PACKAGES_MB / 2}
MB = 1_000_000
#: The machine-wide build lock (the test machines are shared: builds run in series).
LOCK_FILE = Path(tempfile.gettempdir()) / "taskbox-image-build.lock"


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """Hold the machine-wide image build lock (waits for other builds to finish)."""
    with LOCK_FILE.open("a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class BuiltImage:
    """An image that exists in the engine.

    Attributes:
        tag: Its reference.
        id: Its image id.
        reused: Whether an existing image with the same build key was reused instead of a build.
        executors: For custom executor images, the executors the image adds (``taskbox executors --json``).

    """

    tag: str
    id: str
    reused: bool = False
    executors: tuple[dict[str, Any], ...] = ()


def variant_tag(variant: str, version: str, python: str, registry: str | None = None) -> str:
    """Return ``<repository>:<version>-py<python>`` (:meth:`taskbox.images.catalog.Catalog.reference`).

    ``registry`` replaces the catalog's registry: the repository becomes ``<registry>/executor-<variant>``.
    Builds tag this reference and ``taskbox image push`` pushes it, so ``REGISTRY`` means the same to both.
    """
    return load_catalog().reference(variant, version, python, registry)


def _key(context: BuildContext, buildargs: Mapping[str, str], parent_id: str) -> str:
    digest = hashlib.sha256(context.content_hash.encode())
    for name in sorted(buildargs):
        digest.update(f"\0{name}={buildargs[name]}".encode())
    digest.update(parent_id.encode())
    return digest.hexdigest()[:16]


def _parent_id(client: Any, reference: str) -> str:
    if not sdk.image_exists(client, reference):
        raise ImageBuildError(reference, "the parent image does not exist locally (no registry pulls): build it first")
    return client.images.get(reference).id


def build_variant(
    client: Any,
    variant: str,
    *,
    base_image: str,
    version: str,
    revision: str | None = None,
    source: Path,
    tag: str | None = None,
    registry: str | None = None,
    key_tag: str | None = None,
    created: str | None = None,
    source_date_epoch: int | None = None,
    sbom_dir: Path | None = None,
    nocache: bool = False,
    extra_buildargs: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Build one variant image.

    Args:
        client: From :func:`taskbox.images.build.docker_client`.
        variant: ``base``, ``sqlite``, ``sql``, ``http`` or ``python``.
        base_image: The Python base (``BASE_IMAGE``); must exist locally.
        version: ``org.opencontainers.image.version`` and the tag's version.
        revision: ``org.opencontainers.image.revision`` (default: the git commit of ``source``).
        source: The taskbox source tree.
        tag: The reference to tag (default: :func:`variant_tag` with the base's Python).
        registry: Replaces the catalog's registry in the default tag.
        key_tag: A repository (``taskbox-test/sqlite``): tag the image ``<key_tag>:<build key>`` as well,
            and reuse an existing image with that tag instead of building.
        created: Overrides ``org.opencontainers.image.created`` (default: ``source_date_epoch`` in RFC 3339).
        source_date_epoch: The commit time (default: ``SOURCE_DATE_EPOCH``, else ``source``'s last commit;
            never the clock): the ``created`` label, the SBOM's timestamp, the image's file times.
        sbom_dir: Export the image's SBOM to ``<sbom_dir>/<variant>.cdx.json`` (default: no export).
        nocache: Build every step afresh (and never reuse a ``key_tag`` image): a reproducibility check.
        extra_buildargs: More ``--build-arg`` values (``EXTRA_PACKAGES`` of the ``python`` variant).
        progress: Called with each build output line.

    Raises:
        ImageBuildError: The build failed, its parent is missing, or no commit time is known.

    """
    parent_id = _parent_id(client, base_image)
    facts = provenance(
        client, source=source, base_image=base_image, version=version, revision=revision, epoch=source_date_epoch
    )
    buildargs = {**(extra_buildargs or {}), **facts.buildargs()}
    if created:
        buildargs["CREATED"] = created
    with build_lock(), tempfile.TemporaryDirectory(prefix=f"taskbox-image-{variant}-") as scratch:
        context = stage_variant(variant, Path(scratch) / "context", source)
        keyed = f"{key_tag}:{_key(context, buildargs, parent_id)}" if key_tag else None
        final = tag or keyed or variant_tag(variant, version, sdk.image_python(client, base_image), registry)
        if keyed and not nocache and sdk.image_exists(client, keyed):
            image = client.images.get(keyed)
            image.tag(*final.rsplit(":", 1))
            built = BuiltImage(final, image.id, reused=True)
        else:
            sdk.build(client, context, final, buildargs=buildargs, progress=progress, nocache=nocache)
            # The legacy builder stamps the configuration with the clock: the same commit, the same id.
            image_id = normalize_image(client, final, facts.source_date_epoch)
            if keyed and keyed != final:
                client.images.get(image_id).tag(*keyed.rsplit(":", 1))
            built = BuiltImage(final, image_id)
    if sbom_dir is not None:
        export_sbom(client, built.tag, sbom_dir / f"{variant}.cdx.json")
    return built


def build_executor_image(
    client: Any,
    executor: str,
    tag: str,
    *,
    parent: str,
    progress: Callable[[str], None] | None = None,
) -> BuiltImage:
    """Build an image that adds a third-party executor to ``parent``, then check the executor loads.

    Args:
        client: From :func:`taskbox.images.build.docker_client`.
        executor: A project folder, a wheel, or a requirement for pip (see
            :func:`taskbox.images.context.stage_executor`).
        tag: The reference to tag.
        parent: The taskbox image to build on (usually the ``base`` variant); must exist locally.
        progress: Called with each build output line.

    Returns:
        The image, with the executors it adds over ``parent``.

    Raises:
        ImageBuildError: The build failed, the image adds no executor, or one of them does not load.

    """
    from taskbox.images import custom

    _parent_id(client, parent)
    log: list[str] = []
    with build_lock(), tempfile.TemporaryDirectory(prefix="taskbox-image-executor-") as scratch:
        context, requirement = stage_executor(executor, Path(scratch) / "context")
        kept = parent  # until the build succeeds, every image it made is a leftover
        try:
            image_id = sdk.build(
                client, context, tag, buildargs={"PARENT": parent, "EXECUTOR": requirement}, progress=progress, log=log
            )
            kept = image_id
        finally:  # the builder stage (parent + pip + overlay) is not left behind, built or not
            custom.remove_stages(client, log, kept)
    before = {e["name"] for e in sdk.installed_executors(client, parent)}
    added = [e for e in sdk.installed_executors(client, tag) if e["name"] not in before]
    broken = [f"{e['name']}: {e['status']}" for e in added if e["status"] != "available"]
    if not added or broken:
        client.images.remove(tag)  # an image that fails its check is not left behind under its tag
        if not added:
            raise ImageBuildError(tag, f"{executor} registers no executor (entry point group taskbox.executors)")
        raise ImageBuildError(tag, "executors do not load inside the image: " + "; ".join(broken))
    labels = custom.labels_for(added, custom.distributions(client, tag), parent, custom.parent_digest(client, parent))
    image_id = custom.label_build(client, image_id, tag, labels)
    return BuiltImage(tag, image_id, executors=tuple(added))


@dataclass(frozen=True)
class SizeRow:
    """One line of ``taskbox image sizes``.

    Attributes:
        variant: The variant.
        tag: The image measured.
        size_mb: Uncompressed size.
        delta_mb: What the image adds to its base.
        budget_mb: What it may add (issue 6).

    """

    variant: str
    tag: str
    size_mb: float
    delta_mb: float
    budget_mb: float


def image_sizes(client: Any, tags: Mapping[str, str], base_image: str) -> list[SizeRow]:
    """Measure each variant image (``variant -> tag``) against ``base_image``.

    Raises:
        ImageBuildError: An image is missing.

    """
    base = _size(client, base_image)
    rows = []
    for variant, tag in tags.items():
        size = _size(client, tag)
        rows.append(SizeRow(variant, tag, size / MB, (size - base) / MB, float(SIZE_BUDGET_MB.get(variant, 0))))
    return rows


def _size(client: Any, reference: str) -> int:
    if not sdk.image_exists(client, reference):
        raise ImageBuildError(reference, "does not exist locally: build it first (make images)")
    return int(client.images.get(reference).attrs["Size"])


def format_sizes(rows: Sequence[SizeRow], base_image: str) -> str:
    """Format the table ``make image-sizes`` prints, with flytekit's figure beside."""
    lines = [
        f"uncompressed sizes over the Python base {base_image} "
        f"(flytekit 1.16 + SQLAlchemy plugin + pandas + pyarrow: {FLYTEKIT_SITE_PACKAGES_MB} MB of site-packages)",
        f"{'variant':<8} {'size MB':>8} {'adds MB':>8} {'budget':>7} {'vs flytekit':>11}  image",
    ]
    for row in rows:
        share = row.delta_mb / FLYTEKIT_SITE_PACKAGES_MB
        flag = "" if row.delta_mb <= row.budget_mb else "  OVER BUDGET"
        sizes = f"{row.size_mb:>8.1f} {row.delta_mb:>8.1f} {row.budget_mb:>7.0f} {share:>10.0%}"
        lines.append(f"{row.variant:<8} {sizes}  {row.tag}{flag}")
    return "\n".join(lines)
