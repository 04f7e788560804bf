"""Where conversions put and fetch data: the raw-output prefix and a local working directory.

Why: converting a file, a directory or a table to a literal uploads it, and converting a remote literal
back to a Python value downloads it on demand. Both need to know *where*, and that is a property of the
task attempt (Flyte's ``--raw-output-data-prefix``, the entrypoint's scratch directory), not of the value.

Invariants:
    * Uploaded data lands under ``<raw_output_prefix>/<32 hex chars>/...``, flytekit's layout
      (``FileAccessProvider.get_random_remote_path``); the random segment never repeats within a process.
    * Local copies live under ``working_dir``; nothing is written elsewhere.
    * Paths are built with :func:`taskbox.storage.join` / :func:`os.path.join`, never by pasting strings.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from taskbox.literals.origins import Origins

__all__ = ["ConversionContext", "local_path", "random_segment"]

_default_lock = threading.Lock()
_default: ConversionContext | None = None


def local_path(uri: str) -> str:
    """Return the file-system path of a local URI (``/x``, ``file:///x``, ``file://localhost/x``).

    Raises:
        ValueError: ``uri`` is not local (see :func:`taskbox.storage.is_local`).

    """
    from taskbox import storage  # lazy: keep `import taskbox.literals` cheap
    from taskbox.errors import StorageError
    from taskbox.storage.local import to_path

    if not storage.is_local(uri):
        raise ValueError(f"{uri} is not a local path")
    try:
        return to_path(uri)
    except StorageError as exc:
        raise ValueError(str(exc)) from None


def random_segment() -> str:
    """Return a fresh 32-character lowercase hex string, the shape flytekit uses for upload folders."""
    return os.urandom(16).hex()


class ConversionContext:
    """Per-attempt locations used by conversions that move data.

    Args:
        raw_output_prefix: Path or URI under which uploaded files, directories and tables are written
            (Flyte's ``--raw-output-data-prefix``), e.g. ``/tmp/raw`` or ``s3://bucket/raw``.
        working_dir: Local directory for downloads of remote inputs.
        origins: What decoded inputs carried beyond their values (union variants, hashes), so that
            outputs passed through unchanged are written back as they came (one task attempt's
            :class:`taskbox.literals.origins.Origins`); ``None`` remembers nothing. Not part of equality.

    """

    __slots__ = ("origins", "raw_output_prefix", "working_dir")
    raw_output_prefix: str
    working_dir: str
    origins: Origins | None

    def __init__(self, raw_output_prefix: str, working_dir: str, *, origins: Origins | None = None) -> None:
        object.__setattr__(self, "raw_output_prefix", raw_output_prefix)
        object.__setattr__(self, "working_dir", working_dir)
        object.__setattr__(self, "origins", origins)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("ConversionContext is immutable")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConversionContext):
            return NotImplemented
        return (self.raw_output_prefix, self.working_dir) == (other.raw_output_prefix, other.working_dir)

    def __hash__(self) -> int:
        return hash((self.raw_output_prefix, self.working_dir))

    def __repr__(self) -> str:
        return f"ConversionContext(raw_output_prefix={self.raw_output_prefix!r}, working_dir={self.working_dir!r})"

    @classmethod
    def default(cls) -> ConversionContext:
        """Return a process-wide context in a private temporary directory, for callers that pass none."""
        global _default
        with _default_lock:
            if _default is None:
                import tempfile  # lazy: costs ~20 ms, only needed without an explicit context

                base = tempfile.mkdtemp(prefix="taskbox-literals-")
                _default = cls(raw_output_prefix=os.path.join(base, "raw"), working_dir=os.path.join(base, "work"))
            return _default

    def random_remote_path(self, basename: str | None = None) -> str:
        """Return ``<raw_output_prefix>/<random32hex>[/<basename>]`` (flytekit's upload layout).

        Args:
            basename: Last path segment to keep (a file's name); ``None`` for a bare random folder.

        """
        from taskbox import storage

        parts = [random_segment()]
        if basename:
            parts.append(basename)
        return storage.join(self.raw_output_prefix, *parts)

    def holds(self, path: str) -> bool:
        """Tell whether a local ``path`` already lies under a *local* raw-output prefix.

        Data written there (by an executor that stages its own output) is final: conversions pass its
        path on instead of copying it under a new random folder.
        """
        from taskbox import storage

        if not storage.is_local(self.raw_output_prefix):
            return False
        root = os.path.realpath(local_path(self.raw_output_prefix))
        target = os.path.realpath(path)
        return target != root and os.path.commonpath([root, target]) == root

    def random_local_path(self, basename: str | None = None) -> str:
        """Return a fresh path ``<working_dir>/<random32hex>[/<basename>]``; nothing is created."""
        parts = [self.working_dir, random_segment()]
        if basename:
            parts.append(basename)
        return os.path.join(*parts)
