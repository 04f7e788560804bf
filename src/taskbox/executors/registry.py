"""Lazy registry of executors: built-ins by string, third parties through entry points.

Why: the entrypoint pays for every import at every task start, so executors are registered as
strings (``"module:Class"``) and imported only when a template asks for them — fsspec's
``known_implementations`` model, with an install hint for executors whose optional dependencies are
missing from the image. Third-party executors register under the entry-point group
``taskbox.executors`` (name -> ``"module:Class"``); that group is scanned only when a name or task type
is not a built-in, because scanning installed distributions costs about 0.1 s. Code that embeds taskbox
(and tests) can also :func:`register` an executor in-process, as fsspec's ``register_implementation``.

Invariants:
    * A class is validated when it is loaded (pluggy's rule), never when it is called: a broken plugin
      is reported as ``PluginInvalid`` naming what is wrong, before any input is read.
    * A known executor whose dependencies are missing raises ``ExecutorNotInstalled`` with the
      ``pip install 'taskbox[extra]'`` hint; an unknown name or task type raises ``ExecutorNotFound``
      listing what is available.
    * flytekit's executor class paths map to the taskbox executor of the same task type, so
      templates serialized by flytekit run without flytekit; so does ``taskbox.flytekit.executors.<name>``
      (the class path of :mod:`taskbox.flytekit`'s tasks), which names executor ``<name>`` and is never imported.
    * Lookup order: registered from code (validated at registration), built-ins, entry points, then a
      ``module:Class`` path. An entry point named like a built-in is never loaded (so none is declared).
"""

from __future__ import annotations

import importlib
from collections import namedtuple
from typing import TYPE_CHECKING, Any

from taskbox.errors import ExecutorNotFound, ExecutorNotInstalled, PluginInvalid
from taskbox.executors.base import Executor

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "taskbox.executors"


# collections.namedtuple, not typing.NamedTuple: the latter compiles string annotations at import.
class KnownExecutor(namedtuple("KnownExecutor", "name target task_types extra", defaults=(None,))):
    """A built-in executor, described without importing it.

    Attributes:
        name: Registry name (``taskbox execute ... -- TEMPLATE NAME``).
        target: ``"module:Class"``.
        task_types: Template types it serves; the first is its own.
        extra: The ``taskbox[...]`` extra that installs its dependencies, if any.
    """

    __slots__ = ()


# Kept sorted by name (checked below), like fsspec's known_implementations.
BUILTINS: tuple[KnownExecutor, ...] = (
    KnownExecutor("echo", "taskbox.executors.echo:EchoExecutor", ("echo",)),
    KnownExecutor("flyte-connector", "taskbox.executors.connector:ConnectorExecutor", ("flyte-connector",), "flyte2"),
    KnownExecutor("http", "taskbox.executors.http:HTTPExecutor", ("http", "webhook"), "http"),
    KnownExecutor("http-job", "taskbox.executors.http_job:HTTPJobExecutor", ("http-job",), "http"),
    KnownExecutor("sql", "taskbox.executors.sql:SQLExecutor", ("sqlalchemy", "sql"), "sql"),
    KnownExecutor("sqlite", "taskbox.executors.sqlite:SQLiteExecutor", ("sqlite",), "sqlite"),
)


def _check_sorted(known: tuple[KnownExecutor, ...]) -> None:
    """Refuse a built-in table that is not sorted by name (a real check: ``python -O`` drops asserts)."""
    names = [k.name for k in known]
    if names != sorted(names):
        raise RuntimeError(f"taskbox.executors.registry.BUILTINS must be sorted by name, got {names}")


_check_sorted(BUILTINS)

