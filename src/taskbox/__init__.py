"""taskbox: prebuilt-container executors and the entrypoint runtime that runs inside them.

Importing ``taskbox`` is cheap on purpose (it is paid at every task start): the heavy parts —
protobuf messages, pydantic, fsspec, executors — load lazily, when the entrypoint needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
