"""The shared base of prebuilt-executor tasks in Python: build a ``TaskTemplate``, or run it in-process.

Why: a prebuilt-executor task *is* its TaskTemplate: an interface, a ``custom`` config the executor
validates, and container args that start ``taskbox execute`` with the ``taskbox.template`` resolver.
Building that template from Python objects (instead of by hand) lets the config be validated by the
executor's own model when the task is defined, and running it locally writes the same template and
``inputs.pb`` and goes through the same entrypoint as the container does, so a local run proves what a
Flyte run will do.

Invariants:
    * ``custom`` is the executor's config model dumped to JSON types, so the container validates exactly
      what the author validated.
    * Container args hold only Flyte's placeholders and the executor's registry name: no values.
    * :meth:`TemplateTask.run` (and :func:`run_template`) raise :class:`TaskFailed` with the code,
      origin and recoverability of the error document the entrypoint wrote; outputs come back as Python
      values (tables as :class:`taskbox.literals.StructuredDataset`).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from typing import Any, ClassVar, NamedTuple

from taskbox import __version__
from taskbox.entrypoint.cmdline import template_task_args
from taskbox.errors import TaskboxError

__all__ = [
    "DEFAULT_IMAGE_REGISTRY",
    "IMAGE_VARIANTS",
    "LocalRun",
    "SecretSpec",
    "TaskFailed",
    "TemplateTask",
    "declared_secrets",
    "default_image",
    "run_template",
]

#: Registry of taskbox's executor images (each variant's repository is in the image catalog).
DEFAULT_IMAGE_REGISTRY = "ghcr.io/taskbox"

#: The args of a prebuilt-executor template, less the executor's name (built by
#: :func:`taskbox.entrypoint.cmdline.template_task_args`).
CONTAINER_ARGS_PREFIX = tuple(template_task_args(None))


#: The image catalog's variant that holds each built-in executor (``echo`` is in every image, ``base`` first).
IMAGE_VARIANTS = {"echo": "base", "http": "http", "http-job": "http", "sql": "sql", "sqlite": "sqlite"}


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


def default_image(variant: str) -> str:
    """Return the image catalog's reference of ``variant`` for the installed taskbox version.

    ``<repository>:<version>-py<python>``, digest-pinned (``...@sha256:...``) once a release has recorded
    the digest; see :func:`taskbox.images.default_image`.
    """
    from taskbox.images.catalog import default_image as catalog_image

    return catalog_image(variant)


class TaskFailed(TaskboxError):
    """A task run locally failed; carries the error document's code, origin and recoverability."""

    def __init__(self, message: str, *, code: str, origin: str, recoverable: bool) -> None:
        super().__init__(message, code=code, recoverable=recoverable)
        self.origin = origin  # type: ignore[misc,assignment]  # per-instance value of the ClassVar


