"""Resolvers: turn ``--resolver NAME -- ARGS...`` into a loaded task the entrypoint can run.

Why: Flyte's container args name a resolver and hand it opaque arguments (a template URI and an
executor; a module and a function name). The entrypoint stays the same for every kind of task; only
the resolver differs. Resolvers are registered as strings and imported on demand, like executors.

Invariants:
    * flytekit's prebuilt-container resolver path is an alias of ``taskbox.template``, so flytekit's
      serialized template tasks run unchanged.
    * flytekit's user-code resolvers need flytekit's own runtime; they are refused with a
      ``TemplateError`` that says so, never attempted.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskbox.errors import TemplateError

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

#: Resolver name -> ``"module:function"`` with signature ``(args, working_dir, *, template=None) -> LoadedTask``;
#: ``template`` is an already parsed ``TaskTemplate`` (``taskbox run`` has one), read instead of ``args[0]``.
RESOLVERS: dict[str, str] = {
    "taskbox.function": "taskbox.entrypoint.function:load_function_task",
    "taskbox.template": "taskbox.entrypoint.template:load_template_task",
    "flytekit.core.python_customized_container_task.default_task_template_resolver": (
        "taskbox.entrypoint.template:load_template_task"
    ),
}

#: Resolvers whose first argument is the template's path (a parsed template can be handed to them instead).
TEMPLATE_RESOLVERS = frozenset(
    {"taskbox.template", "flytekit.core.python_customized_container_task.default_task_template_resolver"}
)

#: flytekit resolvers that load flytekit user code; taskbox cannot run those without flytekit.
FLYTEKIT_CODE_RESOLVERS = frozenset(
    {
        "flytekit.core.python_auto_container.default_task_resolver",
        "flytekit.core.python_auto_container.default_notebook_task_resolver",
        "flytekit.core.array_node_map_task.ArrayNodeMapTaskResolver",
        "flytekit.core.legacy_map_task.MapTaskResolver",
    }
)


class LoadedTask:
    """A task ready to run: its interface and a callable body.

    (A plain class: ``NamedTuple``/``dataclass`` cost milliseconds at import, paid at every task start.)

    Attributes:
        name: For messages.
        input_types: Input name -> ``LiteralType`` or Python type.
        output_types: Output name -> ``LiteralType`` or Python type.
        body: ``(context, inputs) -> outputs``.
        template: The ``TaskTemplate`` when the task came from one.
        optional_inputs: Inputs that may be absent from ``inputs.pb`` (the body supplies a default).
    """

    __slots__ = ("body", "input_types", "name", "optional_inputs", "output_types", "template")

    def __init__(
        self,
        name: str,
        input_types: Mapping[str, Any],
        output_types: Mapping[str, Any],
        body: Callable[[ExecutionContext, Mapping[str, Any]], Mapping[str, Any]],
        template: Any = None,
        optional_inputs: frozenset[str] = frozenset(),
    ) -> None:
        self.name = name
        self.input_types = input_types
        self.output_types = output_types
        self.body = body
        self.template = template
        self.optional_inputs = optional_inputs


def load_task(resolver: str, args: Sequence[str], working_dir: str, *, template: Any = None) -> LoadedTask:
    """Load the task that ``resolver`` and its arguments describe.

    Args:
        resolver: The resolver's name (:data:`RESOLVERS`).
        args: Its arguments.
        working_dir: The run's scratch directory.
        template: An already parsed ``TaskTemplate`` for a :data:`TEMPLATE_RESOLVERS` resolver (its
            path argument is then not read): the template is parsed and validated once.

    Raises:
        TemplateError: Unknown resolver, or a flytekit user-code resolver.
    """
    target = RESOLVERS.get(resolver)
    if target is None:
        if resolver in FLYTEKIT_CODE_RESOLVERS:
            raise TemplateError(
                f"resolver {resolver!r} loads flytekit user code, which needs flytekit's own image; "
                "taskbox runs flytekit's prebuilt-container templates and taskbox.function tasks"
            )
        raise TemplateError(f"unknown resolver {resolver!r}; known resolvers: {', '.join(sorted(RESOLVERS))}")
    module_name, _, attr = target.partition(":")
    try:
        loader = getattr(importlib.import_module(module_name), attr)
    except ModuleNotFoundError as exc:
        raise TemplateError(f"resolver {resolver!r} is not available in this taskbox ({exc.name} missing)") from None
    if template is not None:
        return loader(list(args), working_dir, template=template)
    return loader(list(args), working_dir)
