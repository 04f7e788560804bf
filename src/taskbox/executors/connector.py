"""The ``flyte-connector`` executor: run a flyte-sdk ``AsyncConnector`` inside the task's pod.

Why: a flyte-sdk connector (``create`` -> ``ResourceMeta``, ``get`` -> ``Resource``, ``delete``) normally runs in
a connector service that Flyte's backend calls. Many teams have the connector (a package) but no service, or
run under another orchestrator. This executor drives the same connector from the pod, through taskbox's
job loop (:mod:`taskbox.executors.jobloop`): the connector's metadata is the durable handle in the checkpoint,
a restarted container or the next attempt resumes polling the same job instead of creating a second one, and
SIGTERM or ``timeout_seconds`` calls the connector's ``delete``. The SDK side (finding the connector, building
its template and inputs, the event loop) is :mod:`taskbox.executors.connector_bridge`.

Config (the template's ``custom``, :class:`ConnectorConfig`)::

    {"connector": "batch_connector.connector:BatchJobConnector",   # or "task_type": "batch_job"
     "task_config": {...},                                          # the custom the connector reads
     "secrets": {"api_token": {"group": "jobs", "key": "token"}},  # keyword arguments of every call
     "timeout_seconds": 3600, ...}                                  # the loop's settings (JobConfig)

Invariants:
    * The flyte SDK is imported only when a job is created, polled or deleted, and declared in ``requires``:
      without it the run fails with ``USER:ExecutorNotInstalled`` naming ``taskbox[flyte2]`` before any input
      is read; an SDK without its connector API is ``USER:FlyteSDKMissing``.
    * The handle (:class:`ConnectorHandle`) holds ``ResourceMeta.encode()``'s bytes (base64), the connector's
      task type and the ``output_prefix`` given to ``create``; ``get``/``delete`` decode it with the connector's
      ``metadata_type``, so they work from the handle alone in a later attempt. Secrets never enter it: they
      are read at each call and passed as keyword arguments.
    * Phases are Flyte's ``TaskExecution`` phases: SUCCEEDED, FAILED (``USER:JobFailed``, not retried),
      RETRYABLE_FAILED (``SYSTEM:JobFailed``, retried), ABORTED (``USER:JobAborted``); UNDEFINED, QUEUED,
      INITIALIZING and WAITING_FOR_RESOURCES wait as QUEUED; any other value is ``USER:InvalidConnector``.
    * What the connector raises is classified: taskbox errors keep theirs; in ``create`` an ``OSError`` is
      ``SYSTEM:ConnectorUnavailable`` and anything else ``USER:ConnectorError`` (retried, Flyte 2's rule for a
      raised exception); in ``get`` anything is ``SYSTEM:ConnectorUnavailable``, which the loop tolerates
      ``max_poll_failures - 1`` times in a row. Each call is bounded by ``call_timeout_seconds`` (``delete`` by
      ``cancel_grace_seconds``).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskbox.errors import ConfigError, TaskboxError
from taskbox.executors.connector_bridge import (
    ConnectorCallFailed,
    ConnectorInvalid,
    ConnectorNotFound,
    ConnectorSDKMissing,
    ConnectorTimeout,
    ConnectorUnavailable,
)
from taskbox.executors.jobs import AsyncExecutor, JobConfig, JobGone, JobHandle, JobPhase, JobStatus, LogLink

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = [
    "ConnectorCallFailed",
    "ConnectorConfig",
    "ConnectorExecutor",
    "ConnectorHandle",
    "ConnectorInvalid",
    "ConnectorNotFound",
    "ConnectorSDKMissing",
    "ConnectorSecret",
    "ConnectorTimeout",
    "ConnectorUnavailable",
    "phase_of",
]

_DOTTED = r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*"
_IMPORT_PATH = re.compile(rf"{_DOTTED}:{_DOTTED}")
_MODULE = re.compile(_DOTTED)
#: The parameters of create/get/delete: a connection keyword may not take their names.
_RESERVED = frozenset({"self", "task_template", "output_prefix", "inputs", "task_execution_metadata", "resource_meta"})

#: flyteidl2 ``TaskExecution.Phase`` value -> the loop's phase.
_PHASES = {
    0: JobPhase.QUEUED,  # UNDEFINED
    1: JobPhase.QUEUED,  # QUEUED
    2: JobPhase.RUNNING,  # RUNNING
    3: JobPhase.SUCCEEDED,  # SUCCEEDED
    4: JobPhase.ABORTED,  # ABORTED
    5: JobPhase.FAILED,  # FAILED
    6: JobPhase.QUEUED,  # INITIALIZING
    7: JobPhase.QUEUED,  # WAITING_FOR_RESOURCES
    8: JobPhase.RETRYABLE_FAILURE,  # RETRYABLE_FAILED
}


def phase_of(value: Any) -> JobPhase:
    """Map a connector's ``Resource.phase`` (a flyteidl2 ``TaskExecution.Phase`` value) onto the loop's phase.

    Raises:
        ConnectorInvalid: Not a known phase value.

    Example:
        >>> phase_of(3).value, phase_of(8).value, phase_of(6).value
        ('SUCCEEDED', 'RETRYABLE_FAILURE', 'QUEUED')

    """
    if isinstance(value, bool) or not isinstance(value, int) or value not in _PHASES:
        raise ConnectorInvalid(f"the connector answered phase {value!r}, which is no TaskExecution phase")
    return _PHASES[value]


class ConnectorSecret(BaseModel):
    """A Flyte secret passed to the connector as a keyword argument.

    Attributes:
        group: The secret's group.
        key: The key inside the group.
        group_version: Optional version of the group.
        env_var: A custom environment variable to read first.

    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    key: str | None = None
    group_version: str | None = None
    env_var: str | None = None


