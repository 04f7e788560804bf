"""The loop behind :class:`taskbox.executors.jobs.AsyncExecutor`: durable handle, resume, poll, clean up.

Why: the rules that keep a long-running external job from leaking or running twice live in one place,
outside every executor: an executor implements ``create`` / ``get`` / ``delete`` and this module decides
when each is called, what is recorded in the checkpoint, and what a restarted container does.

Invariants:
    * Durable handle: right after ``create`` returns, the handle is written to this attempt's checkpoint
      (``<checkpoint-path>/_dst_cp``, one JSON record) before the first poll; if that write fails the job
      is deleted and the run fails (recoverable). Without ``--checkpoint-path`` the job runs, but is not
      durable (a warning says so).
    * Resume rule: at start the record in this attempt's checkpoint path is used if there is one (the same
      attempt restarted into the same prefix); only when there is none, the previous attempt's
      (``--prev-checkpoint``). A record counts only if it was written by the same task type with the same
      config (SHA-256 of the config's JSON). State ``active`` or ``succeeded`` -> poll that job (a
      SUCCEEDED job just gives its outputs again); if the first ``get`` raises ``JobGone``, a new job
      is created. State ``failed`` or ``cancelled`` -> a new job is created. A record resumed from the
      previous attempt is copied to this attempt's checkpoint.
    * Cleanup: every exit from the loop that is not a terminal phase (SIGTERM's ``Terminated``,
      ``context.cancelled``, the ``timeout_seconds`` deadline, an error while polling) calls ``delete``
      in a helper thread, waiting at most ``cancel_grace_seconds`` (and at most half of
      ``TASKBOX_TERM_GRACE_S`` after SIGTERM, so the error document still gets written), then re-raises.
      A successful delete marks the record ``cancelled`` (a rerun creates a new job); a failed or
      unfinished one leaves it ``active`` (a rerun resumes the job, which may still be running). A
      SIGTERM while ``create`` runs waits (within the grace) for the handle, then deletes that job.
    * A terminal phase needs no delete: the record becomes ``succeeded`` / ``failed`` / ``cancelled``.
    * ``timeout_seconds`` counts from the job's creation (recorded with the handle), so resuming a job in
      a later attempt does not extend the time it may run.
    * Polling backs off exponentially from ``poll_interval_seconds`` up to ``max_poll_interval_seconds``
      with jitter (each wait is uniform between half and all of the current interval, never past the
      deadline); recoverable ``get`` failures are tolerated ``max_poll_failures - 1`` times in a row.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from taskbox import settings
from taskbox.configbase import JobConfig, JobPhase
from taskbox.errors import ConfigError, PlatformError, PluginInvalid, StorageNotFound, TaskboxError, Terminated
from taskbox.executors.jobmodel import (
    JobAborted,
    JobFailed,
    JobGone,
    JobHandle,
    JobStatus,
    JobSystemFailure,
    JobTimeout,
)

if TYPE_CHECKING:
    from taskbox.context import ExecutionContext
    from taskbox.executors.jobs import AsyncExecutor

__all__ = ["RECORD_KIND", "RECORD_VERSION", "fingerprint", "load_record", "run_job"]

log = logging.getLogger("taskbox.jobs")

#: ``kind`` of the JSON record written to the checkpoint.
RECORD_KIND = "taskbox.job"
#: Version of that record's layout.
RECORD_VERSION = 1
_STATES = ("active", "succeeded", "failed", "cancelled")


# ----------------------------------------------------------------------------------- the record


class _Record(namedtuple("_Record", "state handle created_at source")):
    __slots__ = ()


def fingerprint(task_type: str, config: Any) -> str:
    """SHA-256 of the task type and the config's JSON: which job records belong to this task."""
    dumped = config.model_dump(mode="json") if isinstance(config, BaseModel) else None
    text = json.dumps({"task_type": task_type, "config": dumped}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def load_record(data: bytes | None) -> dict[str, Any] | None:
    """Parse a checkpoint's bytes as a job record (``None`` if they are not one)."""
    if not data:
        return None
    try:
        record = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(record, dict) or record.get("kind") != RECORD_KIND:
        return None
    return record


class _Store:
    """Reads and writes this task's job record in the checkpoints."""

    def __init__(self, context: ExecutionContext, executor: AsyncExecutor, config: Any) -> None:
        self.context = context
        self.executor = executor
        self.fingerprint = fingerprint(executor.task_type, config)
        self.warned = False

    def _current(self) -> bytes | None:
        from taskbox import storage
        from taskbox.checkpoints import DATA_FILE

        path = self.context.checkpoint.path
        if path is None:
            return None
        try:
            return storage.read_bytes(storage.join(path, DATA_FILE))
        except StorageNotFound:
            return None

    def _previous(self) -> bytes | None:
        from taskbox.checkpoints import CheckpointError

        try:
            return self.context.checkpoint.read()
        except CheckpointError as exc:
            log.warning("not resuming from the previous checkpoint: %s", exc)
            return None

    def load(self) -> _Record | None:
        """Find the record to resume from: this attempt's checkpoint first, else the previous attempt's."""
        for source, read in (("this attempt's checkpoint", self._current), ("the previous checkpoint", self._previous)):
            record = load_record(read())
            if record is None:
                continue
            why = self._mismatch(record)
            if why:
                log.info("ignoring the job record in %s: %s", source, why)
                continue
            try:
                handle = self.executor.Handle.model_validate(record["handle"])
            except Exception as exc:  # noqa: BLE001 - pydantic's ValidationError and malformed records alike
                log.warning("ignoring the job record in %s: its handle does not validate: %s", source, exc)
                continue
            return _Record(record["state"], handle, float(record.get("created_at") or time.time()), source)
        return None

    def _mismatch(self, record: Mapping[str, Any]) -> str:
        if not isinstance(record.get("version"), int) or record["version"] > RECORD_VERSION:
            return f"record version {record.get('version')!r} is newer than this taskbox reads ({RECORD_VERSION})"
        if record.get("task_type") != self.executor.task_type:
            return f"it belongs to task type {record.get('task_type')!r}"
        if record.get("config_sha256") != self.fingerprint:
            return "it was written for a different config"
        if record.get("state") not in _STATES or not isinstance(record.get("handle"), dict):
            return "it is malformed"
        return ""

    def save(self, state: str, handle: JobHandle, created_at: float, *, required: bool = False) -> None:
        """Write the record to this attempt's checkpoint; ``required`` makes failures raise."""
        if self.context.checkpoint.path is None:
            if not self.warned:
                log.warning(
                    "no --checkpoint-path: the job handle is not durable; a restarted container cannot "
                    "resume this job and a SIGKILL leaves it running"
                )
                self.warned = True
            return
        record = {
            "kind": RECORD_KIND,
            "version": RECORD_VERSION,
            "task_type": self.executor.task_type,
            "config_sha256": self.fingerprint,
            "state": state,
            "created_at": created_at,
            "updated_at": time.time(),
            "attempt": self.context.attempt,
            "handle": handle.model_dump(mode="json"),
        }
        data = json.dumps(record, sort_keys=True).encode()
        try:
            self.context.checkpoint.write(data)
        except TaskboxError as exc:
            if required:
                raise
            log.warning("could not record job state %r in the checkpoint: %s", state, exc)


# ------------------------------------------------------------------------------------- the loop


def _term_grace() -> float:
    try:
        return settings.seconds("TASKBOX_TERM_GRACE_S", settings.TERM_GRACE_DEFAULT_S)
    except ConfigError:  # settings.validate() fails the run at its start
        return settings.TERM_GRACE_DEFAULT_S


def _setting(config: Any, name: str) -> Any:
    return getattr(config, name, JobConfig.model_fields[name].default)


class _Runner:
    """One run of the loop: the job it owns and whether it must be deleted on an early exit."""

    def __init__(
        self, executor: AsyncExecutor, context: ExecutionContext, config: Any, inputs: Mapping[str, Any]
    ) -> None:
        self.executor = executor
        self.context = context
        self.config = config
        self.inputs = inputs
        self.store = _Store(context, executor, config)
        self.handle: JobHandle | None = None
        self.created_at = 0.0
        self.live = False  # a job exists that this run must delete if it stops before a terminal phase
        self.resumed = False

    # -- lifecycle

    def run(self) -> Mapping[str, Any]:
        try:
            self._start()
            return self._poll()
        except BaseException as exc:
            if self.live:
                self._cleanup(exc)
            raise

    def _start(self) -> None:
        record = self.store.load()
        if record is None:
            self._create()
            return
        if record.state in ("failed", "cancelled"):
            log.info("the job in %s ended (%s); starting a new job", record.source, record.state)
            self._create()
            return
        log.info("resuming the job recorded in %s (%s): %s", record.source, record.state, _show(record.handle))
        self.handle, self.created_at, self.live, self.resumed = record.handle, record.created_at, True, True
        if record.source != "this attempt's checkpoint":
            self.store.save("active", record.handle, record.created_at)

    def _create(self) -> None:
        box: dict[str, Any] = {}
        done = threading.Event()

        def target() -> None:
            try:
                box["handle"] = self.executor.create(self.context, self.config, self.inputs)
            except BaseException as exc:  # noqa: BLE001 - handed to the main thread
                box["error"] = exc
            finally:
                done.set()

        try:
            # start() inside the try: it waits for the thread to run, which may submit the job before a
            # SIGTERM delivered meanwhile raises here.
            threading.Thread(target=target, name="taskbox-job-create", daemon=True).start()
            while not done.wait(0.5):
                pass
        except Terminated:
            # Stopped while the job was being submitted: wait (bounded) for its handle, so it is deleted.
            done.wait(self._grace())
            if isinstance(box.get("handle"), JobHandle):
                self._adopt(box["handle"])
            raise
        if "error" in box:
            raise box["error"]
        handle = box["handle"]
        if not isinstance(handle, self.executor.Handle):
            raise PluginInvalid(
                f"{type(self.executor).__name__}.create returned {type(handle).__name__}, not its Handle "
                f"({self.executor.Handle.__name__})"
            )
        self._adopt(handle)
        log.info("created job %s", _show(handle))
        self.store.save("active", handle, self.created_at, required=True)

    def _adopt(self, handle: JobHandle) -> None:
        self.handle, self.created_at, self.live, self.resumed = handle, time.time(), True, False

    def _poll(self) -> Mapping[str, Any]:
        interval = float(_setting(self.config, "poll_interval_seconds"))
        cap = max(interval, float(_setting(self.config, "max_poll_interval_seconds")))
        max_failures = int(_setting(self.config, "max_poll_failures"))
        failures, polled, last_phase, last_links = 0, False, None, None
        while True:
            self._check_cancelled()
            assert self.handle is not None
            try:
                status = self.executor.get(self.context, self.config, self.handle)
            except Terminated:
                raise
            except JobGone:
                self.live = False  # nothing left to delete
                if self.resumed and not polled:
                    log.warning("the recorded job %s is gone; starting a new job", _show(self.handle))
                    self._create()
                    continue
                raise
            except PlatformError as exc:
                if not exc.recoverable:
                    raise
                failures += 1
                if failures >= max_failures:
                    raise
                log.warning("polling the job failed (%d/%d): %s", failures, max_failures, exc)
                self._check_deadline()
                self._sleep(interval)
                continue
            if not isinstance(status, JobStatus):
                raise PluginInvalid(
                    f"{type(self.executor).__name__}.get returned {type(status).__name__}, not a JobStatus"
                )
            polled, failures = True, 0
            if status.phase.terminal:
                return self._finish(status)  # even past the deadline: a finished job is not timed out
            self._check_deadline()
            if status.phase != last_phase or status.log_links != last_links:
                links = "; ".join(f"{n}: {u}" for n, u in status.log_links)
                log.info(
                    "job %s %s%s%s",
                    _show(self.handle),
                    status.phase.value,
                    f": {status.message}" if status.message else "",
                    f" ({links})" if links else "",
                )
                if status.phase != last_phase and last_phase is not None:
                    interval = float(_setting(self.config, "poll_interval_seconds"))
                last_phase, last_links = status.phase, status.log_links
            self._sleep(interval)
            interval = min(cap, interval * 2)

    def _finish(self, status: JobStatus) -> Mapping[str, Any]:
        self.live = False
        assert self.handle is not None
        links = "".join(f"\n{n}: {u}" for n, u in status.log_links)
        if status.phase is JobPhase.SUCCEEDED:
            self.store.save("succeeded", self.handle, self.created_at)
            log.info("job %s succeeded%s", _show(self.handle), f": {status.message}" if status.message else "")
            return status.outputs or {}
        if status.phase is JobPhase.ABORTED:
            self.store.save("cancelled", self.handle, self.created_at)
            raise JobAborted(f"the job {_show(self.handle)} was cancelled outside taskbox: {status.message}{links}")
        self.store.save("failed", self.handle, self.created_at)
        message = f"the job {_show(self.handle)} failed: {status.message or '(no message)'}{links}"
        error: TaskboxError
        if status.origin == "SYSTEM":
            error = JobSystemFailure(message, code=status.code, recoverable=status.recoverable)
        else:
            error = JobFailed(message, code=status.code, recoverable=status.recoverable)
        raise error

    # -- stopping

    def _deadline(self) -> float:
        return self.created_at + float(_setting(self.config, "timeout_seconds"))

    def _check_cancelled(self) -> None:
        if self.context.cancelled.is_set():
            raise Terminated("the run was cancelled while the job was running")

    def _check_deadline(self) -> None:
        if time.time() >= self._deadline():
            raise JobTimeout(
                f"the job {_show(self.handle)} did not finish within timeout_seconds="
                f"{_setting(self.config, 'timeout_seconds')}; it was cancelled"
            )

    def _sleep(self, interval: float) -> None:
        delay = random.uniform(interval / 2, interval)
        delay = max(0.0, min(delay, self._deadline() - time.time()))
        if self.context.cancelled.wait(delay):
            raise Terminated("the run was cancelled while the job was running")

    def _grace(self) -> float:
        grace = float(_setting(self.config, "cancel_grace_seconds"))
        if self.context.cancelled.is_set():
            grace = min(grace, _term_grace() / 2)
        return grace

    def _cleanup(self, reason: BaseException) -> None:
        """Delete the job within the grace period; record the outcome. Never raises."""
        handle = self.handle
        assert handle is not None
        self.live = False
        outcome: dict[str, BaseException | None] = {}
        done = threading.Event()

        def target() -> None:
            try:
                self.executor.delete(self.context, self.config, handle)
                outcome["error"] = None
            except BaseException as exc:  # noqa: BLE001 - reported below
                outcome["error"] = exc
            finally:
                done.set()

        grace = self._grace()
        log.info("stopping (%s): cancelling job %s (within %.1f s)", type(reason).__name__, _show(handle), grace)
        deleter = threading.Thread(target=target, name="taskbox-job-delete", daemon=True)
        try:
            deleter.start()
        except Terminated:
            pass  # delivered while start() waited: the thread runs; wait for it within the grace below
        end = time.monotonic() + grace
        while not done.is_set() and time.monotonic() < end:
            try:
                done.wait(max(0.0, end - time.monotonic()))
            except Terminated:
                continue  # a SIGTERM during a timeout's cleanup: keep waiting within the grace
        if not done.is_set():
            log.warning("cancelling job %s did not finish within %.1f s; a rerun resumes it", _show(handle), grace)
            return
        error = outcome.get("error")
        if error is None or isinstance(error, JobGone):
            log.info("cancelled job %s", _show(handle))
            _quietly(lambda: self.store.save("cancelled", handle, self.created_at))
        else:
            log.warning(
                "cancelling job %s failed (%s: %s); a rerun resumes it", _show(handle), type(error).__name__, error
            )


def _quietly(fn: Callable[[], object]) -> None:
    try:
        fn()
    except BaseException as exc:  # noqa: BLE001 - cleanup must not hide the reason the run stops
        log.warning("could not record the cancelled job: %s", exc)


def _show(handle: JobHandle | None) -> str:
    return "?" if handle is None else handle.label()


def run_job(
    executor: AsyncExecutor, context: ExecutionContext, config: Any, inputs: Mapping[str, Any]
) -> Mapping[str, Any]:
    """Run the job lifecycle (see the module docstring for the resume and cleanup rules).

    Args:
        executor: The async executor.
        context: The run's context (checkpoint, ``cancelled``).
        config: The executor's config (a :class:`JobConfig` for the loop's settings; defaults otherwise).
        inputs: Input values by name (given to ``create``).

    Returns:
        The outputs of the SUCCEEDED job.

    Raises:
        JobFailed: The job FAILED (or a ``JobSystemFailure`` for SYSTEM failures).
        JobAborted: The job was cancelled on the service.
        JobTimeout: ``timeout_seconds`` passed; the job was deleted.
        Terminated: SIGTERM or ``context.cancelled``; the job was deleted.

    """
    return _Runner(executor, context, config, inputs).run()
