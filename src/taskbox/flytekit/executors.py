"""flytekit shim executors (``ShimTaskExecutor`` classes) for taskbox executors: ``taskbox.flytekit.executors.<name>``.

Why: a ``PythonCustomizedContainerTask`` names its executor by class path in its container args
(``... --resolver flytekit...default_task_template_resolver -- {{.taskTemplatePath}} <module>.<Class>``), and
flytekit calls that executor's ``execute_from_model`` for local runs. One class per taskbox executor, made on
demand and named after the executor's registry name, gives every executor (built-in or plugin) a class path
that

* taskbox's registry resolves *by name*, without importing this module (the executor images have no
  flytekit): ``taskbox.flytekit.executors.sqlite`` is executor ``sqlite``
  (:data:`taskbox.executors.registry.FLYTEKIT_SHIM_PREFIX`);
* flytekit's ``load_object_from_module`` imports, in an image or a local run that has flytekit
  (:func:`__getattr__` makes the class).

``execute_from_model`` runs exactly what the image runs: it writes the template as ``task.pb`` and the
inputs as ``inputs.pb`` and runs ``taskbox execute`` with the same resolver and executor class path, in this
process (:meth:`taskbox.authoring.base.LocalRun.commit`), then hands flytekit the committed ``outputs.pb`` as a
``LiteralMap`` (flytekit's ``dispatch_execute`` passes a ``LiteralMap`` through unconverted).

Error mapping (the error document taskbox commits -> what ``execute_from_model`` raises):

=====================================  ==============================================================
taskbox error document                 raised (``.code``/``.error_code`` is taskbox's code)
=====================================  ==============================================================
USER, non-recoverable                  :class:`TaskFailed`
USER, recoverable                      :class:`RecoverableTaskFailed` (a ``FlyteRecoverableException``)
SYSTEM (any)                           :class:`TaskFailed` (``origin == "SYSTEM"``)
=====================================  ==============================================================

In a local run (``pyflyte run``, a plain call) these propagate as they are. Under ``pyflyte-execute`` (an
image with flytekit and taskbox) they are wrapped the way flytekit's entrypoint reads them, so its error
document has taskbox's code, origin and recoverability: USER errors in ``FlyteUserRuntimeException``, SYSTEM
non-recoverable ones in ``FlyteNonRecoverableSystemException``; SYSTEM recoverable ones are left unwrapped
(flytekit's rule for unknown failures).

Invariants:
    * A class made here is cached: ``getattr(module, name)`` always returns the same class, so flytekit and
      pickle find it again; its ``__module__``/``__name__`` are this module and the registry name.
    * Files: ``task.pb``/``inputs.pb`` in a private scratch directory (removed); ``outputs.pb`` and data under
      flytekit's raw output prefix (``<raw>/taskbox-<random>``, kept: outputs point into it). The checkpoint is
      flytekit's (``ExecutionParameters.checkpoint``), so an asynchronous executor resumes its job on a retry.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import types
from typing import Any, ClassVar

from flytekit.core.context_manager import FlyteContext, FlyteContextManager
from flytekit.core.python_customized_container_task import default_task_template_resolver
from flytekit.core.shim_task import ShimTaskExecutor
from flytekit.core.type_engine import TypeEngine
from flytekit.exceptions.base import FlyteRecoverableException
from flytekit.models import literals as literal_models

from taskbox.authoring.base import TaskFailed as _AuthoringTaskFailed
from taskbox.executors.registry import FLYTEKIT_SHIM_PREFIX
from taskbox.flytekit.spec import check_name

__all__ = ["RecoverableTaskFailed", "TaskFailed", "TaskboxExecutor", "executor_for", "flytekit_error"]

_MODULE = FLYTEKIT_SHIM_PREFIX.rstrip(".")
_classes: dict[str, type[TaskboxExecutor]] = {}
_lock = threading.Lock()


class TaskFailed(_AuthoringTaskFailed):
    """A taskbox task failed under flytekit; carries the error document's ``code``, ``origin``, ``recoverable``.

    A :class:`taskbox.authoring.TaskFailed`, as :meth:`taskbox.authoring.base.TemplateTask.run` raises.
    """

    @property
    def error_code(self) -> str:
        """The code flytekit's entrypoint writes into its error document (taskbox's, ``USER:...``)."""
        return str(self.code)


class RecoverableTaskFailed(TaskFailed, FlyteRecoverableException):  # type: ignore[misc]
    """A recoverable USER failure: a ``FlyteRecoverableException``, so flytekit retries it."""


class TaskboxExecutor(ShimTaskExecutor):  # type: ignore[misc]
    """Runs the taskbox executor :attr:`executor` (a registry name) on a flytekit ``TaskTemplate``.

    Subclasses are made by :func:`executor_for`; this base runs nothing.
    """

    #: The taskbox executor's registry name.
    executor: ClassVar[str] = ""

    def execute_from_model(self, tt: Any, **kwargs: Any) -> Any:
        """Run the template's executor through ``taskbox execute``'s pipeline, in this process.

        Args:
            tt: The flytekit ``TaskTemplate`` model (its ``custom``, interface and security context).
            **kwargs: The native input values (flytekit converted them with types guessed from ``tt``).

        Returns:
            The committed outputs, a flytekit ``LiteralMap`` (flytekit passes it on unconverted).

        Raises:
            TaskFailed: The run committed an error document (see the module's table); wrapped for flytekit's
                entrypoint outside local runs.
        """
        from flyteidl.core import literals_pb2

        from taskbox import storage
        from taskbox.authoring.base import LocalRun

        if not self.executor:
            raise TypeError("TaskboxExecutor runs nothing itself: use taskbox.flytekit.executors.<executor name>")
        ctx = FlyteContextManager.current_context()
        inputs = _inputs_to_literals(ctx, tt, kwargs).to_flyte_idl().SerializeToString()
        raw = ctx.file_access.raw_output_prefix
        checkpoint, previous = _checkpoints(ctx)
        scratch = tempfile.mkdtemp(prefix="taskbox-flytekit-")
        try:
            run = LocalRun(scratch, output_prefix=storage.join(raw, f"taskbox-{os.urandom(8).hex()}"),
                           raw_output_prefix=raw)  # fmt: skip
            template = run.write("task.pb", tt.to_flyte_idl().SerializeToString())
            outputs = run.commit(
                default_task_template_resolver.location,
                [template, FLYTEKIT_SHIM_PREFIX + self.executor],
                inputs,
                checkpoint_path=checkpoint,
                prev_checkpoint=previous,
            )
        except _AuthoringTaskFailed as failed:
            raise flytekit_error(failed, local=_is_local(ctx)) from None
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return literal_models.LiteralMap.from_flyte_idl(literals_pb2.LiteralMap.FromString(outputs))


def executor_for(name: str) -> type[TaskboxExecutor]:
    """The shim executor class of the taskbox executor ``name`` (made once, then cached).

    Raises:
        ConfigError: ``name`` is not a registry name.
    """
    check_name(name)
    with _lock:
        cls = _classes.get(name)
        if cls is None:

            def body(ns: dict[str, Any]) -> None:
                ns.update(executor=name, __module__=_MODULE, __qualname__=name, __doc__=f"Runs taskbox's {name!r}.")

            cls = _classes[name] = types.new_class(name, (TaskboxExecutor,), exec_body=body)
        return cls


def __getattr__(name: str) -> Any:
    """``taskbox.flytekit.executors.<name>`` (flytekit's ``load_object_from_module``): the shim of executor ``name``."""
    if name.startswith("__"):
        raise AttributeError(f"module {_MODULE!r} has no attribute {name!r}")
    from taskbox.errors import ConfigError

    try:
        return executor_for(name)
    except ConfigError:
        raise AttributeError(f"module {_MODULE!r} has no attribute {name!r}") from None


def flytekit_error(failed: _AuthoringTaskFailed, *, local: bool) -> Exception:
    """The exception for a committed error document (see the module's table).

    Args:
        failed: The error document, as :meth:`LocalRun.commit` raised it.
        local: A local run (raise as is) or flytekit's entrypoint (wrap as it reads errors).
    """
    from flytekit.exceptions.system import FlyteNonRecoverableSystemException
    from flytekit.exceptions.user import FlyteUserRuntimeException

    recoverable_user = failed.origin == "USER" and failed.recoverable
    kind = RecoverableTaskFailed if recoverable_user else TaskFailed
    error = kind(failed.message, code=failed.code, origin=failed.origin, recoverable=failed.recoverable)
    if local:
        return error
    if failed.origin == "USER":
        return FlyteUserRuntimeException(error)
    return error if failed.recoverable else FlyteNonRecoverableSystemException(error)


def _is_local(ctx: FlyteContext) -> bool:
    state = ctx.execution_state
    return state is None or state.mode is None or bool(state.is_local_execution())


def _inputs_to_literals(ctx: FlyteContext, tt: Any, kwargs: dict[str, Any]) -> Any:
    """The native inputs back as literals, with the types flytekit guessed from ``tt`` to make them native."""
    variables = tt.interface.inputs
    python_types = TypeEngine.guess_python_types(variables)
    literals = {
        name: TypeEngine.to_literal(ctx, value, python_types[name], variables[name].type)
        for name, value in kwargs.items()
    }
    return literal_models.LiteralMap(literals=literals)


def _checkpoints(ctx: FlyteContext) -> tuple[str | None, str | None]:
    """``(checkpoint, previous checkpoint)`` of flytekit's ``SyncCheckpoint`` for this task, if it has one."""
    params = ctx.user_space_params
    checkpoint = getattr(params, "_checkpoint", None) if params is not None else None
    destination = getattr(checkpoint, "_checkpoint_dest", None)
    if not destination:
        return None, None
    return str(destination), getattr(checkpoint, "_checkpoint_src", None) or None
