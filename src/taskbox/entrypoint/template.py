"""The ``taskbox.template`` resolver: run a prebuilt executor chosen by a ``TaskTemplate``.

Arguments: ``TEMPLATE_URI [EXECUTOR]`` — the template (Flyte substitutes ``{{.taskTemplatePath}}``)
and optionally the executor, as a registry name, a flytekit executor class path, or ``module:Class``.
Without one, the template's ``type`` picks the executor.

Invariants:
    * The template's ``custom`` is validated against the executor's config model here, before any
      input is read, so a bad config costs one download.
    * ``custom`` arrives as a protobuf ``Struct``: numbers are floats; config models must accept that.
"""

from __future__ import annotations

from typing import Any

from taskbox.entrypoint.protofiles import read_message
from taskbox.entrypoint.resolvers import LoadedTask
from taskbox.errors import ConfigError, TemplateError
from taskbox.executors import registry
from taskbox.executors.base import validate_config

DEFAULT_MAX_TEMPLATE_BYTES = 64 * 1024 * 1024


def read_template(uri: str) -> Any:
    """Fetch and parse a serialized ``flyteidl.core.tasks_pb2.TaskTemplate``.

    Raises:
        TemplateError: The bytes are not a TaskTemplate.

    """
    from flyteidl.core import tasks_pb2  # noqa: PLC0415

    return read_message(
        uri,
        tasks_pb2.TaskTemplate(),
        limit_env="TASKBOX_MAX_TEMPLATE_BYTES",
        default_limit=DEFAULT_MAX_TEMPLATE_BYTES,
        error=TemplateError,
        what="TaskTemplate",
    )


def struct_to_dict(message: Any) -> dict[str, Any]:
    """Convert a protobuf ``Struct`` to plain Python (numbers stay floats, as Flyte stores them).

    Raises:
        ConfigError: The ``Struct`` holds a value JSON cannot carry (an infinite or NaN number).

    """
    from google.protobuf.json_format import MessageToDict  # noqa: PLC0415

    try:
        return MessageToDict(message)
    except ValueError as exc:
        raise ConfigError(f"the template's custom config cannot be read: {exc}") from None


def load_template_task(args: list[str], working_dir: str) -> LoadedTask:
    """Resolver entry point: load the template and its executor.

    Args:
        args: ``[TEMPLATE_URI]`` or ``[TEMPLATE_URI, EXECUTOR]``.
        working_dir: Unused; part of the resolver signature.

    """
    if not 1 <= len(args) <= 2:
        raise TemplateError(f"taskbox.template takes TEMPLATE_URI [EXECUTOR], got {args!r}")
    template = read_template(args[0])
    if len(args) == 2:
        executor_cls = registry.load(args[1])
    elif template.type:
        executor_cls = registry.for_task_type(template.type)
    else:
        raise TemplateError("the template has no type and no executor was named after its URI")
    custom = struct_to_dict(template.custom) if template.HasField("custom") else {}
    config = validate_config(executor_cls, custom)
    executor = executor_cls()
    return LoadedTask(
        name=template.id.name or template.type,
        input_types={name: var.type for name, var in template.interface.inputs.variables.items()},
        output_types={name: var.type for name, var in template.interface.outputs.variables.items()},
        body=lambda context, inputs: executor.execute(context, config, inputs),
        template=template,
    )