class ConnectorConfig(JobConfig):
    """The ``flyte-connector`` executor's config: which connector, what it reads, and the loop's settings.

    Attributes:
        connector: ``"module:Class"`` (created without arguments) or ``"module:instance"``; empty to look the
            connector up by task type in flyte's ``ConnectorRegistry``.
        task_type: The connector's ``task_type_name`` for the registry lookup (default: the template's
            ``type``, unless that is ``flyte-connector``).
        task_type_version: The connector's ``task_type_version`` for the lookup.
        modules: Modules imported before the lookup (they register connectors), besides the ``flyte.connectors``
            entry points, which are loaded when the task type is not registered yet.
        task_config: The connector's task config: the ``custom`` of the template its ``create`` receives.
        secrets: Keyword -> secret, read at each call and passed to create/get/delete (a connector
            service's ``connection.secrets``).
        connection: Keyword -> plain value, passed the same way (``connection.configs``).
        call_timeout_seconds: Longest wait for one ``create`` or ``get`` call.

    """

    connector: str = ""
    task_type: str = ""
    task_type_version: int = Field(default=0, ge=0)
    modules: list[str] = []
    task_config: dict[str, Any] = {}
    secrets: dict[str, ConnectorSecret] = {}
    connection: dict[str, str] = {}
    call_timeout_seconds: float = Field(default=300.0, gt=0)

    @field_validator("connector")
    @classmethod
    def _import_path(cls, value: str) -> str:
        if value and not _IMPORT_PATH.fullmatch(value):
            raise ValueError(f"{value!r} is not an import path 'package.module:Class'")
        return value

    @field_validator("modules")
    @classmethod
    def _module_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not _MODULE.fullmatch(name):
                raise ValueError(f"{name!r} is not a module name")
        return value

    @model_validator(mode="after")
    def _keywords(self) -> ConnectorConfig:
        both = sorted(set(self.secrets) & set(self.connection))
        if both:
            raise ValueError(f"{both[0]!r} is both a secret and a connection keyword")
        for name in (*self.secrets, *self.connection):
            if not name.isidentifier() or name in _RESERVED:
                raise ValueError(
                    f"{name!r} cannot be a connection keyword: it must be an identifier and none of {sorted(_RESERVED)}"
                )
        return self


