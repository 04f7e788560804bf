"""``PrebuiltConfig``: which executor a flyte-sdk task runs, with what validated configuration, and its template.

Why a module without the flyte SDK: the configuration and the v1 ``TaskTemplate`` it becomes are what the
executor image reads (under ``taskbox a0``, with no SDK there), so they are built and checked here with
taskbox's own pieces only: the executor registry validates ``custom`` with the executor's config model,
and :func:`PrebuiltConfig.template` writes the template ``a0`` decodes from the resolver args. The flyte
task classes (:mod:`taskbox.flyte2.tasks`) carry a ``PrebuiltConfig`` as their ``plugin_config``.

Example::

    config = PrebuiltConfig("sqlite", {"query_template": "SELECT 1 AS n", "uri": "/data/app.db"})
    config.task_type                      # 'sqlite' (the executor's TaskTemplate.type)
    other = config.updated(uri="s3://bucket/app.db")   # validated again
    data = config.template("count", interface_bytes)   # v1 TaskTemplate bytes for a0

Invariants:
    * ``custom`` is always the executor's config model dumped to JSON types (``exclude_none``), so the
      image validates exactly what the author validated, and two equal configs compare and hash equal.
    * ``secrets`` are derived from the validated config (never given separately), so a changed config
      never keeps a stale secret request; only references are kept, never values.
    * :meth:`PrebuiltConfig.template` is deterministic (same config, name and interface, same bytes): the
      bytes feed the task's cache version and the container args.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import InitVar, dataclass, field
from typing import Any

from taskbox.authoring.base import IMAGE_VARIANTS, SecretSpec, declared_secrets

__all__ = ["IMAGE_VARIANTS", "PrebuiltConfig", "SecretSpec", "executor_class"]


def executor_class(ref: str) -> Any:
    """Return the executor class of ``ref``: a registry name, ``module:Class``, or a task type.

    Raises:
        ExecutorNotFound: Nothing serves ``ref``.
        ExecutorNotInstalled: The executor's optional dependencies are missing here.
    """
    from taskbox.errors import ExecutorNotFound
    from taskbox.executors import registry

    try:
        return registry.load(ref)
    except ExecutorNotFound:
        return registry.for_task_type(ref)


@dataclass(frozen=True)
class PrebuiltConfig:
    """The executor of a prebuilt task and its validated ``custom`` configuration.

    Args:
        executor: The executor's registry name (``sqlite``, ``sql``, ``http``, ``http-job``, a plugin's
            name, or ``module:Class``); it travels in the container args as ``executor <name>``.
        custom: The config fields (the template's ``custom``), validated by the executor's model.
        model: An already validated config model instance (skips validation; the authoring classes pass it).

    Attributes:
        task_type: The executor's ``TaskTemplate.type`` (``sqlite``, ``sqlalchemy``, ``http``, ``http-job``).
        secrets: The secrets the configuration reads, as :class:`SecretSpec` references.

    Raises:
        ConfigError: ``custom`` does not validate (each field's problem is listed).
        ExecutorNotFound / ExecutorNotInstalled: No such executor, or its dependencies are missing.
    """

    executor: str
    custom: Mapping[str, Any] = field(default_factory=dict)
    model: InitVar[Any] = None
    task_type: str = field(init=False)
    secrets: tuple[SecretSpec, ...] = field(init=False)

    def __post_init__(self, model: Any) -> None:
        from taskbox.executors.base import validate_config

        cls = executor_class(self.executor)
        if model is None:
            model = validate_config(cls, self.custom)
        custom = model.model_dump(mode="json", exclude_none=True) if model is not None else {}
        object.__setattr__(self, "custom", custom)
        object.__setattr__(self, "task_type", cls.task_type)
        object.__setattr__(self, "secrets", declared_secrets(model))

    def __hash__(self) -> int:
        return hash((self.executor, json.dumps(self.custom, sort_keys=True)))

    def updated(self, **fields: Any) -> PrebuiltConfig:
        """Return a copy with top-level config fields replaced, validated again.

        Example: ``task.override(plugin_config=task.plugin_config.updated(uri="s3://bucket/other.db"))``.
        """
        return PrebuiltConfig(self.executor, {**self.custom, **fields})

    def template(self, name: str, interface: bytes) -> bytes:
        """Return the serialized v1 ``TaskTemplate`` that ``taskbox a0`` runs for this configuration.

        Args:
            name: The task's name (``id.name``).
            interface: A serialized ``TypedInterface`` (v1, or v2's: the wire is the same).

        Returns:
            Deterministic bytes holding ``id.name``, ``type``, ``custom``, ``interface``, the runtime
            metadata and the secret references; no container (``a0`` does not read it).
        """
        from flyteidl.core import identifier_pb2, interface_pb2, security_pb2, tasks_pb2

        from taskbox import __version__

        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(resource_type=identifier_pb2.TASK, name=name),
            type=self.task_type,
            metadata=tasks_pb2.TaskMetadata(
                runtime=tasks_pb2.RuntimeMetadata(
                    type=tasks_pb2.RuntimeMetadata.OTHER, version=__version__, flavor="taskbox"
                )
            ),
            interface=interface_pb2.TypedInterface.FromString(interface),
        )
        if self.custom:
            template.custom.update(self.custom)
        for spec in self.secrets:
            template.security_context.secrets.append(
                security_pb2.Secret(
                    group=spec.group,
                    key=spec.key or "",
                    group_version=spec.group_version or "",
                    env_var=spec.env_var or "",
                )
            )
        return template.SerializeToString(deterministic=True)

    @classmethod
    def from_template(cls, template: Any, executor: str | None = None) -> PrebuiltConfig:
        """Rebuild the configuration from a v1 ``TaskTemplate`` (the resolver's direction).

        Args:
            template: The parsed template.
            executor: The executor named in the args; the template's ``type`` otherwise.

        Raises:
            TemplateError: Neither an executor nor a type.
            ConfigError: ``custom`` does not validate.
        """
        from taskbox.entrypoint.template import struct_to_dict
        from taskbox.errors import TemplateError

        ref = executor or template.type
        if not ref:
            raise TemplateError("the template has no type and no executor was named")
        custom = struct_to_dict(template.custom) if template.HasField("custom") else {}
        return cls(ref, custom)

    @property
    def image_variant(self) -> str:
        """The image catalog's variant that holds this executor (``base`` for plugins)."""
        return IMAGE_VARIANTS.get(self.executor, "base")
