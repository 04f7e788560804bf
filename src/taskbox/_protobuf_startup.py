"""Defer protobuf's pure-Python message implementation, which the upb backend never uses.

Why: every generated ``*_pb2`` module goes through ``google.protobuf.internal.builder`` and
``descriptor_pool``, which import ``internal.python_message`` unconditionally; that module pulls in
``text_format``, the pure-Python decoder/encoder, ``pickle``... (~15 ms, a sixth of an ``echo`` run).
With the upb backend (protobuf's default wheel) none of it runs: upb builds the message classes and
imports ``text_format`` itself when a message is printed.

:func:`install` puts a one-shot finder in front of ``sys.meta_path`` that loads ``python_message``
through :class:`importlib.util.LazyLoader`: the module object exists at once, its code runs on first
attribute access. Nothing is imported by ``install`` itself; ``taskbox.entrypoint`` calls it first thing.

Invariants:
    * Transparent: any attribute access runs the real module (the pure-Python backend, selected by
      ``PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python``, is not deferred at all).
    * Only that one module is deferred, and only if protobuf was not imported before ``install``.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: this runs at each task start, before ``typing`` is needed
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

DEFERRED = "google.protobuf.internal.python_message"


class _DeferPythonMessage:
    """A meta path finder for :data:`DEFERRED` only; it removes itself once used."""

    @classmethod
    def find_spec(cls, name: str, path: Sequence[str] | None = None, target: Any = None) -> Any:
        if name != DEFERRED:
            return None
        if cls in sys.meta_path:
            sys.meta_path.remove(cls)
        import importlib.machinery
        import importlib.util

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is not None and spec.loader is not None:
            spec.loader = importlib.util.LazyLoader(spec.loader)
        return spec


def install() -> None:
    """Defer :data:`DEFERRED` until first use (no-op if protobuf is loaded or runs in pure Python)."""
    if DEFERRED in sys.modules or _DeferPythonMessage in sys.meta_path:
        return
    if os.environ.get("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "").strip().lower() == "python":
        return
    sys.meta_path.insert(0, _DeferPythonMessage)
