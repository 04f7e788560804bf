"""A real async executor whose "service" is a directory of JSON files, shared across processes.

Each job is ``<state_dir>/<id>.json`` = ``{"state": ..., "message": ..., "outputs": {...}}``; tests drive
it by rewriting that file. Every call is appended to ``<state_dir>/calls.log`` (``create <id>``,
``get <id>``, ``delete <id>``), so a test sees exactly what the loop did, in this process or another.

States: ``running`` (default), ``succeeded``, ``failed``, ``retryable``, ``aborted``; ``flaky`` makes
``get`` raise a recoverable error; a missing file makes ``get`` raise ``JobGone``.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import Field

from taskbox.errors import PlatformError
from taskbox.executors.jobs import AsyncExecutor, JobConfig, JobGone, JobHandle, JobNotCancellable, JobStatus


class FileJobConfig(JobConfig):
    state_dir: str
    create_delay: float = Field(default=0.0, ge=0)
    delete_delay: float = Field(default=0.0, ge=0)
    cancellable: bool = True


class FileJobHandle(JobHandle):
    job_id: str


def _log(config: FileJobConfig, line: str) -> None:
    with open(os.path.join(config.state_dir, "calls.log"), "a") as fh:
        fh.write(line + "\n")


def calls(state_dir: str) -> list[str]:
    """The calls made so far, in order (``"create <id>"``...)."""
    try:
        with open(os.path.join(state_dir, "calls.log")) as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def write_job(state_dir: str, job_id: str, state: str, **extra: Any) -> None:
    path = os.path.join(state_dir, f"{job_id}.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"state": state, **extra}, fh)
    os.replace(tmp, path)


def read_job(state_dir: str, job_id: str) -> dict[str, Any]:
    with open(os.path.join(state_dir, f"{job_id}.json")) as fh:
        return json.load(fh)


class FileJobExecutor(AsyncExecutor):
    task_type = "test-filejob"
    Config = FileJobConfig
    Handle = FileJobHandle

    def create(self, context, config: FileJobConfig, inputs: Mapping[str, Any]) -> FileJobHandle:
        job_id = uuid.uuid4().hex[:8]
        write_job(config.state_dir, job_id, "running", inputs=dict(inputs))
        _log(config, f"create {job_id}")
        time.sleep(config.create_delay)  # a slow submission: the job exists before create returns
        return FileJobHandle(job_id=job_id)

    def get(self, context, config: FileJobConfig, handle: FileJobHandle) -> JobStatus:
        _log(config, f"get {handle.job_id}")
        try:
            job = read_job(config.state_dir, handle.job_id)
        except FileNotFoundError:
            raise JobGone(f"no job {handle.job_id}") from None
        state = job["state"]
        if state == "flaky":
            raise PlatformError("the service is briefly unavailable")
        phase = {
            "running": "RUNNING",
            "succeeded": "SUCCEEDED",
            "failed": "FAILED",
            "retryable": "RETRYABLE_FAILURE",
            "aborted": "ABORTED",
            "cancelled": "ABORTED",
        }[state]
        return JobStatus(
            phase, job.get("message", ""), outputs=job.get("outputs"), log_links=[("ui", f"file://{handle.job_id}")]
        )

    def delete(self, context, config: FileJobConfig, handle: FileJobHandle) -> None:
        _log(config, f"delete {handle.job_id}")
        if not config.cancellable:
            raise JobNotCancellable("this service cannot cancel jobs")
        time.sleep(config.delete_delay)
        write_job(config.state_dir, handle.job_id, "cancelled")
        _log(config, f"deleted {handle.job_id}")
