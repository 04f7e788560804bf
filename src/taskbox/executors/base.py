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
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from taskbox.errors import ConfigError

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = ["Executor", "validate_config"]


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
    from pydantic import ValidationError  # noqa: PLC0415 - only executors with configs pay for pydantic

    try:
        return model.model_validate(dict(custom))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid {executor.task_type} config: {problems}") from None
