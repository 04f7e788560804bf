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
    * A known executor whose dependencies are missing raises ``ExecutorNotInstalled`` naming the catalog
      image that carries it and the ``pip install 'taskbox[extra]'`` hint; an unknown name or task type raises
      ``ExecutorNotFound`` listing what is available.
    * Loading a class (:func:`load`, :func:`for_task_type`) imports its module only: authoring code defines
      tasks for executors it cannot run. Running one (:mod:`taskbox.entrypoint.template`) first calls
      :func:`ensure_installed`, which checks the class's ``requires`` with ``importlib.util.find_spec`` (nothing
      is imported), so a missing library is ``USER:ExecutorNotInstalled`` before any input is read, not a
      ``ModuleNotFoundError`` in the middle of the run (SYSTEM, retried forever). :func:`describe` says
      ``available`` only for executors that pass the same check.
    * flytekit's executor class paths map to the taskbox executor of the same task type, so
      templates serialized by flytekit run without flytekit; so does ``taskbox.flytekit.executors.<name>``
      (the class path of :mod:`taskbox.flytekit`'s tasks), which names executor ``<name>`` and is never imported.
    * Lookup order: registered from code (validated at registration), built-ins, entry points, then a
      ``module:Class`` path. An entry point named like a built-in is never loaded (so none is declared).
"""

from __future__ import annotations

import importlib
import re
from collections import namedtuple
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox.errors import ConfigError, ExecutorNotFound, ExecutorNotInstalled, PluginInvalid
from taskbox.executors.base import Executor

if TYPE_CHECKING:
    from importlib.metadata import EntryPoint

ENTRY_POINT_GROUP = "taskbox.executors"


# collections.namedtuple, not typing.NamedTuple: the latter compiles string annotations at import.
class KnownExecutor(namedtuple("KnownExecutor", "name target task_types extra variant", defaults=(None, "base"))):
    """A built-in executor, described without importing it.

    Attributes:
        name: Registry name (``taskbox execute ... -- TEMPLATE NAME``).
        target: ``"module:Class"``.
        task_types: Template types it serves; the first is its own.
        extra: The ``taskbox[...]`` extra that installs its dependencies, if any.
        variant: The image variant that carries it (``taskbox.images`` catalog: ``executor-<variant>``).
    """

    __slots__ = ()

    @property
    def in_catalog_image(self) -> bool:
        """Whether the catalog's image of :attr:`variant` carries it.

        The python variant carries an extra only when built with it (``--build-arg EXTRAS=...``).
        """
        return not (self.variant == "python" and self.extra)


# Kept sorted by name (checked below), like fsspec's known_implementations.
BUILTINS: tuple[KnownExecutor, ...] = (
    KnownExecutor("echo", "taskbox.executors.echo:EchoExecutor", ("echo",)),
    # The python variant with the flyte2 extra (docs/images.md: --build-arg EXTRAS=...,flyte2).
    KnownExecutor(
        "flyte-connector", "taskbox.executors.connector:ConnectorExecutor", ("flyte-connector",), "flyte2", "python"
    ),
    KnownExecutor("http", "taskbox.executors.http:HTTPExecutor", ("http", "webhook"), "http", "http"),
    KnownExecutor("http-job", "taskbox.executors.http_job:HTTPJobExecutor", ("http-job",), "http", "http"),
    KnownExecutor("sql", "taskbox.executors.sql:SQLExecutor", ("sqlalchemy", "sql"), "sql", "sql"),
    KnownExecutor("sqlite", "taskbox.executors.sqlite:SQLiteExecutor", ("sqlite",), "sqlite", "sqlite"),
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
    for method in ("config_inputs", "infer_outputs", "interface"):  # taskbox run calls them on the class
        if not isinstance(_static(obj, method), (classmethod, staticmethod)):
            raise broken(f"{method} must be a classmethod (see docs/plugins.md)")
    if obj.Config is not None:
        from pydantic import BaseModel  # the plugin module imported it already

        if not (isinstance(obj.Config, type) and issubclass(obj.Config, BaseModel)):
            raise broken("Config must be a pydantic BaseModel subclass or None")
    why = _declaration_problems(obj)
    if why:
        raise broken(why)
    contract = getattr(obj, "contract_problems", None)  # AsyncExecutor: create/get/delete, Handle
    why = contract() if callable(contract) else None
    if why:
        raise broken(why)
    return obj


_MODULE_NAME = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")


def _declaration_problems(cls: type[Executor]) -> str | None:
    """What is wrong with the class's ``summary``, ``requires``, ``inputs`` and ``outputs``, or ``None``."""
    if not isinstance(cls.summary, str):
        return "summary must be a string"
    requires = cls.requires
    if not isinstance(requires, (tuple, list)) or not all(
        isinstance(m, str) and _MODULE_NAME.match(m) for m in requires
    ):
        return f"requires must be a tuple of module names, got {requires!r}"
    for section in ("inputs", "outputs"):
        declared = getattr(cls, section)
        if not isinstance(declared, Mapping):
            return f"{section} must be a mapping of names to types (such as {{'count': 'int'}}), got {declared!r}"
        if not declared:
            continue
        from taskbox.typespec import parse_type  # only a class that declares types pays for the literal engine

        for name, spec in declared.items():
            if not isinstance(name, str) or not name.isidentifier():
                return f"{section} names must be identifiers, got {name!r}"
            if not isinstance(spec, str):
                return f"{section}[{name!r}] must be a type-language string (such as 'int'), got {spec!r}"
            try:
                parse_type(spec)
            except ConfigError as exc:
                return f"{section}[{name!r}]: {exc}"
    return None


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


def _image_of(variant: str) -> str:
    """The catalog image of ``variant`` (``ghcr.io/taskbox/executor-<variant>:<tag>``), for messages."""
    from taskbox.images import CatalogError, default_image  # only on the error path

    try:
        return default_image(variant)
    except CatalogError:
        return f"ghcr.io/taskbox/executor-{variant}"


def _known_hint(known: KnownExecutor) -> str:
    """How to get a built-in executor: its catalog image, or its extra."""
    image = _image_of(known.variant)
    if not known.in_catalog_image:
        image += f" built with taskbox[{known.extra}] (docs/images.md)"
    pip = f"pip install 'taskbox[{known.extra}]'" if known.extra else "reinstall taskbox"
    return f"use the {known.variant} image {image}, or {pip}"


def _not_installed(known: KnownExecutor, missing: list[str] | str) -> ExecutorNotInstalled:
    names = ", ".join(missing) if isinstance(missing, list) else missing
    return ExecutorNotInstalled(
        f"executor {known.name!r} is not installed in this image ({names} missing): {_known_hint(known)}"
    )


def _load_known(known: KnownExecutor) -> type[Executor]:
    try:
        obj = _import_target(known.target)
    except ModuleNotFoundError as exc:
        raise _not_installed(known, str(exc.name)) from None
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


def missing_modules(cls: type[Executor]) -> list[str]:
    """The modules of ``cls.requires`` that cannot be imported here (found with ``find_spec``; none imported)."""
    import sys
    from importlib.util import find_spec

    missing = []
    for module in cls.requires:
        if sys.modules.get(module) is not None:  # imported already (None marks a module blocked from import)
            continue
        try:
            found = find_spec(module) is not None
        except (ImportError, ValueError):  # a dotted name whose parent package is missing, or is not a package
            found = False
        if not found:
            missing.append(module)
    return missing


def ensure_installed(cls: type[Executor], ref: str | None = None) -> type[Executor]:
    """Return ``cls`` if it can run here: each module of its ``requires`` is importable.

    Args:
        cls: The executor class (from :func:`load` or :func:`for_task_type`).
        ref: How the template named it, for the message (its name, class path or task type).

    Raises:
        ExecutorNotInstalled: A required module is missing; the message names the image variant that carries
            a built-in executor (``ghcr.io/taskbox/executor-<variant>``), or the distribution of a plugin.
    """
    missing = missing_modules(cls)
    if missing:
        raise not_installed(cls, missing, ref)
    return cls


def not_installed(cls: type[Executor], missing: list[str], ref: str | None = None) -> ExecutorNotInstalled:
    """The ``ExecutorNotInstalled`` for ``cls`` without the modules ``missing``, saying where it can run."""
    target = f"{cls.__module__}:{cls.__qualname__}"
    for known in BUILTINS:
        if known.target == target:
            return _not_installed(known, missing)
    name = next((n for n, c in _registered.items() if c is cls), None)
    dist = None
    if name is None:
        for ep in _entry_points():  # on the error path only
            if ep.value == target:
                name, dist = ep.name, (ep.dist.name if ep.dist is not None else None)
                break
    label = name or ref or cls.task_type
    where = f"install {dist} with its dependencies" if dist else "install the packages that provide them"
    return ExecutorNotInstalled(
        f"executor {label!r} cannot run in this image ({', '.join(missing)} missing): {where}, or run it in an "
        "image that has them (`taskbox image build --executor` installs a distribution with its dependencies)"
    )


def names() -> list[str]:
    """Every executor name: built-ins, installed entry points and executors registered from code."""
    return sorted(set(_BY_NAME) | {ep.name for ep in _entry_points()} | set(_registered))


class ExecutorInfo(
    namedtuple(
        "ExecutorInfo",
        "name target task_types source status config_schema summary inputs outputs requires",
        defaults=("", {}, {}, ()),
    )
):
    """What ``taskbox executors`` prints about one executor.

    Attributes:
        status: ``available`` when the executor can run here (its class loads and every module of its
            ``requires`` is importable), else ``unavailable: <why>``.
        config_schema: Its config model's JSON schema, or ``None``.
        summary: Its one-line ``summary`` (``""`` when it has none or did not load).
        inputs: Its declared ``inputs`` (name -> type-language string).
        outputs: Its declared ``outputs``.
        requires: The modules it needs (``requires``).
    """

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
        try:
            ensure_installed(cls, name)
            status = "available"
        except ExecutorNotInstalled as exc:
            status = f"unavailable: {exc}"
        schema = cls.Config.model_json_schema() if cls.Config is not None else None
        types = task_types or (cls.task_type,)
        infos.append(
            ExecutorInfo(
                name,
                target,
                types,
                source,
                status,
                schema,
                cls.summary,
                dict(cls.inputs),
                dict(cls.outputs),
                tuple(cls.requires),
            )  # fmt: skip
        )
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
