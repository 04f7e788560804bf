"""Lazy package attributes (PEP 562): a public name imports its module on first access, not at import.

Why: every task start pays for what ``import taskbox...`` imports, so packages list their public names and
the modules behind them instead of importing those modules. One helper serves the subpackages; a name whose
module needs an optional extra says which one to install when it is missing (fsspec's registry of
implementations with an install hint is the model). ``taskbox`` itself keeps its own ``__getattr__``:
``import taskbox`` imports no submodule at all (tests/authoring/test_task.py).

Example::

    __getattr__, __dir__ = lazy_attributes(__name__, {"File": "taskbox.literals.types"})

Invariants:
    * Stdlib only and no ``typing`` import at run time: ``taskbox.literals`` uses it on every task start.
    * A resolved name is stored in the package's namespace, so later accesses do not come back here.
    * Only a missing module named in ``requires`` (or one of its submodules) becomes the install hint; any
      other ``ModuleNotFoundError`` is a real error and propagates unchanged.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence

__all__ = ["lazy_attributes"]


def lazy_attributes(
    package: str,
    names: Mapping[str, str | tuple[str, str]],
    *,
    requires: Sequence[str] = (),
    needs: str = "",
    extra: str = "",
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """Return a package's ``__getattr__`` and ``__dir__`` for ``names``.

    Args:
        package: The package's ``__name__``.
        names: Public name -> its module (the attribute has the same name), or ``(module, attribute)``.
        requires: Top-level modules of an optional extra (``("flyte", "flyteidl2")``).
        needs: What they are, for the message ("the flyte SDK").
        extra: The pip extra that installs them (``flyte2``: ``pip install 'taskbox[flyte2]'``).
    """

    def __getattr__(name: str) -> object:
        target = names.get(name)
        if target is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, attribute = (target, name) if isinstance(target, str) else target
        try:
            value = getattr(importlib.import_module(module), attribute)
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if not any(missing == r or missing.startswith(f"{r}.") for r in requires):
                raise
            raise ModuleNotFoundError(
                f"{package}.{name} needs {needs} ({missing} is missing): pip install 'taskbox[{extra}]'",
                name=missing,
            ) from None
        setattr(sys.modules[package], name, value)  # later accesses skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(names))

    return __getattr__, __dir__
