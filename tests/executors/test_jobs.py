"""The async executor loop (taskbox.executors.jobs) with a real executor whose service is a directory of
files: resume rules, cleanup, backoff, timeouts; and SIGTERM during submission in a real subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest
from flyteidl.core import errors_pb2
from taskbox_testplugins.filejobs import FileJobConfig, FileJobExecutor, calls, read_job, write_job

from helpers import encode_inputs, execute_args, make_template, put, read_error, read_outputs, simple, subprocess_env
from taskbox import storage
from taskbox.checkpoints import DATA_FILE
from taskbox.context import ExecutionContext
from taskbox.errors import PlatformError, PluginInvalid, Terminated
from taskbox.executors import registry
from taskbox.executors.jobloop import fingerprint
from taskbox.executors.jobs import (
    AsyncExecutor,
    JobAborted,
    JobFailed,
    JobGone,
    JobHandle,
    JobStatus,
    JobSystemFailure,
    JobTimeout,
)

pytestmark = pytest.mark.timeout(60)

FAST = {"poll_interval_seconds": 0.01, "max_poll_interval_seconds": 0.04}


@pytest.fixture
def service(tmp_path):
    path = tmp_path / "service"
    path.mkdir()
    return str(path)


def config(service, **extra):
    return FileJobConfig(state_dir=service, **{**FAST, **extra})


def context(tmp_path, checkpoint="cp", prev=None, attempt=0, cancelled=None):
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    cp = str(tmp_path / checkpoint) if checkpoint else None
    return ExecutionContext(
        str(tmp_path / "out"),
        str(tmp_path / "raw"),
        str(work),
        checkpoint_path=cp,
        prev_checkpoint=str(tmp_path / prev) if prev else None,
        attempt=attempt,
        cancelled=cancelled,
    )


def record(tmp_path, checkpoint="cp"):
    return json.loads(storage.read_bytes(storage.join(str(tmp_path / checkpoint), DATA_FILE)))


def finish_later(service, state="succeeded", after_gets=2, job_id=None, **extra):
    """Rewrite the job's file (the created one, or ``job_id``) once the loop has polled ``after_gets`` times."""

    def target():
        deadline = time.monotonic() + 30
        while not (job_id or job_ids(service)) or sum(c.startswith("get") for c in calls(service)) < after_gets:
            if time.monotonic() > deadline:
                return
            time.sleep(0.005)
        job = job_id or job_ids(service)[0]
        kept = {k: v for k, v in read_job(service, job).items() if k != "state"}
        write_job(service, job, state, **{**kept, **extra})

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread


def run(tmp_path, cfg, ctx=None, inputs=None):
    return FileJobExecutor().execute(ctx or context(tmp_path), cfg, inputs or {})


def job_ids(service, verb="create"):
    return [c.split()[1] for c in calls(service) if c.split()[0] == verb]


# ----------------------------------------------------------------------------------- the loop


def test_create_poll_succeed_and_record(tmp_path, service):
    finish_later(service, outputs={"n": 3})
    assert run(tmp_path, config(service), inputs={"x": 1}) == {"n": 3}
    (job,) = job_ids(service)
    assert read_job(service, job)["inputs"] == {"x": 1}
    rec = record(tmp_path)
    assert (rec["kind"], rec["state"], rec["task_type"]) == ("taskbox.job", "succeeded", "test-filejob")
    assert rec["handle"] == {"job_id": job, "version": 1}
    assert rec["config_sha256"] == fingerprint("test-filejob", config(service))
    assert job_ids(service, "delete") == []


@pytest.mark.parametrize(
    ("state", "error", "code", "recoverable", "record_state"),
    [
        ("failed", JobFailed, "USER:JobFailed", False, "failed"),
        ("retryable", JobSystemFailure, "SYSTEM:JobFailed", True, "failed"),
        ("aborted", JobAborted, "USER:JobAborted", False, "cancelled"),
    ],
)
def test_terminal_failures(tmp_path, service, state, error, code, recoverable, record_state):
    finish_later(service, state, message="it broke")
    with pytest.raises(error) as info:
        run(tmp_path, config(service))
    assert (info.value.code, info.value.recoverable) == (code, recoverable)
    assert "it broke" in str(info.value) and "ui: file://" in str(info.value)
    assert record(tmp_path)["state"] == record_state and job_ids(service, "delete") == []


