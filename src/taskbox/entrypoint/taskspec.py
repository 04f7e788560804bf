"""A prebuilt-executor task as data: an executor, its validated config, an interface, an image -> ``TaskTemplate``.

Why here (below ``authoring``): the Python task classes (:class:`taskbox.authoring.ExecutorTask` and the
others, through :meth:`taskbox.authoring.base.TemplateTask.to_template`) and the ``taskbox template`` command
(:mod:`taskbox.entrypoint.templatecmd`, for users who write YAML, not Python) must produce the *same*
template for the same task. Both go through :func:`resolve_executor_task` and :func:`build_template`, so they
cannot drift apart.

Example::

    spec = resolve_executor_task("sqlite", {"query_template": "SELECT 1 AS n", "uri": "/data/app.db"},
                                 outputs={"n": "int"})
    template = build_template(name="one", task_type=spec.task_type, custom=spec.custom, inputs=spec.inputs,
                              outputs=spec.outputs, image=spec.default_image(), args=spec.container_args())

Invariants:
    * ``custom`` is the executor's config model dumped to JSON types (``exclude_none``): the container
      validates exactly what the author validated.
    * The interface is the executor's answer for the config and the declarations
      (``Executor.interface(config, inputs, outputs)``: its class ``inputs``/``outputs``, what the config
      implies, what the task declares); a declared type wins, name by name, exactly as declared.
    * Types are type-language strings (:func:`taskbox.typespec.parse_type`), ``LiteralType`` messages (or their
      protobuf JSON mapping) or Python types (through the literal engine); all become ``LiteralType`` messages.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

from taskbox.errors import ConfigError, PluginInvalid, TaskboxError
from taskbox.executors.registry import BUILTINS

__all__ = [
    "IMAGE_VARIANTS",
    "ExecutorTaskSpec",
    "SecretSpec",
    "build_template",
    "declared_secrets",
    "declared_type",
    "executor_image",
    "resolve_executor_task",
]

#: The image catalog's variant that holds each built-in executor (``echo`` is in every image, ``base`` first),
#: from the registry's table; an executor that needs an extra the catalog's variant is not built with
#: (``flyte-connector``: the python variant with ``flyte2``) has no catalog image.
IMAGE_VARIANTS = {k.name: k.variant for k in BUILTINS if k.in_catalog_image}

#: An executor reference a template's args can carry and an image resolves by name (a built-in, an entry point).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


class SecretSpec(NamedTuple):
    """A Flyte secret a configuration reads: a reference (group, key, version, custom environment variable)."""

    group: str
    key: str | None = None
    group_version: str | None = None
    env_var: str | None = None


def declared_secrets(config: Any) -> tuple[SecretSpec, ...]:
    """The secrets a validated executor config reads, each once, in order.

    A config model names them with ``secret_refs()`` (the HTTP models; a plugin's model may define it too)
    or ``secret_connect_args`` (the SQL model); each reference has ``group``, ``key``, ``group_version`` and
    optionally ``env_var``.

    Args:
        config: The executor's config model instance, or ``None``.
    """
    if config is None:
        return ()
    refs: list[Any] = []
    if callable(getattr(config, "secret_refs", None)):
        refs = list(config.secret_refs())
    elif getattr(config, "secret_connect_args", None):
        refs = list(config.secret_connect_args.values())
    seen: dict[SecretSpec, None] = {}
    for ref in refs:
        seen.setdefault(SecretSpec(ref.group, ref.key, ref.group_version, getattr(ref, "env_var", None)), None)
    return tuple(seen)


def executor_image(executor: str) -> str:
    """The catalog image a task of ``executor`` defaults to: its variant for a built-in, else ``base``.

    A plugin's executor is not in any catalog image; ``base`` is only the image it was built *on*
    (``taskbox image build --executor``), so a task of a plugin should name its own image.
    """
    from taskbox.images.catalog import default_image

    return default_image(IMAGE_VARIANTS.get(executor, "base"))


def declared_type(spec: Any, where: str = "") -> Any:
    """Turn a declared type into a ``LiteralType``.

    Args:
        spec: A type-language string (``"int"``, ``"list[str]"``, ``"table"``...), a ``LiteralType`` or its
            protobuf JSON mapping, or a Python type (``int``, ``list[str]``, ``taskbox.File``...).
        where: What is declared (``"output 'count'"``), prefixed to an error's message.

    Raises:
        ConfigError / UnsupportedType: The spec names no type taskbox can carry.
    """
    from flyteidl.core import types_pb2

    from taskbox.typespec import parse_type

    try:
        if isinstance(spec, (str, Mapping, types_pb2.LiteralType)):
            return parse_type(spec)
        from taskbox.literals import TypeEngine

        return TypeEngine.to_literal_type(spec)
    except TaskboxError as exc:
        if not where:
            raise
        raise type(exc)(f"{where}: {exc.message}") from None


def _declared_map(types: Any, what: str) -> dict[str, Any]:
    if not isinstance(types, Mapping):
        raise ConfigError(f"{what} must be a mapping of name: type, got {type(types).__name__}")
    out = {}
    for name, spec in types.items():
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{what}: a name must be a non-empty string, got {name!r}")
        out[name] = declared_type(spec, f"{what[:-1]} {name!r}")
    return out


@dataclass(frozen=True)
class ExecutorTaskSpec:
    """An executor, its validated config and the task's interface.

    Attributes:
        name: The executor's registry name (what the container args carry).
        task_type: The executor's ``TaskTemplate.type``.
        config: The executor's config model instance (``None`` for an executor without configuration).
        custom: ``config`` as JSON types: the template's ``custom``.
        inputs: Input name -> ``LiteralType``.
        outputs: Output name -> ``LiteralType``.
        secrets: The secrets ``config`` reads, as references.
        checkpoints: The executor is asynchronous (it records its job's handle in the checkpoint).
    """

    name: str
    task_type: str
    config: Any
    custom: Mapping[str, Any]
    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    secrets: tuple[SecretSpec, ...]
    checkpoints: bool

    def container_args(self) -> list[str]:
        """``taskbox execute ... --resolver taskbox.template -- {{.taskTemplatePath}} NAME``."""
        from taskbox.entrypoint.cmdline import template_task_args

        return template_task_args(self.name, checkpoints=self.checkpoints)

    def default_image(self) -> str:
        """:func:`executor_image` of this executor."""
        return executor_image(self.name)


def _sayable(literal_type: Any) -> Any:
    """``literal_type`` if the type language can say it, else ``"json"`` (a stand-in the executor can reason about)."""
    from taskbox.typespec import format_type

    try:
        format_type(literal_type)
    except ConfigError:  # a dataclass's schema, binary: the declaration itself wins afterwards
        return "json"
    return literal_type


def executor_interface(
    executor_cls: Any, custom: Mapping[str, Any], inputs: Any = None, outputs: Any = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The task's interface: ``Executor.interface(config, inputs, outputs)`` as ``LiteralType`` messages.

    The executor's declarations (class ``inputs``/``outputs``), completed by what its config implies and by
    what the caller declares (which wins, name by name).

    Args:
        executor_cls: The executor class.
        custom: The validated config, as JSON types.
        inputs: Declared input name -> type (:func:`declared_type`), or ``None``.
        outputs: Declared output name -> type, or ``None``.

    Raises:
        PluginInvalid: The answer is not a pair of mappings of names to types.
        ConfigError: A type cannot be read; the config uses an input of no declared type.
    """
    declared_in = _declared_map(inputs, "inputs") if inputs is not None else {}
    declared_out = _declared_map(outputs, "outputs") if outputs is not None else {}

    def given(declared: Mapping[str, Any], raw: Any) -> dict[str, Any]:
        return {n: raw[n] if isinstance(raw[n], str) else _sayable(t) for n, t in declared.items()}

    answer = executor_cls.interface(dict(custom), given(declared_in, inputs), given(declared_out, outputs))
    if not (
        isinstance(answer, tuple)
        and len(answer) == 2
        and all(isinstance(side, Mapping) and all(isinstance(n, str) and n for n in side) for side in answer)
    ):
        raise PluginInvalid(
            f"{executor_cls.__qualname__}.interface must return (inputs, outputs), two mappings of names to types, "
            f"got {answer!r}"
        )
    where = f"{executor_cls.__qualname__}.interface's"
    return (
        {**_declared_map(answer[0], f"{where} inputs"), **declared_in},
        {**_declared_map(answer[1], f"{where} outputs"), **declared_out},
    )


def resolve_executor_task(
    executor: str, config: Any = None, *, inputs: Any = None, outputs: Any = None
) -> ExecutorTaskSpec:
    """Find ``executor``, validate ``config`` with its model, and settle the interface.

    Args:
        executor: The executor's registry name (a built-in, an entry-point name, or a name registered from
            code with :func:`taskbox.executors.registry.register`, which only this process knows).
        config: The config fields (a mapping), an instance of the executor's config model, or ``None``.
        inputs: Input name -> type (:func:`declared_type`), added to (and winning over) the executor's
            (``Executor.interface(config, inputs, outputs)``); ``None`` for none.
        outputs: Output name -> type, likewise.

    Raises:
        ConfigError: ``executor`` is not a registry name, ``config`` does not validate (each field's problem is
            listed), or a type cannot be read.
        ExecutorNotFound / ExecutorNotInstalled: No executor has that name here, or its dependencies are missing.
        PluginInvalid: The executor is broken, or its ``interface`` answer is.
    """
    from taskbox.executors import registry
    from taskbox.executors.base import validate_config
    from taskbox.executors.jobs import AsyncExecutor

    if not isinstance(executor, str) or not _NAME.match(executor):
        raise ConfigError(
            f"executor must be a registry name (a built-in such as 'sqlite', or a plugin's entry-point name), "
            f"got {executor!r}"
        )
    executor_cls = registry.load(executor)
    model = executor_cls.Config
    if model is not None and isinstance(config, model):
        validated = validate_config(executor_cls, config.model_dump(mode="json", exclude_none=True))
    elif config is not None and not isinstance(config, Mapping):
        raise ConfigError(
            f"the config of executor {executor!r} must be a mapping"
            f"{' or a ' + model.__name__ if model is not None else ''}, got {type(config).__name__}"
        )
    else:
        validated = validate_config(executor_cls, dict(config or {}))
    custom = validated.model_dump(mode="json", exclude_none=True) if validated is not None else {}
    task_inputs, task_outputs = executor_interface(executor_cls, custom, inputs, outputs)
    return ExecutorTaskSpec(
        name=executor,
        task_type=executor_cls.task_type,
        config=validated,
        custom=custom,
        inputs=task_inputs,
        outputs=task_outputs,
        secrets=declared_secrets(validated),
        checkpoints=issubclass(executor_cls, AsyncExecutor),
    )


def build_template(
    *,
    name: str,
    task_type: str,
    custom: Mapping[str, Any],
    inputs: Mapping[str, Any],
    outputs: Mapping[str, Any],
    image: str,
    args: Iterable[str],
    retries: int = 0,
    secrets: Iterable[tuple[str, str | None, str | None]] = (),
    project: str = "",
    domain: str = "",
    version: str = "",
) -> Any:
    """Build the ``flyteidl.core.tasks_pb2.TaskTemplate`` of a prebuilt-executor task.

    Args:
        name: ``id.name``.
        task_type: ``type`` (the executor's task type).
        custom: ``custom``, as JSON types.
        inputs: Input name -> type (see :func:`declared_type`).
        outputs: Output name -> type.
        image: ``container.image``.
        args: ``container.args``.
        retries: ``metadata.retries``.
        secrets: ``(group, key, group_version)`` requested in the security context.
        project: ``id.project``.
        domain: ``id.domain``.
        version: ``id.version``.

    Raises:
        ConfigError: ``custom`` holds a value JSON cannot carry, or a type cannot be read.
    """
    from flyteidl.core import identifier_pb2, interface_pb2, literals_pb2, security_pb2, tasks_pb2
    from google.protobuf import struct_pb2

    from taskbox import __version__

    def variables(types: Mapping[str, Any]) -> Any:
        return interface_pb2.VariableMap(
            variables={n: interface_pb2.Variable(type=declared_type(t), description=n) for n, t in types.items()}
        )

    template = tasks_pb2.TaskTemplate(
        id=identifier_pb2.Identifier(
            resource_type=identifier_pb2.TASK, project=project, domain=domain, name=name, version=version
        ),
        type=task_type,
        metadata=tasks_pb2.TaskMetadata(
            runtime=tasks_pb2.RuntimeMetadata(
                type=tasks_pb2.RuntimeMetadata.OTHER, version=__version__, flavor="taskbox"
            ),
            retries=literals_pb2.RetryStrategy(retries=retries),
        ),
        interface=interface_pb2.TypedInterface(inputs=variables(inputs), outputs=variables(outputs)),
        container=tasks_pb2.Container(image=image, args=list(args)),
    )
    struct = struct_pb2.Struct()
    try:
        struct.update(dict(custom))
    except (TypeError, ValueError, ArithmeticError) as exc:  # a number no double holds, NaN, an object...
        raise ConfigError(f"the config of task {name!r} holds a value JSON cannot carry: {exc}") from None
    template.custom.CopyFrom(struct)
    for group, key, group_version in secrets:
        template.security_context.secrets.append(
            security_pb2.Secret(group=group, key=key or "", group_version=group_version or "")
        )
    return template