class TemplateTask:
    """A task run by a prebuilt executor, described by Python objects.

    Subclasses set :attr:`task_type` and :attr:`executor` and pass a validated config.

    Args:
        name: The task's name (``TaskTemplate.id.name``).
        config: The executor's config model instance (becomes ``custom``).
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        image: Container image; defaults to :func:`default_image` of :attr:`image_variant`.
        retries: Flyte retries for recoverable failures.
        secrets: Flyte secrets the pod needs, as ``(group, key, group_version)``; requested in the
            template's security context so Flyte mounts them.

    """

    task_type: ClassVar[str] = ""
    executor: ClassVar[str] = ""
    image_variant: ClassVar[str] = ""

    def __init__(
        self,
        name: str,
        *,
        config: Any,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        image: str | None = None,
        retries: int = 0,
        secrets: list[tuple[str, str | None, str | None]] | None = None,
    ) -> None:
        self.name = name
        self.config = config
        self.inputs = dict(inputs or {})
        self.outputs = dict(outputs or {})
        self.image = image or default_image(self.image_variant or self.executor)
        self.retries = retries
        self.secrets = list(secrets or [])

    def custom(self) -> dict[str, Any]:
        """Return the template's ``custom`` config, as JSON types."""
        return self.config.model_dump(mode="json", exclude_none=True)

    def container_args(self) -> list[str]:
        """Return the container args (``taskbox execute ... -- {{.taskTemplatePath}} NAME``)."""
        return template_task_args(self.executor)

    def to_template(self, *, project: str = "", domain: str = "", version: str = "") -> Any:
        """Build the ``flyteidl.core.tasks_pb2.TaskTemplate``."""
        from flyteidl.core import identifier_pb2, interface_pb2, security_pb2, tasks_pb2
        from google.protobuf import struct_pb2

        from taskbox.literals import TypeEngine

        def variables(types: Mapping[str, Any]) -> Any:
            return interface_pb2.VariableMap(
                variables={
                    n: interface_pb2.Variable(type=TypeEngine.to_literal_type(t), description=n)
                    for n, t in types.items()
                }
            )

        template = tasks_pb2.TaskTemplate(
            id=identifier_pb2.Identifier(
                resource_type=identifier_pb2.TASK, project=project, domain=domain, name=self.name, version=version
            ),
            type=self.task_type,
            metadata=tasks_pb2.TaskMetadata(
                runtime=tasks_pb2.RuntimeMetadata(
                    type=tasks_pb2.RuntimeMetadata.OTHER, version=__version__, flavor="taskbox"
                ),
                retries=_retry(self.retries),
            ),
            interface=interface_pb2.TypedInterface(inputs=variables(self.inputs), outputs=variables(self.outputs)),
            container=tasks_pb2.Container(image=self.image, args=self.container_args()),
        )
        custom = struct_pb2.Struct()
        custom.update(self.custom())
        template.custom.CopyFrom(custom)
        for group, key, group_version in self.secrets:
            template.security_context.secrets.append(
                security_pb2.Secret(group=group, key=key or "", group_version=group_version or "")
            )
        return template

    def run(self, *, workdir: str | None = None, **inputs: Any) -> dict[str, Any]:
        """Run the task in this process, through the same entrypoint as the container.

        Args:
            workdir: Where the template, inputs, outputs and raw data go; a new temporary directory
                (kept, since the outputs may point into it) if omitted.
            **inputs: The input values.

        Returns:
            Output name -> Python value.

        Raises:
            TaskFailed: The run committed an error document.

        """
        return run_template(self.to_template(), inputs, workdir=workdir, executor=self.executor)


def _retry(retries: int) -> Any:
    from flyteidl.core import literals_pb2

    return literals_pb2.RetryStrategy(retries=retries)


def run_template(
    template: Any,
    inputs: Mapping[str, Any],
    *,
    workdir: str | None = None,
    executor: str | None = None,
    checkpoint_path: str | None = None,
    prev_checkpoint: str | None = None,
) -> dict[str, Any]:
    """Run a ``TaskTemplate`` in-process with ``taskbox execute``'s pipeline (local storage).

    Args:
        template: The template.
        inputs: Input values by name (converted by the template's interface).
        workdir: Local directory for the files of the run (created if needed).
        executor: Executor name; the template's type picks it if omitted.
        checkpoint_path: ``--checkpoint-path`` (async executors record their job's handle there).
        prev_checkpoint: ``--prev-checkpoint``.

    Returns:
        Output values by name.

    Raises:
        TaskFailed: The entrypoint committed ``error.pb``.

    """
    from taskbox.literals import python_to_literal_map

    local = LocalRun(workdir)
    input_types = {n: v.type for n, v in template.interface.inputs.variables.items()}
    output_types = {n: v.type for n, v in template.interface.outputs.variables.items()}
    template_path = local.write("task.pb", template.SerializeToString())
    literal_map = python_to_literal_map(dict(inputs), input_types, local.ctx)
    return local.execute(
        "taskbox.template",
        [template_path] + ([executor] if executor else []),
        literal_map,
        output_types,
        checkpoint_path=checkpoint_path,
        prev_checkpoint=prev_checkpoint,
    )


