"""What ``taskbox run`` runs: a ``TaskTemplate`` (read, or built from an executor and its config) and its inputs.

Why: outside Flyte nobody serializes a ``TaskTemplate`` for you. ``taskbox run`` accepts one as ``.pb``,
``.json`` or ``.yaml`` (protobuf's JSON mapping), or builds one from ``--executor NAME --config FILE``,
inferring the interface where the config tells it: input names from the ``{{ .inputs.x }}`` placeholders
(and from the inputs given), input types from the values given, outputs from the executor's conventions.
Whatever the source, the run then goes through the same resolver, literal engine and commit as
``taskbox execute``, so a task tried with ``taskbox run`` behaves as it will under Flyte.

Interface inference (``--executor``) belongs to the executor (``Executor.config_inputs`` and
``Executor.infer_outputs``, docs/plugins.md), so a plugin gets it too; each inferred name is overridable
by a declaration (``interface: {inputs: {...}, outputs: {...}}`` in the config file, or ``--interface``) in
the type language of :func:`taskbox.typespec.parse_type`. The executor's own declarations (``Executor.inputs``
and ``Executor.outputs``) come first; the user's override them. The config file's top-level ``interface`` key
is ``taskbox run``'s (:data:`INTERFACE_KEY`): it is removed before the executor's config model validates the
rest, so it is allowed even where the model rejects unknown keys, and never reaches the template's ``custom``
(an executor cannot have a config field of that name under ``taskbox run``). Example: ``--executor sqlite`` with
``SELECT * FROM t WHERE id = {{ .inputs.id }}`` and ``--input id=3`` gives inputs ``id: int`` and outputs
``results: table``.

Invariants:
    * Precedence of input values: ``--input name=value`` > ``TASKBOX_INPUT_<NAME>`` > Dagster Pipes extras >
      ``--inputs`` file. An extra is an input only where the task (or, with ``--executor``, its config) names
      it; other extras are left alone (:meth:`RawInputs.unused_extras`), never inferred as inputs.
    * Environment names match declared names exactly, then case-insensitively (``TASKBOX_INPUT_LIMIT``
      sets ``limit``); otherwise the lower-cased name is used.
    * A template's own container args choose the resolver (``taskbox.template`` or ``taskbox.function``,
      with a code bundle from ``fast-execute`` args, read by :func:`taskbox.entrypoint.cmdline.parse_container_args`);
      ``{{.taskTemplatePath}}`` stands for the template itself, handed to the resolver already parsed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from taskbox.entrypoint import plainio
from taskbox.errors import ConfigError, InputError, TemplateError

__all__ = ["RawInputs", "RunSpec", "build_template", "gather_inputs", "input_literals", "read_template", "resolve"]

INPUT_ENV_PREFIX = "TASKBOX_INPUT_"
#: The key of a ``--config`` document that is ``taskbox run``'s interface declaration: removed before the
#: executor's config model sees the config, and never part of the template's ``custom``.
INTERFACE_KEY = "interface"
_DOCUMENT_SUFFIXES = (".json", ".yaml", ".yml")


class RawInputs:
    """Input values as given, before the interface is known.

    Attributes:
        literals: From a ``.pb`` inputs file (name -> serialized ``Literal``, parsed when converted).
        values: From a JSON/YAML inputs file (name -> plain value).
        extras: From the Dagster Pipes context's ``extras`` (name -> plain value), used for known names only.
        env: From ``TASKBOX_INPUT_<NAME>`` (raw name -> text).
        pairs: From ``--input name=value`` (name -> text).

    """

    def __init__(self) -> None:
        self.literals: dict[str, Any] = {}
        self.values: dict[str, Any] = {}
        self.extras: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.pairs: dict[str, str] = {}

    def resolved(self, known: set[str]) -> dict[str, tuple[str, Any]]:
        """Name -> ``(kind, value)`` after precedence, ``kind`` in ``literal``/``plain``/``text``."""
        out: dict[str, tuple[str, Any]] = {n: ("literal", v) for n, v in self.literals.items()}
        out.update({n: ("plain", v) for n, v in self.values.items()})
        out.update({n: ("plain", v) for n, v in self.extras.items() if n in known})
        lower = {k.lower(): k for k in sorted(known)}
        for raw, text in self.env.items():
            name = raw if raw in known else lower.get(raw.lower(), raw.lower())
            out[name] = ("text", text)
        out.update({n: ("text", v) for n, v in self.pairs.items()})
        return out

    def unused_extras(self, known: set[str]) -> list[str]:
        """The Pipes extras that name no input of the task (left alone), sorted."""
        return sorted(n for n in self.extras if n not in known)


def gather_inputs(
    inputs_ref: str | None, pairs: list[str], environ: Mapping[str, str], extras: Mapping[str, Any] | None = None
) -> RawInputs:
    """Collect input values from the inputs file, Dagster Pipes extras, the environment and ``name=value`` pairs.

    Raises:
        InputError: The inputs file is unreadable or not a mapping; a pair has no ``=``.

    """
    raw = RawInputs()
    if inputs_ref:
        if inputs_ref.endswith(".pb"):
            from taskbox.entrypoint.execute import read_encoded_inputs

            raw.literals = read_encoded_inputs(inputs_ref)
        else:
            doc = plainio.load_document(inputs_ref, what="inputs", error=InputError)
            if doc is None:
                doc = {}
            if not isinstance(doc, dict):
                raise InputError(f"inputs {inputs_ref} must be an object of name: value, not {type(doc).__name__}")
            raw.values = {str(k): v for k, v in doc.items()}
    raw.extras = {str(k): v for k, v in (extras or {}).items()}
    for key, value in environ.items():
        if key.startswith(INPUT_ENV_PREFIX) and len(key) > len(INPUT_ENV_PREFIX):
            raw.env[key[len(INPUT_ENV_PREFIX) :]] = value
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise InputError(f"--input takes name=value, got {pair!r}")
        raw.pairs[name.strip()] = value
    return raw


# ------------------------------------------------------------------ templates


def read_template(ref: str) -> Any:
    """Read a ``TaskTemplate`` from a ``.pb`` file, a ``.json``/``.yaml`` document or inline JSON/YAML.

    A file of another name is told by its content (:func:`taskbox.entrypoint.template.read_template`).

    Raises:
        TemplateError: Unreadable, malformed, or not a TaskTemplate.

    """
    from taskbox.entrypoint.template import read_template as read_file
    from taskbox.entrypoint.template import template_from_document

    inline = ref.lstrip().startswith("{") or "\n" in ref
    if not inline and not ref.lower().endswith(_DOCUMENT_SUFFIXES):
        return read_file(ref)
    doc = plainio.load_document(ref, what="template", error=TemplateError)
    return template_from_document(doc, f"template {ref if not inline else '(inline)'}")


def _placeholders(cls: Any, config: Mapping[str, Any]) -> list[str]:
    """Return the input names the config uses, as the executor says (``Executor.config_inputs``).

    Raises:
        PluginInvalid: The executor's answer is not a list of input names.

    """
    from taskbox.errors import PluginInvalid

    names = cls.config_inputs(config)
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise PluginInvalid(f"{cls.__qualname__}.config_inputs must return a list of input names, got {names!r}")
    return list(names)


def _outputs(
    cls: Any, config: Mapping[str, Any], inputs: Mapping[str, Any], declared: Mapping[str, Any]
) -> dict[str, Any]:
    """Return the declared outputs, completed by the executor's conventions (``Executor.infer_outputs``).

    Raises:
        PluginInvalid: The executor's answer is not a mapping of output names to ``LiteralType``.

    """
    from flyteidl.core import types_pb2

    from taskbox.errors import PluginInvalid

    outputs = cls.infer_outputs(config, dict(inputs), dict(declared))
    if not isinstance(outputs, Mapping) or not all(
        isinstance(n, str) and n and isinstance(t, types_pb2.LiteralType) for n, t in outputs.items()
    ):
        raise PluginInvalid(
            f"{cls.__qualname__}.infer_outputs must return a mapping of output names to LiteralType, got {outputs!r}"
        )
    return dict(outputs)


def build_template(
    executor_ref: str, config_doc: Any, interface_doc: Any, raw: RawInputs, *, name: str | None = None
) -> Any:
    """Build a ``TaskTemplate`` for ``executor_ref`` from its config, inferring the interface (module doc).

    Raises:
        ExecutorNotFound / ExecutorNotInstalled: The executor is not available.
        ConfigError: The config does not validate, is nested deeper than a template can carry (protobuf
            reads 100 levels), or an interface declaration is malformed.
        InputError: An input's type can be neither found nor inferred.

    """
    from flyteidl.core import tasks_pb2
    from google.protobuf.message import DecodeError

    try:
        template = _build_template(executor_ref, config_doc, interface_doc, raw, name=name)
    except RecursionError:
        raise ConfigError(f"the config of executor {executor_ref!r} is nested too deeply") from None
    try:  # what the resolver will read back: refuse here what it could not
        tasks_pb2.TaskTemplate.FromString(template.SerializeToString())
    except (DecodeError, RecursionError) as exc:
        raise ConfigError(
            f"the config of executor {executor_ref!r} is nested too deeply for a TaskTemplate: {exc}"
        ) from None
    from taskbox.entrypoint.template import check_readable

    check_readable(template, f"the template built for executor {executor_ref!r}", reparse=False)
    return template


def _build_template(
    executor_ref: str, config_doc: Any, interface_doc: Any, raw: RawInputs, *, name: str | None = None
) -> Any:
    from flyteidl.core import interface_pb2, tasks_pb2
    from google.protobuf import struct_pb2

    from taskbox.executors import registry
    from taskbox.executors.base import validate_config

    cls = registry.ensure_installed(registry.load(executor_ref), executor_ref)
    if not isinstance(config_doc or {}, dict):
        raise ConfigError(f"the config of executor {executor_ref!r} must be an object")
    config = dict(config_doc or {})
    interface = config.pop(INTERFACE_KEY, None) or {}  # taskbox run's, never the executor's
    if interface_doc is not None:
        interface = interface_doc
    if not isinstance(interface, dict) or set(interface) - {"inputs", "outputs"}:
        raise ConfigError("an interface is an object with 'inputs' and/or 'outputs': {name: type}")
    for section in ("inputs", "outputs"):
        if not isinstance(interface.get(section) or {}, dict):
            raise ConfigError(f"interface.{section} is an object of name: type, got {interface[section]!r}")
    validate_config(cls, config)
    # The executor's own declarations (Executor.inputs/outputs), then the user's, which win.
    declared_in = {n: plainio.parse_type(t) for n, t in {**cls.inputs, **(interface.get("inputs") or {})}.items()}
    declared_out = {n: plainio.parse_type(t) for n, t in {**cls.outputs, **(interface.get("outputs") or {})}.items()}

    found: dict[str, None] = dict.fromkeys(declared_in)
    found.update(dict.fromkeys(_placeholders(cls, config)))
    given = raw.resolved(set(found))
    found.update(dict.fromkeys(given))
    inputs: dict[str, Any] = {}
    for input_name in found:
        if input_name in declared_in:
            inputs[input_name] = declared_in[input_name]
            continue
        if input_name not in given:
            raise InputError(f"input {input_name!r} is used by the config but has no value and no declared type")
        kind, value = given[input_name]
        if kind == "literal":
            from taskbox.literals.typeinfo import infer_literal_type
            from taskbox.literals.wire import parse_literal

            try:
                inputs[input_name] = infer_literal_type(parse_literal(value))
            except InputError as exc:
                raise InputError(f"input {input_name!r}: {exc}") from None
        else:
            plain = plainio.text_to_plain(value, None) if kind == "text" else value
            inputs[input_name] = plainio.infer_type(plain, input_name)
    outputs = _outputs(cls, config, inputs, declared_out)

    def variables(types: Mapping[str, Any]) -> Any:
        return interface_pb2.VariableMap(variables={n: interface_pb2.Variable(type=t) for n, t in types.items()})

    template = tasks_pb2.TaskTemplate(
        type=cls.task_type,
        interface=interface_pb2.TypedInterface(inputs=variables(inputs), outputs=variables(outputs)),
    )
    template.id.name = name or f"taskbox-run.{executor_ref}"
    if config:
        custom = struct_pb2.Struct()
        try:
            custom.update(config)
        except (TypeError, ValueError, ArithmeticError) as exc:  # a number no double holds, NaN...
            raise ConfigError(f"the config holds a value JSON cannot carry: {exc}") from None
        template.custom.CopyFrom(custom)
    return template


# ------------------------------------------------------------------ how to run it


class RunSpec:
    """A template and how to load it.

    Attributes:
        template: The ``TaskTemplate``.
        resolver: The resolver's name.
        resolver_args: Its arguments; ``None`` entries stand for the template's path.
        prepare: Installs a code bundle before the task loads (``fast-execute`` templates), or ``None``.
        executor: The executor's name, for logs (``""`` for user functions).

    """

    def __init__(
        self,
        template: Any,
        resolver: str,
        resolver_args: list[str | None],
        prepare: Callable[[], object] | None = None,
        executor: str = "",
    ) -> None:
        self.template = template
        self.resolver = resolver
        self.resolver_args = resolver_args
        self.prepare = prepare
        self.executor = executor

    def args_for(self, template_path: str) -> list[str]:
        """Return the resolver's arguments with the template's path filled in."""
        return [template_path if a is None else a for a in self.resolver_args]


def _from_container_args(template: Any) -> RunSpec | None:
    """Read the resolver (and a code bundle) from the template's container args, as Flyte would run them."""
    from taskbox.entrypoint.cmdline import HelpRequested, UsageError, parse_container_args

    args = list(template.container.args) if template.HasField("container") else []
    try:
        command = parse_container_args(args)
    except HelpRequested:
        raise TemplateError("the template's fast-execute args ask for help") from None
    except UsageError as exc:
        raise TemplateError(f"the template's fast-execute args are malformed: {exc}") from None
    if command is None:
        return None
    from taskbox.entrypoint.fast_execute import bundle_preparer

    prepare = bundle_preparer(command.distribution, command.dest_dir)
    return RunSpec(template, command.resolver, command.resolver_args, prepare, command.executor or template.type)


