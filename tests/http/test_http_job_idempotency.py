"""Issue 14 item 5: the ``http-job`` submit carries a deterministic idempotency key, so a container killed
between the submit and the checkpoint write, restarted into the same attempt, gets the job it created."""

from __future__ import annotations

import signal

import jobserver
import pytest
from test_http_job import INT, Run, finish, job_custom

from taskbox import storage
from taskbox.checkpoints import DATA_FILE
from taskbox.context import ExecutionContext
from taskbox.executors import validate_config
from taskbox.executors.http_job import HTTPJobExecutor, submit_key

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
def jobs():
    with jobserver.running() as srv:
        yield srv


def test_sigkill_between_submit_and_checkpoint_then_rerun_makes_one_job(tmp_path, jobs):
    run = Run(tmp_path, job_custom(jobs, {"result": {"rows": 3}}, outputs={"rows": "/result/rows"}), {"rows": INT})
    checkpoint = str(tmp_path / "cp1")
    jobs.hold.set()  # the server creates the job, the client does not hear back
    proc = run.start(checkpoint)
    jobs.wait_for(lambda: "job-1" in jobs.jobs)
    proc.kill()
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not storage.exists(storage.join(checkpoint, DATA_FILE))  # the handle was never recorded
    jobs.hold.clear()
    jobs.release.set()
    rerun = run.start(checkpoint)  # the same attempt, restarted
    jobs.wait_for(lambda: jobs.polls["job-1"] >= 1)
    jobs.finish("job-1")
    code, err = finish(rerun)
    assert code == 0, err
    assert list(jobs.jobs) == ["job-1"]  # ONE job on the server
    keys = [s["key"] for s in jobs.submissions]
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1]


def test_the_key_header_name_is_configurable_and_can_be_off(tmp_path, jobs):
    from test_http_job import run_job

    run_job(tmp_path, job_custom(jobs, {"polls": 0}, idempotency_key_header="X-Request-Key"))
    run_job(tmp_path, job_custom(jobs, {"polls": 0}, idempotency_key_header=None))
    first, second = jobs.submissions
    assert first["headers"].get("X-Request-Key") and "Idempotency-Key" not in first["headers"]
    assert "Idempotency-Key" not in second["headers"] and "X-Request-Key" not in second["headers"]


def _context(tmp_path, **env):
    base = {
        "FLYTE_INTERNAL_EXECUTION_PROJECT": "p",
        "FLYTE_INTERNAL_EXECUTION_DOMAIN": "d",
        "FLYTE_INTERNAL_EXECUTION_ID": "exec-1",
        "FLYTE_INTERNAL_TASK_NAME": "t",
        "FLYTE_ATTEMPT_NUMBER": "0",
    }
    base.update(env)
    return ExecutionContext.from_env(output_prefix="s3://b/metadata/n0/data/0", raw_output_prefix="s3://b/raw",
                                     working_dir=str(tmp_path / "w"), checkpoint_path=str(tmp_path / "cp"),
                                     environ=base)  # fmt: skip


CONFIG = {"submit": {"url": "http://h/jobs"}, "status_url": "http://h/jobs/{{ .job.id }}"}


def test_submit_key_is_stable_for_the_same_attempt_and_differs_otherwise(tmp_path):
    config = validate_config(HTTPJobExecutor, CONFIG)
    key = submit_key(_context(tmp_path), config)
    assert key == submit_key(_context(tmp_path), config)  # a restarted pod of the same attempt
    assert key != submit_key(_context(tmp_path, FLYTE_ATTEMPT_NUMBER="1"), config)
    assert key != submit_key(_context(tmp_path, FLYTE_INTERNAL_EXECUTION_ID="exec-2"), config)
    other = validate_config(HTTPJobExecutor, {**CONFIG, "status_url": "http://h/v2/jobs/{{ .job.id }}"})
    assert key != submit_key(_context(tmp_path), other)


def test_submit_key_changes_when_the_attempt_replaces_a_recorded_job(tmp_path):
    """A cancelled/failed/gone job recorded in this attempt's checkpoint is replaced by a NEW job: new key."""
    from taskbox.executors.jobloop import RECORD_KIND

    config = validate_config(HTTPJobExecutor, CONFIG)
    context = _context(tmp_path)
    key = submit_key(context, config)
    record = {"kind": RECORD_KIND, "version": 1, "state": "cancelled", "handle": {"job": {"id": "job-1"}}}
    storage.write_bytes(storage.join(str(tmp_path / "cp"), DATA_FILE), __import__("json").dumps(record).encode())
    replaced = submit_key(context, config)
    assert replaced != key and replaced == submit_key(_context(tmp_path), config)


def test_submit_key_is_random_when_nothing_can_resume(tmp_path):
    config = validate_config(HTTPJobExecutor, CONFIG)
    context = ExecutionContext.from_env(output_prefix="/tmp/o", raw_output_prefix="/tmp/r",
                                        working_dir=str(tmp_path), environ={})  # fmt: skip
    assert submit_key(context, config) != submit_key(context, config)
