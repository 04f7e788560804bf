"""``ExecutorSpec``: which taskbox executor a flytekit task runs, with what validated configuration.

Why a module without flytekit: everything the executor image will read is decided here, with taskbox's own
pieces only. The executor is found in taskbox's registry and its ``custom`` config validated by the
executor's own pydantic model when the task is *defined* (so a bad config fails in the author's process, not
in a pod); the secrets the config reads, the default image and the executor class path the container args
carry all follow from it.

Example::

    spec = ExecutorSpec.resolve("sqlite", {"query_template": "SELECT 1 AS n", "uri": "/data/app.db"})
    spec.task_type     # 'sqlite' (the executor's TaskTemplate.type)
    spec.custom        # the model's dump: what get_custom() returns and the image validates again
    spec.class_path    # 'taskbox.flytekit.executors.sqlite' (the second resolver argument)
    spec.default_image()   # the catalog's sqlite image for the installed taskbox version

Invariants:
    * The executor is a registry *name* (a built-in or an entry point; no ``.``/``:``), because the image
      resolves ``taskbox.flytekit.executors.<name>`` by name, without importing anything
      (:data:`taskbox.executors.registry.FLYTEKIT_SHIM_PREFIX`).
    * ``custom`` is always the config model dumped to JSON types (``exclude_none``): the image validates
      exactly what the author validated.
    * ``secrets`` are derived from the validated config, never given separately; only references.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskbox.authoring.base import IMAGE_VARIANTS, SecretSpec, declared_secrets
from taskbox.errors import ConfigError
from taskbox.executors import registry

__all__ = ["ExecutorSpec", "check_name"]

#: A registry name that survives flytekit's ``load_object_from_module`` (which splits the path on dots).
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")


def check_name(executor: str) -> str:
    """Return ``executor`` if it can follow :data:`~taskbox.executors.registry.FLYTEKIT_SHIM_PREFIX`.

    Raises:
        ConfigError: Not a registry name (a ``module:Class`` path, dots, spaces).
    """
    if not isinstance(executor, str) or not _NAME.match(executor):
        raise ConfigError(
            f"executor must be a registry name (a built-in such as 'sqlite', or a plugin's entry-point name), "
            f"got {executor!r}: the image finds it as {registry.FLYTEKIT_SHIM_PREFIX}<name>, by name"
        )
    return executor


@dataclass(frozen=True)
class ExecutorSpec:
    """A taskbox executor and its validated configuration.

    Attributes:
        name: The executor's registry name (``sqlite``, ``sql``, ``http``, ``http-job``, a plugin's name).
        task_type: The executor's ``TaskTemplate.type`` (``sqlite``, ``sqlalchemy``, ``http``, ``http-job``).
        config: The executor's config model instance (``None`` for an executor without configuration).
        custom: ``config`` as JSON types: the template's ``custom``.
        secrets: The secrets ``config`` reads, as references.
        checkpoints: The executor is asynchronous (it records its job's handle in the checkpoint), so the
            container args carry the checkpoint placeholders.
    """

    name: str
    task_type: str
    config: Any
    custom: Mapping[str, Any]
    secrets: tuple[SecretSpec, ...]
    checkpoints: bool

    @classmethod
    def resolve(cls, executor: str, config: Any = None) -> ExecutorSpec:
        """Find ``executor`` and validate ``config`` with its model.

        Args:
            executor: The executor's registry name.
            config: The config fields (a mapping), or an instance of the executor's config model (used as
                it is), or ``None`` (no fields).

        Raises:
            ConfigError: ``executor`` is not a registry name, or ``config`` does not validate (each field's
                problem is listed).
            ExecutorNotFound: No executor has that name (the message lists the installed ones).
            ExecutorNotInstalled: Its optional dependencies are missing here (the message names the extra).
        """
        from taskbox.executors.base import validate_config
        from taskbox.executors.jobs import AsyncExecutor

        executor_cls = registry.load(check_name(executor))
        model = executor_cls.Config
        if model is not None and isinstance(config, model):
            validated = config
        elif config is not None and not isinstance(config, Mapping):
            raise ConfigError(
                f"config of executor {executor!r} must be a mapping or a {model.__name__ if model else 'None'}, "
                f"got {type(config).__name__}"
            )
        else:
            validated = validate_config(executor_cls, config or {})
        custom = validated.model_dump(mode="json", exclude_none=True) if validated is not None else {}
        return cls(
            name=executor,
            task_type=executor_cls.task_type,
            config=validated,
            custom=custom,
            secrets=declared_secrets(validated),
            checkpoints=issubclass(executor_cls, AsyncExecutor),
        )

    @property
    def class_path(self) -> str:
        """``taskbox.flytekit.executors.<name>``: the executor class path in the container args."""
        return registry.FLYTEKIT_SHIM_PREFIX + self.name

    def default_image(self) -> str | None:
        """The image catalog's image holding the executor, for the installed taskbox version; ``None`` for plugins."""
        from taskbox.authoring.base import default_image

        variant = IMAGE_VARIANTS.get(self.name)
        return default_image(variant) if variant else None
