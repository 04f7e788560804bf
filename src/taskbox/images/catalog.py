"""The image catalog (``catalog.toml``, packaged; ``images/catalog.toml`` in the source tree links to it).

Why: task templates carry an image reference, and the reference must name an image built from the same
taskbox version as the SDK that wrote the template (flytekit once shipped a release before its image
existed, flyte#6480). The catalog says where each variant is published and how its tags are made; the lock
beside it (:mod:`taskbox.images.lock`, ``catalog.lock.toml``) says which digest a push of this version
stored, and :func:`default_image` then pins ``repository:tag@digest``.

Invariants:
    * Read lazily (``tomllib`` is imported on first use) and once per process.
    * Tags follow the catalog's scheme ``<version>-py<python>``; nothing ever references ``latest``.
    * One function makes a variant's reference, with or without a registry override
      (:meth:`Catalog.reference`): builds tag it, pushes push it, the lock records it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from taskbox.images.errors import CatalogError
from taskbox.images.lock import load_lock

__all__ = ["Catalog", "ImageEntry", "default_image", "load_catalog"]

CATALOG_RESOURCE = "catalog.toml"


@dataclass(frozen=True)
class ImageEntry:
    """One variant of the catalog.

    Attributes:
        variant: ``base``, ``sqlite``, ``sql``, ``http`` or ``python``.
        repository: Where the variant is published (``ghcr.io/taskbox/executor-sqlite``).
        description: What the image runs.

    """

    variant: str
    repository: str
    description: str


@dataclass(frozen=True)
class Catalog:
    """The whole catalog.

    Attributes:
        tag_scheme: The tag format, with ``{version}`` and ``{python}`` fields.
        python: The Python minor of the published images (``3.11``).
        entries: Variant name -> entry, in the catalog's order.

    """

    tag_scheme: str
    python: str
    entries: dict[str, ImageEntry]

    def entry(self, variant: str) -> ImageEntry:
        """Return the entry of ``variant``.

        Raises:
            CatalogError: The catalog has no such variant.

        """
        try:
            return self.entries[variant]
        except KeyError:
            known = ", ".join(self.entries)
            raise CatalogError(f"no image variant {variant!r} in the catalog (known: {known})") from None

    def tag(self, version: str, python: str | None = None) -> str:
        """Return the tag of ``version`` for ``python`` (default: the catalog's Python)."""
        return self.tag_scheme.format(version=version, python=python or self.python)

    def repository(self, variant: str, registry: str | None = None) -> str:
        """Return the repository of ``variant``; ``registry`` (``ghcr.io/acme``) replaces the catalog's.

        With a registry the repository is ``<registry>/<the catalog repository's last component>``
        (``ghcr.io/acme/executor-sqlite``).

        Raises:
            CatalogError: No such variant.

        """
        repository = self.entry(variant).repository
        if registry:
            return "/".join((registry.rstrip("/"), repository.rsplit("/", 1)[-1]))
        return repository

    def reference(self, variant: str, version: str, python: str | None = None, registry: str | None = None) -> str:
        """Return ``repository:tag`` of ``variant`` (never a digest: the lock holds those).

        Args:
            variant: The catalog variant.
            version: The taskbox version.
            python: The image's Python minor (default: the catalog's).
            registry: Replaces the catalog's registry and namespace (see :meth:`repository`).

        Raises:
            CatalogError: No such variant.

        """
        return f"{self.repository(variant, registry)}:{self.tag(version, python)}"


def _parse(data: dict[str, Any]) -> Catalog:
    try:
        head = data["catalog"]
        entries = {
            name: ImageEntry(
                variant=name,
                repository=str(spec["repository"]),
                description=str(spec.get("description", "")),
            )
            for name, spec in data["variants"].items()
        }
        return Catalog(tag_scheme=str(head["tag"]), python=str(head["python"]), entries=entries)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CatalogError(f"the image catalog is malformed: missing or wrong {exc}") from exc


@lru_cache(maxsize=1)
def load_catalog() -> Catalog:
    """Read the packaged catalog (once per process).

    Raises:
        CatalogError: The catalog is missing or malformed.

    """
    import tomllib  # lazy: only the SDK and the CLI read the catalog

    try:
        text = resources.files(__package__).joinpath(CATALOG_RESOURCE).read_text(encoding="utf-8")
        return _parse(tomllib.loads(text))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise CatalogError(f"the image catalog cannot be read: {exc}") from exc


def default_image(variant: str) -> str:
    """Return the catalog image of ``variant`` for the installed taskbox version.

    The image lock's ``reference@digest`` when a push of this version recorded one (the packaged lock, or the
    one :func:`taskbox.images.lock.using_lock` set); the catalog's ``repository:<version>-py<python>``
    otherwise (not published).

    Raises:
        CatalogError: No such variant, or the lock is malformed.

    """
    from taskbox import __version__

    catalog = load_catalog()
    catalog.entry(variant)
    return load_lock().pinned(variant, __version__) or catalog.reference(variant, __version__)