def test_resume_from_this_attempts_checkpoint_does_not_create(tmp_path, service):
    write_job(service, "old1", "succeeded", outputs={"n": 1})
    cfg = config(service)
    seed(tmp_path, "cp", cfg, "active", "old1")
    assert run(tmp_path, cfg) == {"n": 1}
    assert job_ids(service) == [] and calls(service) == ["get old1"]


def test_this_attempts_record_wins_over_the_previous_one(tmp_path, service):
    cfg = config(service)
    write_job(service, "mine", "succeeded", outputs={"n": 2})
    seed(tmp_path, "cp", cfg, "active", "mine")
    seed(tmp_path, "prev", cfg, "active", "theirs")
    assert run(tmp_path, cfg, context(tmp_path, prev="prev")) == {"n": 2}
    assert calls(service) == ["get mine"]


def test_resume_from_previous_attempt_copies_the_record_forward(tmp_path, service):
    cfg = config(service)
    write_job(service, "j0", "running")
    seed(tmp_path, "prev", cfg, "active", "j0")
    finish_later(service, outputs={"n": 5}, after_gets=1, job_id="j0")
    assert run(tmp_path, cfg, context(tmp_path, prev="prev", attempt=1)) == {"n": 5}
    assert job_ids(service) == [] and record(tmp_path)["handle"]["job_id"] == "j0"
    assert record(tmp_path)["attempt"] == 1 and record(tmp_path)["state"] == "succeeded"


@pytest.mark.parametrize("state", ["failed", "cancelled"])
def test_ended_records_start_a_new_job(tmp_path, service, state):
    cfg = config(service)
    seed(tmp_path, "cp", cfg, state, "old")
    finish_later(service, outputs={})
    run(tmp_path, cfg)
    assert len(job_ids(service)) == 1 and "get old" not in calls(service)


def test_a_record_for_another_config_is_ignored(tmp_path, service):
    seed(tmp_path, "cp", config(service, timeout_seconds=99), "active", "other")
    finish_later(service, outputs={})
    run(tmp_path, config(service))
    assert len(job_ids(service)) == 1 and "get other" not in calls(service)


def test_a_gone_job_is_created_anew_on_resume(tmp_path, service):
    cfg = config(service)
    seed(tmp_path, "cp", cfg, "active", "vanished")
    finish_later(service, outputs={"n": 0}, after_gets=2)
    assert run(tmp_path, cfg) == {"n": 0}
    assert calls(service)[0] == "get vanished" and len(job_ids(service)) == 1


def test_a_job_that_vanishes_while_polled_is_a_recoverable_error_without_delete(tmp_path, service):
    def vanish():
        while not job_ids(service):
            time.sleep(0.005)
        os.remove(os.path.join(service, job_ids(service)[0] + ".json"))

    threading.Thread(target=vanish, daemon=True).start()
    with pytest.raises(JobGone) as info:
        run(tmp_path, config(service))
    assert info.value.recoverable and job_ids(service, "delete") == []
    assert record(tmp_path)["state"] == "active"


def test_transient_poll_failures_are_tolerated(tmp_path, service):
    cfg = config(service, max_poll_failures=3)

    def flap():
        while not job_ids(service):
            time.sleep(0.005)
        job = job_ids(service)[0]
        write_job(service, job, "flaky")
        while sum(c.startswith("get") for c in calls(service)) < 2:
            time.sleep(0.005)
        write_job(service, job, "succeeded", outputs={"ok": True})

    threading.Thread(target=flap, daemon=True).start()
    assert run(tmp_path, cfg) == {"ok": True}


