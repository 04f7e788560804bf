"""The flyte SDK side of the ``flyte-connector`` executor: find the connector, build its arguments, call it.

Why its own module: everything that touches the ``flyte`` SDK (``flyte.connectors``, ``flyteidl2``, flyte's
type engine) lives here and is imported lazily, inside functions, so taskbox's own environment (and mypy) never
needs the SDK, and the images without it pay nothing. :mod:`taskbox.executors.connector` holds the executor,
its config and its handle, and calls these functions; this module never imports it back.

What a connector receives is what Flyte's connector service (``flyte/connectors/_server.py``) gives it:

* ``task_template``: a ``flyteidl2`` ``TaskTemplate``, transcoded from the v1 template taskbox runs (the two
  share field numbers and wire shapes), with ``type``/``task_type_version`` set to the connector's, ``custom``
  replaced by the config's ``task_config`` and the container's ``command``/``args`` (taskbox's own) removed;
* ``inputs``: native values decoded by flyte's type engine from literals, with Python types guessed from the
  template's interface (``TypeEngine.guess_python_type``), as the service does; taskbox's values are encoded
  back to literals first (remote data is referenced, not copied);
* ``output_prefix``, ``task_execution_metadata`` and the connection's secrets and configs as keyword arguments.

Invariants:
    * Every connector call runs on one private event loop in a daemon thread (connectors may keep clients
      bound to their loop between calls); the caller waits at most ``timeout`` seconds, then the call is
      cancelled and :class:`ConnectorTimeout` raised. A wait interrupted by ``Terminated`` cancels the call.
    * Connector instances are cached per process by their reference, so create/get/delete of one run share
      one instance, as in a connector service.
    * The SDK missing is :class:`ConnectorSDKMissing` (USER, not retried), naming ``taskbox[flyte2]``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from taskbox.errors import PlatformError, UserError

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = [
    "ConnectorCallFailed",
    "ConnectorInvalid",
    "ConnectorNotFound",
    "ConnectorSDKMissing",
    "ConnectorTimeout",
    "ConnectorUnavailable",
    "call",
    "connector_template",
    "execution_metadata",
    "load_connector",
    "native_inputs",
    "taskbox_outputs",
]

log = logging.getLogger("taskbox.jobs")

#: The entry-point group flyte's connector service loads connectors from.
ENTRY_POINT_GROUP = "flyte.connectors"


class ConnectorSDKMissing(UserError):
    """The flyte SDK (or its connector API) is not installed in this image."""

    code = "USER:FlyteSDKMissing"


class ConnectorNotFound(UserError):
    """No connector matches the config: its module is missing, or no registered connector serves the task type."""

    code = "USER:ConnectorNotFound"


class ConnectorInvalid(UserError):
    """The connector is broken: its module fails to import, it is not an AsyncConnector, or it answered nonsense."""

    code = "USER:InvalidConnector"


class ConnectorCallFailed(UserError):
    """The connector's ``create`` raised: the user's code failed; retried, as Flyte 2 retries a raised exception."""

    code = "USER:ConnectorError"
    recoverable = True


class ConnectorUnavailable(PlatformError):
    """The connector's ``get`` raised, or a call failed with a network error (``OSError``): retried."""

    code = "SYSTEM:ConnectorUnavailable"


class ConnectorTimeout(PlatformError):
    """A connector call did not return within ``call_timeout_seconds`` (it was cancelled)."""

    code = "SYSTEM:ConnectorTimeout"


# ------------------------------------------------------------------------------------ the SDK


def sdk() -> Any:
    """Import ``flyte.connectors`` (the connector API).

    Raises:
        ConnectorSDKMissing: ``flyte`` is missing, or its connector extra (``grpcio``...) is.

    """
    try:
        import flyte
    except ImportError as exc:
        raise ConnectorSDKMissing(
            f"the flyte-connector executor needs the flyte SDK ({exc}); run it in an image with taskbox[flyte2] "
            "(the `python` variant) plus the connector's own package"
        ) from None
    try:
        import flyte.connectors as connectors
    except ImportError as exc:
        raise ConnectorSDKMissing(
            f"flyte {getattr(flyte, '__version__', '?')} is installed but its connector API cannot be imported "
            f"({exc}): install taskbox[flyte2] with flyte's connector extra, pip install 'flyte[connector]'"
        ) from None
    return connectors


