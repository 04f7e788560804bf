"""``TaskboxTask``: any taskbox executor as a flytekit task (a ``PythonCustomizedContainerTask``).

Why: flytekit's model for a task whose code is already in an image is the pre-built container task: a
``PythonCustomizedContainerTask`` whose ``get_custom`` carries everything the executor needs and whose
container args name flytekit's template resolver and an executor class. ``TaskboxTask`` is that, for any
executor in taskbox's registry: the config is validated when the task is defined
(:class:`~taskbox.flytekit.spec.ExecutorSpec`), the secrets it reads are requested with ``secret_requests``,
the image defaults to taskbox's catalog image, and local runs go through the image's own pipeline
(:mod:`taskbox.flytekit.executors`). The built-in executors have their own classes
(:mod:`taskbox.flytekit.tasks`); a plugin author subclasses this one (docs/plugins.md).

Example::

    from taskbox.flytekit import TaskboxTask

    greet = TaskboxTask("greet", executor="greet", config={"greeting": "Hi"},
                        inputs={"name": str}, outputs={"message": str},
                        image="ghcr.io/me/greet:0.1.0")   # built by `taskbox image build --executor`

Invariants:
    * The wire: ``type`` is the executor's task type, ``custom`` its validated config, and the container args
      are flytekit's own (``pyflyte-execute ... --resolver
      flytekit.core.python_customized_container_task.default_task_template_resolver -- {{.taskTemplatePath}}
      taskbox.flytekit.executors.<name>``), plus the checkpoint placeholders for asynchronous executors.
      taskbox images run them with ``taskbox execute`` (``pyflyte-execute`` is its alias there), no flytekit.
    * No value is ever in the args or the template: only placeholders and secret references.
    * With ``cache=True`` and no ``cache_version``, the version is a digest of what the image runs: executor,
      config, interface and image (there is no function body to hash).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from flytekit.configuration import SerializationSettings
from flytekit.core.base_task import TaskMetadata
from flytekit.core.interface import Interface, transform_interface_to_typed_interface
from flytekit.core.python_customized_container_task import PythonCustomizedContainerTask
from flytekit.models.security import Secret

from taskbox.flytekit.executors import executor_for
from taskbox.flytekit.spec import ExecutorSpec

__all__ = ["FLYTEKIT_OPTIONS", "TaskboxTask"]

#: ``TaskMetadata`` fields the task classes accept as keywords (as ``@task`` does).
METADATA_OPTIONS = frozenset(
    {"cache", "cache_serialize", "cache_version", "cache_ignore_input_vars", "deprecated", "interruptible",
     "pod_template_name", "timeout"}
)  # fmt: skip
#: flytekit task options the task classes accept beside their own arguments (the four executor classes pass
#: the rest of their ``**options`` to the executor's config).
FLYTEKIT_OPTIONS = METADATA_OPTIONS | {"docs", "environment", "limits", "metadata", "requests", "secret_requests"}


class TaskboxTask(PythonCustomizedContainerTask):  # type: ignore[misc]
    """A flytekit task run by a taskbox executor.

    Args:
        name: The task's name.
        executor: The executor's registry name (``sqlite``, ``sql``, ``http``, ``http-job``, ``echo``, or a
            plugin's entry-point name).
        config: The executor's config: a mapping, or an instance of its config model.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        image: The container image; default: the catalog's image of a built-in executor for the installed
            taskbox version. A plugin's executor needs its own image (``taskbox image build --executor``): pass
            it here, or set :attr:`default_image` in a subclass.
        retries: Flyte retries (recoverable failures only).
        **options: flytekit task options (:data:`FLYTEKIT_OPTIONS`): ``TaskMetadata`` fields (``timeout``,
            ``cache``, ``cache_version``, ``interruptible``...) or a whole ``metadata``; ``requests``,
            ``limits``, ``environment``, ``docs``; ``secret_requests`` (kept beside the ones the config reads).

    Raises:
        ConfigError: The config does not validate (each field's problem is listed), or ``executor`` is not a
            registry name.
        ExecutorNotFound / ExecutorNotInstalled: No such executor here, or its dependencies are missing.
        TypeError: An unknown option, or ``metadata`` together with ``TaskMetadata`` fields.
        ValueError: No image for a plugin's executor; flytekit's own checks (a bad ``timeout``...).
    """

    #: A subclass's default image (a plugin's executor image); the catalog's image for built-ins otherwise.
    default_image: str | None = None

    def __init__(
        self,
        name: str,
        *,
        executor: str,
        config: Any = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        image: Any = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        unknown = sorted(set(options) - FLYTEKIT_OPTIONS)
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected option(s) {unknown}; flytekit options are "
                            f"{sorted(FLYTEKIT_OPTIONS)}")  # fmt: skip
        spec = ExecutorSpec.resolve(executor, config)
        image = image or self.default_image or spec.default_image()
        if image is None:
            raise ValueError(
                f"task {name!r}: executor {executor!r} is not in a taskbox catalog image: pass image= (the image "
                "`taskbox image build --executor` built for it)"
            )
        interface = Interface(inputs=dict(inputs or {}), outputs=dict(outputs or {}))
        metadata = _metadata(options, retries, lambda: _digest(spec, interface, image))
        secrets = [*_config_secrets(spec), *(options.pop("secret_requests", None) or [])]
        self._executor_spec = spec
        super().__init__(
            name=name,
            task_config=spec.config,
            container_image=image,
            executor_type=executor_for(spec.name),
            task_type=spec.task_type,
            interface=interface,
            metadata=metadata,
            secret_requests=secrets or None,
            **options,
        )

    @property
    def executor_spec(self) -> ExecutorSpec:
        """The executor, its validated config and what follows from it."""
        return self._executor_spec

    def get_custom(self, settings: SerializationSettings) -> dict[str, Any]:
        """The template's ``custom``: the executor's validated config, as JSON types."""
        return dict(self._executor_spec.custom)

    def get_command(self, settings: SerializationSettings) -> list[str]:
        """The args flytekit builds, with the checkpoint placeholders before ``--resolver`` for asynchronous executors.

        An asynchronous executor records its job's handle in the checkpoint, so that a restarted pod or the next
        attempt resumes the job instead of submitting a second one.
        """
        args: list[str] = super().get_command(settings)
        if not self._executor_spec.checkpoints:
            return args
        from taskbox.entrypoint.cmdline import CHECKPOINT_ARGS

        at = args.index("--resolver")
        return [*args[:at], *CHECKPOINT_ARGS, *args[at:]]


def _metadata(options: dict[str, Any], retries: int, digest: Any) -> TaskMetadata:
    """Pop the ``TaskMetadata`` options (or a whole ``metadata``) and build it."""
    fields = {key: options.pop(key) for key in sorted(METADATA_OPTIONS & set(options))}
    metadata = options.pop("metadata", None)
    if metadata is not None:
        if fields or retries:
            raise TypeError(f"pass either metadata= or its fields ({sorted(fields) or ['retries']}), not both")
        return metadata
    if fields.get("cache") and not fields.get("cache_version"):
        fields["cache_version"] = digest()
    return TaskMetadata(retries=retries, **fields)


def _digest(spec: ExecutorSpec, interface: Interface, image: Any) -> str:
    """A cache version: what the image runs (executor, config, interface, image), hashed."""
    typed = transform_interface_to_typed_interface(interface).to_flyte_idl().SerializeToString(deterministic=True)
    digest = hashlib.sha256(json.dumps([spec.name, spec.task_type, spec.custom, str(image)], sort_keys=True).encode())
    digest.update(typed)
    return digest.hexdigest()[:32]


def _config_secrets(spec: ExecutorSpec) -> list[Secret]:
    """The flytekit secret requests for the secrets the config reads (a custom variable: injected as that variable)."""
    return [
        Secret(
            group=ref.group,
            key=ref.key,
            group_version=ref.group_version,
            env_var=ref.env_var,
            mount_requirement=Secret.MountType.ENV_VAR if ref.env_var else Secret.MountType.ANY,
        )
        for ref in spec.secrets
    ]
