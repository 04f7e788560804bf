"""In-process runs of ``@taskbox.task`` functions through ``taskbox execute``'s own pipeline.

Why: ``Task.run()`` must prove what a container run will do, so it does not call the function
directly: it writes ``inputs.pb``, runs :func:`taskbox.entrypoint.execute.execute` with the
``taskbox.function`` resolver (which imports the module and finds the task by name, as in the
container), and reads the committed ``outputs.pb`` or ``error.pb`` back
(:class:`taskbox.authoring.base.LocalRun`, shared with template tasks).

Invariants:
    * Inputs are encoded and outputs decoded by the function's type hints (a dataclass comes back as
      that dataclass, not as a dict).
    * A failed run raises :class:`taskbox.authoring.base.TaskFailed` with the error document's code,
      origin and recoverability; an undeclared or unconvertible input raises ``InputError`` before
      anything runs.
    * Everything is on local storage under ``workdir`` (kept: returned files point into it), except the
      checkpoint locations, which may be any storage URI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskbox.errors import InputError, TaskboxError

if TYPE_CHECKING:
    from taskbox.authoring.task import Task

__all__ = ["run_function_task"]


def run_function_task(
    task: Task[..., Any],
    inputs: dict[str, Any],
    *,
    workdir: str | None = None,
    checkpoint_path: str | None = None,
    prev_checkpoint: str | None = None,
) -> dict[str, Any]:
    """Run ``task`` in-process and return its outputs by name.

    Args:
        task: The task (importable as ``task.module``/``task.function_name``).
        inputs: Input values by name; optional inputs may be left out.
        workdir: Local directory for the run's files; a new temporary directory if omitted.
        checkpoint_path: ``--checkpoint-path``.
        prev_checkpoint: ``--prev-checkpoint``.

    Raises:
        InputError: An input is undeclared or does not convert.
        TaskFailed: The run committed ``error.pb``.
    """
    from flyteidl.core import literals_pb2

    from taskbox.authoring.base import LocalRun
    from taskbox.literals import TypeEngine

    extra = sorted(set(inputs) - set(task.inputs))
    if extra:
        raise InputError(f"input {extra[0]!r} is not declared by task {task.name!r} (declared: {list(task.inputs)})")
    local = LocalRun(workdir)
    literal_map = literals_pb2.LiteralMap()
    for name, value in inputs.items():
        try:
            literal = TypeEngine.to_literal(value, task.inputs[name], ctx=local.ctx)
        except TaskboxError as exc:
            raise InputError(f"input {name!r} of task {task.name!r}: {exc}") from exc
        literal_map.literals[name].CopyFrom(literal)
    return local.execute(
        "taskbox.function",
        task.resolver_args(),
        literal_map,
        task.outputs,
        checkpoint_path=checkpoint_path,
        prev_checkpoint=prev_checkpoint,
    )
