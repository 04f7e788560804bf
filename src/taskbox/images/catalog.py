"""The image catalog (``catalog.toml``, packaged; ``images/catalog.toml`` in the source tree links to it).

Why: task templates carry an image reference, and the reference must name an image built from the same
taskbox version as the SDK that wrote the template (flytekit once shipped a release before its image
existed, flyte#6480). The catalog is the one place that says where each variant is published and, once a
release has pushed it, which digest a tag resolved to; the SDK then pins ``repository:tag@digest``.

Invariants:
    * Read lazily (``tomllib`` is imported on first use) and once per process.
    * Tags follow the catalog's scheme ``<version>-py<python>``; nothing ever references ``latest``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any

from taskbox.images.errors import CatalogError

__all__ = ["Catalog", "ImageEntry", "default_image", "load_catalog"]

CATALOG_RESOURCE = "catalog.toml"


@dataclass(frozen=True)
class ImageEntry:
    """One variant of the catalog.

    Attributes:
        variant: ``base``, ``sqlite``, ``sql``, ``http`` or ``python``.
        repository: Where the variant is published (``ghcr.io/taskbox/executor-sqlite``).
        description: What the image runs.
        digests: Tag -> ``sha256:...`` digest, for the tags a release has published.

    """

    variant: str
    repository: str
    description: str
    digests: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Catalog:
    """The whole catalog.

    Attributes:
        tag_scheme: The tag format, with ``{version}`` and ``{python}`` fields.
        python: The Python minor of the published images (``3.12``).
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

    def reference(self, variant: str, version: str, python: str | None = None) -> str:
        """Return ``repository:tag``, with ``@digest`` appended when the catalog records one."""
        entry = self.entry(variant)
        tag = self.tag(version, python)
        digest = entry.digests.get(tag)
        reference = f"{entry.repository}:{tag}"
        return f"{reference}@{digest}" if digest else reference


def _parse(data: dict[str, Any]) -> Catalog:
    try:
        head = data["catalog"]
        entries = {
            name: ImageEntry(
                variant=name,
                repository=str(spec["repository"]),
                description=str(spec.get("description", "")),
                digests={str(k): str(v) for k, v in spec.get("digests", {}).items()},
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

    Returns:
        ``repository:<version>-py<python>``, pinned as ``...@sha256:...`` when a digest is recorded.

    Raises:
        CatalogError: No such variant.

    """
    from taskbox import __version__

    return load_catalog().reference(variant, __version__)
