"""Code bundles: deterministic packing of a source tree and hardened extraction of a fetched bundle.

Why: user tasks may run from a code bundle (Flyte's fast-register ``*.tar.gz``), which is untrusted
data fetched from blob storage. :mod:`taskbox.bundles.pack` builds content-addressed, byte-for-byte
reproducible bundles; :mod:`taskbox.bundles.extract` validates every member before writing anything
and installs the tree atomically.
"""

from __future__ import annotations

from taskbox.bundles.errors import BundleRejected
from taskbox.bundles.extract import Limits, fetch_and_extract
from taskbox.bundles.pack import bundle_name, pack, store_bundle, upload_bundle

__all__ = ["BundleRejected", "Limits", "bundle_name", "fetch_and_extract", "pack", "store_bundle", "upload_bundle"]
