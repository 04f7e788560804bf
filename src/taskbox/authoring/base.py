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
from typing import Any, ClassVar

from taskbox import __version__
from taskbox.errors import TaskboxError

__all__ = ["DEFAULT_IMAGE_REGISTRY", "TaskFailed", "TemplateTask", "default_image", "run_template"]

#: Registry of taskbox's executor images (each variant's repository is in the image catalog).
DEFAULT_IMAGE_REGISTRY = "ghcr.io/taskbox"

#: Flyte's container placeholders (substituted by propeller).
CONTAINER_ARGS_PREFIX = (
    "taskbox",
    "execute",
    "--inputs",
    "{{.input}}",
    "--output-prefix",
    "{{.outputPrefix}}",
    "--raw-output-data-prefix",
    "{{.rawOutputDataPrefix}}",
    "--resolver",
    "taskbox.template",
    "--",
    "{{.taskTemplatePath}}",
)


def default_image(variant: str) -> str:
    """Return the image catalog's reference of ``variant`` for the installed taskbox version.

    ``<repository>:<version>-py<python>``, digest-pinned (``...@sha256:...``) once a release has recorded
    the digest; see :func:`taskbox.images.default_image`.
    """
    from taskbox.images.catalog import default_image as catalog_image  # noqa: PLC0415

    return catalog_image(variant)


class TaskFailed(TaskboxError):
    """A task run locally failed; carries the error document's code, origin and recoverability."""

    def __init__(self, message: str, *, code: str, origin: str, recoverable: bool) -> None:
        super().__init__(message, code=code, recoverable=recoverable)
        self.origin = origin  # type: ignore[misc]  # per-instance value of the ClassVar


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
        return [*CONTAINER_ARGS_PREFIX, self.executor]

    def to_template(self, *, project: str = "", domain: str = "", version: str = "") -> Any:
        """Build the ``flyteidl.core.tasks_pb2.TaskTemplate``."""
        from flyteidl.core import identifier_pb2, interface_pb2, security_pb2, tasks_pb2  # noqa: PLC0415
        from google.protobuf import struct_pb2  # noqa: PLC0415

        from taskbox.literals import TypeEngine  # noqa: PLC0415

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
    from flyteidl.core import literals_pb2  # noqa: PLC0415

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
    from flyteidl.core import errors_pb2, execution_pb2, literals_pb2  # noqa: PLC0415

    from taskbox.entrypoint.execute import ExecuteOptions, execute  # noqa: PLC0415
    from taskbox.entrypoint.signals import TerminationGuard  # noqa: PLC0415
    from taskbox.literals import ConversionContext, literal_map_to_python, python_to_literal_map  # noqa: PLC0415

    workdir = workdir or tempfile.mkdtemp(prefix="taskbox-run-")
    os.makedirs(workdir, exist_ok=True)
    raw = os.path.join(workdir, "raw")
    ctx = ConversionContext(raw_output_prefix=raw, working_dir=os.path.join(workdir, "work"))
    input_types = {n: v.type for n, v in template.interface.inputs.variables.items()}
    output_types = {n: v.type for n, v in template.interface.outputs.variables.items()}
    template_path = os.path.join(workdir, "task.pb")
    inputs_path = os.path.join(workdir, "inputs.pb")
    with open(template_path, "wb") as fh:
        fh.write(template.SerializeToString())
    with open(inputs_path, "wb") as fh:
        fh.write(python_to_literal_map(dict(inputs), input_types, ctx).SerializeToString())
    prefix = os.path.join(workdir, "out")
    args = [template_path] + ([executor] if executor else [])
    options = ExecuteOptions(
        inputs=inputs_path,
        output_prefix=prefix,
        resolver="taskbox.template",
        resolver_args=args,
        raw_output_prefix=raw,
        checkpoint_path=checkpoint_path,
        prev_checkpoint=prev_checkpoint,
    )
    execute(options, TerminationGuard())
    error_path = os.path.join(prefix, "error.pb")
    if os.path.exists(error_path):
        doc = errors_pb2.ErrorDocument()
        with open(error_path, "rb") as fh:
            doc.ParseFromString(fh.read())
        err = doc.error
        raise TaskFailed(
            err.message,
            code=err.code,
            origin=execution_pb2.ExecutionError.ErrorKind.Name(err.origin),
            recoverable=err.kind == errors_pb2.ContainerError.RECOVERABLE,
        )
    outputs = literals_pb2.LiteralMap()
    with open(os.path.join(prefix, "outputs.pb"), "rb") as fh:
        outputs.ParseFromString(fh.read())
    return literal_map_to_python(outputs, output_types, ctx)