#: flytekit's executor classes (the second resolver argument of its template tasks) -> taskbox name.
FLYTEKIT_ALIASES: dict[str, str] = {
    "flytekit.extras.sqlite3.task.SQLite3TaskExecutor": "sqlite",
    "flytekitplugins.sqlalchemy.task.SQLAlchemyTaskExecutor": "sql",
}
#: The module of :mod:`taskbox.flytekit`'s shim executors: ``<prefix><name>`` names the taskbox executor ``<name>``
#: (a built-in or an entry point). Resolved by name, never imported: executor images have no flytekit.
FLYTEKIT_SHIM_PREFIX = "taskbox.flytekit.executors."

_BY_NAME = {k.name: k for k in BUILTINS}
_BY_TASK_TYPE = {t: k for k in BUILTINS for t in k.task_types}
_loaded: dict[str, type[Executor]] = {}
#: Executors registered from code (:func:`register`), by name; they win over built-ins and entry points.
_registered: dict[str, type[Executor]] = {}


def _entry_points() -> list[EntryPoint]:
    from importlib.metadata import entry_points  # scanning distributions costs ~0.1 s

    return list(entry_points(group=ENTRY_POINT_GROUP))


def _import_target(target: str) -> Any:
    module_name, sep, attr = target.partition(":")
    if not sep:
        module_name, _, attr = target.rpartition(".")
    if not module_name or not attr:
        raise ExecutorNotFound(f"executor reference {target!r} is neither a registered name nor 'module:Class'")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ExecutorNotFound(f"module {module_name!r} has no executor class {attr!r}") from None


def validate(obj: Any, source: str) -> type[Executor]:
    """Check that ``obj`` satisfies the executor contract.

    Args:
        obj: What the registry imported.
        source: Where it came from, for the error message.

    Returns:
        ``obj``, typed as an executor class.

    Raises:
        PluginInvalid: Naming the first broken rule.
    """

    def broken(why: str) -> PluginInvalid:
        return PluginInvalid(f"executor plugin {source} is invalid: {why}")

    if not (isinstance(obj, type) and issubclass(obj, Executor)):
        raise broken(f"{obj!r} is not a subclass of taskbox.executors.Executor")
    if not isinstance(obj.task_type, str) or not obj.task_type:
        raise broken("task_type must be a non-empty string")
    if obj.execute is Executor.execute:
        raise broken("it does not implement execute(context, config, inputs)")
    if not _accepts_positional(obj.execute, 4):
        raise broken("execute must accept (self, context, config, inputs)")
    for method in ("config_inputs", "infer_outputs"):  # taskbox run calls them on the class
        if not isinstance(_static(obj, method), (classmethod, staticmethod)):
            raise broken(f"{method} must be a classmethod (see docs/plugins.md)")
    if obj.Config is not None:
        from pydantic import BaseModel  # the plugin module imported it already

        if not (isinstance(obj.Config, type) and issubclass(obj.Config, BaseModel)):
            raise broken("Config must be a pydantic BaseModel subclass or None")
    contract = getattr(obj, "contract_problems", None)  # AsyncExecutor: create/get/delete, Handle
    why = contract() if callable(contract) else None
    if why:
        raise broken(why)
    return obj


def _static(cls: type, name: str) -> Any:
    """``name`` as defined in the class or its bases, without the descriptor protocol (a classmethod stays one)."""
    for klass in cls.__mro__:
        if name in klass.__dict__:
            return klass.__dict__[name]
    return None