class ConnectorHandle(JobHandle):
    """A connector's job: its serialized ``ResourceMeta`` and what ``get``/``delete`` need besides.

    Attributes:
        connector: The connector's ``name`` (for messages).
        task_type: The connector's ``task_type_name``.
        task_type_version: The connector's ``task_type_version``.
        resource_meta: ``ResourceMeta.encode()``, base64.
        output_prefix: The ``output_prefix`` given to ``create`` (a connector may write ``outputs.pb`` there).

    """

    connector: str = ""
    task_type: str
    task_type_version: int = 0
    resource_meta: str
    output_prefix: str

    def meta_bytes(self) -> bytes:
        """The encoded ``ResourceMeta``."""
        return base64.b64decode(self.resource_meta.encode("ascii"), validate=True)

    def label(self) -> str:
        """Name the job by its task type and metadata (the JSON flyte's ``ResourceMeta.encode`` writes)."""
        from taskbox.redaction import redact

        try:
            shown = self.meta_bytes().decode("utf-8")
        except (ValueError, binascii.Error):
            shown = f"<{len(self.resource_meta)} base64 characters>"
        return redact(f"{self.task_type} {shown}")[:200]


class ConnectorExecutor(AsyncExecutor):
    """Runs a flyte-sdk ``AsyncConnector``'s create/get/delete in the pod, with a durable handle."""

    task_type = "flyte-connector"
    Config = ConnectorConfig
    Handle = ConnectorHandle
    summary = "runs a flyte-sdk AsyncConnector in the pod; resumes its job after restarts, deletes it on SIGTERM"
    requires = ("flyte",)  # the flyte SDK, imported when a job is created, polled or deleted

    def __init__(self) -> None:
        self._metas: dict[str, Any] = {}  # handle.resource_meta -> the object create returned (no decode)

    def create(self, context: ExecutionContext, config: ConnectorConfig, inputs: Mapping[str, Any]) -> ConnectorHandle:
        """Build the connector's template and inputs, call its ``create`` and keep its metadata."""
        from taskbox import storage
        from taskbox.executors import connector_bridge as bridge

        connector = _connector(context, config)
        template = bridge.connector_template(context.template, connector, config.task_config)
        native = bridge.native_inputs(context, template, inputs, config.call_timeout_seconds)
        prefix = storage.join(context.raw_output_prefix, f"connector-{os.urandom(8).hex()}")
        if storage.is_local(prefix):  # an object store has no folders; flyte's local writes need one
            from taskbox.storage.local import to_path

            os.makedirs(to_path(prefix), exist_ok=True)
        kwargs = {
            "task_template": template,
            "output_prefix": prefix,
            "inputs": native,
            "task_execution_metadata": bridge.execution_metadata(context),
            **_connection(context, config),
        }
        meta = _call(config, connector.create, kwargs, "create")
        encode = getattr(meta, "encode", None)
        data = encode() if callable(encode) else None
        if not isinstance(data, bytes):
            raise ConnectorInvalid(
                f"the connector's create returned {type(meta).__name__}, not a ResourceMeta whose encode() gives bytes"
            )
        handle = ConnectorHandle(
            connector=str(getattr(connector, "name", "") or type(connector).__name__),
            task_type=template.type,
            task_type_version=template.task_type_version,
            resource_meta=base64.b64encode(data).decode("ascii"),
            output_prefix=prefix,
        )
        self._metas[handle.resource_meta] = meta
        return handle

    def get(self, context: ExecutionContext, config: ConnectorConfig, handle: ConnectorHandle) -> JobStatus:  # type: ignore[override]
        """Call the connector's ``get`` and map its ``Resource`` onto a :class:`JobStatus`."""
        connector = _connector(context, config)
        kwargs = {"resource_meta": self._meta(connector, handle), **_connection(context, config)}
        resource = _call(config, connector.get, kwargs, "get")
        phase = phase_of(getattr(resource, "phase", None))
        message = str(getattr(resource, "message", None) or "")
        links = [
            LogLink(str(getattr(link, "name", "") or "log"), str(link.uri))
            for link in getattr(resource, "log_links", None) or ()
            if getattr(link, "uri", "")
        ]
        outputs = None
        if phase is JobPhase.SUCCEEDED:
            from taskbox.executors.connector_bridge import taskbox_outputs

            outputs = taskbox_outputs(context, getattr(resource, "outputs", None), handle.output_prefix)
        return JobStatus(phase, message, outputs=outputs, log_links=links)

    def delete(self, context: ExecutionContext, config: ConnectorConfig, handle: ConnectorHandle) -> None:  # type: ignore[override]
        """Call the connector's ``delete`` (bounded by ``cancel_grace_seconds``)."""
        connector = _connector(context, config)
        kwargs = {"resource_meta": self._meta(connector, handle), **_connection(context, config)}
        _call(config, connector.delete, kwargs, "delete", timeout=config.cancel_grace_seconds)

    def _meta(self, connector: Any, handle: ConnectorHandle) -> Any:
        """The ``ResourceMeta`` of a handle: the object ``create`` returned, or decoded from a recorded handle."""
        meta = self._metas.get(handle.resource_meta)
        if meta is not None:
            return meta
        metadata_type = getattr(connector, "metadata_type", None)
        if metadata_type is None:
            raise ConnectorInvalid(f"connector {handle.connector!r} has no metadata_type to decode its handle with")
        try:
            meta = metadata_type.decode(handle.meta_bytes())
        except Exception as exc:  # noqa: BLE001 - the connector's decode, or a damaged record
            raise JobGone(
                f"the recorded job {handle.label()} cannot be decoded as {getattr(metadata_type, '__name__', '?')} "
                f"({type(exc).__name__}: {exc}); it cannot be addressed any more"
            ) from None
        self._metas[handle.resource_meta] = meta
        return meta


