"""In-process runs of ``@taskbox.task`` functions through ``taskbox execute``'s own pipeline.

Why: ``Task.run()`` must prove what a container run will do, so it does not call the function
directly: it writes ``inputs.pb``, runs :func:`taskbox.entrypoint.execute.execute` with the
``taskbox.function`` resolver (which imports the module and finds the task by name, as in the
container), and reads the committed ``outputs.pb`` or ``error.pb`` back.

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

import os
import tempfile
from typing import TYPE_CHECKING, Any

from taskbox.errors import InputError, TaskboxError

if TYPE_CHECKING:
    from taskbox.authoring.task import Task

__all__ = ["run_function_task"]


def run_function_task(
    task: Task,
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
    from flyteidl.core import errors_pb2, execution_pb2, literals_pb2  # noqa: PLC0415

    from taskbox.authoring.base import TaskFailed  # noqa: PLC0415
    from taskbox.entrypoint.execute import ExecuteOptions, execute  # noqa: PLC0415
    from taskbox.entrypoint.signals import TerminationGuard  # noqa: PLC0415
    from taskbox.literals import ConversionContext, TypeEngine, literal_map_to_python  # noqa: PLC0415

    extra = sorted(set(inputs) - set(task.inputs))
    if extra:
        raise InputError(f"input {extra[0]!r} is not declared by task {task.name!r} (declared: {list(task.inputs)})")
    workdir = workdir or tempfile.mkdtemp(prefix="taskbox-run-")
    os.makedirs(workdir, exist_ok=True)
    raw = os.path.join(workdir, "raw")
    ctx = ConversionContext(raw_output_prefix=raw, working_dir=os.path.join(workdir, "work"))
    literal_map = literals_pb2.LiteralMap()
    for name, value in inputs.items():
        try:
            literal = TypeEngine.to_literal(value, task.inputs[name], ctx=ctx)
        except TaskboxError as exc:
            raise InputError(f"input {name!r} of task {task.name!r}: {exc}") from exc
        literal_map.literals[name].CopyFrom(literal)
    inputs_path = os.path.join(workdir, "inputs.pb")
    with open(inputs_path, "wb") as fh:
        fh.write(literal_map.SerializeToString())
    prefix = os.path.join(workdir, "out")
    options = ExecuteOptions(
        inputs=inputs_path,
        output_prefix=prefix,
        resolver="taskbox.function",
        resolver_args=task.resolver_args(),
        raw_output_prefix=raw,
        checkpoint_path=checkpoint_path,
        prev_checkpoint=prev_checkpoint,
    )
    execute(options, TerminationGuard())
    error_path = os.path.join(prefix, "error.pb")
    if os.path.exists(error_path):
        document = errors_pb2.ErrorDocument()
        with open(error_path, "rb") as fh:
            document.ParseFromString(fh.read())
        err = document.error
        raise TaskFailed(
            err.message,
            code=err.code,
            origin=execution_pb2.ExecutionError.ErrorKind.Name(err.origin),
            recoverable=err.kind == errors_pb2.ContainerError.RECOVERABLE,
        )
    outputs = literals_pb2.LiteralMap()
    with open(os.path.join(prefix, "outputs.pb"), "rb") as fh:
        outputs.ParseFromString(fh.read())
    return literal_map_to_python(outputs, task.outputs, ctx)