def resolve(
    *,
    template_ref: str | None,
    executor_ref: str | None,
    config_ref: str | None,
    interface_ref: str | None,
    raw: RawInputs,
) -> RunSpec:
    """Decide what to run from ``--template`` or ``--executor``/``--config``/``--interface``.

    Raises:
        TemplateError: Neither a template nor an executor was given, or the template is unusable.

    """
    interface_doc = plainio.load_document(interface_ref, what="interface") if interface_ref else None
    if template_ref:
        template = read_template(template_ref)
        if interface_doc is not None:
            raise TemplateError("--interface goes with --executor; a template carries its own interface")
        spec = None if executor_ref else _from_container_args(template)
        if spec is not None:
            return spec
        if not executor_ref and not template.type:
            raise TemplateError("the template has no type; name the executor with --executor")
        args: list[str | None] = [None, executor_ref] if executor_ref else [None]
        return RunSpec(template, "taskbox.template", args, executor=executor_ref or template.type)
    if not executor_ref:
        raise TemplateError("nothing to run: give --template, or --executor with --config (see `taskbox run -h`)")
    config_doc = plainio.load_document(config_ref, what="config") if config_ref else {}
    template = build_template(executor_ref, config_doc, interface_doc, raw)
    return RunSpec(template, "taskbox.template", [None, executor_ref], executor=executor_ref)


def input_literals(template: Any, raw: RawInputs, ctx: Any) -> dict[str, bytes]:
    """Convert every given input to a serialized ``Literal`` by the template's interface.

    Inputs from a ``.pb`` file stay as they were read (bytes, parsed only when converted): the memory-lean
    path of ``taskbox execute`` (:func:`taskbox.entrypoint.execute.read_encoded_inputs`).

    Returns:
        Input name -> serialized ``Literal``.

    Raises:
        InputError: An input is not declared or does not fit its type.

    """
    declared = {n: v.type for n, v in template.interface.inputs.variables.items()}
    encoded: dict[str, bytes] = {}
    for name, (kind, value) in raw.resolved(set(declared)).items():
        if name not in declared:
            raise InputError(f"input {name!r} is not declared by the task (declared: {sorted(declared)})")
        if kind == "literal":
            encoded[name] = value
            continue
        plain = plainio.text_to_plain(value, declared[name]) if kind == "text" else value
        encoded[name] = plainio.plain_to_literal(name, plain, declared[name], ctx).SerializeToString()
    return encoded
