"""Code bundles: deterministic packing of a source tree and hardened extraction of a fetched bundle.

Why: user tasks may run from a code bundle (Flyte's fast-register ``*.tar.gz``), which is untrusted
data fetched from blob storage. :mod:`taskbox.bundles.pack` builds content-addressed, byte-for-byte
reproducible bundles; :mod:`taskbox.bundles.extract` validates every member before writing anything
and installs the tree atomically.

Invariants:
    * The names below resolve on first access (module ``__getattr__``), so ``fast-execute``, which
      only extracts, never pays for the packer's imports (hashlib/OpenSSL, gzip) at a task start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskbox.bundles.errors import BundleRejected
    from taskbox.bundles.extract import Limits, fetch_and_extract
    from taskbox.bundles.pack import bundle_name, pack, store_bundle, upload_bundle

__all__ = ["BundleRejected", "Limits", "bundle_name", "fetch_and_extract", "pack", "store_bundle", "upload_bundle"]

_LAZY = {
    "BundleRejected": "taskbox.bundles.errors",
    "Limits": "taskbox.bundles.extract",
    "fetch_and_extract": "taskbox.bundles.extract",
    "bundle_name": "taskbox.bundles.pack",
    "pack": "taskbox.bundles.pack",
    "store_bundle": "taskbox.bundles.pack",
    "upload_bundle": "taskbox.bundles.pack",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskbox.bundles' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
