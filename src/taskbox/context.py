"""The execution context an executor receives: who is running, where data goes, and secrets.

Why: an executor should not read Flyte's environment variables or entrypoint flags itself; it gets
one immutable object that says which execution and attempt it serves (from the variables propeller
injects), where to put raw data, where its checkpoints live, a scratch directory and the secrets
accessor. Everything is plain data, so the same executor runs under Flyte, under ``taskbox run`` and
in-process from the authoring API.

Invariants:
    * Identity fields come from ``FLYTE_INTERNAL_EXECUTION_*`` / ``FLYTE_INTERNAL_TASK_*`` (or
      flytekit's short aliases ``_F_PRJ`` ...) and ``FLYTE_ATTEMPT_NUMBER``; missing ones are ``""``.
    * ``working_dir`` is private to this run and removed by the entrypoint afterwards.
    * :func:`current_context` answers only while a ``@taskbox.task`` function runs (the function
      resolver sets it around the call); outside a run it raises, never invents a context.
    * ``checkpoint`` is built on first access (:mod:`taskbox.checkpoints` is not imported otherwise).
"""

from __future__ import annotations

import contextvars
import os
import threading
from collections import namedtuple
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taskbox import settings
from taskbox.secrets import SecretStore

if TYPE_CHECKING:
    from taskbox.checkpoints import Checkpoint

# Each field: (long name, flytekit's short alias).
_EXECUTION_VARS = {
    "project": ("FLYTE_INTERNAL_EXECUTION_PROJECT", "_F_PRJ"),
    "domain": ("FLYTE_INTERNAL_EXECUTION_DOMAIN", "_F_DM"),
    "name": ("FLYTE_INTERNAL_EXECUTION_ID", "_F_NM"),
    "workflow": ("FLYTE_INTERNAL_EXECUTION_WORKFLOW", "_F_WF"),
    "launch_plan": ("FLYTE_INTERNAL_EXECUTION_LAUNCHPLAN", "_F_LP"),
}
_TASK_VARS = {
    "project": ("FLYTE_INTERNAL_TASK_PROJECT", "_F_TK_PRJ"),
    "domain": ("FLYTE_INTERNAL_TASK_DOMAIN", "_F_TK_DM"),
    "name": ("FLYTE_INTERNAL_TASK_NAME", "_F_TK_NM"),
    "version": ("FLYTE_INTERNAL_TASK_VERSION", "_F_TK_V"),
}


def _pick(env: Mapping[str, str], names: tuple[str, str]) -> str:
    return env.get(names[0]) or env.get(names[1]) or ""


# collections.namedtuple rather than typing.NamedTuple: the latter compiles every string annotation
# (``from __future__ import annotations``) into a ForwardRef at import, a cost paid at every task start.
# The type checker reads the NamedTuple twins below (same fields, same defaults).
if TYPE_CHECKING:
    from typing import NamedTuple

    class _ExecutionFields(NamedTuple):
        project: str = ""
        domain: str = ""
        name: str = ""
        workflow: str = ""
        launch_plan: str = ""

    class _TaskFields(NamedTuple):
        project: str = ""
        domain: str = ""
        name: str = ""
        version: str = ""

else:
    _ExecutionFields = namedtuple("ExecutionIdentity", _EXECUTION_VARS, defaults=("",) * len(_EXECUTION_VARS))
    _TaskFields = namedtuple("TaskIdentity", _TASK_VARS, defaults=("",) * len(_TASK_VARS))


class ExecutionIdentity(_ExecutionFields):
    """Which workflow execution this run belongs to.

    Fields (strings, ``""`` when unknown): ``project``, ``domain``, ``name``, ``workflow``, ``launch_plan``.
    """

    __slots__ = ()


class TaskIdentity(_TaskFields):
    """Which registered task version is running: ``project``, ``domain``, ``name``, ``version``."""

    __slots__ = ()