def test_too_many_poll_failures_end_the_run_and_delete_the_job(tmp_path, service):
    def flaky():
        while not job_ids(service):
            time.sleep(0.005)
        write_job(service, job_ids(service)[0], "flaky")

    threading.Thread(target=flaky, daemon=True).start()
    with pytest.raises(PlatformError, match="briefly unavailable"):
        run(tmp_path, config(service, max_poll_failures=2))
    assert len(job_ids(service, "deleted")) == 1 and record(tmp_path)["state"] == "cancelled"


def test_cancelled_event_deletes_the_job_and_raises_terminated(tmp_path, service):
    ctx = context(tmp_path, cancelled=threading.Event())

    def stop():
        while not any(c.startswith("get") for c in calls(service)):
            time.sleep(0.005)
        ctx.cancelled.set()

    threading.Thread(target=stop, daemon=True).start()
    with pytest.raises(Terminated):
        run(tmp_path, config(service), ctx)
    (job,) = job_ids(service)
    assert read_job(service, job)["state"] == "cancelled" and record(tmp_path)["state"] == "cancelled"


def test_timeout_deletes_the_job(tmp_path, service):
    with pytest.raises(JobTimeout) as info:
        run(tmp_path, config(service, timeout_seconds=0.2))
    assert info.value.code == "SYSTEM:JobTimeout" and info.value.recoverable
    assert len(job_ids(service, "deleted")) == 1


def test_timeout_counts_from_the_jobs_creation_across_attempts(tmp_path, service):
    cfg = config(service, timeout_seconds=60)
    write_job(service, "old", "running")
    seed(tmp_path, "prev", cfg, "active", "old", created_at=time.time() - 61)
    with pytest.raises(JobTimeout):
        run(tmp_path, cfg, context(tmp_path, prev="prev"))
    assert read_job(service, "old")["state"] == "cancelled" and job_ids(service) == []


def test_a_finished_job_past_its_timeout_still_gives_its_outputs(tmp_path, service):
    cfg = config(service, timeout_seconds=60)
    write_job(service, "done", "succeeded", outputs={"n": 8})
    seed(tmp_path, "cp", cfg, "succeeded", "done", created_at=time.time() - 3600)
    assert run(tmp_path, cfg) == {"n": 8}
    assert calls(service) == ["get done"]


def test_a_slow_delete_is_bounded_by_the_grace_and_leaves_the_record_active(tmp_path, service):
    cfg = config(service, timeout_seconds=0.1, delete_delay=3, cancel_grace_seconds=0.3)
    started = time.monotonic()
    with pytest.raises(JobTimeout):
        run(tmp_path, cfg)
    assert time.monotonic() - started < 2.5
    assert record(tmp_path)["state"] == "active"  # not known to be cancelled: a rerun resumes it


def test_a_job_that_cannot_be_cancelled_stays_recorded_for_a_rerun(tmp_path, service):
    with pytest.raises(JobTimeout):
        run(tmp_path, config(service, timeout_seconds=0.1, cancellable=False))
    assert record(tmp_path)["state"] == "active" and job_ids(service, "deleted") == []


def test_backoff_grows_to_the_cap(tmp_path, service):
    cfg = config(service, poll_interval_seconds=0.01, max_poll_interval_seconds=0.08)
    finish_later(service, outputs={}, after_gets=9)
    stamps = []
    real_get = FileJobExecutor.get

    class Timed(FileJobExecutor):
        def get(self, context, config, handle):
            stamps.append(time.monotonic())
            return real_get(self, context, config, handle)

    Timed().execute(context(tmp_path), cfg, {})
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    assert len(gaps) >= 8
    assert min(gaps[5:8]) >= 0.04 - 0.005  # jitter waits at least half of the capped interval


def test_without_checkpoint_path_the_job_still_runs(tmp_path, service, caplog):
    finish_later(service, outputs={"n": 1})
    assert run(tmp_path, config(service), context(tmp_path, checkpoint=None)) == {"n": 1}
    assert "not durable" in caplog.text


# ------------------------------------------------------------------------------- the contract


