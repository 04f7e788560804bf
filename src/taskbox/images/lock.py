"""The image lock (``catalog.lock.toml``, packaged beside ``catalog.toml``): the digests a push recorded.

Why: a tag can be moved; a digest cannot. After ``taskbox image push`` (``make push``) the lock records, for
each variant pushed, the reference it was pushed as (``repository:tag``), the manifest digest the registry
stored, and the taskbox version it was built from. A release commits the lock before publishing the wheel,
so the wheel's authoring classes default to ``repository:tag@sha256:...`` (:func:`pinned`) and a template
can only ever name an image that was pushed (flyte#6480).

The file (TOML, one table per variant, written by :func:`record`)::

    [variants.base]
    reference = "ghcr.io/taskbox/executor-base:0.1.0-py3.11"
    digest = "sha256:0123..."
    version = "0.1.0"

Invariants:
    * An entry pins only its own taskbox version: a lock left from another version pins nothing.
    * The packaged lock is read once per process; a missing packaged lock is an empty one (nothing
      published). An explicit path (``--lock``, :func:`using_lock`) that does not exist is an error.
    * :func:`record` merges: variants not pushed this time keep their entries. It writes atomically,
      through a symbolic link (``images/catalog.lock.toml`` links to the packaged file).
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from taskbox.images.errors import CatalogError

__all__ = ["LOCK_RESOURCE", "Lock", "LockEntry", "load_lock", "record", "using_lock"]

LOCK_RESOURCE = "catalog.lock.toml"
DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
#: ``repository:tag`` with no digest; the repository may carry a registry host with a port.
_TAGGED = re.compile(r"^[^@\s]+/[^@\s:/]+:[\w][\w.-]{0,127}$")

_HEADER = """\
# The image lock: what `taskbox image push` (`make push`) recorded for each variant it pushed -- the
# reference it pushed, the manifest digest the registry stored, and the taskbox version the image was
# built from. Committed at release, before the wheel is published: the authoring classes then default to
# "reference@digest" for that version (docs/images.md). Written by the tool; do not edit by hand.
"""

#: An explicit lock for this process (:func:`using_lock`); ``None``: the packaged one.
_override: Path | None = None


@dataclass(frozen=True)
class LockEntry:
    """One variant's published image.

    Attributes:
        variant: The catalog variant (``sqlite``).
        reference: ``repository:tag`` as pushed (``ghcr.io/taskbox/executor-sqlite:0.1.0-py3.11``).
        digest: The manifest digest the registry stored (``sha256:...``).
        version: The taskbox version the image was built from.

    """

    variant: str
    reference: str
    digest: str
    version: str

    @property
    def repository(self) -> str:
        """``reference`` without its tag."""
        return self.reference.rsplit(":", 1)[0]

    @property
    def pinned(self) -> str:
        """``repository:tag@sha256:...``."""
        return f"{self.reference}@{self.digest}"


@dataclass(frozen=True)
class Lock:
    """The whole lock.

    Attributes:
        entries: Variant -> entry.
        source: Where it was read from (for messages).

    """

    entries: Mapping[str, LockEntry] = field(default_factory=dict)
    source: str = ""

    def entry(self, variant: str, version: str) -> LockEntry | None:
        """The entry of ``variant`` if it pins ``version``; ``None`` when that version is not published."""
        found = self.entries.get(variant)
        return found if found is not None and found.version == version else None

    def pinned(self, variant: str, version: str) -> str | None:
        """``repository:tag@sha256:...`` of ``variant`` for ``version``, or ``None`` when not published."""
        found = self.entry(variant, version)
        return found.pinned if found is not None else None


def _entry(variant: str, spec: Any, source: str) -> LockEntry:
    if not isinstance(spec, dict):
        raise CatalogError(f"the image lock {source} is malformed: variants.{variant} is not a table")
    try:
        found = LockEntry(variant, str(spec["reference"]), str(spec["digest"]), str(spec["version"]))
    except KeyError as exc:
        raise CatalogError(f"the image lock {source} is malformed: variants.{variant} has no {exc}") from None
    if not DIGEST.match(found.digest):
        raise CatalogError(
            f"the image lock {source}: variants.{variant}.digest {found.digest!r} is not sha256:<64 hex>"
        )
    if not _TAGGED.match(found.reference):
        raise CatalogError(
            f"the image lock {source}: variants.{variant}.reference {found.reference!r} is not repository:tag"
        )
    return found


def parse(text: str, source: str) -> Lock:
    """Parse a lock file's text.

    Raises:
        CatalogError: It is not TOML or an entry is malformed.

    """
    import tomllib  # lazy: only the SDK's default image and the CLI read the lock

    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"the image lock {source} is not TOML: {exc}") from exc
    variants = data.get("variants", {})
    if not isinstance(variants, dict):
        raise CatalogError(f"the image lock {source} is malformed: [variants] is not a table")
    return Lock({name: _entry(name, spec, source) for name, spec in variants.items()}, source)


@lru_cache(maxsize=1)
def _packaged() -> Lock:
    resource = resources.files(__package__).joinpath(LOCK_RESOURCE)
    try:
        text = resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Lock(source=f"(packaged {LOCK_RESOURCE}: missing)")
    except OSError as exc:
        raise CatalogError(f"the packaged image lock cannot be read: {exc}") from exc
    return parse(text, f"(packaged {LOCK_RESOURCE})")


def load_lock(path: Path | None = None) -> Lock:
    """Read the lock: ``path``, else the one :func:`using_lock` set, else the packaged one (cached).

    Raises:
        CatalogError: An explicit lock is missing or unreadable, or any lock is malformed.

    """
    path = path or _override
    if path is None:
        return _packaged()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CatalogError(f"the image lock {path} cannot be read: {exc}") from exc
    return parse(text, str(path))


@contextlib.contextmanager
def using_lock(path: Path) -> Iterator[Lock]:
    """Make ``path`` this process's lock while the block runs (the default images pin from it).

    For tools and tests that author tasks against another lock than the packaged one: a mirror's lock, or
    the one a test push wrote. Not thread-safe: the whole process sees the override.

    Raises:
        CatalogError: ``path`` cannot be read or is malformed (checked on entry).

    """
    global _override
    lock = load_lock(path)
    previous, _override = _override, path
    try:
        yield lock
    finally:
        _override = previous


def _toml_string(value: str) -> str:
    # TOML basic strings take JSON's escapes (json never writes "\/"); ASCII-only keeps it simple.
    import json

    return json.dumps(value, ensure_ascii=True)


def render(entries: Iterable[LockEntry]) -> str:
    """The lock file's text for ``entries`` (sorted by variant: a rewrite of the same entries is identical)."""
    parts = [_HEADER]
    for found in sorted(entries, key=lambda e: e.variant):
        parts.append(
            f"\n[variants.{found.variant}]\n"
            f"reference = {_toml_string(found.reference)}\n"
            f"digest = {_toml_string(found.digest)}\n"
            f"version = {_toml_string(found.version)}\n"
        )
    return "".join(parts)


def record(path: Path, entries: Iterable[LockEntry]) -> Lock:
    """Add ``entries`` to the lock at ``path`` (created if missing), replacing those of the same variants.

    Args:
        path: The lock file; a symbolic link is followed, the file it names is replaced.
        entries: What a push recorded.

    Returns:
        The lock as written.

    Raises:
        CatalogError: The existing lock is malformed, or the file cannot be written.

    """
    target = path.resolve()
    current = dict(load_lock(target).entries) if target.exists() else {}
    for found in entries:
        current[found.variant] = found
    text = render(current.values())
    scratch: str | None = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, scratch = tempfile.mkstemp(prefix=".catalog-lock-", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(scratch, 0o644)
        os.replace(scratch, target)
    except OSError as exc:
        if scratch is not None:
            Path(scratch).unlink(missing_ok=True)
        raise CatalogError(f"the image lock {path} cannot be written: {exc}") from exc
    return parse(text, str(path))
