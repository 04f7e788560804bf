"""Long-running external jobs: ``create`` / ``get`` / ``delete``, a durable handle, and guaranteed cleanup.

Why: an executor that starts a remote job (a warehouse query, a batch job, a training run behind an HTTP
API) and waits for it in-line has two failure modes that Flyte's docs list for SDK-side plugins: a
container that dies after starting the job leaks it (nobody cancels it), and a restarted container starts
a second one. flyte-sdk's ``AsyncConnector`` (``create`` -> small metadata handle, ``get`` -> phase and
outputs, ``delete`` -> cancel) fixes that in a connector service; :class:`AsyncExecutor` brings the same
lifecycle into the container, so it works under any orchestrator. Its ``execute`` is the polling loop
(:mod:`taskbox.executors.jobloop`), so ``taskbox execute``, ``taskbox run`` and in-process ``.run()`` all
get it unchanged. This module is the API an executor author sees; docs/jobs.md has the whole picture.

Invariants:
    * ``execute`` is final (the registry refuses an AsyncExecutor that overrides it, or that lacks
      ``create``/``get``/``delete`` or a :class:`JobHandle` ``Handle``).
    * A handle is a small versioned pydantic model with no secrets: it is written to the checkpoint and
      read back by another pod, maybe by a newer image.
    * ``get`` and ``delete`` work from the handle alone; ``delete`` is idempotent.
    * Phases are Flyte's: FAILED is USER non-recoverable and RETRYABLE_FAILURE SYSTEM recoverable unless
      the status says otherwise; ABORTED (cancelled on the service) is ``USER:JobAborted``.
    * Resume and cleanup rules: :mod:`taskbox.executors.jobloop`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from taskbox.configbase import JobConfig, JobPhase
from taskbox.executors.base import Executor
from taskbox.executors.jobmodel import (
    JobAborted,
    JobFailed,
    JobGone,
    JobHandle,
    JobNotCancellable,
    JobStatus,
    JobSystemFailure,
    JobTimeout,
    LogLink,
)

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext

__all__ = [
    "AsyncExecutor",
    "JobAborted",
    "JobConfig",
    "JobFailed",
    "JobGone",
    "JobHandle",
    "JobNotCancellable",
    "JobPhase",
    "JobStatus",
    "JobSystemFailure",
    "JobTimeout",
    "LogLink",
]

# ------------------------------------------------------------------------------------------ the API


class AsyncExecutor(Executor):
    """An executor for jobs that run elsewhere: implement ``create``, ``get`` and ``delete``.

    ``execute`` is final: it runs :func:`run_job`. Set :attr:`Handle` to your :class:`JobHandle` subclass
    and :attr:`Config` to a :class:`JobConfig` subclass (the loop reads its settings from the config).
    ``get`` and ``delete`` must work from the handle alone: they may run in a later attempt, in another
    pod, with a handle read back from the checkpoint.
    """

    #: The handle model ``create`` returns and the checkpoint stores.
    Handle: ClassVar[type[JobHandle]] = JobHandle

    def create(self, context: ExecutionContext, config: Any, inputs: Mapping[str, Any]) -> JobHandle:
        """Start the job and return its handle (called once per job, in a helper thread).

        Raises:
            TaskboxError: The job could not be started (a USER error for a rejected request).

        """
        raise NotImplementedError

    def get(self, context: ExecutionContext, config: Any, handle: JobHandle) -> JobStatus:
        """Poll the job once.

        Raises:
            JobGone: The service does not know the job (any more).
            PlatformError: A transient failure; the loop tolerates ``max_poll_failures - 1`` in a row.

        """
        raise NotImplementedError

    def delete(self, context: ExecutionContext, config: Any, handle: JobHandle) -> None:
        """Cancel the job and release what it holds (idempotent: an ended or unknown job is fine).

        Raises:
            JobNotCancellable: The job cannot be cancelled; the record stays active so a rerun resumes it.

        """
        raise NotImplementedError

    def execute(self, context: ExecutionContext, config: Any, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Create (or resume) the job, poll it to a terminal phase, and return its outputs."""
        from taskbox.executors.jobloop import run_job  # lazy: the loop's imports, only when run

        return run_job(self, context, config, inputs)

    @classmethod
    def contract_problems(cls) -> str | None:
        """Why the class breaks the async contract, or ``None`` (the registry calls this when loading it)."""
        for name in ("create", "get", "delete"):
            if getattr(cls, name) is getattr(AsyncExecutor, name):
                return f"it does not implement {name}(context, config, ...)"
        if cls.execute is not AsyncExecutor.execute:
            return "an AsyncExecutor must not override execute (the polling loop)"
        if not (isinstance(cls.Handle, type) and issubclass(cls.Handle, JobHandle)):
            return "Handle must be a subclass of taskbox.executors.jobs.JobHandle"
        return None
