"""The ``taskbox.function`` resolver: run a ``@taskbox.task`` function from the user's own code.

Arguments: ``task-module M task-name N`` (flytekit's default resolver uses the same pairs). The module
is imported from ``sys.path``: under ``taskbox fast-execute`` the extracted bundle is first on it; in an
image with the code installed, wherever the code was installed.

Invariants:
    * Every failure is typed, so the entrypoint commits the right error document:
      - the module cannot be found or imported (missing dependency, syntax error, an exception at
        import), the name is missing or is not a ``@taskbox.task`` -> :class:`TaskLoadError` (USER,
        non-recoverable), naming the module and the task;
      - the function raises -> :class:`UserCodeError` (USER, non-recoverable, code ``USER:<ExcType>``)
        with the user's exception as its cause, so the user's traceback is in the message;
        ``taskbox.RecoverableError`` (and any other taskbox error) passes through with its own
        code and retry flag;
      - the return value does not fit the declared outputs -> :class:`OutputError` saying which output
        and why (the entrypoint's output conversion names the output for type mismatches).
    * Async functions run on a fresh event loop (``asyncio.run``); asyncio is imported only for them.
    * While the function runs, :func:`taskbox.current_context` returns the run's context.
    * The user's exception's traceback starts at the user's code: the frames of taskbox, importlib and
      asyncio before it are cut.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from taskbox.entrypoint.resolvers import LoadedTask
from taskbox.errors import TaskboxError, TaskLoadError, TemplateError, UserCodeError

if TYPE_CHECKING:
    from taskbox.authoring.task import Task
    from taskbox.context import ExecutionContext

__all__ = ["find_task", "load_function_task", "parse_args", "run_task"]

_KEYS = ("task-module", "task-name")
#: Class attribute that marks ``@taskbox.task`` objects (:class:`taskbox.authoring.task.Task` sets it): the
#: entrypoint recognises a task without importing the authoring layer above it.
TASK_MARKER = "__taskbox_task__"
_TASKBOX_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(args: list[str]) -> tuple[str, str]:
    """``["task-module", M, "task-name", N]`` (pairs in any order) -> ``(M, N)``.

    Raises:
        TemplateError: Malformed arguments (the container args are wrong, not the user's code).
    """
    usage = "taskbox.function takes: task-module MODULE task-name NAME"
    if len(args) != 4:
        raise TemplateError(f"{usage}; got {args!r}")
    pairs = dict(zip(args[0::2], args[1::2], strict=True))
    if sorted(pairs) != sorted(_KEYS) or not all(pairs.values()):
        raise TemplateError(f"{usage}; got {args!r}")
    return pairs["task-module"], pairs["task-name"]


def find_task(module_name: str, task_name: str) -> Task[..., Any]:
    """Import ``module_name`` and return its ``@taskbox.task`` called ``task_name``.

    Raises:
        TaskLoadError: The module is missing or fails to import, or the name is missing or not a task.
    """
    where = f"{module_name}.{task_name}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            shown = ", ".join(repr(p) for p in sys.path[:3])
            raise TaskLoadError(
                f"cannot load task {where!r}: module {module_name!r} not found (no {exc.name!r} on sys.path; "
                f"first entries {shown}); is the code bundle or image the one the task was built from?"
            ) from None
        raise TaskLoadError(
            f"cannot load task {where!r}: importing module {module_name!r} failed: {exc} "
            "(a dependency missing from the image?)"
        ) from exc
    except SyntaxError as exc:
        raise TaskLoadError(
            f"cannot load task {where!r}: module {module_name!r} has a syntax error at "
            f"{exc.filename}:{exc.lineno}: {exc.msg}"
        ) from exc
    except TaskboxError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - anything the user's module does at import
        raise TaskLoadError(
            f"cannot load task {where!r}: importing module {module_name!r} raised {type(exc).__name__}: {exc}"
        ) from exc.with_traceback(_user_frames(exc.__traceback__))
    found: Any = getattr(module, task_name, None)
    if getattr(type(found), TASK_MARKER, False) is True:  # a Task, known without importing the authoring layer
        return found
    if found is None and not hasattr(module, task_name):
        raise TaskLoadError(f"cannot load task {where!r}: module {module_name!r} has no attribute {task_name!r}")
    if callable(found):
        raise TaskLoadError(
            f"cannot load task {where!r}: it is a plain {type(found).__name__}, not a task; "
            "decorate it with @taskbox.task"
        )
    raise TaskLoadError(f"cannot load task {where!r}: it is a {type(found).__name__}, not a @taskbox.task function")


def run_task(task: Task[..., Any], context: ExecutionContext, inputs: Mapping[str, Any]) -> dict[str, Any]:
    """Call the task's function with ``inputs`` under ``context``; return its outputs by name.

    Raises:
        UserCodeError: The function raised (non-recoverable; the user's exception is the cause).
        TaskboxError: The function raised a taskbox error, e.g. ``RecoverableError`` (passed through).
        OutputError: The return value does not have the declared shape.
    """
    from taskbox.context import enter_context, exit_context

    context.secrets.preload(task.secrets)  # masked even when the function reads them past the accessor
    state = enter_context(context)
    try:
        result = task.function(**inputs)
        if task.is_async or _is_coroutine(result):
            import asyncio  # lazy: only async tasks pay for it

            result = asyncio.run(result)
    except TaskboxError as exc:
        raise exc.with_traceback(_user_frames(exc.__traceback__))  # noqa: B904 - re-raised as is, cause kept
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - every user failure becomes a typed USER error
        kind = type(exc).__name__
        raise UserCodeError(f"task {task.name!r} raised {kind}: {exc}", code=f"USER:{kind}") from exc.with_traceback(
            _user_frames(exc.__traceback__)
        )
    finally:
        exit_context(state)
    return task.outputs_of(result)


def load_function_task(args: list[str], working_dir: str, *, template: Any = None) -> LoadedTask:
    """Load a function task (the resolver's entry point).

    Args:
        args: ``["task-module", M, "task-name", N]``.
        working_dir: Unused; part of the resolver signature.
        template: Unused (the function declares its own interface); part of the resolver signature.
    """
    module_name, task_name = parse_args(args)
    task = find_task(module_name, task_name)
    return LoadedTask(
        name=task.name,
        input_types=task.inputs,
        output_types=task.outputs,
        body=lambda context, inputs: run_task(task, context, inputs),
        optional_inputs=task.optional_inputs,
    )


def _is_coroutine(value: Any) -> bool:
    return type(value).__name__ == "coroutine" and hasattr(value, "send")


def _user_frames(tb: TracebackType | None) -> TracebackType | None:
    """Drop the leading frames that belong to taskbox, importlib or asyncio (the user's start after them)."""
    skip = [_TASKBOX_DIR, "<frozen importlib"]
    asyncio_file = getattr(sys.modules.get("asyncio"), "__file__", None)
    if asyncio_file:
        skip.append(os.path.dirname(os.path.abspath(asyncio_file)))
    start = tb
    while start is not None and start.tb_next is not None:
        filename = start.tb_frame.f_code.co_filename
        if not any(filename.startswith(prefix) for prefix in skip):
            break
        start = start.tb_next
    return start
