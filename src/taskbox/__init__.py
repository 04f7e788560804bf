"""taskbox: prebuilt-container executors and the entrypoint runtime that runs inside them.

Importing ``taskbox`` is cheap on purpose (it is paid at every task start): the heavy parts —
protobuf messages, pydantic, fsspec, executors — load lazily, when the entrypoint needs them. The
user-facing names below are attributes resolved on first access (module ``__getattr__``):

* ``taskbox.task`` — the ``@task`` decorator (:mod:`taskbox.authoring.task`);
* ``taskbox.RecoverableError`` — raise it to ask Flyte to retry (:class:`taskbox.errors.RecoverableUserError`);
* ``taskbox.current_context()`` — the running task's context, with ``.checkpoint``;
* ``taskbox.File``, ``taskbox.Directory``, ``taskbox.StructuredDataset`` — data in blob storage.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = [
    "Directory",
    "File",
    "RecoverableError",
    "StructuredDataset",
    "Task",
    "__version__",
    "current_context",
    "task",
]

# For type checkers only (mypy treats any name TYPE_CHECKING as true): the lazy names' real types, so a
# user's ``@taskbox.task`` function type-checks. A local constant: importing ``typing`` here costs ~15 ms.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from taskbox.authoring.task import Task, task
    from taskbox.context import current_context
    from taskbox.errors import RecoverableUserError as RecoverableError
    from taskbox.literals.types import Directory, File, StructuredDataset

# name -> (module, attribute)
_LAZY = {
    "task": ("taskbox.authoring.task", "task"),
    "Task": ("taskbox.authoring.task", "Task"),
    "RecoverableError": ("taskbox.errors", "RecoverableUserError"),
    "current_context": ("taskbox.context", "current_context"),
    "File": ("taskbox.literals.types", "File"),
    "Directory": ("taskbox.literals.types", "Directory"),
    "StructuredDataset": ("taskbox.literals.types", "StructuredDataset"),
}


def __getattr__(name: str) -> object:  # no ``typing`` import: it costs ~15 ms
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'taskbox' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(target[0]), target[1])
    globals()[name] = value  # later accesses skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
