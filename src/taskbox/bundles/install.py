"""Install a fetched code bundle for a run: the caps from the environment, then the hardened extraction.

Used by ``taskbox fast-execute`` (and by ``taskbox run`` for templates whose args start with it), on the
cold path only: :func:`taskbox.entrypoint.fast_execute.install_bundle` first looks for a completed tree
(``DEST/.taskbox-bundles/<key>/`` with its completion marker) without importing this package, and calls
:func:`extract_bundle` only when there is none.

Invariants:
    * Only ``target`` and its ``.<key>.*`` lock/staging/download siblings are written
      (:func:`taskbox.bundles.extract.fetch_and_extract`); an unwritable destination is a typed storage error.
    * A malformed ``TASKBOX_BUNDLE_MAX_*`` variable is ``USER:InvalidConfig``, found before any download.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from taskbox.bundles.extract import Limits, fetch_and_extract

__all__ = ["LIMIT_ENV", "extract_bundle", "limits_from_env"]

#: Environment variable -> :class:`taskbox.bundles.Limits` field (units, minimums and defaults: the
#: settings registry, :mod:`taskbox.settings`).
LIMIT_ENV: dict[str, str] = {
    "TASKBOX_BUNDLE_MAX_MB": "max_compressed",
    "TASKBOX_BUNDLE_MAX_EXTRACTED_MB": "max_total",
    "TASKBOX_BUNDLE_MAX_FILES": "max_members",
    "TASKBOX_BUNDLE_MAX_RATIO": "max_ratio",
}


def limits_from_env(env: Mapping[str, str] | None = None) -> Limits:
    """The extraction caps, with overrides from ``TASKBOX_BUNDLE_MAX_*`` (see :data:`LIMIT_ENV`).

    Args:
        env: The environment (``os.environ`` by default).

    Raises:
        taskbox.errors.ConfigError: A variable is not a whole number of at least 1 (``USER:InvalidConfig``).
    """
    from taskbox import settings

    return Limits(**{field: settings.integer(var, environ=env) for var, field in LIMIT_ENV.items()})


def extract_bundle(uri: str, target: str) -> None:
    """Fetch the bundle at ``uri`` and extract it as ``target`` (once, under a lock), within the caps.

    Raises:
        taskbox.bundles.BundleRejected: The bundle breaks a rule (USER, non-recoverable).
        taskbox.errors.StorageError: The bundle cannot be fetched, or the destination cannot be written.
        taskbox.errors.ConfigError: A ``TASKBOX_BUNDLE_MAX_*`` variable is malformed.
    """
    from taskbox.storage import local

    limits = limits_from_env()
    with local.translate(target):  # an unwritable destination is a typed storage error
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fetch_and_extract(uri, target, limits=limits)