def _connector(context: ExecutionContext, config: ConnectorConfig) -> Any:
    from taskbox.executors.connector_bridge import load_connector

    template = context.template
    if template is None:
        raise ConfigError("the flyte-connector executor needs the task's TaskTemplate (it builds the connector's)")
    task_type = config.task_type or (template.type if template.type != ConnectorExecutor.task_type else "")
    if not config.connector and not task_type:
        raise ConfigError(
            "name the connector: 'connector: package.module:Class', or 'task_type: <its task_type_name>' "
            "(or give the template the connector's task type)"
        )
    return load_connector(config.connector, task_type, config.task_type_version, list(config.modules))


def _connection(context: ExecutionContext, config: ConnectorConfig) -> dict[str, str]:
    values = dict(config.connection)
    for name, ref in config.secrets.items():
        values[name] = context.secrets.get(ref.group, ref.key, ref.group_version, env_var=ref.env_var)
    return values


def _call(
    config: ConnectorConfig, fn: Callable[..., Any], kwargs: Mapping[str, Any], what: str, *, timeout: float = 0.0
) -> Any:
    """Call a connector method and classify what it raises (see the module's invariants)."""
    from taskbox.executors.connector_bridge import call
    from taskbox.redaction import redact

    try:
        return call(fn, kwargs, timeout=timeout or config.call_timeout_seconds, what=what)
    except TaskboxError:
        raise
    except Exception as exc:  # noqa: BLE001 - the connector's code: classified here, at the boundary
        message = redact(f"the connector's {what} failed: {type(exc).__name__}: {exc}")
        if isinstance(exc, OSError) or what != "create":
            raise ConnectorUnavailable(message) from None
        raise ConnectorCallFailed(message) from None
