"""The executor contract: what a prebuilt executor is, and how its ``custom`` config is checked.

Why: the entrypoint knows nothing about SQL or HTTP. It hands an executor a context, a validated
config object and the inputs as Python values, and takes back Python values for the declared
outputs. Everything an executor needs to say about itself is on the class, so the registry can
validate a plugin when it is loaded, and ``taskbox executors`` can describe it, without running it.

Invariants:
    * ``task_type`` is the ``TaskTemplate.type`` the executor serves (``sqlite``, ``sqlalchemy`` ...).
    * ``Config`` is a pydantic model class for the template's ``custom`` field, or ``None`` for an
      executor that takes no configuration (a non-empty ``custom`` is then a ``ConfigError``).
      Config models should derive from :class:`taskbox.executors.config.ExecutorConfig`, which carries
      the ``version`` of the config schema.
    * ``execute`` returns a mapping with exactly the declared outputs; the entrypoint converts and
      checks them against the interface and translates nothing: an executor raises
      :mod:`taskbox.errors` types for the failures it understands.
    * ``config_inputs`` and ``infer_outputs`` (``taskbox run --executor``'s interface inference) are
      classmethods of the plain config mapping: pure, no I/O, and cheap (no import at module level).
    * ``inputs`` and ``outputs`` declare the interface every config of the executor has, in the type language
      of :func:`taskbox.typespec.parse_type` (``{"count": "int"}``); the registry parses them when the plugin
      loads. :meth:`Executor.interface` is the default interface of one config: those declarations, the
      config's inputs (``config_inputs``) and its outputs (``infer_outputs``), as type-language strings.
    * ``requires`` names the modules ``execute`` imports (lazily): the executor can run here only when each is
      importable (``importlib.util.find_spec``, nothing imported); the registry checks it before a run
      (:func:`taskbox.executors.registry.ensure_installed`) and ``taskbox executors`` reports it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from taskbox.errors import ConfigError

if TYPE_CHECKING:
    from flyteidl.core.types_pb2 import LiteralType

    from taskbox.context import ExecutionContext

__all__ = ["FLYTE_PLACEHOLDER", "Executor", "config_error", "placeholder_names", "validate_config"]

#: Flyte's input placeholder, ``{{ .inputs.name }}`` (group 1 is the name), as flytekit's templates write it.
FLYTE_PLACEHOLDER = re.compile(r"\{\{\s*\.?inputs\.(\w+)\s*\}\}", re.IGNORECASE)


def placeholder_names(value: Any, pattern: re.Pattern[str] = FLYTE_PLACEHOLDER) -> list[str]:
    """Names captured by ``pattern`` in every string of ``value`` (nested mappings and lists), first seen first.

    Args:
        value: A config as plain data (``TaskTemplate.custom`` as a mapping).
        pattern: A placeholder expression whose group 1 is the input's name.

    Returns:
        Each name once, in the order of their first occurrence.

    Example:
        >>> placeholder_names({"query": "SELECT {{ .inputs.a }}", "args": ["{{.inputs.b}}", "{{ .inputs.a }}"]})
        ['a', 'b']

    """
    found: dict[str, None] = {}
    stack = [value]
    while stack:  # iterative: a config nested deeper than the recursion limit is refused elsewhere
        item = stack.pop()
        if isinstance(item, str):
            found.update(dict.fromkeys(pattern.findall(item)))
        elif isinstance(item, Mapping):
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, (list, tuple)):
            stack.extend(reversed(item))
    return list(found)


class Executor:
    """Base class of prebuilt executors.

    Subclasses set :attr:`task_type`, optionally :attr:`Config`, and implement :meth:`execute`.
    Instances are created once per run with no arguments; cache expensive state (a downloaded
    database, a connection pool) on the class or module to reuse it within one container.
    """

    #: The ``TaskTemplate.type`` this executor runs.
    task_type: ClassVar[str] = ""
    #: Pydantic model for ``TaskTemplate.custom``; ``None`` when the executor takes no config.
    Config: ClassVar[type[Any] | None] = None
    #: One line shown by ``taskbox executors``.
    summary: ClassVar[str] = ""
    #: Inputs every config of this executor takes, name -> type-language string (``{"text": "str"}``).
    inputs: ClassVar[Mapping[str, str]] = {}
    #: Outputs every config of this executor returns, name -> type-language string (``{"count": "int"}``).
    outputs: ClassVar[Mapping[str, str]] = {}
    #: Top-level or dotted module names ``execute`` needs (``("sqlglot", "pyarrow")``); without one of them the
    #: executor is not available here (``USER:ExecutorNotInstalled``), instead of failing mid-run.
    requires: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def interface(
        cls,
        config: Mapping[str, Any],
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Return the default interface of ``config``: ``(inputs, outputs)``, name -> type-language string.

        Inputs are the declared ones (``inputs`` here, then the class's :attr:`inputs`) followed by the names
        :meth:`config_inputs` finds; outputs are what :meth:`infer_outputs` answers for the declared ones
        (``outputs`` here over the class's :attr:`outputs`). Pure: no I/O, nothing run.

        Args:
            config: ``TaskTemplate.custom`` as plain data (valid for :attr:`Config`; not validated here).
            inputs: Input types the caller declares, name -> type-language string or ``LiteralType`` (they win).
            outputs: Output types the caller declares, likewise.

        Returns:
            ``(inputs, outputs)``, each name -> type-language string (a caller's strings are kept as given).

        Raises:
            ConfigError: The config uses an input whose type nobody declares (declare it in ``inputs``), a
                declared type does not parse, or an inferred type has no name in the type language.

        Example:
            >>> from taskbox.executors.echo import EchoExecutor
            >>> EchoExecutor.interface({}, {"x": "int"})
            ({'x': 'int'}, {'x': 'int'})

        """
        from taskbox.typespec import format_type, parse_type

        said_in = {**cls.inputs, **(inputs or {})}
        said_out = {**cls.outputs, **(outputs or {})}
        untyped = [n for n in cls.config_inputs(config) if n not in said_in]
        if untyped:
            raise ConfigError(
                f"the {cls.task_type} config uses input(s) {', '.join(map(repr, untyped))} of no declared type: "
                "declare their types (inputs={name: type})"
            )
        in_types = {n: parse_type(t) for n, t in said_in.items()}
        out_types = cls.infer_outputs(config, in_types, {n: parse_type(t) for n, t in said_out.items()})

        def said(given: Mapping[str, Any], types: Mapping[str, Any]) -> dict[str, str]:
            return {n: given[n] if isinstance(given.get(n), str) else format_type(t) for n, t in types.items()}

        return said(said_in, in_types), said(said_out, out_types)

    @classmethod
    def config_inputs(cls, config: Mapping[str, Any]) -> list[str]:
        """Name the inputs the config uses, for ``taskbox run --executor`` to add to the interface.

        The default finds Flyte's ``{{ .inputs.name }}`` placeholders in every string of the config;
        override it when your config names inputs another way (the ``http`` executor reads
        ``{inputs.name}`` when ``placeholder_style`` is ``webhook``).

        Args:
            config: ``TaskTemplate.custom`` as plain data (already valid for :attr:`Config`).

        Returns:
            Input names, each once, in the order they appear.

        """
        return placeholder_names(config)

    @classmethod
    def infer_outputs(
        cls, config: Mapping[str, Any], inputs: Mapping[str, LiteralType], declared: Mapping[str, LiteralType]
    ) -> dict[str, LiteralType]:
        """Return the task's outputs: the declared ones, completed by what the config implies.

        ``taskbox run --executor`` calls it to build the template's interface (with the class's
        :attr:`outputs` among ``declared``). The default returns ``declared``, and the class's :attr:`outputs`
        when called without them; an executor whose config implies outputs adds them (the SQL executors a
        ``results`` table, the ``http`` executor its status/headers/body outputs, ``echo`` one output per
        input). Build types with :func:`taskbox.typespec.parse_type` (``parse_type("list[json]")``).

        Args:
            config: ``TaskTemplate.custom`` as plain data (already valid for :attr:`Config`).
            inputs: The inferred input interface, name -> ``LiteralType``.
            declared: Outputs the user declared, name -> ``LiteralType`` (they win over inferred ones).

        Returns:
            Output name -> ``LiteralType``.

        Raises:
            ConfigError: An output the config implies has a type that cannot be told (ask for a declaration).

        """
        if not cls.outputs:
            return dict(declared)
        from taskbox.typespec import parse_type

        return {**{n: parse_type(t) for n, t in cls.outputs.items()}, **declared}

    def execute(self, context: ExecutionContext, config: Any, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Run the task.

        Args:
            context: The run's identity, paths, secrets and declared outputs.
            config: An instance of :attr:`Config` (or ``None``).
            inputs: Input values by name, converted by the template's interface.

        Returns:
            Output values by name.
        """
        raise NotImplementedError


def validate_config(executor: type[Executor], custom: Mapping[str, Any]) -> Any:
    """Validate a template's ``custom`` mapping against the executor's config model.

    Args:
        executor: The executor class.
        custom: ``TaskTemplate.custom`` as a plain mapping (numbers arrive as floats).

    Returns:
        The config object, or ``None`` for executors without config.

    Raises:
        ConfigError: The mapping does not validate; the message lists each field's problem.
    """
    model = executor.Config
    if model is None:
        if custom:
            raise ConfigError(
                f"executor for task type {executor.task_type!r} takes no configuration, "
                f"but the template's custom field has: {', '.join(sorted(custom))}"
            )
        return None
    from pydantic import ValidationError  # only executors with configs pay for pydantic

    try:
        return model.model_validate(dict(custom))
    except ValidationError as exc:
        raise config_error(executor.task_type, exc) from None


def config_error(task_type: str, exc: Any) -> ConfigError:
    """The ``ConfigError`` for a pydantic ``ValidationError`` of a ``task_type`` config: each field's problem.

    Example: ``invalid sqlite config: timeout_seconds: Input should be greater than 0``.
    """
    problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors())
    return ConfigError(f"invalid {task_type} config: {problems}")


@contextlib.contextmanager
def config_errors(task_type: str) -> Iterator[None]:
    """Turn a pydantic ``ValidationError`` raised inside the block into :func:`config_error`'s ``ConfigError``.

    For code that builds a config model directly (the HTTP authoring classes do) and must report it as
    the container does.
    """
    from pydantic import ValidationError  # only executors with configs pay for pydantic

    try:
        yield
    except ValidationError as exc:
        raise config_error(task_type, exc) from None