class NoDelete(AsyncExecutor):
    task_type = "t-nodelete"

    def create(self, context, config, inputs):
        return JobHandle()

    def get(self, context, config, handle):
        return JobStatus("SUCCEEDED")


class OwnExecute(NoDelete):
    def delete(self, context, config, handle):
        pass

    def execute(self, context, config, inputs):
        return {}


class BadHandle(OwnExecute):
    Handle = dict
    execute = AsyncExecutor.execute


class WrongCreate(AsyncExecutor):
    task_type = "t-wrong"

    def create(self, context, config, inputs):
        return {"id": 1}

    def get(self, context, config, handle):
        raise AssertionError

    def delete(self, context, config, handle):
        pass


@pytest.mark.parametrize(
    ("cls", "why"),
    [(NoDelete, "does not implement delete"), (OwnExecute, "must not override execute"), (BadHandle, "Handle must be")],
)
def test_registry_checks_the_async_contract(cls, why):
    with pytest.raises(PluginInvalid, match=why):
        registry.validate(cls, "test")


def test_filejob_executor_satisfies_the_contract():
    assert registry.load("taskbox_testplugins.filejobs:FileJobExecutor") is FileJobExecutor
    assert registry.load("http-job").task_type == "http-job"


def test_create_must_return_a_handle(tmp_path):
    with pytest.raises(PluginInvalid, match="returned dict"):
        WrongCreate().execute(context(tmp_path), None, {})


# ------------------------------------------------------------------ SIGTERM during submission


def test_sigterm_during_create_still_deletes_the_submitted_job(tmp_path, service):
    custom = {"state_dir": service, "create_delay": 2.0, **FAST}
    tpl = make_template("test-filejob", {}, {"n": simple("INTEGER")}, custom)
    template = put(str(tmp_path / "task.pb"), tpl.SerializeToString())
    inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({}, {}))
    prefix = str(tmp_path / "out")
    args = execute_args(
        inputs,
        prefix,
        template,
        "taskbox_testplugins.filejobs:FileJobExecutor",
        "--checkpoint-path",
        str(tmp_path / "cp"),
    )
    proc = subprocess.Popen(
        args, env=subprocess_env(TASKBOX_TERM_GRACE_S="8"), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while not job_ids(service):
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.01)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143, err
    (job,) = job_ids(service)
    assert read_job(service, job)["state"] == "cancelled" and job_ids(service, "deleted") == [job]
    error = read_error(prefix)
    assert error.code == "SYSTEM:Terminated" and error.kind == errors_pb2.ContainerError.RECOVERABLE
    # A rerun creates a new job (the old one was cancelled) and finishes it.
    proc = subprocess.Popen(args, env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while len(job_ids(service)) < 2:
        assert time.monotonic() < deadline + 30 and proc.poll() is None
        time.sleep(0.01)
    write_job(service, job_ids(service)[1], "succeeded", outputs={"n": 4})
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert read_outputs(prefix, {"n": simple("INTEGER")}) == {"n": 4}


# ------------------------------------------------------------------------------------ helpers


def seed(tmp_path, checkpoint, cfg, state, job_id, created_at=None):
    """Write a job record as an earlier run would have."""
    rec = {
        "kind": "taskbox.job",
        "version": 1,
        "task_type": "test-filejob",
        "config_sha256": fingerprint("test-filejob", cfg),
        "state": state,
        "created_at": created_at or time.time(),
        "handle": {"job_id": job_id, "version": 1},
    }
    storage.write_bytes(storage.join(str(tmp_path / checkpoint), DATA_FILE), json.dumps(rec).encode())


def test_a_handle_label_is_redacted_before_it_is_cut():
    """A secret that straddles the 200-character cut of ``label()`` leaves no prefix behind (issue 14 #3)."""
    from taskbox import redaction

    class Handle(JobHandle):
        url: str

    secret = "s3cr3t-token-value-0123456789"
    redaction.register(secret)
    try:
        label = Handle(url="x" * 180 + secret).label()
    finally:
        redaction.clear()
    assert len(label) <= 200
    assert secret[:8] not in label