class ExecutionContext:
    """Everything an executor may know about the run it serves (read-only by convention).

    Attributes:
        output_prefix: Where the commit file goes (the executor writes no files there itself).
        raw_output_prefix: Where data blobs (files, tables) go.
        working_dir: A private local scratch directory.
        execution: The workflow execution's identity.
        task: The task's identity.
        attempt: ``FLYTE_ATTEMPT_NUMBER`` (0 for the first attempt).
        checkpoint_path: Where this attempt may write its checkpoint, if any.
        prev_checkpoint: The previous attempt's checkpoint, if any.
        secrets: The secrets accessor.
        cancelled: Set when the run is being stopped (SIGTERM); long loops should check it.
        execution_url: ``FLYTE_EXECUTION_URL`` if propeller set it.
        output_types: The declared outputs, name -> ``LiteralType`` (template tasks) or Python type.
        template: The ``TaskTemplate`` being run, when there is one.
    """

    __slots__ = (
        "_checkpoint",
        "attempt",
        "cancelled",
        "checkpoint_path",
        "execution",
        "execution_url",
        "output_prefix",
        "output_types",
        "prev_checkpoint",
        "raw_output_prefix",
        "secrets",
        "task",
        "template",
        "working_dir",
    )

    def __init__(
        self,
        output_prefix: str,
        raw_output_prefix: str,
        working_dir: str,
        *,
        execution: ExecutionIdentity | None = None,
        task: TaskIdentity | None = None,
        attempt: int = 0,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
        secrets: SecretStore | None = None,
        cancelled: threading.Event | None = None,
        execution_url: str = "",
        output_types: Mapping[str, Any] | None = None,
        template: Any = None,
    ) -> None:
        self.output_prefix = output_prefix
        self.raw_output_prefix = raw_output_prefix
        self.working_dir = working_dir
        self.execution = execution or ExecutionIdentity()
        self.task = task or TaskIdentity()
        self.attempt = attempt
        self.checkpoint_path = checkpoint_path
        self.prev_checkpoint = prev_checkpoint
        self.secrets = secrets if secrets is not None else SecretStore()
        self.cancelled = cancelled if cancelled is not None else threading.Event()
        self.execution_url = execution_url
        self.output_types = dict(output_types or {})
        self.template = template
        self._checkpoint: Checkpoint | None = None

    @property
    def checkpoint(self) -> Checkpoint:
        """Return this attempt's checkpoint (flytekit's ``SyncCheckpoint`` shape), built on first access.

        Backed by ``checkpoint_path`` (written) and ``prev_checkpoint`` (read); see
        :class:`taskbox.checkpoints.Checkpoint`.
        """
        if self._checkpoint is None:
            from taskbox.checkpoints import Checkpoint  # lazy: only tasks that checkpoint pay for it

            self._checkpoint = Checkpoint(self.checkpoint_path, self.prev_checkpoint, working_dir=self.working_dir)
        return self._checkpoint

    def __repr__(self) -> str:
        return f"ExecutionContext(execution={self.execution!r}, task={self.task!r}, attempt={self.attempt})"

    @classmethod
    def from_env(
        cls,
        *,
        output_prefix: str,
        raw_output_prefix: str,
        working_dir: str,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
        environ: Mapping[str, str] | None = None,
        output_types: Mapping[str, Any] | None = None,
        template: Any = None,
        cancelled: threading.Event | None = None,
    ) -> ExecutionContext:
        """Build a context from Flyte's environment variables and the entrypoint's paths.

        Raises:
            ConfigError: A registered setting is malformed (:func:`taskbox.settings.validate`).
        """
        env = os.environ if environ is None else environ
        settings.validate(env)
        secrets = SecretStore(env)
        # Masked from the start, even where code reads them past the store (a plugin, a library).
        secrets.preload(getattr(getattr(template, "security_context", None), "secrets", ()))
        try:
            attempt = int(env.get("FLYTE_ATTEMPT_NUMBER", "0") or 0)
        except ValueError:
            attempt = 0
        return cls(
            output_prefix=output_prefix,
            raw_output_prefix=raw_output_prefix,
            working_dir=working_dir,
            execution=ExecutionIdentity(**{k: _pick(env, v) for k, v in _EXECUTION_VARS.items()}),
            task=TaskIdentity(**{k: _pick(env, v) for k, v in _TASK_VARS.items()}),
            attempt=attempt,
            checkpoint_path=checkpoint_path,
            prev_checkpoint=prev_checkpoint,
            secrets=secrets,
            execution_url=env.get("FLYTE_EXECUTION_URL", ""),
            output_types=output_types,
            template=template,
            cancelled=cancelled,
        )


_current: contextvars.ContextVar[ExecutionContext | None] = contextvars.ContextVar("taskbox_context", default=None)
# The context of the run in progress in this process, for threads the task starts (they do not inherit
# context variables). A container runs one task; in-process runs in several threads use the variable.
_process_current: ExecutionContext | None = None


def current_context() -> ExecutionContext:
    """Return the context of the ``@taskbox.task`` function running now (in its thread, or any thread it starts).

    Example:
        >>> import taskbox
        >>> @taskbox.task
        ... def step() -> int:
        ...     data = taskbox.current_context().checkpoint.read()
        ...     return int(data or b"0")

    Raises:
        RuntimeError: No task is running (a plain Python call of the function, or code outside a task).
    """
    context = _current.get() or _process_current
    if context is None:
        raise RuntimeError(
            "taskbox.current_context() is only available while a task runs under `taskbox execute` or "
            "Task.run(); a plain Python call of a @taskbox.task function has no execution context"
        )
    return context


_State = tuple["contextvars.Token[ExecutionContext | None]", "ExecutionContext | None"]


def enter_context(context: ExecutionContext) -> _State:
    """Make ``context`` current (used by the function resolver around the user's call).

    Returns:
        What :func:`exit_context` needs to restore the previous state.
    """
    global _process_current
    previous = _process_current
    _process_current = context
    return _current.set(context), previous


def exit_context(state: _State) -> None:
    """Undo :func:`enter_context`."""
    global _process_current
    token, previous = state
    _current.reset(token)
    _process_current = previous
