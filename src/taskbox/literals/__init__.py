"""Flyte literal type engine: Python values <-> ``flyteidl.core.literals_pb2.Literal``.

Why: taskbox runs inside Flyte task containers and must read ``inputs.pb`` / write ``outputs.pb``
exactly as flytekit does, whether the task is a user function (Python type hints) or a prebuilt
executor that only knows the template's interface (``LiteralType`` values). See
``docs/flyte-contract.md`` section 6 for the encodings.

Invariants:
    * Importing this package is free: every public name is imported on first access, the engine's
      transformer families one module at a time as their types are met (see ``engine``). msgpack,
      pydantic, pyarrow, pandas, json_format and fsspec load on first use.
      ``tests/test_startup_imports.py`` holds the modules an ``echo`` run may import.
    * Every conversion error is a :class:`~taskbox.errors.TaskboxError` that names the expected and
      the actual type (``InputError`` reading, ``OutputError`` writing, storage errors as they are).

Example:
    >>> from flyteidl.core import types_pb2
    >>> lit = TypeEngine.to_literal([1, 2], list[int])
    >>> TypeEngine.to_python_value(lit, literal_type=types_pb2.LiteralType(
    ...     collection_type=types_pb2.LiteralType(simple=types_pb2.INTEGER)))
    [1, 2]

"""

from __future__ import annotations

from typing import TYPE_CHECKING

from taskbox._lazy import lazy_attributes

if TYPE_CHECKING:
    from taskbox.literals.context import ConversionContext
    from taskbox.literals.engine import TypeEngine, TypeTransformer
    from taskbox.literals.maps import literal_map_to_python, python_to_literal_map
    from taskbox.literals.offload import offload_limits_from_env, offload_literals
    from taskbox.literals.types import Directory, File, StructuredDataset

__all__ = [
    "ConversionContext",
    "Directory",
    "File",
    "StructuredDataset",
    "TypeEngine",
    "TypeTransformer",
    "literal_map_to_python",
    "offload_limits_from_env",
    "offload_literals",
    "python_to_literal_map",
]

# name -> module: each name is imported on first access (module ``__getattr__``), so a run that only needs
# the context or the wire fast path does not pay for the engine, the maps or offloading.
_LAZY = {
    "ConversionContext": "taskbox.literals.context",
    "TypeEngine": "taskbox.literals.engine",
    "TypeTransformer": "taskbox.literals.engine",
    "literal_map_to_python": "taskbox.literals.maps",
    "python_to_literal_map": "taskbox.literals.maps",
    "offload_limits_from_env": "taskbox.literals.offload",
    "offload_literals": "taskbox.literals.offload",
    "Directory": "taskbox.literals.types",
    "File": "taskbox.literals.types",
    "StructuredDataset": "taskbox.literals.types",
}


__getattr__, __dir__ = lazy_attributes(__name__, _LAZY)
