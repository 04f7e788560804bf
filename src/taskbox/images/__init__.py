"""Executor images: the catalog of published images and the tooling that builds and checks images.

* :mod:`taskbox.images.catalog` reads ``catalog.toml`` (repository per variant, tag scheme) and answers
  :func:`default_image`, the reference the authoring objects put in task templates: pinned by digest when
  :mod:`taskbox.images.lock` (``catalog.lock.toml``) records a push of the installed version.
* :mod:`taskbox.images.context` stages build contexts; :mod:`taskbox.images.build` builds and checks
  images through the Docker SDK (the ``images`` extra); :mod:`taskbox.images.push` pushes them and records
  the lock; :mod:`taskbox.images.registry` asks registries (HTTP API v2) whether they serve a digest;
  :mod:`taskbox.images.cli` is ``taskbox images`` and ``taskbox image build|push|sizes|tags``.

Importing this package is cheap: nothing reads the catalog or talks to Docker until asked.
"""

from __future__ import annotations

from taskbox.images.catalog import Catalog, ImageEntry, default_image, load_catalog
from taskbox.images.errors import CatalogError, DockerUnavailable, ImageBuildError

#: The image variants, parents first (``Dockerfiles/<variant>.Dockerfile``).
VARIANTS = ("base", "sqlite", "sql", "http", "python")

__all__ = [
    "VARIANTS",
    "Catalog",
    "CatalogError",
    "DockerUnavailable",
    "ImageBuildError",
    "ImageEntry",
    "default_image",
    "load_catalog",
]
