"""Pieces every storage backend shares: what an object is (:class:`ObjectInfo`) and the byte cap.

Why: a cap on a download is only a cap if it counts what arrives. A size the server reports (HEAD,
``Content-Length``, an object store's listing) is a hint for refusing early, never a promise: a hostile
or broken server announces 10 bytes and streams gigabytes. :class:`ByteCounter` is fed every chunk as
it is received and raises :class:`taskbox.errors.StorageTooLarge` on the first byte past the cap, so
the caller stops reading, removes the partial file and reports a typed error. A full disk is never the
cap.

Invariants:
    * ``ByteCounter.add`` raises before the chunk that crosses the cap is written or kept.
    * ``ObjectInfo.validator`` is a *strong* validator or ``None``: the same value means the same bytes
      (an ETag that is not weak, a GCS generation, an S3 version id, a content hash), with a prefix
      naming its kind. ``None`` means the store gave nothing a cache may trust.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from taskbox.errors import StorageTooLarge

__all__ = ["ByteCounter", "ObjectInfo", "fsspec_counting_callback", "too_large", "validator_from_info"]


class ObjectInfo(NamedTuple):  # not a dataclass: ``dataclasses`` costs ~6 ms at every task start
    """What the store reports about one object, without reading it.

    Attributes:
        size: The reported size in bytes, or ``None`` when the store reports none (a chunked HTTP answer).
        validator: A strong validator (see the module docstring), or ``None``.

    """

    size: int | None
    validator: str | None


def too_large(what: str, actual: int, limit: int, *, received: bool = False) -> StorageTooLarge:
    """Build the error for an object over ``limit`` (``received``: counted on arrival, not reported)."""
    if received:
        return StorageTooLarge(f"{what} sent more than {limit} bytes, over the limit; the download was stopped")
    return StorageTooLarge(f"{what} is {actual} bytes, over the limit of {limit}")


class ByteCounter:
    """Counts bytes as they arrive and stops at a cap.

    Args:
        what: Names the object in the error (a redacted URI).
        limit: The cap in bytes, or ``None`` for no cap.

    """

    __slots__ = ("limit", "total", "what")

    def __init__(self, what: str, limit: int | None) -> None:
        self.what = what
        self.limit = limit
        self.total = 0

    def check_reported(self, reported: int | None) -> None:
        """Refuse early when the reported size is already over the cap."""
        if self.limit is not None and reported is not None and reported > self.limit:
            raise too_large(self.what, reported, self.limit)

    def add(self, n: int) -> None:
        """Count ``n`` more bytes received; raise once the total passes the cap."""
        self.total += n
        if self.limit is not None and self.total > self.limit:
            raise too_large(self.what, self.total, self.limit, received=True)


def validator_from_info(info: Mapping[str, Any]) -> str | None:
    """Pick a strong validator from an fsspec ``info`` dict (s3fs, gcsfs and others), else None.

    S3 ``VersionId`` (not ``"null"``), GCS ``generation``, else an ``ETag``/``etag``/MD5 entry that is
    not weak. ``LastModified`` alone is not used: one second apart is not "different" to it.
    """
    version = info.get("VersionId") or info.get("version_id")
    if version and version != "null":
        return f"version:{version}"
    generation = info.get("generation")
    if generation not in (None, ""):
        return f"generation:{generation}"
    for key in ("ETag", "etag", "md5Hash", "content_md5"):
        value = info.get(key)
        if isinstance(value, str) and value.strip() and not value.startswith("W/"):
            return f"{key.lower()}:{value.strip()}"
    return None


def fsspec_counting_callback(counter: ByteCounter, *, trust_reported_size: bool = True) -> Any:
    """Build an fsspec callback that counts each chunk a backend writes and raises past the cap.

    s3fs, gcsfs and fsspec's generic ``get_file`` call ``set_size`` with the reported length (refused
    early when over the cap, unless ``trust_reported_size`` is off) and ``relative_update`` after each
    chunk written (counted). fsspec is imported here, on the remote path only.
    """
    from fsspec.callbacks import Callback

    class Counting(Callback):  # type: ignore[misc]
        def set_size(self, size: int | None) -> None:
            if trust_reported_size:
                counter.check_reported(size)

        def relative_update(self, inc: int = 1) -> None:
            counter.add(inc)

        def absolute_update(self, value: int) -> None:
            counter.add(value - counter.total)

    return Counting()