# ----------------------------------------------------------------------------- finding the connector

_instances: dict[tuple[str, str, int], Any] = {}
_instances_lock = threading.Lock()


def _import(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise ConnectorNotFound(
            f"{what} {module!r} cannot be imported: no module named {exc.name!r}; install the connector's package "
            "in the image"
        ) from None
    except Exception as exc:  # noqa: BLE001 - a broken connector module: the user's code
        raise ConnectorInvalid(f"{what} {module!r} failed to import: {type(exc).__name__}: {exc}") from None


def _load_entry_points() -> None:
    """Import every ``flyte.connectors`` entry point, as flyte's connector service does (failures are logged)."""
    from importlib.metadata import entry_points

    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            ep.load()
        except Exception as exc:  # noqa: BLE001 - as flyte's service: an unrelated broken plugin must not stop us
            log.warning("could not load connector entry point %r (%s): %s", ep.name, ep.value, exc)


def load_connector(ref: str, task_type: str, version: int, modules: list[str]) -> Any:
    """Find the connector instance: by import path, or by task type in flyte's ``ConnectorRegistry``.

    Args:
        ref: ``"module:Class"`` (instantiated without arguments) or ``"module:instance"``; ``""`` to look up
            ``task_type`` instead.
        task_type: The connector's ``task_type_name`` for a registry lookup.
        version: The connector's ``task_type_version`` for a registry lookup.
        modules: Modules to import before the lookup (they register their connectors).

    Returns:
        An ``AsyncConnector`` instance (cached per process).

    Raises:
        ConnectorSDKMissing: No SDK.
        ConnectorNotFound: Nothing matches.
        ConnectorInvalid: The module fails to import, or the object is not an AsyncConnector.

    """
    connectors = sdk()
    key = (ref, task_type, version)
    with _instances_lock:
        if key in _instances:
            return _instances[key]
        for module in modules:
            _import(module, "connector module")
        if ref:
            found = _from_path(connectors, ref)
        else:
            found = _from_registry(connectors, task_type, version)
        _instances[key] = found
        return found


def _from_path(connectors: Any, ref: str) -> Any:
    module_name, _, attr = ref.partition(":")
    obj: Any = _import(module_name, "connector module")
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ConnectorNotFound(f"module {module_name!r} has no connector {attr!r}")
        obj = getattr(obj, part)
    base = connectors.AsyncConnector
    if isinstance(obj, type) and issubclass(obj, base):
        try:
            obj = obj()
        except Exception as exc:  # noqa: BLE001 - the connector's constructor is the user's code
            raise ConnectorInvalid(f"connector {ref!r} cannot be created without arguments: {exc}") from None
    if not isinstance(obj, base):
        raise ConnectorInvalid(f"{ref!r} is {type(obj).__name__}, not a flyte.connectors.AsyncConnector (or its class)")
    return obj


def _from_registry(connectors: Any, task_type: str, version: int) -> Any:
    registry = connectors.ConnectorRegistry
    for attempt in range(2):
        try:
            return registry.get_connector(task_type, version)
        except ValueError:  # flyte's FlyteConnectorNotFound
            if attempt == 0:
                _load_entry_points()
    known = sorted(f"{k.task_type_name} (version {k.task_type_version})" for k in getattr(registry, "_REGISTRY", {}))
    raise ConnectorNotFound(
        f"no connector serves task type {task_type!r} version {version}; registered: {', '.join(known) or 'none'}. "
        f"Install the connector's package (an entry point in group {ENTRY_POINT_GROUP!r}), list its module in "
        "'modules', or name it in 'connector' as 'module:Class'"
    )


# --------------------------------------------------------------------------------- its arguments


def _idl2(module: str) -> Any:
    """A ``flyteidl2`` module (installed with the SDK), e.g. ``_idl2("core.tasks_pb2")``."""
    import importlib

    return importlib.import_module(f"flyteidl2.{module}")


def connector_template(template: Any, connector: Any, task_config: Mapping[str, Any]) -> Any:
    """The ``flyteidl2`` ``TaskTemplate`` the connector's ``create`` receives (see the module docstring).

    Args:
        template: The v1 ``TaskTemplate`` taskbox runs.
        connector: The connector instance (its ``task_type_name`` and ``task_type_version``).
        task_config: The config's ``task_config``: the template's ``custom`` as the connector reads it.

    """
    v2 = _idl2("core.tasks_pb2").TaskTemplate.FromString(template.SerializeToString())
    v2.type = str(getattr(connector, "task_type_name", "") or template.type)
    v2.task_type_version = int(getattr(connector, "task_type_version", 0) or 0)
    v2.ClearField("custom")
    v2.custom.update(dict(task_config))
    if v2.HasField("container"):  # taskbox's own command line: not the connector's business
        del v2.container.command[:]
        del v2.container.args[:]
    return v2


def execution_metadata(context: ExecutionContext) -> Any:
    """A ``TaskExecutionMetadata`` naming this run as the connector service would (what taskbox knows of it)."""
    meta = _idl2("connector.connector_pb2").TaskExecutionMetadata()
    ident = meta.task_execution_id
    ident.task_id.resource_type = 1  # TASK
    ident.task_id.project, ident.task_id.domain = context.task.project, context.task.domain
    ident.task_id.name, ident.task_id.version = context.task.name, context.task.version
    execution = ident.node_execution_id.execution_id
    execution.project, execution.domain, execution.name = (
        context.execution.project,
        context.execution.domain,
        context.execution.name,
    )
    ident.retry_attempt = max(0, int(context.attempt))
    return meta


async def _native(literal_map: Any, types: Mapping[str, Any]) -> dict[str, Any]:
    from flyte.types import TypeEngine

    guessed = {name: TypeEngine.guess_python_type(lt) for name, lt in types.items()}
    return dict(await TypeEngine.literal_map_to_kwargs(literal_map, guessed))


def native_inputs(
    context: ExecutionContext, template: Any, inputs: Mapping[str, Any], timeout: float
) -> dict[str, Any]:
    """Taskbox's input values as flyte's native values, decoded as Flyte's connector service decodes them.

    Args:
        context: The run (its raw-output prefix and scratch directory, for the encoding).
        template: The v2 template (its interface types the guesses).
        inputs: Input values as taskbox converted them.
        timeout: Longest wait for the decoding.

    Raises:
        InputError: A value cannot be encoded or decoded.

    """
    if not inputs:
        return {}
    from taskbox.errors import InputError, TaskboxError
    from taskbox.literals import ConversionContext, python_to_literal_map

    declared = context.template.interface.inputs.variables
    ctx = ConversionContext(context.raw_output_prefix, context.working_dir)
    try:
        v1 = python_to_literal_map(inputs, {name: declared[name].type for name in inputs}, ctx)
    except TaskboxError as exc:
        raise InputError(f"cannot pass the inputs to the connector: {exc}") from None
    literal_map = _idl2("core.literals_pb2").LiteralMap.FromString(v1.SerializeToString())  # same wire as v1's
    types = {entry.key: entry.value.type for entry in template.interface.inputs.variables}
    try:
        return dict(call(_native, {"literal_map": literal_map, "types": types}, timeout=timeout, what="input decoding"))
    except TaskboxError:
        raise
    except Exception as exc:  # noqa: BLE001 - flyte's type engine refused a value
        raise InputError(f"flyte's type engine cannot decode the inputs for the connector: {exc}") from None


def taskbox_outputs(context: ExecutionContext, outputs: Any, output_prefix: str) -> dict[str, Any]:
    """A SUCCEEDED resource's outputs as values taskbox converts by the declared interface.

    ``Resource.outputs`` (name -> native value) is used when the connector gave one: flyte's ``File``/``Dir``
    become taskbox's ``File``/``Directory`` and ``DataFrame`` a ``StructuredDataset`` (a local path is
    uploaded, a remote one referenced); other values pass as they are. Without outputs, the connector may
    have written ``outputs.pb`` under ``output_prefix`` (Flyte's backend reads it then); it is read by the
    declared types.

    Raises:
        OutputError: Outputs are declared, but the connector gave none and wrote no ``outputs.pb``.

    """
    if outputs is not None:
        if not isinstance(outputs, Mapping):
            raise ConnectorInvalid(f"the connector's Resource.outputs is {type(outputs).__name__}, not a dict")
        return {str(name): _to_taskbox(value) for name, value in outputs.items()}
    declared = dict(context.output_types)
    if not declared:
        return {}
    from flyteidl.core import literals_pb2

    from taskbox import storage
    from taskbox.errors import OutputError, StorageNotFound
    from taskbox.literals import ConversionContext, literal_map_to_python

    uri = storage.join(output_prefix, "outputs.pb")
    try:
        data = storage.read_bytes(uri)
    except StorageNotFound:
        raise OutputError(
            f"the connector's job SUCCEEDED without outputs and wrote no outputs.pb under {output_prefix}; "
            f"declared outputs: {', '.join(sorted(declared))}"
        ) from None
    ctx = ConversionContext(context.raw_output_prefix, context.working_dir)
    return literal_map_to_python(literals_pb2.LiteralMap.FromString(data), declared, ctx)  # v2 Outputs: same wire


def _to_taskbox(value: Any) -> Any:
    kind = type(value)
    if kind.__module__.startswith("flyte.io"):
        from taskbox.literals import Directory, File, StructuredDataset

        handles: dict[str, Any] = {"File": File, "Dir": Directory}  # File["csv"]: the format's subclass
        if kind.__name__ in handles:
            return handles[kind.__name__][value.format or ""](value.path)
        if kind.__name__ == "DataFrame":
            if value.uri:
                return StructuredDataset(value.uri, file_format=value.format or "parquet")
            return StructuredDataset(dataframe=getattr(value, "_raw_df", None))
    if isinstance(value, list):
        return [_to_taskbox(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_taskbox(item) for key, item in value.items()}
    return value


# ------------------------------------------------------------------------------------- calling it

_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="taskbox-connector-loop", daemon=True).start()
            _loop = loop
        return _loop


async def _invoke(fn: Callable[..., Any], kwargs: Mapping[str, Any]) -> Any:
    import inspect

    result = fn(**kwargs)
    if inspect.isawaitable(result):
        result = await result
    return result


def call(fn: Callable[..., Any], kwargs: Mapping[str, Any], *, timeout: float, what: str) -> Any:
    """Run ``fn(**kwargs)`` (a coroutine function, or a plain one) on the connector loop and return its result.

    Args:
        fn: The connector's method.
        kwargs: Its keyword arguments.
        timeout: Longest wait, in seconds.
        what: Names the call in the timeout's message.

    Raises:
        ConnectorTimeout: No answer within ``timeout`` (the call is cancelled).
        Exception: Whatever the call raised, unchanged (the caller classifies it).

    """
    future = asyncio.run_coroutine_threadsafe(_invoke(fn, kwargs), _event_loop())
    try:
        done, _ = concurrent.futures.wait([future], timeout=timeout)
    except BaseException:  # Terminated while waiting: the call is abandoned
        future.cancel()
        raise
    if not done:
        future.cancel()
        raise ConnectorTimeout(f"the connector's {what} did not return within call_timeout_seconds={timeout:g}")
    return future.result()
