"""The ``taskbox.template`` resolver: run a prebuilt executor chosen by a ``TaskTemplate``.

Arguments: ``TEMPLATE_URI [EXECUTOR]`` — the template (Flyte substitutes ``{{.taskTemplatePath}}``)
and optionally the executor, as a registry name, a flytekit executor class path, or ``module:Class``.
Without one, the template's ``type`` picks the executor.

The template file is a serialized ``TaskTemplate`` (what Flyte writes), or the same in protobuf's JSON mapping
as JSON or YAML text (what ``taskbox run --template`` reads, ``interface`` shorthand included): the content
decides, not the name. Serialized protobuf always holds control bytes (its field tags), text never does.

Invariants:
    * The template's ``custom`` is validated against the executor's config model here, before any
      input is read, so a bad config costs one download.
    * ``custom`` arrives as a protobuf ``Struct``: numbers are floats; config models must accept that.
    * The executor must be able to run here (:func:`taskbox.executors.registry.ensure_installed`): a missing
      library is ``USER:ExecutorNotInstalled`` naming the image to use, checked before the config and the
      inputs are read; a ``ModuleNotFoundError`` that still escapes ``execute`` (a plugin that does not declare
      ``requires``) is translated the same way, since no retry installs a module.
"""

from __future__ import annotations

import re
from typing import Any

from taskbox.entrypoint.protofiles import parse_into, read_capped
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
    """Fetch and parse a ``flyteidl.core.tasks_pb2.TaskTemplate``: serialized, or JSON/YAML text (module doc).

    Raises:
        TemplateDecodeError: The bytes are not a TaskTemplate, or the text is not JSON/YAML (damaged).
        TemplateError: A serialized one nested deeper than protobuf reads; a JSON/YAML document that is not a
            TaskTemplate (what ``taskbox run --template`` says of it).
        InputTooLarge: The file is over ``TASKBOX_MAX_TEMPLATE_BYTES``.
        StorageError: The file cannot be read.

    """
    from flyteidl.core import tasks_pb2

    data = read_capped(
        uri, limit_env="TASKBOX_MAX_TEMPLATE_BYTES", default_limit=DEFAULT_MAX_TEMPLATE_BYTES, what="TaskTemplate"
    )
    text = as_text(data)
    if text is not None:
        return template_from_text(text, uri)
    return parse_into(
        data,
        tasks_pb2.TaskTemplate(),
        uri=uri,
        error=TemplateDecodeError,
        nested_error=TemplateError,
        what="TaskTemplate",
    )


#: An ASCII control character other than tab and line ends: serialized protobuf has them, JSON/YAML text never.
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def as_text(data: bytes) -> str | None:
    """``data`` as text if it is a JSON/YAML document's (UTF-8, no control character but tab and line ends)."""
    if _CONTROL.search(data):  # in C: a serialized template stops at its first field tag
        return None
    try:
        text = data.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        return None
    return text if text.strip() else None


def template_from_text(text: str, uri: str) -> Any:
    """The ``TaskTemplate`` written as JSON/YAML ``text`` (read from ``uri``).

    Raises:
        TemplateDecodeError: The text is neither JSON nor YAML (or YAML taskbox refuses to expand).
        TemplateError: It is, but not a TaskTemplate.
    """
    from taskbox.entrypoint.documents import parse_document

    try:
        doc = parse_document(text, yaml_ok=not uri.lower().endswith(".json"), what=f"template {uri}")
    except ConfigError as exc:
        raise TemplateDecodeError(exc.message) from None
    return template_from_document(doc, f"template {uri}")


def normalize_interface(doc: dict[str, Any]) -> None:
    """Let a template document declare ``interface.inputs``/``outputs`` as ``{name: type}`` shorthand (in place)."""
    from google.protobuf.json_format import MessageToDict

    from taskbox.typespec import parse_type

    interface = doc.get("interface")
    if not isinstance(interface, dict):
        return
    for section in ("inputs", "outputs"):
        value = interface.get(section)
        if isinstance(value, dict) and "variables" not in value:
            interface[section] = {"variables": {n: {"type": MessageToDict(parse_type(t))} for n, t in value.items()}}


def template_from_document(doc: Any, label: str) -> Any:
    """The ``TaskTemplate`` of a JSON/YAML document in protobuf's JSON mapping (``interface`` shorthand allowed).

    Args:
        doc: The parsed document.
        label: Names it in messages (``template task.yaml``).

    Raises:
        TemplateError: Not an object, not a TaskTemplate, or one a container could not read back.
        InputTooLarge: Serialized, it is over ``TASKBOX_MAX_TEMPLATE_BYTES``.
    """
    from flyteidl.core import tasks_pb2
    from google.protobuf.json_format import ParseDict, ParseError

    if not isinstance(doc, dict):
        raise TemplateError(f"{label} must be an object (a TaskTemplate in protobuf's JSON mapping)")
    try:
        normalize_interface(doc)
        template = ParseDict(doc, tasks_pb2.TaskTemplate())
    except (ParseError, ConfigError, ValueError, ArithmeticError, RecursionError) as exc:  # a number no double holds
        raise TemplateError(f"{label} is not a TaskTemplate: {exc}") from None
    check_readable(template, label)  # what Flyte would read back
    return template


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
    ref = executor_ref or template.type
    registry.ensure_installed(executor_cls, ref)
    custom = struct_to_dict(template.custom) if template.HasField("custom") else {}
    config = validate_config(executor_cls, custom)
    executor = executor_cls()

    def body(context: Any, inputs: Any) -> Any:
        try:
            return executor.execute(context, config, inputs)
        except ModuleNotFoundError as exc:  # a library the executor did not declare in `requires`
            if not exc.name:
                raise
            raise registry.not_installed(executor_cls, [exc.name], ref) from exc

    return LoadedTask(
        name=template.id.name or template.type,
        input_types={name: var.type for name, var in template.interface.inputs.variables.items()},
        output_types={name: var.type for name, var in template.interface.outputs.variables.items()},
        body=body,
        template=template,
    )
