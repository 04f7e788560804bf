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
from typing import Any

from taskbox.entrypoint.cmdline import template_task_args
from taskbox.entrypoint.taskspec import IMAGE_VARIANTS, SecretSpec, declared_secrets
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
        inputs: Input name -> Python type (or a type-language string, ``"list[int]"``, or a ``LiteralType``).
        outputs: Output name -> type, as ``inputs``.
        image: Container image; defaults to :func:`default_image` of :attr:`image_variant`.
        retries: Flyte retries for recoverable failures.
        secrets: Flyte secrets the pod needs, as ``(group, key, group_version)``; requested in the
            template's security context so Flyte mounts them.

    """

    #: The template's ``type`` (class-level in the executor-specific subclasses, per task in :class:`ExecutorTask`).
    task_type: str = ""
    #: The executor's registry name, carried by the container args.
    executor: str = ""
    #: The image catalog's variant of the default image (the executor's name if empty).
    image_variant: str = ""
    #: An asynchronous executor: the args carry the checkpoint placeholders, and a local run records the
    #: job's handle in ``<workdir>/checkpoint`` (a second run with that ``workdir`` resumes the job).
    checkpoints: bool = False

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
        """Return the container args: ``taskbox execute ... -- {{.taskTemplatePath}} NAME`` (+ checkpoints)."""
        return template_task_args(self.executor, checkpoints=self.checkpoints)

    def to_template(self, *, project: str = "", domain: str = "", version: str = "") -> Any:
        """Build the ``flyteidl.core.tasks_pb2.TaskTemplate`` (:func:`taskbox.entrypoint.taskspec.build_template`)."""
        from taskbox.entrypoint.taskspec import build_template

        return build_template(
            name=self.name,
            task_type=self.task_type,
            custom=self.custom(),
            inputs=self.inputs,
            outputs=self.outputs,
            image=self.image,
            args=self.container_args(),
            retries=self.retries,
            secrets=self.secrets,
            project=project,
            domain=domain,
            version=version,
        )

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
        return self.run_with(inputs, workdir=workdir)

    def run_with(
        self,
        inputs: Mapping[str, Any],
        *,
        workdir: str | None = None,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
    ) -> dict[str, Any]:
        """:meth:`run` with the run's options (names that cannot clash with the task's inputs).

        Args:
            inputs: Input values by name.
            workdir: As :meth:`run`'s.
            checkpoint_path: ``--checkpoint-path``; with :attr:`checkpoints`, ``<workdir>/checkpoint`` if omitted.
            prev_checkpoint: ``--prev-checkpoint``.

        Raises:
            TaskFailed: The run committed an error document (its code, origin and recoverability).

        """
        if self.checkpoints and not checkpoint_path:
            workdir = workdir or tempfile.mkdtemp(prefix="taskbox-run-")
            checkpoint_path = os.path.join(workdir, "checkpoint")
        return run_template(
            self.to_template(),
            inputs,
            workdir=workdir,
            executor=self.executor,
            checkpoint_path=checkpoint_path,
            prev_checkpoint=prev_checkpoint,
        )


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
