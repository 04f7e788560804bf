"""The data of a long-running job: its handle, its status, and how it can end (the errors).

Why its own module: :mod:`taskbox.executors.jobs` (the executor API) loads the polling loop
(:mod:`taskbox.executors.jobloop`) when a job runs, and the loop needs these types; keeping them here
leaves no import cycle between the two. Import them from :mod:`taskbox.executors.jobs`, which re-exports
every name.
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict

from taskbox.configbase import JobPhase
from taskbox.errors import PlatformError, UserError

__all__ = [
    "JobAborted",
    "JobFailed",
    "JobGone",
    "JobHandle",
    "JobNotCancellable",
    "JobStatus",
    "JobSystemFailure",
    "JobTimeout",
    "LogLink",
]


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
        from taskbox.redaction import redact

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