def _accepts_positional(fn: Any, count: int) -> bool:
    """True if ``fn`` takes ``count`` positional arguments (``inspect`` costs ~9 ms to import)."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return True  # a builtin or C callable: cannot tell, let the call decide
    varargs = bool(code.co_flags & 0x04)
    required = code.co_argcount - len(getattr(fn, "__defaults__", None) or ())
    return required <= count and (varargs or code.co_argcount >= count)


def _load_known(known: KnownExecutor) -> type[Executor]:
    try:
        obj = _import_target(known.target)
    except ModuleNotFoundError as exc:
        hint = f"pip install 'taskbox[{known.extra}]'" if known.extra else "reinstall taskbox"
        raise ExecutorNotInstalled(
            f"executor {known.name!r} is not installed in this image ({exc.name} is missing): {hint}, "
            f"or use the taskbox image for {known.name!r}"
        ) from None
    return validate(obj, f"{known.name!r} ({known.target})")


def _load_entry_point(ep: EntryPoint) -> type[Executor]:
    try:
        obj = ep.load()
    except ModuleNotFoundError as exc:
        dist = ep.dist.name if ep.dist is not None else "its distribution"
        raise ExecutorNotInstalled(
            f"executor {ep.name!r} cannot load ({exc.name} is missing): reinstall {dist}"
        ) from None
    return validate(obj, f"{ep.name!r} ({ep.value})")


def _cached(key: str, load: Any) -> type[Executor]:
    cls = _loaded.get(key)
    if cls is None:
        cls = _loaded[key] = load()
    return cls


def load(ref: str) -> type[Executor]:
    """Load an executor by registry name, flytekit class path, or ``module:Class`` import path.

    ``taskbox.flytekit.executors.<name>`` (:data:`FLYTEKIT_SHIM_PREFIX`) is executor ``<name>``.

    Args:
        ref: The reference, as the template's resolver arguments carry it.

    Returns:
        The validated executor class.
    """
    name = FLYTEKIT_ALIASES.get(ref, ref)
    if name.startswith(FLYTEKIT_SHIM_PREFIX):
        name = ref = name[len(FLYTEKIT_SHIM_PREFIX) :]
    registered = _registered.get(name)
    if registered is not None:
        return registered
    known = _BY_NAME.get(name)
    if known is not None:
        return _cached(name, lambda: _load_known(known))
    for ep in _entry_points():
        if ep.name == name:
            return _cached(name, lambda ep=ep: _load_entry_point(ep))
    if ":" in ref or "." in ref:
        return _cached(ref, lambda: _load_import_path(ref))
    raise ExecutorNotFound(f"no executor named {ref!r}; available: {', '.join(sorted(names()))}")


def _load_import_path(ref: str) -> type[Executor]:
    try:
        obj = _import_target(ref)
    except ModuleNotFoundError as exc:
        raise ExecutorNotFound(f"executor {ref!r} cannot be imported: no module named {exc.name!r}") from None
    return validate(obj, repr(ref))


def for_task_type(task_type: str) -> type[Executor]:
    """Load the executor that serves a template type.

    Built-ins are matched first; then an entry point named like the task type; then every
    third-party executor is loaded and asked for its ``task_type``.
    """
    for cls in reversed(_registered.values()):  # the latest registration wins
        if cls.task_type == task_type:
            return cls
    known = _BY_TASK_TYPE.get(task_type)
    if known is not None:
        return _cached(known.name, lambda: _load_known(known))
    eps = _entry_points()
    for ep in eps:
        if ep.name == task_type and ep.name not in _BY_NAME:
            return _cached(ep.name, lambda ep=ep: _load_entry_point(ep))
    served, broken = set(_BY_TASK_TYPE), []
    for ep in eps:
        if ep.name in _BY_NAME:
            continue
        try:
            cls = _cached(ep.name, lambda ep=ep: _load_entry_point(ep))
        except (ExecutorNotInstalled, PluginInvalid):
            broken.append(ep.name)  # an unrelated broken plugin must not hide a working one
            continue
        if cls.task_type == task_type:
            return cls
        served.add(cls.task_type)
    unusable = f"; plugins that failed to load: {', '.join(broken)}" if broken else ""
    raise ExecutorNotFound(
        f"no executor serves task type {task_type!r}; installed executors serve: {', '.join(sorted(served))}{unusable}"
    )


def names() -> list[str]:
    """Every executor name: built-ins, installed entry points and executors registered from code."""
    return sorted(set(_BY_NAME) | {ep.name for ep in _entry_points()} | set(_registered))


class ExecutorInfo(namedtuple("ExecutorInfo", "name target task_types source status config_schema")):
    """What ``taskbox executors`` prints about one executor (``config_schema`` is a JSON schema or None)."""

    __slots__ = ()


def describe() -> list[ExecutorInfo]:
    """Load every executor (built-in and plugin) and describe it; failures are reported, not raised."""
    targets: dict[str, tuple[str, str, Any]] = {k.name: (k.target, "builtin", k) for k in BUILTINS}
    for ep in _entry_points():
        if ep.name not in targets:
            dist = ep.dist.name if ep.dist is not None else "?"
            targets[ep.name] = (ep.value, f"plugin ({dist})", ep)
    for name, cls in _registered.items():
        targets[name] = (f"{cls.__module__}:{cls.__qualname__}", "registered", cls)
    infos = []
    for name, (target, source, spec) in sorted(targets.items()):
        task_types: tuple[str, ...] = spec.task_types if isinstance(spec, KnownExecutor) else ()
        try:
            cls = load(name)
        except (ExecutorNotInstalled, ExecutorNotFound, PluginInvalid) as exc:
            infos.append(ExecutorInfo(name, target, task_types, source, f"unavailable: {exc}", None))
            continue
        schema = cls.Config.model_json_schema() if cls.Config is not None else None
        types = task_types or (cls.task_type,)
        infos.append(ExecutorInfo(name, target, types, source, "available", schema))
    return infos


def register(name: str, executor: type[Executor] | str, *, clobber: bool = False) -> type[Executor]:
    """Register an executor from code, for embedding taskbox and for tests (fsspec's ``register_implementation``).

    The class is validated now, as an entry-point plugin is when loaded; a ``"module:Class"`` string is
    imported and validated now too, so a broken registration fails where it is made. A registered executor
    is found by :func:`load` under ``name`` and by :func:`for_task_type` under its ``task_type``, ahead of
    built-ins and entry points, in this process only.

    Args:
        name: The registry name (``taskbox execute ... -- TEMPLATE NAME``, ``taskbox run --executor NAME``).
        executor: An :class:`~taskbox.executors.Executor` subclass, or its ``"module:Class"`` path.
        clobber: Replace an executor already known by this name, or serving the same task type.

    Returns:
        The validated class.

    Raises:
        ValueError: ``name`` is empty or holds ``:``; or the name or the task type is taken and ``clobber``
            is false.
        ExecutorNotFound: A ``"module:Class"`` string that cannot be imported.
        PluginInvalid: The class breaks the executor contract.

    Example:
        >>> from taskbox.executors.echo import EchoExecutor
        >>> class Shout(EchoExecutor):
        ...     task_type = "shout"
        >>> register("shout", Shout) is Shout and load("shout") is Shout and for_task_type("shout") is Shout
        True
        >>> unregister("shout")

    """
    if not isinstance(name, str) or not name.strip() or ":" in name:
        raise ValueError(f"an executor name is a non-empty string without ':', got {name!r}")
    cls = _load_import_path(executor) if isinstance(executor, str) else validate(executor, repr(name))
    if not clobber:
        if name in _registered or name in _BY_NAME or name in FLYTEKIT_ALIASES:
            raise ValueError(f"an executor named {name!r} is already known; pass clobber=True to replace it")
        taken = [n for n, c in _registered.items() if c.task_type == cls.task_type]
        if taken or cls.task_type in _BY_TASK_TYPE:
            owner = taken[0] if taken else _BY_TASK_TYPE[cls.task_type].name
            raise ValueError(
                f"task type {cls.task_type!r} is served by executor {owner!r}; pass clobber=True to replace it"
            )
    _registered.pop(name, None)  # re-registering moves the name to the end (the latest wins)
    _registered[name] = cls
    return cls


def unregister(name: str) -> None:
    """Forget an executor registered from code (:func:`register`); unknown names are ignored."""
    _registered.pop(name, None)
