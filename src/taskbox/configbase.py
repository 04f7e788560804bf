"""The config models executors share, in a leaf module: ``ExecutorConfig``, ``JobConfig`` and ``JobPhase``.

Why: the libraries under the executors (:mod:`taskbox.sql`, :mod:`taskbox.http`) define config models too;
with the bases here they import nothing from :mod:`taskbox.executors` (the layer above them). Plugin authors
keep importing them from where docs/plugins.md and docs/jobs.md say (``taskbox.executors.config``,
``taskbox.executors.jobs``), which re-export these very classes.

A TaskTemplate lives longer than the image that first ran it, so each config carries the version of its
schema; an executor can then accept older shapes explicitly. Unknown fields are rejected, so a typo in a
template fails loudly instead of being ignored.

Invariants:
    * Imports only pydantic and the standard library (no taskbox module).
    * ``version`` defaults to 1; templates serialized by flytekit carry no version and are version 1.
    * Extra fields are forbidden unless a subclass opts out (to accept another tool's templates).
    * A duration in seconds (a field ending ``_s``, ``_sec`` or ``_seconds``, in the config's model or a
      model it holds; not keys of user data such as headers or bodies) is a finite number of at most
      :data:`MAX_SECONDS` (ten years): a larger one overflows the platform's clocks (``OverflowError``
      once the task runs, a retried SYSTEM error), so it is refused while validating, as the config's
      USER error.
"""

from __future__ import annotations

import enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["MAX_SECONDS", "ExecutorConfig", "JobConfig", "JobPhase", "check_durations"]

MAX_SECONDS = 10 * 365 * 24 * 3600
_SECONDS_SUFFIXES = ("_s", "_sec", "_seconds")


def check_durations(model: BaseModel) -> None:
    """Refuse a duration field (by its name's suffix) that is not a finite number of at most :data:`MAX_SECONDS`.

    Only the fields of ``model`` and of the models it holds (directly or in lists) are read; user data
    in mappings (headers, bodies, parameters) is not.

    Raises:
        ValueError: Naming the field's path.

    """
    stack: list[tuple[str, Any]] = [("", model)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, (list, tuple)):
            stack.extend((f"{path}[{i}]", value) for i, value in enumerate(item))
            continue
        if not isinstance(item, BaseModel):
            continue
        for name in type(item).model_fields:
            value = getattr(item, name)
            where = f"{path}.{name}" if path else name
            number = isinstance(value, (int, float)) and not isinstance(value, bool)
            if number and name.endswith(_SECONDS_SUFFIXES) and not -MAX_SECONDS <= value <= MAX_SECONDS:
                shown = repr(value) if isinstance(value, float) or abs(value) < 10**30 else "a huge integer"
                raise ValueError(f"{where}: {shown} seconds is out of range (at most {MAX_SECONDS}, ten years)")
            stack.append((where, value))


class ExecutorConfig(BaseModel):
    """Common base: versioned, strict about unknown keys, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: int = 1

    @model_validator(mode="after")
    def _durations_fit_the_clocks(self) -> ExecutorConfig:
        check_durations(self)
        return self


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
