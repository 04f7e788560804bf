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

import enum
import json
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from taskbox.errors import PlatformError, UserError
from taskbox.executors.base import Executor
from taskbox.executors.config import ExecutorConfig

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


class JobPhase(str, enum.Enum):  # noqa: UP042 - StrEnum would change str() of members
    """Phase of an external job (Flyte's ``TaskExecution`` phase names)."""

    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    RETRYABLE_FAILURE = "RETRYABLE_FAILURE"
    ABORTED = "ABORTED"

    @property
    def terminal(self) -> bool:
        """Whether the job has ended (nothing to poll, nothing to cancel)."""
        return self not in (JobPhase.QUEUED, JobPhase.RUNNING)


class JobHandle(BaseModel):
    """The small, durable identity of a job (a job id, a URL): what ``create`` returns.

    Subclass it with the fields your service needs; keep it small and JSON-serialisable, and never put a
    secret in it (it is written to the checkpoint). ``version`` lets a newer executor read old handles.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1

    def label(self) -> str:
        """Name the job in logs and messages (its fields as compact JSON)."""
        fields = self.model_dump(mode="json", exclude={"version"})
        from taskbox.redaction import redact  # noqa: PLC0415

        return redact(json.dumps(fields, sort_keys=True, separators=(",", ":")))[:200]  # redact, then cut


class LogLink(namedtuple("LogLink", "name uri")):
    """An external link for the job (a console page, a log stream): ``name``, ``uri``."""

    __slots__ = ()


class JobStatus:
    """What ``get`` reports.

    Args:
        phase: The job's phase.
        message: A short, human-readable state (shown in logs; the failure message for FAILED).
        outputs: Output values by name, for SUCCEEDED (the declared outputs, as ``execute`` returns them).
        log_links: External links for the job.
        code: Error code for a failed job (default ``USER:JobFailed`` / ``SYSTEM:JobFailed``).
        origin: ``USER`` or ``SYSTEM`` for a failed job (default: USER for FAILED, SYSTEM for
            RETRYABLE_FAILURE).
        recoverable: Whether Flyte should retry a failed job (default: False for FAILED, True for
            RETRYABLE_FAILURE).

    """

    __slots__ = ("code", "log_links", "message", "origin", "outputs", "phase", "recoverable")

    def __init__(
        self,
        phase: JobPhase | str,
        message: str = "",
        *,
        outputs: Mapping[str, Any] | None = None,
        log_links: Sequence[LogLink] = (),
        code: str | None = None,
        origin: str | None = None,
        recoverable: bool | None = None,
    ) -> None:
        self.phase = JobPhase(phase)
        self.message = message
        self.outputs = dict(outputs) if outputs is not None else None
        self.log_links = [LogLink(*link) for link in log_links]
        retryable = self.phase is JobPhase.RETRYABLE_FAILURE
        self.code = code
        self.origin = origin or ("SYSTEM" if retryable else "USER")
        self.recoverable = retryable if recoverable is None else recoverable

    def __repr__(self) -> str:
        return f"JobStatus({self.phase.value}, {self.message!r})"


class JobConfig(ExecutorConfig):
    """Base of async executors' configs: the polling loop's settings.

    Attributes:
        timeout_seconds: Longest time a job may run, counted from its creation; then it is deleted and
            the attempt fails with ``SYSTEM:JobTimeout`` (recoverable).
        poll_interval_seconds: First wait between polls.
        max_poll_interval_seconds: Longest wait between polls (the backoff's cap).
        cancel_grace_seconds: Longest wait for ``delete`` when the run stops early.
        max_poll_failures: Recoverable ``get`` failures in a row that end the run.

    """

    timeout_seconds: float = Field(default=24 * 3600.0, gt=0)
    poll_interval_seconds: float = Field(default=5.0, gt=0)
    max_poll_interval_seconds: float = Field(default=60.0, gt=0)
    cancel_grace_seconds: float = Field(default=5.0, gt=0)
    max_poll_failures: int = Field(default=5, ge=1)


class JobGone(PlatformError):
    """``get`` (or ``delete``) found no such job: it expired, was purged, or never existed."""

    code = "SYSTEM:JobGone"


class JobNotCancellable(PlatformError):
    """``delete`` cannot cancel this job (the service has no cancel call); the job keeps running."""

    code = "SYSTEM:JobNotCancellable"


class JobFailed(UserError):
    """The external job failed (the service's message is the error's)."""

    code = "USER:JobFailed"


class JobSystemFailure(PlatformError):
    """The external job failed for a reason on the service's side (retryable by default)."""

    code = "SYSTEM:JobFailed"


class JobAborted(UserError):
    """The job was cancelled outside taskbox (on the service); not retried."""

    code = "USER:JobAborted"


class JobTimeout(PlatformError):
    """The job did not finish within ``timeout_seconds``; it was deleted."""

    code = "SYSTEM:JobTimeout"


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
        from taskbox.executors.jobloop import run_job  # noqa: PLC0415 - the loop's imports, only when run

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