class LocalRun:
    """One in-process run through ``taskbox execute``: its files under ``workdir``, read back as Python values.

    Why files: a local run must prove what the container will do, so it writes ``inputs.pb``, runs the
    entrypoint's own pipeline (:func:`taskbox.entrypoint.execute.execute`), and reads the committed
    ``outputs.pb`` or ``error.pb`` back, exactly as propeller would.

    Args:
        workdir: Local directory for the run's files (created if needed); a new temporary directory
            (kept, since the outputs may point into it) if ``None``.
        output_prefix: Where ``outputs.pb``/``error.pb`` are committed (any storage URI); ``workdir/out`` if
            ``None``.
        raw_output_prefix: Where data blobs go (any storage URI); ``workdir/raw`` if ``None``.

    """

    def __init__(
        self, workdir: str | None, *, output_prefix: str | None = None, raw_output_prefix: str | None = None
    ) -> None:
        from taskbox.literals import ConversionContext

        self.workdir = workdir or tempfile.mkdtemp(prefix="taskbox-run-")
        os.makedirs(self.workdir, exist_ok=True)
        self.raw = raw_output_prefix or os.path.join(self.workdir, "raw")
        self.prefix = output_prefix or os.path.join(self.workdir, "out")
        self.ctx = ConversionContext(raw_output_prefix=self.raw, working_dir=os.path.join(self.workdir, "work"))

    def write(self, name: str, data: bytes) -> str:
        """Write ``data`` as ``workdir/name``; return its path."""
        path = os.path.join(self.workdir, name)
        with open(path, "wb") as fh:
            fh.write(data)
        return path

    def execute(
        self,
        resolver: str,
        resolver_args: list[str],
        inputs: Any,
        output_types: Mapping[str, Any],
        *,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
    ) -> dict[str, Any]:
        """Write ``inputs`` (a ``LiteralMap``) as ``inputs.pb``, run the entrypoint, read its commit back.

        Returns:
            Output values by name (converted by ``output_types``).

        Raises:
            TaskFailed: The entrypoint committed ``error.pb``.

        """
        from flyteidl.core import literals_pb2

        from taskbox.literals import literal_map_to_python

        data = self.commit(
            resolver,
            resolver_args,
            inputs.SerializeToString(),
            checkpoint_path=checkpoint_path,
            prev_checkpoint=prev_checkpoint,
        )
        return literal_map_to_python(literals_pb2.LiteralMap.FromString(data), output_types, self.ctx)

    def commit(
        self,
        resolver: str,
        resolver_args: list[str],
        inputs: bytes,
        *,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
    ) -> bytes:
        """Write ``inputs`` (serialized) as ``inputs.pb``, run the entrypoint, return the ``outputs.pb`` it committed.

        Returns:
            The bytes of ``outputs.pb`` (a ``LiteralMap``), as propeller would read them.

        Raises:
            TaskFailed: The entrypoint committed ``error.pb``.

        """
        from flyteidl.core import errors_pb2, execution_pb2

        from taskbox import storage
        from taskbox.entrypoint.commit import ERROR_FILE, OUTPUTS_FILE
        from taskbox.entrypoint.execute import ExecuteOptions, execute
        from taskbox.entrypoint.signals import TerminationGuard

        options = ExecuteOptions(
            inputs=self.write("inputs.pb", inputs),
            output_prefix=self.prefix,
            resolver=resolver,
            resolver_args=resolver_args,
            raw_output_prefix=self.raw,
            checkpoint_path=checkpoint_path,
            prev_checkpoint=prev_checkpoint,
        )
        execute(options, TerminationGuard())
        error_uri = storage.join(self.prefix, ERROR_FILE)
        if storage.exists(error_uri):
            err = errors_pb2.ErrorDocument.FromString(storage.read_bytes(error_uri)).error
            raise TaskFailed(
                err.message,
                code=err.code,
                origin=execution_pb2.ExecutionError.ErrorKind.Name(err.origin),
                recoverable=err.kind == errors_pb2.ContainerError.RECOVERABLE,
            )
        return storage.read_bytes(storage.join(self.prefix, OUTPUTS_FILE))
