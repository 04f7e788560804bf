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


class TemplateDecodeError(TemplateError):
    """The template file's bytes do not parse as a ``TaskTemplate`` (damaged, truncated, not protobuf).

    Code ``USER:InvalidTemplate`` as any :class:`~taskbox.errors.TemplateError`: so it is where the user gave
    the file (``taskbox run``). Under ``taskbox execute`` the file at ``{{.taskTemplatePath}}`` is the
    platform's, and the entrypoint reports the platform's error instead (:mod:`taskbox.entrypoint.blame`).
    """


def read_template(uri: str) -> Any:
    """Fetch and parse a serialized ``flyteidl.core.tasks_pb2.TaskTemplate``.

    Raises:
        TemplateDecodeError: The bytes are not a TaskTemplate.
        TemplateError: They are one nested deeper than protobuf reads.
        InputTooLarge: The file is over ``TASKBOX_MAX_TEMPLATE_BYTES``.
        StorageError: The file cannot be read.

    """
    from flyteidl.core import tasks_pb2

    return read_message(
        uri,
        tasks_pb2.TaskTemplate(),
        limit_env="TASKBOX_MAX_TEMPLATE_BYTES",
        default_limit=DEFAULT_MAX_TEMPLATE_BYTES,
        error=TemplateDecodeError,
        nested_error=TemplateError,
        what="TaskTemplate",
    )


def check_readable(template: Any, label: str, *, reparse: bool = True) -> None:
    """Refuse a template built in memory that a container could not read back (``taskbox run``).

    A template read from a ``.pb`` file was read under the cap already; one parsed from JSON/YAML or
    built from a config must pass the same checks before it runs, since Flyte would read it as bytes.

    Args:
        template: The ``TaskTemplate``.
        label: Names the template in messages.
        reparse: Also parse the bytes back (protobuf refuses more than 100 nested levels).

    Raises:
        InputTooLarge: Serialized, it is over ``TASKBOX_MAX_TEMPLATE_BYTES``.
        TemplateError: Its bytes do not parse back.
    """
    from flyteidl.core import tasks_pb2
    from google.protobuf.message import DecodeError

    from taskbox import settings
    from taskbox.errors import InputTooLarge

    data = template.SerializeToString()
    limit = settings.integer("TASKBOX_MAX_TEMPLATE_BYTES", DEFAULT_MAX_TEMPLATE_BYTES)
    if len(data) > limit:
        raise InputTooLarge(
            f"the TaskTemplate file is too large: {label} serializes to {len(data)} bytes, over {limit} "
            "(raise TASKBOX_MAX_TEMPLATE_BYTES to allow it)"
        )
    if reparse:
        try:
            tasks_pb2.TaskTemplate.FromString(data)
        except (DecodeError, RecursionError) as exc:
            raise TemplateError(f"{label} is not a serialized TaskTemplate: {exc}") from None


def struct_to_dict(message: Any) -> dict[str, Any]:
    """Convert a protobuf ``Struct`` to plain Python (numbers stay floats, as Flyte stores them).

    Raises:
        ConfigError: The ``Struct`` holds a value JSON cannot carry (an infinite or NaN number).

    """
    from google.protobuf.json_format import MessageToDict

    try:
        return MessageToDict(message)
    except ValueError as exc:
        raise ConfigError(f"the template's custom config cannot be read: {exc}") from None


def load_template_task(args: list[str], working_dir: str, *, template: Any = None) -> LoadedTask:
    """Resolver entry point: load the template and its executor.

    Args:
        args: ``[TEMPLATE_URI]`` or ``[TEMPLATE_URI, EXECUTOR]``.
        working_dir: Unused; part of the resolver signature.
        template: The template, already parsed (``TEMPLATE_URI`` is then not read).

    """
    if not 1 <= len(args) <= 2:
        raise TemplateError(f"taskbox.template takes TEMPLATE_URI [EXECUTOR], got {args!r}")
    if template is None:
        template = read_template(args[0])
    return task_from_template(template, args[1] if len(args) == 2 else None)


def task_from_template(template: Any, executor_ref: str | None = None) -> LoadedTask:
    """Load the executor of a parsed ``TaskTemplate`` and validate its ``custom`` config (once).

    Args:
        template: The template.
        executor_ref: The executor (registry name, flytekit class path or ``module:Class``); the
            template's ``type`` picks it if ``None``.

    Raises:
        TemplateError: No executor named and the template has no type.
        ConfigError: ``custom`` does not validate against the executor's config model.
    """
    if executor_ref is not None:
        executor_cls = registry.load(executor_ref)
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
